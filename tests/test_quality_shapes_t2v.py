"""Quality tier: floors on what the committed ShapesT2V model and a motion LoRA trained on it actually do.

The figures come from tracking generated pixels (motion_core/toy/tracking.py), so these tests fail if the model,
the sampler, the LoRA stack or a recipe regresses in a way a user would see. Floors sit below the measured values
(README, "Results") by a margin for seed-to-seed noise; where an issue goal lies under that margin (MotionDirector's
fidelity 0.8, the base model's prompt share 0.8), the goal is the floor.
"""

from pathlib import Path

import pytest
import torch

from motion_core.backbones import load_backbone
from motion_core.bench.quality import run as quality_bench
from motion_core.research import prompt_control
from motion_core.toy.base_quality import evaluate as base_quality
from quality_floors import assert_carries_motion

pytestmark = pytest.mark.quality
MODEL = Path(__file__).resolve().parents[1] / "motion_core" / "toy" / "shapes_t2v"

# Measured on the committed model (v4: the 3,695-step run, a quarter of each batch on terminal caption means then a
# plain last fifth, 1,200 decoder steps; card) with these exact settings, one thread; the runs are deterministic at a
# fixed seed (the tier reproduced every figure). Base model, 18 samples: colour 1.00, shape 0.67, motion 1.00, an
# object tracked in 100% of frames (chance: 0.17, 0.33, 0.11). v3 drew 0.83 / 0.50 / 0.89 with objects in 94% of
# frames. Floors two samples under (1/18 each), the object floor under v3's late-object level.
BASE_COLOUR_FLOOR, BASE_SHAPE_FLOOR, BASE_MOTION_FLOOR, BASE_FOUND_FLOOR = 0.85, 0.55, 0.85, 0.95
# prompt_control (blue circle, 3 seeds x left/right/up/down, 20 steps): prompt share 0.97 (v3 0.97), every word
# its own way under every seed (the models before v3: 0.00). The floor is the goal.
PROMPT_SHARE_FLOOR = 0.8
PRIOR = ["--noise-prior", "0.5", "--noise-prior-mode", "motion"]
# Fidelity is the honest one since issue #22: each sample against the reference clip's OWN tracked path
# (`reference_fidelity`), read against two chance levels from the same run: random paths of other families and
# the base model from the same prompts, seeds and starting noise.
#
# Without any noise prior (the claim itself: the LoRA carries the motion), MotionDirector as the demo trains it
# (circle, one shot, 400 steps at lr 1e-3, timestep skew 3, temporal convolutions in the temporal LoRA; 6 samples,
# bench seed 0), fidelity / base same seeds / random-path chance: 0.95 / 0.07 / 0.01, appearance 0.67, leakage 0.33.
# Per sample 0.94 0.91 0.97 0.96 0.97 0.95 (standard error of the mean ~0.01); appearance and leakage move in steps
# of 1/6. The fidelity floor is the goal (0.8), far under the spread; appearance and leakage one sample off.
TRANSFER = ["--recipes", "base,motion_director", "--motions", "circle", "--shots", "1", "--train-steps", "400",
            "--lr", "1e-3", "--timestep-skew", "3", "--prompts", "3", "--seeds", "2", "--sample-steps", "20"]
MD_FIDELITY_FLOOR, MD_GAIN_OVER_BASE, MD_APPEARANCE_FLOOR, MD_LEAKAGE_CEILING = 0.8, 0.6, 0.5, 0.5
# Through the motion-only prior (quick bench: circle, one shot, 60 steps, 6 samples a recipe, bench seed 0):
# NewMove 0.91 / 0.09 / 0.01 (leakage 0.33; v3 0.88 / 0.08 / 0.01, leakage 0.00). Per sample NewMove 0.92 0.98 0.83
# 0.78 0.96 0.97 (standard error ~0.03), base 0.09 0.06 0.22 0.16 0.00 0.00. The fidelity floors sit well under the
# measured values; the leakage ceiling is two samples of six (as measured).
NEWMOVE_FIDELITY_FLOOR, FIDELITY_GAIN_OVER_BASE, PRIOR_LEAKAGE_CEILING = 0.6, 0.4, 0.34
RANDOM_CHANCE_CEILING = 0.05  # measured 0.01: the references' own paths against random other-family paths


@pytest.fixture(scope="module")
def shapes_t2v():
    assert (MODEL / "model_index.json").exists(), f"the ShapesT2V model folder is missing: {MODEL}"
    torch.set_num_threads(1)
    return load_backbone(MODEL)


def _bench(argv: list[str]) -> dict:
    result = quality_bench([*argv, "--threads", "1"])
    for row in result["rows"]:  # the per-sample spread behind the noise margin, shown with -s or on failure
        print(row["recipe"], row["sample_fidelity"])
    return result["figures"]


@pytest.fixture(scope="module")
def transfer_figures(shapes_t2v):
    """MotionDirector as the demo trains it, sampled from fresh noise (no prior), next to the base model."""
    return _bench(TRANSFER)


@pytest.fixture(scope="module")
def prior_figures(shapes_t2v):
    """One quick bench (circle, one shot, 60 steps, 6 samples a recipe) through the motion-only prior at p = 0.5."""
    return _bench(["--quick", "--recipes", "base,newmove", *PRIOR])


def test_base_model_draws_one_object_in_the_prompted_colour_and_shape_more_often_than_chance(shapes_t2v):
    result = base_quality(shapes_t2v, samples_per_motion=2, seed=0, steps=20, cfg=5.0, log=lambda m: None)
    summary, rows = result["summary"], result["rows"]
    found = sum(r["found"] for r in rows) / len(rows)
    assert found >= BASE_FOUND_FLOOR, f"the tracker finds an object in only {found:.0%} of frames: {rows}"
    assert summary["colour"] >= BASE_COLOUR_FLOOR, summary
    assert summary["shape"] >= BASE_SHAPE_FLOOR, summary
    assert summary["motion"] >= BASE_MOTION_FLOOR, summary


def test_base_model_motion_words_not_the_seed_set_the_path(shapes_t2v):
    result = prompt_control.measure(shapes_t2v, log=lambda m: None)
    assert result["prompt_share"] >= PROMPT_SHARE_FLOOR, result
    velocity = dict(zip(result["motions"], zip(*result["velocities"])))  # word -> one (dx, dy) per seed
    assert all(dx < 0 for dx, _ in velocity["left"]) and all(dx > 0 for dx, _ in velocity["right"]), result
    assert all(dy < 0 for _, dy in velocity["up"]) and all(dy > 0 for _, dy in velocity["down"]), result


def test_quick_bench_chance_levels_are_measured_and_random_paths_score_near_zero(prior_figures):
    for recipe, figures in prior_figures.items():
        assert figures["chance_random"] <= RANDOM_CHANCE_CEILING, prior_figures
        assert figures["chance_base"] == pytest.approx(prior_figures["base"]["fidelity"]), prior_figures
        assert figures["family_fidelity"] is not None, prior_figures  # the secondary column is still reported


def test_motion_director_lora_alone_carries_the_reference_motion_where_the_base_model_does_not(transfer_figures):
    assert transfer_figures["motion_director"]["chance_random"] <= RANDOM_CHANCE_CEILING, transfer_figures
    assert_carries_motion(transfer_figures, "motion_director", fidelity=MD_FIDELITY_FLOOR, gain=MD_GAIN_OVER_BASE,
                          appearance=MD_APPEARANCE_FLOOR, leakage=MD_LEAKAGE_CEILING)


def test_quick_bench_newmove_carries_the_reference_motion_through_the_motion_only_noise_prior(prior_figures):
    assert_carries_motion(prior_figures, "newmove", fidelity=NEWMOVE_FIDELITY_FLOOR, gain=FIDELITY_GAIN_OVER_BASE,
                          leakage=PRIOR_LEAKAGE_CEILING)
