"""bench i2v: the start images it samples from are new looks placed where the reference's path fits, and one short
run on the shipped ShapesWan-I2V gives every row its figures."""

import math

import torch

from motion_core.bench.i2v import label, new_start_images, run, same_image, table, variants
from motion_core.bench.quality import REFERENCE_COLOUR, REFERENCE_SHAPE, reference_clips
from motion_core.toy.tracking import track_object

torch.set_num_threads(1)


def _reference(motion):
    clip = reference_clips(motion, 1, 0, 9).clips[0]
    return clip, track_object(clip.frames)


def test_new_start_images_differ_from_the_reference_in_colour_and_shape_and_leave_room_for_its_path():
    for motion in ("circle", "zigzag", "grow_shrink"):
        clip, reference = _reference(motion)
        images = new_start_images(reference, motion, 3, seed=0)
        assert len(images) == 3
        path_x = reference.x - reference.x[0]
        path_y = reference.y - reference.y[0]
        for start in images:
            assert start["colour"] != REFERENCE_COLOUR and start["shape"] != REFERENCE_SHAPE and start["new"]
            track = track_object(start["image"][None], colour=start["colour"])
            assert track.colour == start["colour"] and track.shape == start["shape"]
            # The reference's displacements, applied from this start, keep the centre on the canvas.
            xs, ys = track.x[0] + path_x, track.y[0] + path_y
            assert bool(((xs > 0.05) & (xs < 0.95) & (ys > 0.05) & (ys < 0.95)).all()), motion
        again = new_start_images(reference, motion, 3, seed=0)
        assert all(torch.equal(a["image"], b["image"]) for a, b in zip(images, again))
        assert same_image(clip, motion)["image"].shape == images[0]["image"].shape


def test_a_short_run_reports_new_image_same_image_and_base_figures_for_every_row():
    rows = run(["--model", "shapes_wan_i2v", "--recipes", "base,naive", "--recolour", "1", "--train-steps", "2",
                "--images", "1", "--seeds", "1", "--sample-steps", "2"])["rows"]
    assert [(r["recipe"], r["recolour"]) for r in rows] == [("base", 0), ("naive", 1)]
    for r in rows:
        assert r["samples"] == 2 and r["base"] == rows[0]["fidelity"]
        assert 0.0 <= r["fidelity"] <= 1.0 and 0.0 <= r["kept"] <= 1.0 and r["chance_random"] < 0.2
        assert math.isclose(r["gap"], r["same_image"] - r["fidelity"])
        assert all(0.0 <= r[k] <= 1.0 for k in ("placed", "attached", "same_placed", "nearer_reference"))
        assert r["attached"] <= r["placed"] and math.isclose(r["placement_tolerance"], 0.085, abs_tol=0.001)
        assert len(r["sample_start_distance"]) == 1 and r["jump_limit"] >= 1.5 * r["placement_tolerance"]
        assert all(0.0 <= r[k] <= 1.0 for k in ("start_frame_kept", "same_start_frame_kept", "start_frame_error"))
    assert rows[1]["train_s"] > 0 and "| circle | naive +1 recoloured |" in table(rows)


def test_every_combination_of_the_lever_lists_is_a_row_and_is_named():
    from argparse import Namespace

    args = Namespace(recipes="base,motion_director", recolour="0,2", shift_copies="4", start_image_dropout="0,0.3")
    rows = variants(args)
    assert rows[0] == ("base", {"recolour": 0, "shift_copies": 0, "start_image_dropout": 0.0}) and len(rows) == 5
    assert ("motion_director", {"recolour": 2, "shift_copies": 4, "start_image_dropout": 0.3}) in rows
    assert label("motion_director", rows[-1][1]) == "motion_director +2 recoloured +4 shifted start dropout 0.3"
    assert label("motion_director", rows[1][1]) == "motion_director +4 shifted"
