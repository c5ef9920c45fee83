"""caption_reliance: swapping one caption part, and the loss rise it measures on the shipped ShapesT2V model."""

import random

import pytest

from motion_core.backbones import load_backbone
from motion_core.research.caption_reliance import PARTS, caption_reliance, held_out_specs, main, swapped
from motion_core.toy.render import ClipSpec

SHAPES_T2V = "motion_core/toy/shapes_t2v"


@pytest.fixture(scope="module")
def shapes_t2v():
    return load_backbone(SHAPES_T2V)


def test_a_swap_changes_exactly_the_named_part():
    spec = ClipSpec("red", "square", "left", frames=8)
    rng = random.Random(0)
    for part, field in zip(PARTS, ("colour", "shape", "motion")):
        other = swapped(spec, part, rng)
        changed = [f for f in ("colour", "shape", "motion") if getattr(other, f) != getattr(spec, f)]
        assert changed == [field] and other.text() != spec.text()
    with pytest.raises(ValueError, match="Unknown caption part"):
        swapped(spec, "size", rng)


def test_a_model_that_ignores_its_caption_shows_no_rise(shapes_t2v, monkeypatch):
    fixed = shapes_t2v.encode_prompt(["a red square moves left"])
    monkeypatch.setattr(shapes_t2v, "encode_prompt", lambda prompts: fixed.expand(len(prompts), -1, -1))
    result = caption_reliance(shapes_t2v, held_out_specs(3, 0), repeats=1)
    for row in result.values():
        assert row["loss"] > 0 and all(row[name] == 0.0 for name in ("empty", *PARTS))


def test_the_shipped_model_relies_on_the_colour_words(shapes_t2v):
    result = caption_reliance(shapes_t2v, held_out_specs(12, 0), repeats=1)
    assert set(result) == {"high", "mid"}
    assert result["mid"]["colour"] > 20.0 and result["mid"]["empty"] > 5.0, result


def test_command_prints_a_table_and_json(capsys):
    assert main(["--model", SHAPES_T2V, "--clips", "2", "--repeats", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["band", "loss", "empty"] and out[-1].startswith('{"high": {"loss"')
