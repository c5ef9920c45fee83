"""Wan 2.2 A14B's two experts: held on one backbone, each timestep denoised by its owner as WanPipeline does
(t >= boundary_ratio · 1000: high-noise expert), each LoRA merged only into its own expert during its steps, and
one LoRA file per expert named as other Wan 2.2 tools name them. A tiny "A14B" is two tiny Wans of other seeds."""

import copy
import json
import shutil

import pytest
import torch

from motion_core.backbones import load_backbone
from motion_core.backbones.wan.experts import attach_experts, expert_file_name, expert_from_name, lora_expert, tag_lora
from motion_core.backbones.wan.loading import load_wan_backbone
from motion_core.backbones.wan.tiny import save_tiny_wan_diffusers_folder, tiny_wan_backbone, tiny_wan_parts
from motion_core.errors import ModelLoadError
from motion_core.lora.merge import lora_delta
from motion_core.lora.synthetic import random_lora
from motion_core.sampling import LoraStack, SampleRequest, make_scheduler, sample_video
from tests.wan_samples import write_tiny_wan_files

BOUNDARY = 0.875
# Euler with the tiny model's shift 3: timesteps 1000, 909, 818, 700, 500 -> two high-noise steps, three low-noise.
SMALL = dict(frames=5, width=16, height=16, steps=5, scheduler="euler")
MODULE = "blocks.0.attn1.to_q"


def two_expert_backbone():
    backbone = tiny_wan_backbone(0)
    backbone.model_info = {"arch": "derived", "expert": "high_noise", "boundary_ratio": BOUNDARY}
    attach_experts(backbone, tiny_wan_parts(1)["denoiser"])
    return backbone


@pytest.fixture(scope="module")
def a14b():
    return two_expert_backbone()


def spy(backbone):
    """(expert name, timestep, this expert's MODULE weight, the other's) of every transformer call, in order."""
    calls, handles = [], []
    experts = backbone.experts
    for name in ("high_noise", "low_noise"):
        module, other = experts.module(name), experts.module("low_noise" if name == "high_noise" else "high_noise")

        def record(_module, _args, kwargs, name=name, module=module, other=other):
            weight = dict(module.named_modules())[MODULE].weight.detach().clone()
            other_weight = dict(other.named_modules())[MODULE].weight.detach().clone()
            calls.append((name, float(kwargs["timestep"].reshape(-1)[0]), weight, other_weight))
        handles.append(module.register_forward_pre_hook(record, with_kwargs=True))
    return calls, handles


def hand_rolled(backbone, request, high=None, low=None):
    """The sampling loop written out for two experts (WanPipeline's): Euler, CFG per expert, no stack."""
    high, low = high or backbone.experts.high_noise, low or backbone.experts.low_noise
    scheduler = make_scheduler("euler", backbone.scheduler.config, backbone.objective)
    scheduler.set_timesteps(request.steps)
    g = torch.Generator().manual_seed(request.seed)
    latents = torch.randn((1, 16, 2, 4, 4), generator=g)
    text = backbone.encode_prompt([request.negative_prompt, request.prompt])
    for t in scheduler.timesteps:
        model, cfg = (high, request.cfg) if t >= BOUNDARY * 1000 else (low, request.cfg_low_noise or request.cfg)
        pred = model(hidden_states=torch.cat([latents, latents]), timestep=t.expand(2), encoder_hidden_states=text,
                     return_dict=False)[0].float()
        uncond, cond = pred.chunk(2)
        latents = scheduler.step(uncond + cfg * (cond - uncond), t, latents).prev_sample
    return latents


def test_steps_at_or_above_the_boundary_run_the_high_noise_expert_and_the_rest_the_low_noise_one(a14b):
    calls, handles = spy(a14b)
    try:
        sample_video(a14b, SampleRequest("a wave", cfg=1.0, **SMALL))
    finally:
        for handle in handles:
            handle.remove()
    owners = [(name, t >= BOUNDARY * 1000) for name, t, *_ in calls]
    assert [name for name, _ in owners] == ["high_noise"] * 2 + ["low_noise"] * 3
    assert all((name == "high_noise") == above for name, above in owners)
    assert a14b.denoiser is a14b.experts.high_noise  # the loaded expert is the model again after sampling


def test_two_expert_sampling_equals_a_hand_rolled_loop_with_a_guidance_per_expert(a14b):
    request = SampleRequest("a wave", negative_prompt="blur", cfg=4.0, cfg_low_noise=3.0, **SMALL)
    result = sample_video(a14b, request)
    torch.testing.assert_close(result.latents, hand_rolled(a14b, request), rtol=0, atol=1e-6)
    one_cfg = sample_video(a14b, SampleRequest("a wave", negative_prompt="blur", cfg=4.0, **SMALL)).latents
    assert not torch.allclose(result.latents, one_cfg)  # cfg_low_noise acts (WanPipeline's guidance_scale_2)


def test_a_high_noise_lora_changes_only_the_high_noise_steps_and_both_experts_come_back_bit_identical(a14b):
    lora = random_lora(a14b, ["temporal_attn"], rank=2, std=0.5, seed=3, wan_expert="high_noise")
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in a14b.experts.modules()]
    base_high = dict(a14b.experts.high_noise.named_modules())[MODULE].weight.detach().clone()
    base_low = dict(a14b.experts.low_noise.named_modules())[MODULE].weight.detach().clone()
    calls, handles = spy(a14b)
    try:
        result = sample_video(a14b, SampleRequest("a wave", negative_prompt="blur", cfg=4.0,
                                                  lora_stack=LoraStack().add(lora, 1.0), **SMALL))
    finally:
        for handle in handles:
            handle.remove()
    for name, _t, own, other in calls:
        if name == "high_noise":
            assert not torch.equal(own, base_high) and torch.equal(other, base_low)
        else:  # the high-noise LoRA is out of the weights as soon as the low-noise expert runs
            assert torch.equal(own, base_low) and torch.equal(other, base_high)
    merged = copy.deepcopy(a14b.experts.high_noise)
    with torch.no_grad():
        for module in lora.modules():
            weight = dict(merged.named_modules())[module].weight
            weight.add_(lora_delta(lora, module, weight))
    request = SampleRequest("a wave", negative_prompt="blur", cfg=4.0, **SMALL)
    torch.testing.assert_close(result.latents, hand_rolled(a14b, request, high=merged), rtol=0, atol=1e-5)
    for module, saved in zip(a14b.experts.modules(), before):
        assert all(torch.equal(saved[k], v) for k, v in module.state_dict().items())


def test_a_low_noise_lora_acts_only_in_the_low_noise_steps(a14b):
    lora = random_lora(a14b, ["temporal_attn"], rank=2, std=0.5, seed=4, wan_expert="low_noise")
    base_high = dict(a14b.experts.high_noise.named_modules())[MODULE].weight.detach().clone()
    calls, handles = spy(a14b)
    try:
        sample_video(a14b, SampleRequest("a wave", cfg=1.0, lora_stack=LoraStack().add(lora, 1.0), **SMALL))
    finally:
        for handle in handles:
            handle.remove()
    assert [torch.equal(own, base_high) for name, _t, own, _o in calls if name == "high_noise"] == [True, True]
    low_calls = [own for name, _t, own, _o in calls if name == "low_noise"]
    assert low_calls and all(not torch.equal(own, dict(a14b.experts.low_noise.named_modules())[MODULE].weight)
                             for own in low_calls)


def test_a_lora_that_names_no_expert_goes_with_the_loaded_expert(a14b):
    lora = random_lora(a14b, ["temporal_attn"], rank=2, std=0.5, seed=5)
    assert lora_expert(lora) is None
    tagged = tag_lora(lora, "high_noise")
    plain = sample_video(a14b, SampleRequest("a wave", cfg=1.0, lora_stack=LoraStack().add(lora), **SMALL))
    high = sample_video(a14b, SampleRequest("a wave", cfg=1.0, lora_stack=LoraStack().add(tagged), **SMALL))
    assert torch.equal(plain.latents, high.latents)


def test_the_noise_prior_inverts_each_level_with_the_expert_that_owns_it(a14b):
    calls, handles = spy(a14b)
    clip = torch.rand(5, 16, 16, 3)
    try:
        sample_video(a14b, SampleRequest("a wave", cfg=1.0, noise_prior_clip=clip, noise_prior_p=0.5, **SMALL))
    finally:
        for handle in handles:
            handle.remove()
    assert len(calls) == 10
    assert all((name == "high_noise") == (t >= BOUNDARY * 1000) for name, t, *_ in calls)
    assert a14b.denoiser is a14b.experts.high_noise


def test_expert_names_are_read_from_file_names_and_written_as_a_suffix():
    assert expert_from_name("wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors") == "high_noise"
    assert expert_from_name("models/x/PussyLoRA_LowNoise_Wan2.2.safetensors") == "low_noise"
    assert expert_from_name("wan2.1_t2v_14B_fp16.safetensors") is None
    assert expert_from_name("high_noise_and_low_noise.safetensors") is None
    assert expert_file_name("wan/dance_00001", "high_noise") == "wan/dance_00001_high_noise.safetensors"
    assert expert_file_name("wan/dance_00001", None) == "wan/dance_00001.safetensors"


def test_the_expert_a_lora_records_survives_a_file_round_trip_in_every_wan_format(a14b, tmp_path):
    from motion_core.lora import load_lora, save_lora

    lora = tag_lora(random_lora(a14b, ["temporal_attn"], rank=2, seed=6), "low_noise")
    for fmt in ("canonical", "comfyui"):
        path = save_lora(lora, tmp_path / f"x_{fmt}.safetensors", format=fmt)
        assert lora_expert(load_lora(path)) == "low_noise"


def test_a_diffusers_folder_loads_both_experts_on_request(tmp_path):
    folder = save_tiny_wan_diffusers_folder(tmp_path / "wan", seed=0)
    second = tiny_wan_parts(1)["denoiser"]
    second.save_pretrained(folder / "transformer_2")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "boundary_ratio": BOUNDARY}))
    assert getattr(load_backbone(folder), "experts", None) is None  # training needs one expert: one is loaded
    backbone = load_wan_backbone(folder, load_both_experts=True)
    assert backbone.denoiser is backbone.experts.high_noise and backbone.experts.boundary_ratio == BOUNDARY
    torch.testing.assert_close(backbone.experts.low_noise.state_dict(), second.state_dict())
    low = load_wan_backbone(folder, expert="low_noise", load_both_experts=True)
    assert low.denoiser is low.experts.low_noise and low.objective.sigma_range == (0.0, BOUNDARY)


def test_a_pair_of_expert_files_loads_as_one_a14b_with_the_named_file_as_the_model(tmp_path):
    made = {seed: write_tiny_wan_files(tmp_path / f"seed{seed}", seed)["root"] for seed in (0, 1)}
    high = tmp_path / "wan_tiny_t2v_high_noise_fp16.safetensors"
    low = tmp_path / "wan_tiny_t2v_low_noise_fp16.safetensors"
    shutil.copy(made[0] / "wan_tiny_fp16.safetensors", high)
    shutil.copy(made[1] / "wan_tiny_fp16.safetensors", low)
    files = dict(vae_path=made[0] / "wan_tiny_vae.safetensors",
                 text_encoder_path=made[0] / "umt5_tiny_fp16.safetensors")
    backbone = load_wan_backbone(high, other_expert_file=low, **files)
    assert backbone.model_info["expert"] == "high_noise" and backbone.model_info["boundary_ratio"] == BOUNDARY
    assert backbone.objective.sigma_range == (BOUNDARY, 1.0)
    assert not torch.equal(backbone.experts.high_noise.proj_out.weight, backbone.experts.low_noise.proj_out.weight)
    with pytest.raises(ModelLoadError, match="same as the model already loaded"):
        load_wan_backbone(high, other_expert_file=high, **files)
    with pytest.raises(ModelLoadError, match="not a Wan 2.2 A14B expert"):
        load_wan_backbone(made[0] / "wan_tiny_fp16.safetensors", other_expert_file=low, **files)
