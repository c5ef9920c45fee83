"""Base quality of an image-to-video model of the world (ShapesWan-I2V): does the video keep the start image?

Start images are new to the model: rendered from a seeded generator with object sizes outside the pretraining range
(20-28% of the canvas), at random positions and backgrounds; colours and shapes are the world's (every one of them
was seen in pretraining, so what is new is each combination, size, place and background texture). Each image is
sampled with several seeds under the caption of its own look and a random basic motion. Every sample is tracked from
its pixels (`tracking.py`) and scored on:
- colour / shape kept: the clip's tracked colour and shape (majority votes) are the start image's;
- start kept: the first frame's object sits where the image's does (centroid within START_TOLERANCE_PX);
- size: the median tracked area over the clip against the image's;
- stability, as `base_stability` reads a text-to-video sample (so the two compare): found in every frame, the share
  of frames showing the clip's majority shape, and the largest centroid move between neighbouring frames against
  the world's fastest per-frame motion (within 1.5x of it, the issue's goal);
- motion word followed (secondary): the prompted basic motion has the best family fidelity of all basic motions.

Run as ``python -m motion_core.toy.i2v_quality --model shapes_wan_i2v [--write-card]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..backbones import load_backbone
from ..sampling import SampleRequest, sample_video
from ..sampling.schedulers import SCHEDULER_NAMES
from .base_quality import classify_motion
from .base_stability import JUMP_TOLERANCE, clip_stability, fastest_step
from .base_stability import summarize as stability_summary
from .builtin import resolve_builtin
from .captions import caption
from .motions import BASIC_MOTIONS, MotionParams
from .palette import BACKGROUNDS, COLOURS
from .pretrain.architecture import FPS, FRAME_SIZE
from .pretrain.wan_architecture import WAN_NUM_FRAMES
from .render import ClipSpec, render_frames
from .shapes import SHAPES
from .tracking import track_object

NEW_SIZES = (0.16, 0.18, 0.30, 0.32)  # object sides outside the pretraining range of 0.20-0.28
START_TOLERANCE_PX = 2.0


def new_start_images(count: int, seed: int, sizes=NEW_SIZES) -> list[dict]:
    """`count` seeded start images ([H, W, 3] in 0..1, through 8 bits like a user's file) with their look; object
    sizes cycle through `sizes`."""
    rng = random.Random(f"i2v-start-images:{seed}")
    images = []
    for i in range(count):
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        size, background = sizes[i % len(sizes)], rng.choice(list(BACKGROUNDS))
        # Anchors anywhere the object (and a fast move out of it) can stay on the canvas.
        x, y = (rng.uniform(size / 2 + 0.04, 1 - size / 2 - 0.04) for _ in range(2))
        spec = ClipSpec(colour, shape, "still", MotionParams(x, y), background, FRAME_SIZE, 1, FPS,
                        seed=rng.randrange(2**31), object_size=size)
        image = (render_frames(spec)[0] * 255).round() / 255
        images.append({"image": image, "colour": colour, "shape": shape, "size": size, "x": x, "y": y,
                       "background": background})
    return images


def score_track(track, start, motion: str) -> dict:
    """One sample's figures against its start image's own track (`start`) and its prompted motion."""
    start_error = math.hypot(float(track.x[0] - start.x[0]), float(track.y[0] - start.y[0])) * FRAME_SIZE
    area = track.area[track.found]
    predicted, _ = classify_motion(track)
    return {"image_colour": track.colour == start.colour, "image_shape": track.shape == start.shape,
            "start_error_px": None if math.isnan(start_error) else start_error,
            "size_vs_image": float(area.median() / start.area[0]) if area.numel() else None,
            "motion_ok": predicted == motion, "predicted": predicted, **asdict(clip_stability(track))}


def evaluate(backbone, images: int = 12, seeds: int = 3, seed: int = 0, steps: int = 25, cfg: float = 5.0,
             scheduler: str = "auto", sizes=NEW_SIZES, log=print) -> dict:
    """Sampled with the pack's sampler (`sample_video` with a start image), as a user's graph samples."""
    rng = random.Random(f"i2v-prompts:{seed}")
    rows, started = [], time.monotonic()
    for i, start in enumerate(new_start_images(images, seed, sizes)):
        start_track = track_object(start["image"][None], colour=start["colour"])
        for s in range(seeds):
            motion = rng.choice(BASIC_MOTIONS)
            prompt = caption(start["colour"], start["shape"], motion)
            request = SampleRequest(prompt=prompt, seed=1000 * seed + 10 * i + s, steps=steps, cfg=cfg,
                                    frames=WAN_NUM_FRAMES, width=FRAME_SIZE, height=FRAME_SIZE, fps=FPS,
                                    scheduler=scheduler, start_image=start["image"][None])
            frames = sample_video(backbone, request).frames
            row = score_track(track_object(frames), start_track, motion)
            rows.append({"image": i, "seed": s, "prompt": prompt, "size": start["size"],
                         "background": start["background"], **row})
        log(f"image {i + 1}/{images} ({start['colour']} {start['shape']}, size {start['size']}): "
            f"{sum(r['found_every_frame'] and r['image_colour'] and r['image_shape'] for r in rows[-seeds:])}/{seeds}"
            f" kept ({time.monotonic() - started:.0f}s)")
    return {"summary": summarize(rows, fastest_step(WAN_NUM_FRAMES)), "rows": rows}


def summarize(rows: list[dict], fastest: float) -> dict:
    n = len(rows)

    def share(test):
        return sum(bool(test(r)) for r in rows) / n

    def median(key):
        values = [r[key] for r in rows if r[key] is not None]
        return float(np.median(values)) if values else math.nan

    stability = stability_summary(rows, fastest)
    return {"samples": n, "colour_kept": share(lambda r: r["image_colour"]),
            "shape_kept": share(lambda r: r["image_shape"]),
            "look_kept": share(lambda r: r["image_colour"] and r["image_shape"] and r["found_every_frame"]),
            "start_kept": share(lambda r: r["start_error_px"] is not None
                                and r["start_error_px"] <= START_TOLERANCE_PX),
            "median_start_error_px": median("start_error_px"), "median_size_vs_image": median("size_vs_image"),
            "motion_word": share(lambda r: r["motion_ok"]),
            **{k: stability[k] for k in ("found_every_frame", "shape_same_every_frame", "jump_within_limit",
                                         "median_largest_jump", "fastest_step", "jump_limit")}}


CARD_HEADING = "## Measured base quality"


def write_to_card(model_dir: Path, summary: dict, command: str, sizes=NEW_SIZES) -> None:
    """Replace the card's base-quality section (atomically) with this measurement."""
    card = Path(model_dir) / "README.md"
    text = card.read_text().split(CARD_HEADING)[0].rstrip() + "\n\n"
    s = summary
    text += (f"{CARD_HEADING}\n\n`{command}`: {s['samples']} samples from new start images (object sizes "
             f"{', '.join(f'{v:.0%}' for v in sizes)} of the canvas; the pretraining range is 20-28%; "
             "random colours, shapes, places, backgrounds), each prompted with its own look and a random basic "
             "motion. Stability as `base_stability` reads ShapesWan's text-to-video samples.\n\n"
             f"- Start image's colour kept: {s['colour_kept']:.0%}; shape kept: {s['shape_kept']:.0%}; both, and "
             f"found in every frame: {s['look_kept']:.0%}\n"
             f"- First frame at the image's place (within {START_TOLERANCE_PX:g} px): {s['start_kept']:.0%} "
             f"(median error {s['median_start_error_px']:.1f} px); median size against the image's "
             f"{s['median_size_vs_image']:.2f}x\n"
             f"- Found in every frame: {s['found_every_frame']:.0%}; same shape in every frame: "
             f"{s['shape_same_every_frame']:.0%}\n"
             f"- Largest jump between neighbouring frames within {JUMP_TOLERANCE:g}x the fastest pretraining motion "
             f"({s['jump_limit']:.3f} of the canvas): {s['jump_within_limit']:.0%}; median largest jump "
             f"{s['median_largest_jump']:.3f}\n"
             f"- Motion word followed (secondary): {s['motion_word']:.0%}\n")
    partial = card.with_name(card.name + ".partial")
    partial.write_text(text)
    os.replace(partial, card)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m motion_core.toy.i2v_quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="shapes_wan_i2v", help="an image-to-video folder, or shapes_wan_i2v")
    p.add_argument("--images", type=int, default=12, help="new start images")
    p.add_argument("--seeds", type=int, default=3, help="samples per image")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--cfg", type=float, default=5.0)
    p.add_argument("--scheduler", default="auto", choices=SCHEDULER_NAMES, help="auto: UniPC, as for ShapesWan")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sizes", default=",".join(map(str, NEW_SIZES)),
                   help="object sizes of the start images (fractions of the canvas); e.g. 0.22,0.26 for the "
                   "pretraining range as a control")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json-out", default="", help="also write the summary and every row to this JSON file")
    p.add_argument("--write-card", action="store_true", help="record the result in the model folder's README.md")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = resolve_builtin(args.model)
    sizes = tuple(float(v) for v in args.sizes.split(","))
    result = evaluate(load_backbone(folder, device=args.device), args.images, args.seeds, args.seed, args.steps,
                      args.cfg, args.scheduler, sizes)
    print(json.dumps(result["summary"]))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1))
    if args.write_card:
        command = (f"python -m motion_core.toy.i2v_quality --model {args.model} --images {args.images} --seeds "
                   f"{args.seeds} --steps {args.steps} --cfg {args.cfg} --scheduler {args.scheduler} --seed {args.seed}"
                   f" --sizes {args.sizes}")
        write_to_card(folder, result["summary"], command, sizes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
