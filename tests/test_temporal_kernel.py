"""DeT's temporal kernel in the tiny real WanTransformer3DModel: it changes nothing at step 0 nor on a one-frame clip,
it only mixes nearby frames, gradients reach it (with checkpointing and block offload exactly as without), and taking
it out leaves the base model's module tree and outputs as they were."""

import pytest
import torch

from motion_core.backbones import memory
from motion_core.backbones.wan.tiny import tiny_wan_backbone
from motion_core.errors import InvalidInputError, LoraMismatchError
from motion_core.backbones import tiny_unet3d_backbone
from motion_core.lora import AdapterSpec, adapter_parameters, add_adapter, remove_adapter
from motion_core.lora.kernels import CONTAINER, kernel_names, kernel_parameters, kernels_of
from motion_core.lora.temporal_kernel import KernelSpec, TemporalKernel

FRAMES = 3  # latent frames (the tiny Wan's transformer runs on latents directly here)


@pytest.fixture
def wan():
    return tiny_wan_backbone(0)


def _inputs(backbone, frames=FRAMES, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = backbone.denoiser.config
    latents = torch.randn(1, c.in_channels, frames, 4, 4, generator=g)
    text = torch.randn(1, 8, c.text_dim, generator=g)
    return latents, text


def _spec(backbone, name="det", rank=4):
    return AdapterSpec(name, backbone.target_modules("temporal_attn"), rank=2, alpha=2.0,
                       temporal_kernel=KernelSpec(rank=rank))


def _randomise_kernel(model, name, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in kernel_parameters(model, name).values():
            param.copy_(torch.randn(param.shape, generator=g) * 0.2)


def test_a_fresh_kernel_leaves_every_block_unchanged(wan):
    latents, text = _inputs(wan)
    before = wan.denoise(latents, 500.0, text)
    add_adapter(wan.denoiser, _spec(wan))
    assert len(kernels_of(wan.denoiser, "det")) == len(wan.denoiser.blocks)
    assert torch.equal(wan.denoise(latents, 500.0, text), before)


def test_a_trained_kernel_changes_clips_but_not_one_frame_clips(wan):
    latents, text = _inputs(wan)
    clip, single = wan.denoise(latents, 500.0, text), wan.denoise(latents, 500.0, text, frame_indices=[1])
    add_adapter(wan.denoiser, _spec(wan))
    _randomise_kernel(wan.denoiser, "det")
    assert (wan.denoise(latents, 500.0, text) - clip).abs().max() > 1e-3
    assert torch.equal(wan.denoise(latents, 500.0, text, frame_indices=[1]), single)


def test_the_kernel_only_mixes_frames_within_its_reach():
    kernel = TemporalKernel(8, KernelSpec(rank=4, size=3))
    torch.nn.init.normal_(kernel.up.weight)
    tokens = torch.randn(2, 6 * 5, 8)  # 6 frames of 5 tokens
    moved = tokens.clone()
    moved[:, :5] += 1.0  # change frame 0 only
    delta = (kernel(moved, 6) - kernel(tokens, 6)).reshape(2, 6, 5, 8).abs().amax(dim=(0, 2, 3))
    # two 3-tap convolutions reach two frames each way: frames 0-2 move, 3-5 cannot
    assert (delta[:3] > 0).all() and torch.equal(delta[3:], torch.zeros(3))


def test_removing_the_kernel_restores_the_module_tree_and_the_outputs(wan):
    latents, text = _inputs(wan)
    before = wan.denoise(latents, 500.0, text)
    names = [n for n, _ in wan.denoiser.named_modules()]
    add_adapter(wan.denoiser, _spec(wan))
    _randomise_kernel(wan.denoiser, "det")
    remove_adapter(wan.denoiser, "det")
    assert [n for n, _ in wan.denoiser.named_modules()] == names and kernel_names(wan.denoiser) == []
    assert not wan.denoiser._forward_pre_hooks and not wan.denoiser.blocks[0].attn1._forward_hooks
    assert torch.equal(wan.denoise(latents, 500.0, text), before)


def test_gradients_reach_the_kernel_and_the_lora_and_nothing_of_the_base(wan):
    add_adapter(wan.denoiser, _spec(wan))
    _randomise_kernel(wan.denoiser, "det")
    latents, text = _inputs(wan)
    wan.denoise(latents, 500.0, text).pow(2).mean().backward()
    kernel = set(map(id, kernel_parameters(wan.denoiser, "det").values()))
    params = adapter_parameters(wan.denoiser, "det")
    assert kernel <= set(map(id, params))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params if id(p) in kernel)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params if id(p) not in kernel)
    assert all(p.grad is None for n, p in wan.denoiser.named_parameters() if "lora_" not in n)


def _grads_of_a_clip_after_a_one_frame_forward(backbone, checkpointing):
    torch.manual_seed(0)  # peft draws lora_A from the global RNG
    add_adapter(backbone.denoiser, _spec(backbone))
    _randomise_kernel(backbone.denoiser, "det")
    if checkpointing:
        backbone.enable_gradient_checkpointing()
    latents, text = _inputs(backbone)
    loss = backbone.denoise(latents, 500.0, text).pow(2).mean()
    backbone.denoise(latents, 500.0, text, frame_indices=[0]).sum()  # another forward before the backward
    loss.backward()
    return [p.grad.clone() for p in adapter_parameters(backbone.denoiser, "det")]


def test_checkpointed_blocks_recompute_the_kernel_as_it_ran():
    plain = _grads_of_a_clip_after_a_one_frame_forward(tiny_wan_backbone(0), False)
    recomputed = _grads_of_a_clip_after_a_one_frame_forward(tiny_wan_backbone(0), True)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain, recomputed))


def test_block_offload_keeps_the_kernel_an_adapter_and_gives_the_same_gradients():
    grads = []
    for offload in (False, True):
        backbone = tiny_wan_backbone(0)
        plan = memory.BlockOffload(backbone.offload_blocks, "cpu") if offload else None
        torch.manual_seed(0)
        add_adapter(backbone.denoiser, _spec(backbone))
        _randomise_kernel(backbone.denoiser, "det")
        if plan:
            plan.place_adapters()
            names = [n for b in backbone.offload_blocks for n, _ in b.named_parameters() if CONTAINER in n]
            assert names and all(memory._is_adapter_tensor(n) for n in names)
        backbone.enable_gradient_checkpointing()
        latents, text = _inputs(backbone)
        backbone.denoise(latents, 500.0, text).pow(2).mean().backward()
        grads.append([p.grad.clone() for p in kernel_parameters(backbone.denoiser, "det").values()])
        if plan:
            plan.restore()
    assert all(torch.equal(a, b) for a, b in zip(*grads))


def test_a_kernel_is_refused_with_a_clear_error_where_a_model_has_no_place_for_it():
    unet = tiny_unet3d_backbone(0)
    spec = AdapterSpec("det", unet.target_modules("temporal_attn"), rank=2, alpha=2.0, temporal_kernel=KernelSpec())
    with pytest.raises(LoraMismatchError, match="only in a diffusion transformer"):
        add_adapter(unet.denoiser, spec)
    assert not any("lora_" in n for n, _ in unet.denoiser.named_parameters())


def test_kernel_specs_refuse_even_sizes_and_empty_ranks():
    with pytest.raises(InvalidInputError, match="odd number"):
        KernelSpec(size=4)
    with pytest.raises(InvalidInputError, match="at least 1"):
        KernelSpec(rank=0)
