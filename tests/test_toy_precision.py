"""bfloat16 autocast for the text-to-video stage: a faster step, the same float32 weights and loss."""

import pytest
import torch
from test_toy_pretrain_support import train_with_and_without

from motion_core.toy.pretrain.architecture import build_unet
from motion_core.toy.pretrain.precision import autocast, resolve_precision


def test_explicit_choices_are_kept_and_unknown_ones_refused():
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="fp32, bf16"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="fp32 or bf16"):
        autocast("auto", "cpu")


def test_auto_picks_bf16_only_where_the_device_computes_it_natively():
    native_cpu = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert resolve_precision("auto", "cpu") == ("bf16" if native_cpu else "fp32")
    if not torch.cuda.is_available():
        assert resolve_precision("auto", "cuda") == "fp32"


def test_bf16_autocast_runs_the_unet_in_bfloat16_and_stays_close_to_float32():
    torch.manual_seed(0)
    unet = build_unet().eval()
    x, t, states = torch.randn(1, 4, 8, 16, 16), torch.tensor([500]), torch.randn(1, 16, 64)
    with torch.no_grad():
        full = unet(x, t, encoder_hidden_states=states).sample
        with autocast("bf16", "cpu"):
            half = unet(x, t, encoder_hidden_states=states).sample
        with autocast("fp32", "cpu"):
            same = unet(x, t, encoder_hidden_states=states).sample
    assert half.dtype == torch.bfloat16 and same.dtype == torch.float32
    assert torch.equal(same, full)
    rel = (half.float() - full).norm() / full.norm()
    assert 0 < rel < 0.05, rel


def test_a_bf16_run_trains_float32_weights_that_differ_from_fp32_and_records_it(tmp_path):
    card = train_with_and_without(tmp_path, "--precision", "bf16", baseline=("--precision", "fp32"))
    assert '"precision": "bf16"' in card
    assert '"precision": "fp32"' in (tmp_path / "plain" / "README.md").read_text()
