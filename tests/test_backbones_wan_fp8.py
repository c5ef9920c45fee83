"""Wan files kept in fp8 as stored (keep_fp8): the block Linear weights stay float8 with the file's scales and
compute what the widened model computes; move() keeps them; a LoRA stack merges into them and restores their exact
bytes; a LoRA trains on such a model; the memory plan counts them as fp8 and auto does not convert them again.

Tiny models of the real classes, written as ComfyUI's fp8 and scaled-fp8 files (wan_samples.py).
"""

import argparse
import math
import shutil

import pytest
import torch
from safetensors import safe_open
from wan_samples import PREFIX, write_tiny_wan_files

from motion_core.backbones import load_backbone
from motion_core.backbones.base import move
from motion_core.backbones.memory import fp8_linear_names, holds_fp8
from motion_core.backbones.wan import loading as wan_loading
from motion_core.backbones.wan.keys import diffusers_module_to_original
from motion_core.backbones.wan.single_file import load_transformer_file
from motion_core.clips import Clip, ClipSet
from motion_core.lora.merge import round_to_fp8
from motion_core.lora.synthetic import random_lora
from motion_core.recipes import get_recipe
from motion_core.sampling import LoraStack, StackMerger
from motion_core.training import TrainingConfig, train_motion_lora
from motion_core.training.auto_memory import candidates
from motion_core.training.memory_plan import MemorySettings, Predictor, WeightFacts

FP8 = torch.float8_e4m3fn
SCALED, PLAIN, FP16 = "wan_tiny_fp8_scaled.safetensors", "wan_tiny_fp8_e4m3fn.safetensors", "wan_tiny_fp16.safetensors"


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    made = write_tiny_wan_files(tmp_path_factory.mktemp("wan_fp8"))
    root = made["root"]
    return {"root": root, "vae": root / "wan_tiny_vae.safetensors", "text_encoder": root / "umt5_tiny_fp16.safetensors"}


def _backbone(files, name=SCALED, **options):
    return load_backbone(files["root"] / name, vae=files["vae"], text_encoder=files["text_encoder"], **options)


def _inputs(dtype=torch.float32):
    g = torch.Generator().manual_seed(1)
    return torch.randn(1, 16, 2, 4, 4, generator=g).to(dtype), torch.randn(1, 6, 4096, generator=g).to(dtype)


def _output(model, dtype=torch.float32):
    latents, text = _inputs(dtype)
    with torch.no_grad():
        return model(latents, torch.tensor([500]), text, return_dict=False)[0].float()


def _bytes(tensor):
    return tensor.detach().reshape(-1).view(torch.uint8).clone()


# ---- loading ------------------------------------------------------------------------------------------------------
def test_keep_fp8_keeps_the_block_linears_as_the_file_stores_them_with_its_scales(files):
    kept, _ = load_transformer_file(files["root"] / SCALED, torch.float32, keep_fp8=True)
    widened, _ = load_transformer_file(files["root"] / SCALED, torch.float32)
    linears = fp8_linear_names(kept)
    assert len(linears) == 20  # q, k, v, o of both attentions and the two ffn layers, in each of 2 blocks
    with safe_open(str(files["root"] / SCALED), framework="pt") as stored:
        for name in linears:
            layer, original = kept.get_submodule(name), PREFIX + diffusers_module_to_original(name)
            assert layer.weight.dtype == FP8 and layer.fp8_scale.dtype == torch.float32
            assert torch.equal(_bytes(layer.weight), _bytes(stored.get_tensor(original + ".weight"))), name
            assert float(layer.fp8_scale) == float(stored.get_tensor(original + ".scale_weight")), name
    # the condition embedder and the head stay widened: diffusers casts the timestep to the time embedder's dtype
    kept_params, wide_params = dict(kept.named_parameters()), dict(widened.named_parameters())
    for name, tensor in kept_params.items():
        if name.removesuffix(".weight") not in linears:
            assert tensor.dtype == torch.float32 and torch.equal(tensor, wide_params[name]), name
    fp8_bytes = sum(kept.get_submodule(n).weight.numel() for n in linears)
    assert sum(widened.get_submodule(n).weight.nbytes for n in linears) == 4 * fp8_bytes


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2])
def test_the_fp8_finite_check_agrees_with_float16_isfinite_on_every_bit_pattern(dtype):
    from motion_core.backbones.files import all_finite

    patterns = torch.arange(256, dtype=torch.uint8).view(dtype)
    finite = torch.isfinite(patterns.to(torch.float16))
    assert [all_finite(patterns[i:i + 1]) for i in range(256)] == finite.tolist()
    assert all_finite(patterns[finite]) and not all_finite(patterns)


@pytest.mark.parametrize("name", [SCALED, PLAIN])
def test_the_kept_model_computes_what_the_widened_model_computes(files, name):
    kept, _ = load_transformer_file(files["root"] / name, torch.float32, keep_fp8=True)
    widened, _ = load_transformer_file(files["root"] / name, torch.float32)
    reference = _output(widened)
    # in float32 both compute W8 * scale exactly; the matmuls are the same
    torch.testing.assert_close(_output(kept), reference, rtol=1e-6, atol=1e-6)
    kept_bf16, _ = load_transformer_file(files["root"] / name, torch.bfloat16, keep_fp8=True)
    widened_bf16, _ = load_transformer_file(files["root"] / name, torch.bfloat16)
    error_kept = (_output(kept_bf16, torch.bfloat16) - reference).norm() / reference.norm()
    error_widened = (_output(widened_bf16, torch.bfloat16) - reference).norm() / reference.norm()
    assert error_kept < 0.02 and error_kept < 2 * error_widened, (error_kept, error_widened)


def test_load_backbone_keeps_fp8_when_asked_and_by_default_only_on_cuda(files, monkeypatch):
    assert not holds_fp8(_backbone(files).denoiser)  # the CPU default: widened, as before
    kept = _backbone(files, keep_fp8=True)
    assert holds_fp8(kept.denoiser) and kept.model_info["keep_fp8"] is True
    assert not holds_fp8(_backbone(files, FP16, keep_fp8=True).denoiser)  # nothing stored in fp8, nothing kept
    asked = []

    def spy(*args, **kwargs):
        asked.append(kwargs["keep_fp8"])
        raise RuntimeError("stop before loading")

    monkeypatch.setattr(wan_loading, "load_wan_components", spy)
    for device, keep in (("cuda", None), ("cpu", None), ("cuda:1", False), ("cpu", True)):
        with pytest.raises(RuntimeError, match="stop"):
            _backbone(files, device=device, keep_fp8=keep)
    assert asked == [True, False, False, True]


def test_the_second_a14b_expert_follows_the_backbones_choice(files, tmp_path):
    for expert in ("high_noise", "low_noise"):
        shutil.copy(files["root"] / SCALED, tmp_path / f"wan2.2_t2v_{expert}_tiny_fp8_scaled.safetensors")
    for keep in (True, False):
        backbone = wan_loading.load_wan_backbone(
            tmp_path / "wan2.2_t2v_high_noise_tiny_fp8_scaled.safetensors", vae_path=files["vae"],
            text_encoder_path=files["text_encoder"], keep_fp8=keep,
            other_expert_file=tmp_path / "wan2.2_t2v_low_noise_tiny_fp8_scaled.safetensors")
        assert holds_fp8(backbone.experts.high_noise) is keep and holds_fp8(backbone.experts.low_noise) is keep


def test_cli_dtype_choices_say_when_fp8_is_kept():
    from motion_core.cli.train import model_file_options

    def options(dtype, device, shard_base=False):
        args = argparse.Namespace(dtype=dtype, device=device, vae=None, text_encoder=None, clip_vision=None,
                                  expert="high_noise", shard_base=shard_base)
        chosen = model_file_options(args)
        return chosen["dtype"], chosen["keep_fp8"]

    assert options("auto", "cuda") == (torch.bfloat16, True)  # as ComfyUI keeps fp8 files on a GPU
    assert options("auto", "cpu") == (torch.float32, False)
    assert options("bf16", "cuda") == (torch.bfloat16, False)  # a named precision widens
    assert options("fp8-stored", "cpu") == (torch.float32, True)
    assert options("auto", "cuda", shard_base=True) == (torch.bfloat16, False)  # FSDP shards one dtype per unit


def test_the_train_command_refuses_fp8_as_stored_with_a_sharded_base_before_loading(tmp_path, capsys):
    from motion_core.__main__ import main

    code = main(["train", "--model", str(tmp_path / "absent.safetensors"), "--video", "v.mp4", "--dtype",
                 "fp8-stored", "--shard-base", "--out", str(tmp_path / "x.safetensors")])
    assert code == 2 and "--dtype fp8-stored" in capsys.readouterr().err


# ---- move ---------------------------------------------------------------------------------------------------------
def test_move_with_a_dtype_keeps_fp8_weights_and_float32_scales(files):
    kept, _ = load_transformer_file(files["root"] / SCALED, torch.float32, keep_fp8=True)
    stored = {n: _bytes(p) for n, p in kept.named_parameters() if p.dtype == FP8}
    scales = {n: b.clone() for n, b in kept.named_buffers() if n.endswith("fp8_scale")}
    reference = _output(kept)
    move(kept, "cpu", torch.bfloat16)
    for name, tensor in kept.named_parameters():
        if name in stored:
            assert tensor.dtype == FP8 and torch.equal(_bytes(tensor), stored[name]), name
        else:
            assert tensor.dtype == torch.bfloat16, name
    assert all(torch.equal(dict(kept.named_buffers())[n], s) and s.dtype == torch.float32 for n, s in scales.items())
    assert all(kept.get_submodule(n).compute_dtype == torch.bfloat16 for n in fp8_linear_names(kept))
    moved = _output(kept, torch.bfloat16)
    assert (moved - reference).norm() / reference.norm() < 0.02


def test_move_of_a_model_without_fp8_is_exactly_module_to(files):
    ours, _ = load_transformer_file(files["root"] / FP16, torch.float32)
    torch_s, _ = load_transformer_file(files["root"] / FP16, torch.float32)
    move(ours, "cpu", torch.bfloat16)
    torch.nn.Module.to(torch_s, "cpu", torch.bfloat16)
    theirs = dict([*torch_s.named_parameters(), *torch_s.named_buffers()])
    for name, tensor in [*ours.named_parameters(), *ours.named_buffers()]:
        assert tensor.dtype == theirs[name].dtype and torch.equal(tensor, theirs[name]), name


# ---- LoRA stacks on fp8 weights -----------------------------------------------------------------------------------
def test_stochastic_rounding_keeps_deltas_smaller_than_half_an_fp8_step_on_average():
    grid = (torch.randn(256, 256, generator=torch.Generator().manual_seed(0)) * 60).to(FP8).float()
    delta = 0.02 * grid.abs()  # 2% of each weight, below half of e4m3's 6-12% step
    nearest = (grid + delta).to(FP8).float() - grid
    rounded = round_to_fp8(grid + delta, FP8, seed=3)
    assert nearest.abs().sum() == 0  # rounding to nearest would drop every delta
    assert abs(float((rounded.float() - grid).sum() / delta.sum()) - 1.0) < 0.05
    assert torch.equal(_bytes(rounded), _bytes(round_to_fp8(grid + delta, FP8, seed=3)))  # same merge, same bytes
    assert float(round_to_fp8(torch.tensor([1e6, -1e6]), FP8, seed=0).float().abs().max()) == 448.0


def test_a_lora_stack_merges_into_fp8_weights_and_restores_their_exact_bytes(files):
    kept, widened = _backbone(files, keep_fp8=True), _backbone(files)
    # deltas of 7% of the weights' rms; far larger ones would be clipped at the largest value the layer's scale allows
    lora = random_lora(widened, ["spatial_self_attn", "spatial_ff"], std=0.03, seed=2)
    stack = LoraStack().add(lora, 1.0)
    before = {n: _bytes(p) for n, p in kept.denoiser.named_parameters()}
    scales = {n: b.clone() for n, b in kept.denoiser.named_buffers() if n.endswith("fp8_scale")}
    base_kept, base_wide = _output(kept.denoiser), _output(widened.denoiser)
    with StackMerger(widened.denoiser, stack) as merger:
        merger.apply((0,))
        effect = _output(widened.denoiser) - base_wide
    with StackMerger(kept.denoiser, stack) as merger:
        merger.apply((0,))
        changed = [n for n, p in kept.denoiser.named_parameters() if not torch.equal(_bytes(p), before[n])]
        assert changed and all(dict(kept.denoiser.named_parameters())[n].dtype == FP8 for n in changed)
        moved = _output(kept.denoiser) - base_kept
    # the LoRA acts on the fp8 model as on the widened one: its effect projected on the widened effect is ~1
    share = float((moved * effect).sum() / effect.pow(2).sum())
    assert 0.85 < share < 1.15 and float(effect.norm() / base_wide.norm()) > 0.005, share
    assert all(torch.equal(_bytes(p), before[n]) for n, p in kept.denoiser.named_parameters())
    assert all(torch.equal(dict(kept.denoiser.named_buffers())[n], s) for n, s in scales.items())
    assert torch.equal(_output(kept.denoiser), base_kept)


# ---- training -----------------------------------------------------------------------------------------------------
def test_a_lora_trains_on_a_model_kept_in_fp8_and_leaves_its_weights_as_stored(files):
    backbone = _backbone(files, keep_fp8=True)
    stored = {n: _bytes(p) for n, p in backbone.denoiser.named_parameters()}
    clip = Clip(torch.randint(0, 256, (5, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)),
                8.0, "a ball rolls")
    for storage in ("native", "fp8"):  # fp8 storage finds nothing left to convert
        config = TrainingConfig(steps=3, width=16, height=16, frames=5, rank=2, base_storage=storage)
        result = train_motion_lora(backbone, ClipSet((clip,)), "naive", config)
        losses = [h["total"] for h in result.history]
        assert result.steps_done == 3 and all(math.isfinite(loss) for loss in losses), losses
        lora_b = [t for k, t in result.motion_lora.tensors.items() if "lora_B" in k]
        assert lora_b and all(t.dtype == torch.float32 for t in lora_b) and any(t.abs().sum() > 0 for t in lora_b)
    assert all(torch.equal(_bytes(p), stored[n]) for n, p in backbone.denoiser.named_parameters())
    assert holds_fp8(backbone.denoiser)


def test_the_plan_counts_the_kept_fp8_bytes_and_auto_does_not_convert_them_again(files):
    def predictor(backbone):
        return Predictor(backbone, get_recipe("naive"), frames=5, width=16, height=16, rank=4, alpha=4.0,
                         dropout=0.0, device=torch.device("cuda"))

    kept, widened = predictor(_backbone(files, keep_fp8=True)), predictor(_backbone(files))
    facts = WeightFacts.of(kept.backbone)
    assert facts.total == sum(t.nbytes for t in [*kept.backbone.denoiser.parameters(),
                                                 *kept.backbone.denoiser.buffers()])
    assert facts.by_dtype["float8_e4m3fn"] > 0 and facts.fp8_saving_elements == 0 and facts.stored_fp8_largest > 0
    assert all(c.base_storage == "native" for c in candidates(kept, {}))
    assert MemorySettings(True, "fp8") in candidates(widened, {})
    plan = kept.plan(MemorySettings(True))
    assert plan.parts["weights"] == facts.total and plan.parts["transient"] == facts.stored_fp8_largest
    assert plan.parts["weights"] < widened.plan(MemorySettings(True)).parts["weights"]
