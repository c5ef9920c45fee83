"""MotionLora values, the canonical safetensors file, safe reading, atomic writing and mismatch errors."""

import errno
import os

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from test_lora_support import (add_random, frozen_tiny_unet3d, run, spatial_names, temporal_names, tiny_motion_unet,
                               tiny_unet3d)

from motion_core.errors import InvalidInputError, LoraMismatchError, MotionCoreError
from motion_core.lora import (LoraFileError, MotionLora, attach_lora, load_lora, lora_from_adapter,
                              remove_adapter, save_lora, set_adapter_scale)

REQUIRED_HEADER = {"format", "format_version", "name", "kind", "family", "recipe", "rank", "alpha", "target_sets",
                   "trigger", "caption", "frames", "resolution", "steps", "base_fingerprint"}


def trained(model=None, alpha=8.0):
    model = model or tiny_unet3d()
    add_random(model, "temporal", temporal_names(model), rank=4, alpha=alpha, target_sets=("temporal_attn",))
    lora = lora_from_adapter(model, "temporal", family="unet3d", recipe="motiondirector", trigger="V* dance",
                             caption="a person doing a V* dance", frames=16, resolution=[256, 256], steps=150,
                             base_fingerprint="sha256:abc123")
    return model, lora


def test_save_then_load_gives_identical_outputs_and_metadata(tmp_path):
    model, lora = trained()
    expected = run(model)
    path = save_lora(lora, tmp_path / "dance.safetensors")
    loaded = load_lora(path)
    fresh = tiny_unet3d()
    attach_lora(fresh, loaded, family="unet3d", fingerprint="sha256:abc123")
    assert torch.equal(run(fresh), expected)
    for field in ("name", "kind", "family", "recipe", "rank", "alpha", "target_sets", "trigger", "caption",
                  "frames", "resolution", "steps", "base_fingerprint", "format_version"):
        assert getattr(loaded, field) == getattr(lora, field), field
    assert loaded.alpha == 8.0 and loaded.rank == 4 and loaded.resolution == [256, 256]


def test_header_is_all_strings_with_the_documented_fields_and_peft_keys(tmp_path):
    _, lora = trained()
    path = save_lora(lora, tmp_path / "dance.safetensors")
    with safe_open(str(path), "pt") as f:
        header, keys = f.metadata(), list(f.keys())
    assert REQUIRED_HEADER <= set(header)
    assert all(isinstance(v, str) for v in header.values())
    assert header["format"] == "motion_core.lora" and header["alpha"] == "8.0" and header["kind"] == "motion"
    assert "unet.down_blocks.0.temp_attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight" in keys
    assert "unet.down_blocks.0.temp_attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight" in keys


def test_per_module_alpha_survives_a_round_trip(tmp_path):
    model, lora = trained(alpha=8.0)
    module = lora.modules()[0]
    odd = lora.with_metadata(alpha_pattern={module: 2.0})
    loaded = load_lora(save_lora(odd, tmp_path / "odd.safetensors"))
    assert loaded.module_alpha(module) == 2.0 and loaded.module_alpha(lora.modules()[1]) == 8.0
    fresh, again = tiny_unet3d(), tiny_unet3d()
    attach_lora(fresh, loaded)
    attach_lora(again, odd)
    assert torch.equal(run(fresh), run(again))
    assert not torch.equal(run(fresh), run(model))


def test_attached_lora_strength_scales_and_defaults_frozen(tmp_path):
    _, lora = trained()
    model = tiny_unet3d()
    name = attach_lora(model, lora, strength=0.0)
    assert not any(p.requires_grad for p in model.parameters())
    base = run(frozen_tiny_unet3d())
    assert torch.equal(run(model), base)
    set_adapter_scale(model, name, 1.0)
    assert not torch.equal(run(model), base)


def test_family_mismatch_says_which_family_to_load():
    _, lora = trained()
    with pytest.raises(LoraMismatchError, match="trained for family 'unet3d'.*Load a unet3d model"):
        attach_lora(tiny_motion_unet(), lora, family="animatediff")


def test_fingerprint_mismatch_raises_unless_relaxed():
    _, lora = trained()
    with pytest.raises(LoraMismatchError, match="sha256:abc123"):
        attach_lora(tiny_unet3d(), lora, family="unet3d", fingerprint="sha256:other")
    attach_lora(tiny_unet3d(), lora, family="unet3d", fingerprint="sha256:other", strict_base=False)


def test_keys_the_model_lacks_are_named_and_the_model_is_left_clean():
    _, lora = trained()
    target = tiny_motion_unet()
    with pytest.raises(LoraMismatchError, match=r"unet\.down_blocks\.0\.temp_attentions\.0.*load a unet3d model"):
        attach_lora(target, lora)
    assert not hasattr(target, "peft_config")


def test_shape_mismatch_names_the_key():
    big = tiny_unet3d()
    add_random(big, "spatial", spatial_names(big))
    lora = lora_from_adapter(big, "spatial")
    torch.manual_seed(0)
    from diffusers import UNet3DConditionModel
    wide = UNet3DConditionModel(block_out_channels=(64, 64), layers_per_block=1, cross_attention_dim=32,
                                attention_head_dim=8, norm_num_groups=8, sample_size=8,
                                down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
                                up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"))
    with pytest.raises(LoraMismatchError, match=r"does not fit unet\.down_blocks\.0\.attentions"):
        attach_lora(wide, lora)


def test_atomic_save_leaves_no_partial_file_when_the_disk_fills(tmp_path, monkeypatch):
    _, lora = trained()
    target = tmp_path / "dance.safetensors"
    save_lora(lora, target)
    original = target.read_bytes()

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(LoraFileError, match=r"dance\.safetensors.*No space left.*Free some disk space") as info:
        save_lora(lora.with_metadata(name="changed"), target)
    assert isinstance(info.value, MotionCoreError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dance.safetensors"]
    assert target.read_bytes() == original


def test_unwritable_folder_is_a_clear_error(tmp_path):
    _, lora = trained()
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(LoraFileError, match="not_a_folder"):
        save_lora(lora, blocker / "dance.safetensors")


def test_only_safetensors_are_written(tmp_path):
    _, lora = trained()
    with pytest.raises(InvalidInputError, match=".safetensors"):
        save_lora(lora, tmp_path / "dance.ckpt")


def test_ckpt_of_plain_tensors_loads_through_weights_only(tmp_path):
    model, lora = trained()
    path = tmp_path / "dance.ckpt"
    torch.save({"state_dict": dict(lora.tensors), "global_step": 3}, path)
    loaded = load_lora(path)
    assert loaded.name == "dance"
    fresh = tiny_unet3d()
    attach_lora(fresh, loaded.with_metadata(alpha=8.0))
    assert torch.equal(run(fresh), run(model))


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def test_ckpt_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"x": _Payload()}, path)
    with pytest.raises(LoraFileError, match="Refused to load evil.ckpt"):
        load_lora(path)


def test_missing_and_corrupt_files_are_clear_errors(tmp_path):
    with pytest.raises(LoraFileError, match="not found"):
        load_lora(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(LoraFileError, match="not a valid safetensors"):
        load_lora(bad)


def test_foreign_peft_spellings_import_with_alpha_keys(tmp_path):
    model, lora = trained()
    foreign = {}
    for module in lora.modules():
        a, b = lora.weights(module)
        foreign[f"base_model.model.{module}.lora.down.weight"] = a
        foreign[f"base_model.model.{module}.lora.up.weight"] = b
        foreign[f"base_model.model.{module}.alpha"] = torch.tensor(8.0)
    save_file(foreign, str(tmp_path / "foreign.safetensors"))
    loaded = load_lora(tmp_path / "foreign.safetensors")
    assert loaded.alpha == 8.0 and loaded.metadata["source_format"] == "peft"
    fresh = tiny_unet3d()
    attach_lora(fresh, loaded)
    assert torch.equal(run(fresh), run(model))


def test_foreign_peft_file_without_alpha_uses_rank():
    _, lora = trained()
    from motion_core.lora import lora_from_tensors
    plain = {k.replace("unet.", "", 1): v for k, v in lora.tensors.items()}
    loaded = lora_from_tensors(plain)
    assert loaded.alpha == 4.0 and set(loaded.tensors) == set(lora.tensors)


def test_motion_lora_rejects_half_pairs_and_foreign_keys():
    a = torch.zeros(2, 8)
    with pytest.raises(InvalidInputError, match="both A and B"):
        MotionLora({"unet.x.lora_A.weight": a})
    with pytest.raises(InvalidInputError, match="canonical keys"):
        MotionLora({"x.lora_down.weight": a})


def test_removed_attached_lora_leaves_no_trace():
    _, lora = trained()
    model = tiny_unet3d()
    name = attach_lora(model, lora)
    remove_adapter(model, name)
    assert torch.equal(run(model), run(frozen_tiny_unet3d()))
