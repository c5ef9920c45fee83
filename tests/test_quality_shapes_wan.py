"""Quality tier on ShapesWan, the built-in Wan-family model: what it draws, and whether a motion LoRA trained on it
carries the reference clip's own motion where the base model does not.

Same bench, tracker and metrics as tests/test_quality_shapes_t2v.py, through `bench quality --model shapes_wan`:
the pack's Wan loader, Wan trainer (MotionDirector's temporal LoRA on the joint self-attention) and flow sampler on
a folder of the real diffusers Wan classes. Floors sit below the measured values (comments) by a stated margin.
"""

import pytest
import torch

from motion_core.backbones import load_backbone
from motion_core.bench.quality import run as quality_bench
from motion_core.toy.base_quality import evaluate as base_quality
from motion_core.toy.builtin import SHAPES_WAN_DIR
from quality_floors import assert_carries_motion

pytestmark = pytest.mark.quality

# Base model, 18 samples (2 per basic motion, seed 0, 20 UniPC steps, cfg 5): the card's 36-sample figures are colour
# 100%, shape 56%, motion 19%. Floors leave room for 3-4 samples of the 18.
BASE_COLOUR_FLOOR, BASE_SHAPE_FLOOR, BASE_FOUND_FLOOR = 0.8, 0.3, 0.85
# MotionDirector, circle, one shot, no noise prior, 800 steps at lr 2e-3 with timestep skew 3 (the ShapesWan demo's
# settings; 400 steps at 1e-3 read only 0.12), 6 samples of other looks, bench seed 0, 20 UniPC steps:
# fidelity 0.80 (per sample 0.85 0.66 0.82 0.90 0.85 0.74, standard error ~0.04), base model same seeds 0.05,
# random-path chance 0.01, appearance 0.50, leakage 0.00. Floors: fidelity ~5 standard errors under, the gain over
# the base likewise, appearance and leakage one sample (1/6) from the measured values.
# NewMove, same settings: fidelity 0.83 (per sample 0.77 0.87 0.88 0.73 0.78 0.94), appearance 0.67, leakage 0.00:
# on Wan every recipe moves the path; NewMove keeps the most of the prompted look (naive LoRA: 0.17). Same margins.
TRANSFER = ["--model", "shapes_wan", "--recipes", "base,motion_director,newmove", "--motions", "circle", "--shots", "1",
            "--train-steps", "800", "--lr", "2e-3", "--timestep-skew", "3", "--prompts", "3", "--seeds", "2",
            "--sample-steps", "20"]
MD_FIDELITY_FLOOR, MD_GAIN_OVER_BASE, MD_APPEARANCE_FLOOR, MD_LEAKAGE_CEILING = 0.6, 0.5, 0.33, 0.17
NEWMOVE_FIDELITY_FLOOR, NEWMOVE_APPEARANCE_FLOOR = 0.65, 0.5
RANDOM_CHANCE_CEILING = 0.05


@pytest.fixture(scope="module")
def shapes_wan():
    assert (SHAPES_WAN_DIR / "model_index.json").exists(), f"the ShapesWan model folder is missing: {SHAPES_WAN_DIR}"
    torch.set_num_threads(1)
    return load_backbone(SHAPES_WAN_DIR)


def test_base_wan_model_draws_the_prompted_colour_and_often_the_shape(shapes_wan):
    result = base_quality(shapes_wan, samples_per_motion=2, seed=0, steps=20, cfg=5.0, log=lambda m: None)
    summary, rows = result["summary"], result["rows"]
    found = sum(r["found"] for r in rows) / len(rows)
    assert found >= BASE_FOUND_FLOOR, f"the tracker finds an object in only {found:.0%} of frames: {rows}"
    assert summary["colour"] >= BASE_COLOUR_FLOOR, summary
    assert summary["shape"] >= BASE_SHAPE_FLOOR, summary


@pytest.fixture(scope="module")
def transfer(shapes_wan):
    return quality_bench([*TRANSFER, "--threads", "1"])


def test_a_wan_motion_director_lora_carries_the_reference_motion_where_the_base_model_does_not(transfer):
    for row in transfer["rows"]:  # the per-sample spread behind the noise margin, shown with -s or on failure
        print(row["recipe"], row["sample_fidelity"])
    figures = transfer["figures"]
    assert figures["motion_director"]["chance_random"] <= RANDOM_CHANCE_CEILING, figures
    assert_carries_motion(figures, "motion_director", fidelity=MD_FIDELITY_FLOOR, gain=MD_GAIN_OVER_BASE,
                          appearance=MD_APPEARANCE_FLOOR, leakage=MD_LEAKAGE_CEILING)


def test_a_wan_newmove_lora_carries_the_motion_and_keeps_the_prompted_look(transfer):
    assert_carries_motion(transfer["figures"], "newmove", fidelity=NEWMOVE_FIDELITY_FLOOR, gain=MD_GAIN_OVER_BASE,
                          appearance=NEWMOVE_APPEARANCE_FLOOR, leakage=MD_LEAKAGE_CEILING)
