"""Base quality of an image-to-video model of the world (ShapesWan-I2V): does the video keep the start image?

Start images are new to the model: rendered from a seeded generator with object sizes outside the pretraining range
(20-28% of the canvas), at random positions and backgrounds; colours and shapes are the world's (every one of them
was seen in pretraining, so what is new is each combination, size, place and background texture). Each image is
sampled with several seeds under the caption of its own look and a random basic motion. Every sample is tracked from
its pixels (`tracking.py`) and scored on:
- found: the object is found in every frame;
- colour / shape kept: the clip's tracked colour and shape are the start image's;
- start kept: the first frame's object sits where the image's does (centroid within START_TOLERANCE_PX);
- size kept: the median tracked area over the clip against the image's;
- steps: the centroid's per-frame displacement, mean and largest; a "jump" is a step longer than the fastest
  pretraining motion ever moves in one frame (FASTEST_STEP), i.e. the object moved where no training clip goes;
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
from pathlib import Path

import numpy as np
import torch

from ..backbones import load_backbone
from ..sampling import SampleRequest, sample_video
from ..sampling.schedulers import SCHEDULER_NAMES
from .base_quality import classify_motion
from .builtin import resolve_builtin
from .captions import caption
from .motions import BASIC_MOTIONS, MOTIONS, MotionParams
from .palette import BACKGROUNDS, COLOURS
from .pretrain.architecture import FPS, FRAME_SIZE
from .pretrain.wan_architecture import WAN_NUM_FRAMES
from .render import ClipSpec, render_frames
from .shapes import SHAPES
from .tracking import track_object

NEW_SIZES = (0.16, 0.18, 0.30, 0.32)  # object sides outside the pretraining range of 0.20-0.28
START_TOLERANCE_PX = 2.0
# The fastest any pretraining clip moves in one frame: the longest straight travel over its 9 frames.
FASTEST_STEP = max(MOTIONS[m].rate_range[1] for m in BASIC_MOTIONS) / (WAN_NUM_FRAMES - 1)


def new_start_images(count: int, seed: int) -> list[dict]:
    """`count` seeded start images ([H, W, 3] in 0..1, through 8 bits like a user's file) with their look."""
    rng = random.Random(f"i2v-start-images:{seed}")
    images = []
    for i in range(count):
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        size, background = NEW_SIZES[i % len(NEW_SIZES)], rng.choice(list(BACKGROUNDS))
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
    px = FRAME_SIZE
    xy = torch.stack([track.x, track.y], 1).double().numpy() * px
    steps = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    steps = steps[~np.isnan(steps)]
    start_error = math.hypot(float(track.x[0] - start.x[0]) * px, float(track.y[0] - start.y[0]) * px)
    area = track.area[track.found]
    predicted, _ = classify_motion(track)
    return {"found_all": bool(track.found.all()), "found": track.found_fraction,
            "colour_kept": track.colour == start.colour, "shape_kept": track.shape == start.shape,
            "start_error_px": start_error if not math.isnan(start_error) else None,
            "size_ratio": float(area.median() / start.area[0]) if area.numel() else None,
            "mean_step_px": float(steps.mean()) if steps.size else None,
            "max_step_px": float(steps.max()) if steps.size else None,
            "motion_ok": predicted == motion, "predicted": predicted}


def evaluate(backbone, images: int = 12, seeds: int = 3, seed: int = 0, steps: int = 25, cfg: float = 5.0,
             scheduler: str = "auto", log=print) -> dict:
    """Sampled with the pack's sampler (`sample_video` with a start image), as a user's graph samples."""
    rng = random.Random(f"i2v-prompts:{seed}")
    rows, started = [], time.monotonic()
    for i, start in enumerate(new_start_images(images, seed)):
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
            f"{sum(r['found_all'] and r['colour_kept'] and r['shape_kept'] for r in rows[-seeds:])}/{seeds} kept "
            f"({time.monotonic() - started:.0f}s)")
    return {"summary": summarize(rows), "rows": rows}


def summarize(rows: list[dict]) -> dict:
    def share(key):
        return sum(bool(r[key]) for r in rows) / len(rows)

    def values(key):
        return [r[key] for r in rows if r[key] is not None]

    max_steps, fastest = values("max_step_px"), FASTEST_STEP * FRAME_SIZE
    return {"samples": len(rows), "found_every_frame": share("found_all"), "colour_kept": share("colour_kept"),
            "shape_kept": share("shape_kept"),
            "look_kept": sum(r["found_all"] and r["colour_kept"] and r["shape_kept"] for r in rows) / len(rows),
            "start_kept": sum((r["start_error_px"] or math.inf) <= START_TOLERANCE_PX for r in rows) / len(rows),
            "median_start_error_px": float(np.median(values("start_error_px"))),
            "median_size_ratio": float(np.median(values("size_ratio"))),
            "mean_step_px": float(np.mean(values("mean_step_px"))),
            "median_max_step_px": float(np.median(max_steps)),
            "fastest_training_step_px": fastest,
            "jumps": sum(s > fastest for s in max_steps) / len(rows),
            "motion_word": share("motion_ok")}


CARD_HEADING = "## Measured base quality"


def write_to_card(model_dir: Path, summary: dict, command: str) -> None:
    """Replace the card's base-quality section (atomically) with this measurement."""
    card = Path(model_dir) / "README.md"
    text = card.read_text().split(CARD_HEADING)[0].rstrip() + "\n\n"
    s = summary
    text += (f"{CARD_HEADING}\n\n`{command}`: {s['samples']} samples from new start images (object sizes "
             f"{', '.join(f'{v:.0%}' for v in NEW_SIZES)} of the canvas, outside the pretraining range of 20-28%; "
             "random colours, shapes, places, backgrounds), each prompted with its own look and a random basic "
             "motion.\n\n"
             f"- Object found in every frame: {s['found_every_frame']:.0%}\n"
             f"- Start image's colour kept: {s['colour_kept']:.0%}; shape kept: {s['shape_kept']:.0%}; all three: "
             f"{s['look_kept']:.0%}\n"
             f"- First frame at the image's place (within {START_TOLERANCE_PX:g} px): {s['start_kept']:.0%} "
             f"(median error {s['median_start_error_px']:.1f} px); median size against the image's "
             f"{s['median_size_ratio']:.2f}x\n"
             f"- Per-frame steps: mean {s['mean_step_px']:.1f} px, median largest {s['median_max_step_px']:.1f} px; "
             f"{s['jumps']:.0%} of the samples jump once or more (a step over {s['fastest_training_step_px']:.1f} px, "
             "the fastest pretraining motion's)\n"
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
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json-out", default="", help="also write the summary and every row to this JSON file")
    p.add_argument("--write-card", action="store_true", help="record the result in the model folder's README.md")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = resolve_builtin(args.model)
    result = evaluate(load_backbone(folder, device=args.device), args.images, args.seeds, args.seed, args.steps,
                      args.cfg, args.scheduler)
    print(json.dumps(result["summary"]))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1))
    if args.write_card:
        command = (f"python -m motion_core.toy.i2v_quality --model {args.model} --images {args.images} --seeds "
                   f"{args.seeds} --steps {args.steps} --cfg {args.cfg} --scheduler {args.scheduler} --seed {args.seed}")
        write_to_card(folder, result["summary"], command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
