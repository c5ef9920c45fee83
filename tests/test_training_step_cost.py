"""What the training step's cost work changed (issue 37): cheap adapter switching, the fused finite-weight check,
the spatial path's cached image latents and the bench's bare loop / interleaved step timing."""

from __future__ import annotations

import copy

import pytest
import torch

from motion_core.backbones import tiny_unet3d_backbone, tiny_wan_backbone
from motion_core.bench import train as bench
from motion_core.clips import ClipSet
from motion_core.lora import add_adapter, remove_adapter
from motion_core.lora.control import switch_adapters, sync_adapters
from motion_core.lora.registry import lora_layers, registry
from motion_core.recipes import MotionDirector, get_recipe
from motion_core.training import TrainingConfig, train_motion_lora
from motion_core.training.data import cache_samples, prepare_frames
from motion_core.training.weight_checks import all_finite


def _with_md_adapters(backbone, clips: int = 2):
    specs = MotionDirector().adapters(backbone, clips, rank=2, alpha=2.0, dropout=0.0)
    for spec in specs:
        add_adapter(backbone.denoiser, spec, enabled=False, trainable=False)
    return [s.name for s in specs]


def _state(model) -> dict:
    """Everything a switch may change: each layer's active list and disable flag, every requires_grad."""
    layers = {n: (list(layer.active_adapters), layer.disable_adapters) for n, layer in lora_layers(model)}
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    return {"layers": layers, "grads": grads, "registry": {n: (s.enabled, s.trainable, s.scale)
                                                         for n, s in registry(model).items()}}


def _by_sync(model, enabled, trainable):
    for name, state in registry(model).items():
        state.enabled, state.trainable = name in enabled, name in trainable
    sync_adapters(model)


@pytest.mark.parametrize("family", ["unet3d", "wan"])
def test_switching_adapters_leaves_the_state_a_full_sync_leaves(family, monkeypatch):
    backbone = tiny_unet3d_backbone(0) if family == "unet3d" else tiny_wan_backbone(0)
    names = _with_md_adapters(backbone)
    fast, full = backbone.denoiser, copy.deepcopy(backbone.denoiser)
    spatial0, spatial1, temporal = names
    # MotionDirector's two switches a step, a plain step, everything off, a repeat (no change) and back.
    sequence = [({spatial0}, {spatial0}), ({spatial0, temporal}, {temporal}), ({spatial1}, {spatial1}),
                ({spatial0, temporal}, {spatial0, temporal}), ({spatial0, temporal}, {spatial0, temporal}),
                (set(), set()), ({temporal}, set()), ({spatial0}, {spatial0})]
    from motion_core.lora import control

    full_syncs = []
    monkeypatch.setattr(control, "sync_adapters", lambda model: full_syncs.append(model))
    for enabled, trainable in sequence:
        switch_adapters(fast, enabled, trainable)
        _by_sync(full, enabled, trainable)
        assert _state(fast) == _state(full)
    assert full_syncs == []  # every switch took the cheap path


def test_switching_after_the_layers_changed_falls_back_to_a_full_sync():
    backbone = tiny_unet3d_backbone(0)
    model = backbone.denoiser
    spatial0, spatial1, temporal = _with_md_adapters(backbone)
    switch_adapters(model, {temporal}, {temporal})
    # The same name injected again on other modules: new state object, new layers the index never saw.
    remove_adapter(model, spatial0)
    (spec,) = [s for s in MotionDirector().adapters(backbone, 2, rank=2, alpha=2.0, dropout=0.0) if s.name == spatial0]
    add_adapter(model, spec, enabled=False, trainable=False)
    reference = copy.deepcopy(model)
    switch_adapters(model, {spatial0}, {spatial0})
    _by_sync(reference, {spatial0}, {spatial0})
    assert _state(model) == _state(reference)
    assert any(spatial0 in layer.active_adapters for _, layer in lora_layers(model))
    # A registry switch made behind the index's back (then synced) is picked up too.
    registry(model)[spatial1].trainable = True
    sync_adapters(model)
    switch_adapters(model, {spatial1}, {spatial1})
    _by_sync(reference, {spatial1}, {spatial1})
    assert _state(model) == _state(reference)


def test_the_finite_weight_check_agrees_with_looking_at_every_value():
    check = all_finite
    finite = [torch.randn(4, 3), torch.randn(5)]
    assert check(finite)
    # Finite values whose absolute sum overflows float32: the fused norm is inf, the exact look says finite.
    huge = [torch.full((4,), 3e38), torch.randn(3)]
    assert check(huge)
    for bad in (float("nan"), float("inf"), float("-inf")):
        params = [torch.randn(4, 3), torch.randn(5)]
        params[1][2] = bad
        assert not check(params)


def test_the_spatial_path_reads_image_latents_cached_once_per_clip():
    backbone = tiny_wan_backbone(0)
    clip = bench._clip(9, 32)
    (sample,) = cache_samples(backbone, get_recipe("motion_director"), ClipSet((clip,)), frames=9, width=32,
                              height=32)
    fresh = backbone.encode_frames_as_images(prepare_frames(clip, 9, 32, 32)).float()
    assert sample.image_latents is not sample.latents
    assert sample.image_latents.shape[2] == 9 and torch.equal(sample.image_latents, fresh)


def test_the_bare_loop_trains_the_adapter_the_trainer_trains_and_leaves_the_model_clean():
    backbone = tiny_unet3d_backbone(0)
    before = {n for n, _ in backbone.denoiser.named_modules()}
    loop = bench.BareLoop(backbone, frames=4, size=16, rank=4)
    (spec,) = get_recipe("naive").adapters(backbone, 1, rank=4, alpha=4.0, dropout=0.0)
    layers = loop.layers()
    assert set(layers) == set(spec.target_modules)
    assert all(layer.r[loop.NAME] == 4 and layer.scaling[loop.NAME] == 1.0 for layer in layers.values())
    trained = {id(p) for p in loop.params}
    assert trained == {id(p) for layer in layers.values()
                       for p in (*layer.lora_A[loop.NAME].parameters(), *layer.lora_B[loop.NAME].parameters())}
    assert all(p.requires_grad for p in loop.params)
    assert not any(p.requires_grad for p in backbone.denoiser.parameters() if id(p) not in trained)
    start = [p.detach().clone() for p in loop.params]
    assert len(loop.seconds(2)) == 2
    assert any(not torch.equal(a, p) for a, p in zip(start, loop.params))  # B left zero: the update is real
    loop.remove()
    assert {n for n, _ in backbone.denoiser.named_modules()} == before
    assert not hasattr(backbone.denoiser, "peft_config")
    # The trainer then trains its own adapter on the same model as if the loop had never been there.
    result = train_motion_lora(backbone, ClipSet((bench._clip(4, 16),)), "naive",
                               TrainingConfig(steps=1, width=16, height=16, frames=4, rank=4, seed=0))
    assert result.steps_done == 1


def test_the_step_timings_alternate_md_and_plain_steps_in_one_run():
    backbone = tiny_wan_backbone(0)
    md, plain = bench.interleaved_medians(backbone, 5, 16, steps=2, rounds=1)
    assert md > 0 and plain > 0
    assert registry(backbone.denoiser) == {}


def test_wan_width_is_checked_and_widens_the_transformer():
    with pytest.raises(SystemExit):
        bench.parse_args(["--wan-width", "200"])
    assert bench.parse_args(["--wan-width", "256"]).wan_width == 256
    wide = bench.wide_wan_backbone(256)
    assert wide.denoiser.config.num_attention_heads == 2 and wide.denoiser.config.ffn_dim == 1024
