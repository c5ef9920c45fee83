"""``python -m motion_core.bench i2v``: one clip, a new start image. A motion LoRA trained on an image-to-video model
(ShapesWan-I2V) from a red-square reference clip of a held-out motion, sampled from start images of other colours,
shapes, sizes, places and backgrounds, and from the reference's own first frame.

Rows: the base I2V model (no LoRA) and each recipe at each ``--recolour`` count (0: the reference clip alone; k: k
hue-rotated copies of the whole clip train beside it, so every copy's start image and motion still agree: the lever
that shows the motion under more than one look), ``--shift-copies`` count (copies of the clip moved as a whole:
the start image's place varies) and ``--start-image-dropout`` share (steps trained with no start image shown); a
row for every combination of the three lists. Per row and motion:
- fidelity (new images): `reference_fidelity` of the samples against the reference clip's own tracked path, start
  position forgiven and nothing else (toy/metrics.py), mean over new start images and seeds;
- base (same images and seeds): the base I2V model's new-image fidelity, the level a LoRA has to beat;
- chance: `random_path_chance`, random paths of other families against the same reference;
- same image, gap: the fidelity from the reference's own first frame (under its own caption) and the difference
  same − new (the goal is no gap: a motion bound to its training image shows one);
- start image kept: the tracked colour and shape (and each alone) are the start image's;
- leakage: the reference's colour or shape shows up where the start image has another (the object's vote), and the
  per-pixel share of the reference's colour on the object (toy/pixel_leakage.py);
- placed, attached, start distance (toy/placement.py): the first generated frame's object lies within the world's
  fastest per-frame move (0.085 of the canvas) of the start image's object; placed and moving on from there with no
  jump; the mean first-frame distance. From new images, and (same_*) from the reference's own first frame;
  nearer_reference: the first frame nearer the reference's place than the image's (the loop drawn where the
  reference drew it);
- found: share of frames with the object found; train s.
The defaults (circle; MotionDirector plain and with 2 recoloured copies, 800 steps each; 3 new images x 2 seeds)
take ~15 minutes at one thread alone; the whole table adds ``--motions zigzag,circle,bounce,grow_shrink --recipes
base,motion_director,naive`` (docs/benchmarks.md, "Image-to-video").
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time

import torch

from ..backbones import load_backbone
from ..clips import ClipSet
from ..lora.files import atomic_write
from ..lora.stack import LoraStack
from ..sampling import SampleRequest, sample_video
from ..toy.base_stability import fastest_step
from ..toy.builtin import SHAPES_WAN_I2V_DIR, clip_frames, resolve_builtin
from ..toy.captions import caption
from ..toy.metrics import random_path_chance, score_sample, summarize
from ..toy.motions import HELD_OUT_MOTIONS, MotionParams
from ..toy.palette import BACKGROUNDS
from ..toy.placement import jump_limit, placement
from ..toy.placement import summarize as placement_summary
from ..toy.pretrain.architecture import FPS, FRAME_SIZE
from ..toy.render import ClipSpec, render_frames
from ..toy.start_frame import start_frame_scores
from ..toy.tracking import track_object
from ..training import TrainingConfig, train_motion_lora
from .gpu import fmt_or_dash
from .quality import BASE, REFERENCE_COLOUR, REFERENCE_SHAPE, other_appearances, reference_clips, world_recipe

NEW_IMAGE_SIZES = (0.18, 0.30, 0.21, 0.27)  # object sides other than the reference's 0.24 of the canvas
MARGIN = 0.02


def new_start_images(reference, motion: str, count: int, seed: int) -> list[dict]:
    """`count` start images whose look differs from the reference's in colour AND shape, with other sizes and
    backgrounds, placed at random where the reference's whole tracked path (from that start, its size swing scaled
    to the new object) stays on the canvas."""
    rng = random.Random(f"i2v-bench:{motion}:{seed}")
    found = reference.found
    dx, dy = reference.x[found] - reference.x[found][0], reference.y[found] - reference.y[found][0]
    swing = float((reference.area[found] / reference.area[found][0]).max().sqrt())
    images = []
    for i, (colour, shape) in enumerate(other_appearances(count, seed)):
        size = NEW_IMAGE_SIZES[i % len(NEW_IMAGE_SIZES)]
        half = size / 2 * swing + MARGIN
        x = rng.uniform(half - float(dx.min()), 1 - half - float(dx.max()))
        y = rng.uniform(half - float(dy.min()), 1 - half - float(dy.max()))
        background = rng.choice(list(BACKGROUNDS))
        spec = ClipSpec(colour, shape, "still", MotionParams(x, y), background, FRAME_SIZE, 1, FPS,
                        seed=rng.randrange(2**31), object_size=size)
        images.append({"image": (render_frames(spec)[0] * 255).round() / 255, "colour": colour, "shape": shape,
                       "prompt": caption(colour, shape, motion), "new": True})
    return images


def same_image(clip, motion: str) -> dict:
    return {"image": clip.frames[0].float() / 255, "colour": REFERENCE_COLOUR, "shape": REFERENCE_SHAPE,
            "prompt": caption(REFERENCE_COLOUR, REFERENCE_SHAPE, motion), "new": False}


def train(backbone, recipe: str, levers: dict, clips: ClipSet, motion: str, frames: int, args):
    config = TrainingConfig(steps=args.train_steps or None, lr=args.lr or None, width=FRAME_SIZE, height=FRAME_SIZE,
                            frames=frames, seed=args.seed, name=f"{recipe}_{motion}_recolour{levers['recolour']}",
                            timestep_skew=args.timestep_skew, start_image="auto", **levers)
    started = time.monotonic()
    result = train_motion_lora(backbone, clips, world_recipe(recipe), config)
    return LoraStack().add(result.motion_lora, 1.0), time.monotonic() - started


def evaluate(backbone, recipe: str, levers: dict, motion: str, args) -> dict:
    frames = clip_frames(backbone)
    clips = reference_clips(motion, 1, args.seed, frames)
    stack, train_s = LoraStack(), 0.0
    if recipe != BASE:
        stack, train_s = train(backbone, recipe, levers, clips, motion, frames, args)
    reference = track_object(clips.clips[0].frames)
    starts = new_start_images(reference, motion, args.images, args.seed) + [same_image(clips.clips[0], motion)]
    scores, placed, first = {True: [], False: []}, {True: [], False: []}, {True: [], False: []}
    tolerance = fastest_step(frames)
    limit = jump_limit(tolerance, reference)
    reference_xy = (float(reference.x[0]), float(reference.y[0]))
    for i, start in enumerate(starts):
        image = track_object(start["image"][None], colour=start["colour"])
        image_xy = (float(image.x[0]), float(image.y[0]))
        for s in range(args.seeds):
            request = SampleRequest(prompt=start["prompt"], seed=1000 * i + s, steps=args.sample_steps, cfg=args.cfg,
                                    frames=frames, width=FRAME_SIZE, height=FRAME_SIZE, lora_stack=stack, fps=FPS,
                                    start_image=start["image"][None])
            out = sample_video(backbone, request).frames
            track = track_object(out)
            scores[start["new"]].append(score_sample(
                track, start["colour"], start["shape"], reference=reference, motion=motion,
                reference_colour=REFERENCE_COLOUR, reference_shape=REFERENCE_SHAPE, frames=out))
            placed[start["new"]].append(placement(track, image_xy, reference_xy, tolerance, limit))
            first[start["new"]].append(start_frame_scores(out, start["image"]))
    new, same = summarize(scores[True]), summarize(scores[False])
    where, same_where = placement_summary(placed[True]), placement_summary(placed[False])
    return {"fidelity": new["reference_fidelity"], "same_image": same["reference_fidelity"],
            "gap": same["reference_fidelity"] - new["reference_fidelity"],
            "chance_random": random_path_chance(reference, motion), "kept": new["appearance_accuracy"],
            "colour_kept": new["colour_accuracy"], "shape_kept": new["shape_accuracy"], "leakage": new["leakage"],
            "pixel_leakage": new["pixel_leakage"], "found": new["found_fraction"], "train_s": train_s,
            "samples": len(scores[True]) + len(scores[False]),
            "sample_fidelity": [round(s.reference_fidelity, 4) for s in scores[True]],
            **where, "same_placed": same_where["placed"], "same_attached": same_where["attached"],
            "same_start_distance": same_where["start_distance"], "placement_tolerance": tolerance,
            "jump_limit": limit, "sample_start_distance": [round(p.start_distance, 4) for p in placed[True]],
            **_mean_scores(first[True], ""), **_mean_scores(first[False], "same_")}


def _mean_scores(rows: list[dict], prefix: str) -> dict:
    return {prefix + key: sum(r[key] for r in rows) / len(rows) if rows else math.nan
            for key in ("start_frame_error", "start_frame_kept")}


def add_base(rows: list[dict]) -> None:
    """Each row gets the base model's new-image fidelity of its motion (same images and seeds) and its gain."""
    base = {r["motion"]: r["fidelity"] for r in rows if r["recipe"] == BASE}
    for r in rows:
        r["base"] = base.get(r["motion"])
        r["gain_over_base"] = None if r["base"] is None else r["fidelity"] - r["base"]


NO_LEVERS = {"recolour": 0, "shift_copies": 0, "start_image_dropout": 0.0}


def variants(args) -> list[tuple[str, dict]]:
    """(recipe, training levers) per row: the base model once, each recipe at every combination of the lists."""
    out = []
    for recipe in args.recipes.split(","):
        if recipe == BASE:
            out.append((recipe, dict(NO_LEVERS)))
            continue
        out += [(recipe, {"recolour": r, "shift_copies": s, "start_image_dropout": d})
                for r in _numbers(args.recolour, int) for s in _numbers(args.shift_copies, int)
                for d in _numbers(args.start_image_dropout, float)]
    return out


def _numbers(text: str, kind) -> list:
    return [kind(v) for v in str(text).split(",")]


def label(recipe: str, levers: dict) -> str:
    parts = [recipe]
    if recipe != BASE:
        if levers.get("recolour"):
            parts.append(f"+{levers['recolour']} recoloured")
        if levers.get("shift_copies"):
            parts.append(f"+{levers['shift_copies']} shifted")
        if levers.get("start_image_dropout"):
            parts.append(f"start dropout {levers['start_image_dropout']:g}")
    return " ".join(parts)


def run(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m motion_core.bench i2v", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(SHAPES_WAN_I2V_DIR), help="an I2V model folder, or shapes_wan_i2v")
    p.add_argument("--recipes", default=f"{BASE},motion_director")
    p.add_argument("--recolour", default="0,2", help="recoloured copies of the reference clip, one row each")
    p.add_argument("--shift-copies", default="0", help="copies of the clip moved as a whole, one row each")
    p.add_argument("--start-image-dropout", default="0", help="shares of steps with no start image, one row each")
    p.add_argument("--motions", default="circle", help=f"held-out motions, from {','.join(HELD_OUT_MOTIONS)}")
    p.add_argument("--images", type=int, default=3, help="new start images per motion")
    p.add_argument("--seeds", type=int, default=2, help="samples per start image")
    p.add_argument("--train-steps", type=int, default=800, help="ShapesWan's bench settings; 0 = recipe default")
    p.add_argument("--lr", type=float, default=2e-3, help="0 = recipe default")
    p.add_argument("--timestep-skew", type=float, default=3.0)
    p.add_argument("--sample-steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json-out", default="", help="also write every row (with each sample's fidelity) here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    backbone = load_backbone(resolve_builtin(args.model), device=args.device)
    rows = []
    for motion in args.motions.split(","):
        for recipe, levers in variants(args):
            row = {"recipe": recipe, **levers, "motion": motion, **evaluate(backbone, recipe, levers, motion, args)}
            rows.append(row)
            print(f"{label(recipe, levers):32s} {motion:12s} new {row['fidelity']:.2f}  same "
                  f"{row['same_image']:.2f}  chance {row['chance_random']:.2f}  kept {row['kept']:.2f}  leak "
                  f"{fmt_or_dash(row['leakage'], '.2f')}  placed {row['placed']:.2f} (same {row['same_placed']:.2f})"
                  f"  attached {row['attached']:.2f}  frame 0 kept {row['start_frame_kept']:.2f}  train "
                  f"{row['train_s']:.0f}s", flush=True)
            _write(rows, args)  # after every row, so a long run cut short keeps what it measured
    return _write(rows, args)


def _write(rows: list[dict], args) -> dict:
    add_base(rows)
    result = {"rows": rows, "args": vars(args)}
    if args.json_out:
        atomic_write(args.json_out, json.dumps(result, indent=1, default=str).encode())
    return result


COLUMNS = (("fidelity", "new images", ".2f"), ("base", "base", ".2f"), ("chance_random", "chance", ".2f"),
           ("same_image", "same image", ".2f"), ("gap", "gap", "+.2f"), ("kept", "kept", ".2f"),
           ("colour_kept", "colour", ".2f"), ("shape_kept", "shape", ".2f"), ("leakage", "leak", ".2f"),
           ("pixel_leakage", "pixel leak", ".3f"), ("placed", "placed", ".2f"), ("attached", "attached", ".2f"),
           ("start_distance", "start dist", ".3f"), ("same_placed", "same placed", ".2f"),
           ("start_frame_kept", "frame 0 kept", ".2f"),
           ("train_s", "train s", ".0f"))


def table(rows: list[dict]) -> str:
    """The rows as a markdown table (what docs/benchmarks.md shows)."""
    head = "| motion | row | " + " | ".join(h for _, h, _ in COLUMNS) + " |"
    lines = [head, "|" + " --- |" * (len(COLUMNS) + 2)]
    for r in rows:
        cells = [_cell(r.get(k), f) for k, _, f in COLUMNS]
        lines.append(f"| {r['motion']} | {label(r['recipe'], r)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, spec)


def main(argv=None) -> int:
    result = run(argv)
    print()
    print(table(result["rows"]))
    return 0
