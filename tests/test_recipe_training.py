"""Every recipe, run through the trainer on a tiny model: the loss falls and the outputs are canonical LoRA files."""

import pytest
import torch
from safetensors import safe_open
from test_recipe_support import clipset

from motion_core.backbones import tiny_unet3d_backbone
from motion_core.lora import load_lora, save_lora
from motion_core.recipes import RECIPES
from motion_core.training import TrainingConfig, train_motion_lora

STEPS = 24


@pytest.fixture(scope="module")
def backbone():
    return tiny_unet3d_backbone(0)


@pytest.mark.parametrize("name", list(RECIPES))
def test_loss_falls_and_outputs_are_canonical_lora_files(backbone, name, tmp_path):
    config = TrainingConfig(steps=STEPS, lr=2e-2, rank=4, width=16, height=16, frames=4, seed=0,
                            gradient_checkpointing=False, name="wave")
    result = train_motion_lora(backbone, clipset(), name, config)
    totals = [h["total"] for h in result.history]
    assert len(totals) == STEPS == result.steps_done
    first, last = sum(totals[:6]) / 6, sum(totals[-6:]) / 6
    assert last < 0.95 * first, f"{name}: loss went from {first:.4f} to {last:.4f}"

    lora = result.motion_lora
    assert (lora.kind, lora.family, lora.recipe, lora.rank, lora.alpha) == ("motion", "unet3d", name, 4, 4.0)
    assert (lora.frames, lora.resolution, lora.steps) == (4, [16, 16], STEPS)
    assert lora.base_fingerprint == backbone.fingerprint() and lora.target_sets
    path = save_lora(lora, tmp_path / "wave.safetensors")
    with safe_open(str(path), "pt") as f:
        assert all(k.startswith("unet.") and k.endswith((".lora_A.weight", ".lora_B.weight")) for k in f.keys())
        assert f.metadata()["kind"] == "motion" and f.metadata()["recipe"] == name
    loaded = load_lora(path)
    assert loaded.metadata["target_sets"] == lora.metadata["target_sets"]
    assert all(torch.equal(loaded.tensors[k], v) for k, v in lora.tensors.items())
    for appearance in result.appearance_loras:
        assert appearance.kind == "appearance"
        assert load_lora(save_lora(appearance, tmp_path / f"{appearance.name}.safetensors")).kind == "appearance"
    assert not any(".lora_" in n for n, _ in backbone.denoiser.named_parameters()), "adapters leaked into the model"
