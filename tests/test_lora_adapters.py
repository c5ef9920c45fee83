"""Several named adapters in one denoiser: targeting, switches, scale, freezing, loading, removal."""

import pytest
import torch
from peft.tuners.tuners_utils import set_adapter as peft_set_adapter
from test_lora_support import (add_random, base_weights, checksum, frozen_tiny_unet3d, inputs, run, spatial_names,
                               temporal_names, tiny_unet3d)

from motion_core.errors import LoraMismatchError
from motion_core.lora import (AdapterSpec, add_adapter, adapter_names, adapter_parameters, adapter_state_dict,
                              load_adapter_state, only_adapters_enabled, remove_adapter, set_adapter_enabled,
                              set_adapter_scale, set_adapter_trainable, sync_adapters)
from motion_core.lora.inject import lora_layers


@pytest.fixture
def model():
    return tiny_unet3d()


def test_each_adapter_lands_on_exactly_its_modules_with_its_rank_alpha_dropout(model):
    add_random(model, "temporal", temporal_names(model), rank=4, alpha=8.0, dropout=0.1)
    add_random(model, "spatial", spatial_names(model), rank=2, alpha=1.0)
    assert {n for n, _ in lora_layers(model, "temporal")} == set(temporal_names(model))
    assert {n for n, _ in lora_layers(model, "spatial")} == set(spatial_names(model))
    _, layer = next(lora_layers(model, "temporal"))
    assert layer.r["temporal"] == 4 and layer.scaling["temporal"] == pytest.approx(2.0)
    assert layer.lora_dropout["temporal"].p == pytest.approx(0.1)
    _, layer = next(lora_layers(model, "spatial"))
    assert layer.r["spatial"] == 2 and layer.scaling["spatial"] == pytest.approx(0.5)


def test_both_adapters_act_after_the_second_injection(model):
    base = run(model)
    add_random(model, "temporal", temporal_names(model))
    only_temporal = run(model)
    add_random(model, "spatial", spatial_names(model), seed=5)
    both = run(model)
    assert not torch.allclose(only_temporal, base)
    assert not torch.allclose(both, only_temporal)
    set_adapter_enabled(model, "spatial", False)
    assert torch.equal(run(model), only_temporal)


def test_base_weights_are_frozen_and_adapters_trainable_by_default(model):
    add_random(model, "temporal", temporal_names(model))
    for name, p in model.named_parameters():
        assert p.requires_grad == (".lora_" in name), name


def _grads_after_backward(model):
    model.zero_grad(set_to_none=True)
    sample, t, text = inputs(model)
    model(sample, t, encoder_hidden_states=text).sample.square().mean().backward()


def test_frozen_adapter_gets_no_grad_after_peft_style_activation(model):
    add_random(model, "spatial", spatial_names(model), seed=5)
    set_adapter_trainable(model, "spatial", False)
    add_random(model, "temporal", temporal_names(model))
    # peft's own activation marks every active adapter trainable; our switches must undo that.
    peft_set_adapter(model, ["spatial", "temporal"])
    assert all(p.requires_grad for p in adapter_parameters(model, "spatial"))
    set_adapter_enabled(model, "temporal", True)
    set_adapter_scale(model, "spatial", 0.5)
    _grads_after_backward(model)
    assert all(p.grad is None and not p.requires_grad for p in adapter_parameters(model, "spatial"))
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in adapter_parameters(model, "temporal"))
    assert all(p.grad is None for n, p in model.named_parameters() if ".lora_" not in n)


def test_disabling_keeps_trainability_and_unfreezing_restores_grads(model):
    add_random(model, "temporal", temporal_names(model))
    set_adapter_enabled(model, "temporal", False)
    assert all(p.requires_grad for p in adapter_parameters(model, "temporal"))
    set_adapter_trainable(model, "temporal", False)
    set_adapter_enabled(model, "temporal", True)
    assert not any(p.requires_grad for p in adapter_parameters(model, "temporal"))
    set_adapter_trainable(model, "temporal", True)
    _grads_after_backward(model)
    assert all(p.grad is not None for p in adapter_parameters(model, "temporal"))


def test_scale_zero_equals_disabled_equals_base(model):
    base = run(frozen_tiny_unet3d())
    add_random(model, "temporal", temporal_names(model))
    full = run(model)
    set_adapter_scale(model, "temporal", 0.0)
    scaled_off = run(model)
    set_adapter_scale(model, "temporal", 1.0)
    set_adapter_enabled(model, "temporal", False)
    assert torch.equal(scaled_off, base)
    assert torch.equal(run(model), base)
    set_adapter_enabled(model, "temporal", True)
    assert torch.equal(run(model), full)


def test_scale_multiplies_alpha_over_rank_per_adapter(model):
    add_random(model, "temporal", temporal_names(model), rank=4, alpha=8.0)
    add_random(model, "spatial", spatial_names(model), rank=2, alpha=2.0, seed=5)
    set_adapter_scale(model, "temporal", 0.25)
    _, layer = next(lora_layers(model, "temporal"))
    assert layer.scaling["temporal"] == pytest.approx(0.5)
    _, layer = next(lora_layers(model, "spatial"))
    assert layer.scaling["spatial"] == pytest.approx(1.0)


def test_only_adapters_enabled_gives_base_and_restores_switches(model):
    base = run(frozen_tiny_unet3d())
    add_random(model, "temporal", temporal_names(model))
    add_random(model, "spatial", spatial_names(model), seed=5)
    set_adapter_enabled(model, "spatial", False)
    before = run(model)
    with only_adapters_enabled(model, []):
        assert torch.equal(run(model), base)
    with only_adapters_enabled(model, ["spatial"]):
        assert not torch.equal(run(model), before)
    assert torch.equal(run(model), before)


def test_loading_one_adapter_leaves_the_other_and_the_base_untouched(model):
    add_random(model, "temporal", temporal_names(model))
    add_random(model, "spatial", spatial_names(model), seed=5)
    other = tiny_unet3d(seed=9)
    add_random(other, "spatial", spatial_names(other), seed=11)
    new_spatial = adapter_state_dict(other, "spatial")
    temporal_before = checksum(adapter_state_dict(model, "temporal"))
    base_before = base_weights(model)
    load_adapter_state(model, "spatial", new_spatial)
    assert checksum(adapter_state_dict(model, "temporal")) == temporal_before
    assert checksum(adapter_state_dict(model, "spatial")) == checksum(new_spatial)
    after = base_weights(model)
    assert all(torch.equal(base_before[k], after[k]) for k in base_before)


def test_state_dict_round_trip_gives_identical_outputs(model):
    add_random(model, "temporal", temporal_names(model))
    expected = run(model)
    tensors = adapter_state_dict(model, "temporal")
    assert all(k.startswith("unet.") and k.endswith((".lora_A.weight", ".lora_B.weight")) for k in tensors)
    fresh = tiny_unet3d()
    add_adapter(fresh, AdapterSpec("temporal", tuple(temporal_names(fresh)), rank=4, alpha=8.0))
    load_adapter_state(fresh, "temporal", tensors)
    assert torch.equal(run(fresh), expected)


def test_load_adapter_state_names_unknown_missing_and_misshapen_keys(model):
    add_random(model, "temporal", temporal_names(model))
    good = adapter_state_dict(model, "temporal")
    before = checksum(good)
    bogus = dict(good, **{"unet.down_blocks.9.nowhere.to_q.lora_A.weight": torch.zeros(4, 32)})
    with pytest.raises(LoraMismatchError, match=r"down_blocks\.9\.nowhere"):
        load_adapter_state(model, "temporal", bogus)
    first = sorted(good)[0]
    with pytest.raises(LoraMismatchError, match="lacks 1 weights"):
        load_adapter_state(model, "temporal", {k: v for k, v in good.items() if k != first})
    with pytest.raises(LoraMismatchError, match="wrong shape"):
        load_adapter_state(model, "temporal", {k: v[..., :1] if k == first else v for k, v in good.items()})
    assert checksum(adapter_state_dict(model, "temporal")) == before


def test_targets_the_model_lacks_are_named(model):
    spec = AdapterSpec("x", ("down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_q",))
    with pytest.raises(LoraMismatchError, match="motion_modules"):
        add_adapter(model, spec)
    assert adapter_names(model) == []


def test_temporal_conv_adapter_works(model):
    base = run(model)
    convs = [n for n, m in model.named_modules() if "temp_convs" in n and isinstance(m, torch.nn.Conv3d)]
    add_random(model, "conv", convs, rank=2, alpha=2.0)
    assert not torch.allclose(run(model), base)


def test_remove_adapter_puts_the_original_layers_back(model):
    base = run(frozen_tiny_unet3d())
    types_before = {n: type(m) for n, m in model.named_modules()}
    add_random(model, "temporal", temporal_names(model))
    add_random(model, "spatial", spatial_names(model), seed=5)
    remove_adapter(model, "spatial")
    assert {n for n, _ in lora_layers(model)} == set(temporal_names(model))
    remove_adapter(model, "temporal")
    assert {n: type(m) for n, m in model.named_modules()} == types_before
    assert torch.equal(run(model), base)
    sync_adapters(model)
    assert not any(p.requires_grad for p in model.parameters())
