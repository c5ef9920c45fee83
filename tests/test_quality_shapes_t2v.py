"""Quality tier: floors on what the committed ShapesT2V model and a motion LoRA trained on it actually do.

The figures come from tracking generated pixels (motion_core/toy/tracking.py), so these tests fail if the model,
the sampler, the LoRA stack or a recipe regresses in a way a user would see. Floors sit below the measured values
(README, "Results") by a margin for seed-to-seed noise; they are not the issue's goals.
"""

from pathlib import Path

import pytest
import torch

from motion_core.backbones import load_backbone
from motion_core.bench.quality import run as quality_bench
from motion_core.toy.base_quality import evaluate as base_quality

pytestmark = pytest.mark.quality
MODEL = Path(__file__).resolve().parents[1] / "motion_core" / "toy" / "shapes_t2v"

# Measured on the committed model (the bf16 4,000-step run) with these exact settings, one thread: see the constants'
# comments. The base model does not yet follow motion words above chance, so there is no motion floor. Without a
# noise prior its objects already move along paths set by the starting noise, and a 60-step LoRA does not override
# them (quick bench: base 0.33, MotionDirector 0.25, naive 0.25); through the motion-only prior the LoRAs' motion
# shows, so the customization floors are measured there (motion_core/toy/FINDINGS.md, "A motion-only prior").
# Base model, 18 samples: colour 1.00, shape 0.78, motion 0.17, an object tracked in 100% of frames (chance: 0.17,
# 0.33, 0.11). v1, the model shipped before, drew shape 0.44 here.
BASE_COLOUR_FLOOR, BASE_SHAPE_FLOOR, BASE_FOUND_FLOOR = 0.8, 0.5, 0.85
PRIOR = ["--noise-prior", "0.5", "--noise-prior-mode", "motion"]
# Quick bench through the prior: fidelity / appearance / leakage base 0.29 / 0.67 / 0.00, MotionDirector
# 0.60 / 0.67 / 0.00, NewMove 0.66 / 0.67 / 0.17, naive 0.38 / 0.50 / 0.17 (the same at one and two threads).
MD_FIDELITY_FLOOR, FIDELITY_GAIN_OVER_BASE, MD_APPEARANCE_FLOOR = 0.45, 0.15, 0.5
PRIOR_NEWMOVE_FIDELITY_FLOOR, PRIOR_LEAKAGE_CEILING = 0.5, 0.34


@pytest.fixture(scope="module")
def shapes_t2v():
    assert (MODEL / "model_index.json").exists(), f"the ShapesT2V model folder is missing: {MODEL}"
    torch.set_num_threads(1)
    return load_backbone(MODEL)


@pytest.fixture(scope="module")
def prior_figures(shapes_t2v):
    """One quick bench (circle, one shot, 60 steps, 6 samples a recipe) through the motion-only prior at p = 0.5."""
    return quality_bench(["--quick", "--recipes", "base,motion_director,newmove,naive", *PRIOR,
                          "--threads", "1"])["figures"]


def test_base_model_draws_one_object_in_the_prompted_colour_and_shape_more_often_than_chance(shapes_t2v):
    result = base_quality(shapes_t2v, samples_per_motion=2, seed=0, steps=20, cfg=5.0, log=lambda m: None)
    summary, rows = result["summary"], result["rows"]
    found = sum(r["found"] for r in rows) / len(rows)
    assert found >= BASE_FOUND_FLOOR, f"the tracker finds an object in only {found:.0%} of frames: {rows}"
    assert summary["colour"] >= BASE_COLOUR_FLOOR, summary
    assert summary["shape"] >= BASE_SHAPE_FLOOR, summary


def test_quick_bench_motion_director_learns_the_motion_not_the_look(prior_figures):
    base, md, naive = prior_figures["base"], prior_figures["motion_director"], prior_figures["naive"]
    assert md["fidelity"] >= MD_FIDELITY_FLOOR, prior_figures
    assert md["fidelity"] >= base["fidelity"] + FIDELITY_GAIN_OVER_BASE, prior_figures
    assert md["appearance"] >= MD_APPEARANCE_FLOOR, prior_figures
    assert md["leakage"] <= naive["leakage"], prior_figures


def test_quick_bench_newmove_carries_the_motion_through_the_motion_only_noise_prior(prior_figures):
    newmove = prior_figures["newmove"]
    assert newmove["fidelity"] >= PRIOR_NEWMOVE_FIDELITY_FLOOR, prior_figures
    assert newmove["fidelity"] >= prior_figures["base"]["fidelity"] + FIDELITY_GAIN_OVER_BASE, prior_figures
    assert newmove["leakage"] <= PRIOR_LEAKAGE_CEILING, prior_figures
