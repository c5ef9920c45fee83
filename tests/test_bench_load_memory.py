"""The loading case of ``bench memory``: the scaled-fp8 file it writes is one safetensors and the product's loader
read, and the measurement tells a load kept in fp8 from one widened to bf16 (one block of the real Wan 1.3B)."""

import sys

import pytest
import torch
from safetensors import safe_open

from motion_core.bench._load_memory import PREFIX, measure, write_scaled_fp8_file

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    path = tmp_path_factory.mktemp("load_bench") / "wan_fp8_scaled.safetensors"
    return path, write_scaled_fp8_file(path, "wan2.1_t2v_1.3b", blocks=1)


def test_the_written_file_is_a_scaled_fp8_file_of_the_real_architecture(written):
    path, size = written
    assert path.stat().st_size == size
    with safe_open(str(path), framework="pt") as handle:
        keys = set(handle.keys())
        q = handle.get_tensor(PREFIX + "blocks.0.self_attn.q.weight")
        scale = handle.get_tensor(PREFIX + "blocks.0.self_attn.q.scale_weight")
        assert PREFIX + "scaled_fp8" in keys and q.dtype == torch.float8_e4m3fn and tuple(q.shape) == (1536, 1536)
        assert scale.dtype == torch.float32 and float(q.float().abs().max()) == 448.0
        assert handle.get_tensor(PREFIX + "blocks.0.norm3.weight").dtype == torch.bfloat16
        assert not any(k.startswith(PREFIX + "blocks.1.") for k in keys)


def test_kept_in_fp8_the_load_holds_about_half_of_what_widening_holds(written):
    path, size = written
    kept, widened = measure(path, keep_fp8=True), measure(path, keep_fp8=False)
    assert kept["model_bytes"]["float8_e4m3fn"] > 0 and "float8_e4m3fn" not in widened["model_bytes"]
    assert kept["growth"]["RssAnon"] < 0.75 * widened["growth"]["RssAnon"], (kept, widened)
    assert kept["growth"]["RssFile"] < 0.2 * size  # no map of the file
