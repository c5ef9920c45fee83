"""Base quality of a ShapesT2V model: does it draw the prompted colour and shape, and move it the prompted way?

For every basic motion, sample clips with random colours and shapes from their captions, track the object, and
count a sample as following its motion when, among all basic motions, the prompted one has the highest family
fidelity. Run as ``python -m motion_core.toy.base_quality --model motion_core/toy/shapes_t2v``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

from ..sampling import SampleRequest, sample_video
from ..sampling.schedulers import SCHEDULER_NAMES
from .captions import caption
from .metrics import family_fidelity
from .motions import BASIC_MOTIONS
from .palette import COLOURS
from .builtin import clip_frames, resolve_builtin
from .pretrain.architecture import FPS, FRAME_SIZE
from .shapes import SHAPES
from .tracking import track_object


def classify_motion(track, motions=BASIC_MOTIONS) -> tuple[str, float]:
    """The motion family the track matches best, and its fidelity."""
    scores = {m: family_fidelity(track, m, count=24) for m in motions}
    best = max(scores, key=scores.get)
    return best, scores[best]


def base_requests(frames: int, samples_per_motion: int, seed: int, steps: int, cfg: float, scheduler: str):
    """The measured samples, in order: (motion, colour, shape, SampleRequest) with seeded random looks. One place,
    so base_stability reads exactly the clips this measure reads."""
    rng = random.Random(seed)
    for motion in BASIC_MOTIONS:
        for _ in range(samples_per_motion):
            colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
            prompt = caption(colour, shape, motion)
            yield motion, colour, shape, SampleRequest(prompt=prompt, seed=rng.randrange(2**31), steps=steps,
                                                       cfg=cfg, frames=frames, width=FRAME_SIZE,
                                                       height=FRAME_SIZE, fps=FPS, scheduler=scheduler)


def quality_row(track, motion: str, colour: str, shape: str) -> dict:
    predicted, fidelity = classify_motion(track)
    return {"motion": motion, "colour_ok": track.colour == colour, "shape_ok": track.shape == shape,
            "motion_ok": predicted == motion, "predicted": predicted, "fidelity": fidelity,
            "found": track.found_fraction}


def evaluate(backbone, samples_per_motion: int = 4, seed: int = 0, steps: int = 25, cfg: float = 5.0,
             scheduler: str = "auto", log=print) -> dict:
    frames = clip_frames(backbone)
    rows, started = [], time.monotonic()
    for motion, colour, shape, request in base_requests(frames, samples_per_motion, seed, steps, cfg, scheduler):
        track = track_object(sample_video(backbone, request).frames)
        rows.append({"prompt": request.prompt, **quality_row(track, motion, colour, shape)})
        done = [r for r in rows if r["motion"] == motion]
        if len(done) == samples_per_motion:
            log(f"{motion}: {sum(r['motion_ok'] for r in done)}/{samples_per_motion} follow "
                f"the motion ({time.monotonic() - started:.0f}s)")
    n = len(rows)
    summary = {
        "samples": n,
        "colour": sum(r["colour_ok"] for r in rows) / n,
        "shape": sum(r["shape_ok"] for r in rows) / n,
        "motion": sum(r["motion_ok"] for r in rows) / n,
        "all": sum(r["colour_ok"] and r["shape_ok"] and r["motion_ok"] for r in rows) / n,
        "per_motion": {m: sum(r["motion_ok"] for r in rows if r["motion"] == m) / samples_per_motion
                       for m in BASIC_MOTIONS},
    }
    return {"summary": summary, "rows": rows}


CARD_HEADING = "## Measured base quality"


def write_to_card(model_dir: Path, summary: dict, args) -> None:
    """Replace the card's base-quality section (atomically), so the card always states the latest measurement."""
    card = Path(model_dir) / "README.md"
    text = card.read_text() if card.exists() else ""
    text = text.split(CARD_HEADING)[0].rstrip() + "\n\n"
    sampler = getattr(args, "scheduler", "auto")
    sampler = "" if sampler == "auto" else f" --scheduler {sampler}"
    per_motion = ", ".join(f"{m} {v:.0%}" for m, v in summary["per_motion"].items())
    model = f" --model {args.model}" if getattr(args, "model", None) else ""
    command = (f"python -m motion_core.toy.base_quality{model} --samples {args.samples} --steps {args.steps} "
               f"--cfg {args.cfg} --seed {args.seed}{sampler}")
    text += (f"{CARD_HEADING}\n\n`{command}`: {summary['samples']} samples with random colours and shapes.\n\n"
             f"- Colour follows the prompt: {summary['colour']:.0%}\n"
             f"- Shape follows the prompt: {summary['shape']:.0%}\n"
             f"- Motion follows the prompt: {summary['motion']:.0%} ({per_motion})\n"
             f"- All three at once: {summary['all']:.0%}\n")
    partial = card.with_name(card.name + ".partial")
    partial.write_text(text)
    os.replace(partial, card)


def main(argv=None) -> int:
    from ..backbones import load_backbone

    p = argparse.ArgumentParser(prog="python -m motion_core.toy.base_quality", description=__doc__)
    p.add_argument("--model", required=True, help="a model folder, or shapes_t2v / shapes_wan")
    p.add_argument("--samples", type=int, default=4, help="samples per basic motion")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--cfg", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scheduler", default="auto", choices=SCHEDULER_NAMES,
                   help="sampler, as the sampler node names it (auto: DDIM for ShapesT2V, UniPC for ShapesWan)")
    p.add_argument("--device", default="cpu", help="where to sample (cuda is far faster; figures match up to noise)")
    p.add_argument("--write-card", action="store_true", help="record the result in the model folder's README.md")
    args = p.parse_args(argv)
    result = evaluate(load_backbone(resolve_builtin(args.model), device=args.device), args.samples, args.seed, args.steps, args.cfg,
                      args.scheduler)
    s = result["summary"]
    print(f"colour {s['colour']:.0%}  shape {s['shape']:.0%}  motion {s['motion']:.0%}  all three {s['all']:.0%}"
          f"  ({s['samples']} samples)")
    if args.write_card:
        write_to_card(resolve_builtin(args.model), s, args)
    print(json.dumps(s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
