"""A LoRA with a DeT temporal kernel everywhere the LoRA goes: the pack's file keeps it, loading re-creates it,
Sample Video applies it and takes it out (the base model bit-identical after), and the comfyui export for core's
loader writes the LoRA part only, warns, and says so in its header and when loaded back."""

import warnings

import pytest
import torch
from safetensors import safe_open

from motion_core.backbones.wan.tiny import tiny_wan_backbone
from motion_core.errors import InvalidInputError, LoraMismatchError
from motion_core.lora import (AdapterSpec, add_adapter, attach_lora, check_lora_fits, load_lora, lora_from_adapter,
                              remove_adapter, save_lora)
from motion_core.lora.kernels import kernel_names, kernel_parameters, kernels_of
from motion_core.lora.report import carried, left_out
from motion_core.lora.stack import LoraStack
from motion_core.lora.temporal_kernel import KernelSpec
from motion_core.sampling import SampleRequest, sample_video

REQUEST = dict(prompt="a wave", seed=0, steps=3, cfg=1.0, frames=9, width=16, height=16)


@pytest.fixture(scope="module")
def wan():
    return tiny_wan_backbone(0)


@pytest.fixture(scope="module")
def det_lora(wan):
    """A LoRA with a kernel whose weights all act (as after training)."""
    spec = AdapterSpec("det", wan.target_modules("temporal_attn"), rank=2, alpha=2.0,
                       temporal_kernel=KernelSpec(rank=4))
    torch.manual_seed(0)
    add_adapter(wan.denoiser, spec)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in wan.denoiser.named_parameters():
            if ".det." in name or name.endswith(".det.weight"):
                param.copy_(torch.randn(param.shape, generator=g) * 0.3)
    lora = lora_from_adapter(wan.denoiser, "det", family="wan", base_fingerprint=wan.fingerprint(), recipe="det")
    remove_adapter(wan.denoiser, "det")
    return lora


def test_the_pack_file_keeps_the_kernel_and_loading_it_recreates_it(wan, det_lora, tmp_path):
    assert det_lora.kernel_spec == KernelSpec(rank=4, size=3) and det_lora.kernel_sites() == ["blocks.0", "blocks.1"]
    path = save_lora(det_lora, tmp_path / "det.safetensors")
    with safe_open(str(path), "pt") as f:
        kernel_keys = {k for k in f.keys() if k.startswith("temporal_kernel.")}
        assert kernel_keys == set(det_lora.kernel) and len(kernel_keys) == 4
        assert '"rank": 4' in f.metadata()["temporal_kernel"]
    loaded = load_lora(path)
    assert loaded.kernel.keys() == det_lora.kernel.keys()
    assert all(torch.equal(loaded.kernel[k], v) for k, v in det_lora.kernel.items())
    name = attach_lora(wan.denoiser, loaded, family="wan", fingerprint=wan.fingerprint())
    try:
        assert kernel_names(wan.denoiser) == [name]
        placed = kernel_parameters(wan.denoiser, name)
        assert all(torch.equal(placed[k].detach(), v) for k, v in det_lora.kernel.items())
    finally:
        remove_adapter(wan.denoiser, name)
    assert kernel_names(wan.denoiser) == []


def test_sample_video_applies_the_kernel_and_leaves_the_base_bit_identical(wan, det_lora):
    state = {k: v.clone() for k, v in wan.denoiser.state_dict().items()}
    modules = [n for n, _ in wan.denoiser.named_modules()]
    base = sample_video(wan, SampleRequest(**REQUEST)).frames
    whole = sample_video(wan, SampleRequest(**REQUEST, lora_stack=LoraStack().add(det_lora))).frames
    lora_part = sample_video(wan, SampleRequest(**REQUEST, lora_stack=LoraStack().add(det_lora.without_kernel())))
    assert (whole - lora_part.frames).abs().max() > 1e-3  # the kernel acts
    after = sample_video(wan, SampleRequest(**REQUEST)).frames
    assert torch.equal(after, base)
    assert [n for n, _ in wan.denoiser.named_modules()] == modules and kernel_names(wan.denoiser) == []
    now = wan.denoiser.state_dict()
    assert now.keys() == state.keys() and all(torch.equal(now[k], v) for k, v in state.items())


def test_the_kernel_follows_its_entrys_strength_and_step_range(wan, det_lora):
    off = sample_video(wan, SampleRequest(**REQUEST, lora_stack=LoraStack().add(det_lora, 0.0))).frames
    assert torch.equal(off, sample_video(wan, SampleRequest(**REQUEST)).frames)  # strength 0: nothing at all

    def last_step(lora):  # of 3 steps, only step 2 (2/3 done) is in 0.6..1
        return sample_video(wan, SampleRequest(**REQUEST, lora_stack=LoraStack().add(lora, 1.0, 0.6, 1.0))).frames
    assert (last_step(det_lora) - last_step(det_lora.without_kernel())).abs().max() > 1e-4
    assert kernel_names(wan.denoiser) == []


@pytest.mark.parametrize("start, end, acting", [(0.0, 0.5, [1, 1, 0, 0]), (0.25, 0.75, [0, 1, 1, 0])])
def test_outside_its_step_range_the_kernel_is_off_like_the_lora_weights(wan, det_lora, start, end, acting):
    """Step by step (4 steps, one denoise each at cfg 1): the kernel acts exactly where the entry's LoRA weights are
    merged, i.e. motion LoRA on the early steps only leaves the late steps to the base model, kernel included."""
    module = det_lora.modules()[0]
    layer = dict(wan.denoiser.named_modules())[module]
    layer = getattr(layer, "base_layer", layer)
    original = layer.weight.detach().clone()
    seen = []

    def probe(model, args, kwargs):
        kernels = [k for n in kernel_names(model) for _, k in kernels_of(model, n)]
        seen.append((int(any(k.enabled and k.scale != 0.0 for k in kernels)),
                     int(not torch.equal(layer.weight, original))))
    handle = wan.denoiser.register_forward_pre_hook(probe, with_kwargs=True)
    try:
        stack = LoraStack().add(det_lora, 1.0, start, end)
        sample_video(wan, SampleRequest(**{**REQUEST, "steps": 4}, lora_stack=stack))
    finally:
        handle.remove()
    assert [k for k, _ in seen] == acting and [w for _, w in seen] == acting
    assert kernel_names(wan.denoiser) == [] and torch.equal(layer.weight, original)


def test_the_comfyui_export_writes_the_lora_part_only_and_says_so(det_lora, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = save_lora(det_lora, tmp_path / "det_core.safetensors", "comfyui")
    assert any("LoRA part only" in str(w.message) for w in caught)
    with safe_open(str(path), "pt") as f:
        keys, header = list(f.keys()), f.metadata()
    assert keys and all(k.startswith("diffusion_model.") and k.endswith((".lora_A.weight", ".lora_B.weight", ".alpha"))
                        for k in keys)
    assert "temporal_kernel_left_out" in header["extra"] and header["temporal_kernel"] == "{}"
    loaded = load_lora(path)
    assert not loaded.kernel
    assert any("temporal kernel" in phrase for phrase in left_out(loaded))
    assert any("temporal kernel" in phrase for phrase in carried(det_lora)) and not left_out(det_lora)


def test_layouts_without_a_place_for_the_kernel_are_refused(det_lora, tmp_path):
    with pytest.raises(InvalidInputError, match="no place for"):
        save_lora(det_lora, tmp_path / "det.safetensors", "kohya")


def test_a_kernel_of_another_width_is_refused_before_anything_is_injected(det_lora):
    wider = tiny_wan_backbone(0)
    resized = {k: torch.zeros(v.shape[0], v.shape[1] * 2, v.shape[2]) if k.endswith("down.weight") else
               torch.zeros(v.shape[0] * 2, v.shape[1], v.shape[2]) for k, v in det_lora.kernel.items()}
    bad = type(det_lora)(det_lora.tensors, det_lora.metadata, kernel=resized)
    with pytest.raises(LoraMismatchError, match="temporal kernel does not fit"):
        check_lora_fits(wider.denoiser, bad)
    with pytest.raises(LoraMismatchError):
        attach_lora(wider.denoiser, bad)
    assert kernel_names(wider.denoiser) == [] and not any("lora_" in n for n, _ in wider.denoiser.named_parameters())
