"""Does a base model's sample hold together from frame to frame, as a user looking at it would judge?

`base_quality` votes colour and shape over the whole clip, so a clip whose object is a triangle in four frames, a
square in three and gone in two still counts as "a triangle". This measure looks at each frame: per sample, is the
object found in every frame, what share of its frames show the clip's majority shape, and how far the tracked
centroid jumps between neighbouring frames, against the fastest motion the world has. The samples are base_quality's
(same prompts and seeds), so both measures read the same clips. Run as
``python -m motion_core.toy.base_stability --model shapes_wan``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..sampling import sample_video
from .base_quality import base_requests, quality_row
from .builtin import clip_frames, resolve_builtin
from .motions import BASIC_MOTIONS, MOTIONS, sample_params
from .tracking import ObjectTrack, track_object

JUMP_TOLERANCE = 1.5  # the goal: no neighbouring-frame jump beyond 1.5x the world's fastest per-frame motion


def fastest_step(frames: int, motions=BASIC_MOTIONS, draws: int = 200, seed: int = 0) -> float:
    """The largest centroid move between neighbouring frames (canvas units) over seeded members of `motions` at this
    clip length. Measured from the paths, not the rate ranges, so it holds for any family; the basic (pretraining)
    motions by default, since those are the only ones a base model is asked for."""
    import random

    rng, fastest = random.Random(seed), 0.0
    for name in motions:
        family = MOTIONS[name]
        for _ in range(draws):
            x, y, _ = family.positions(frames, sample_params(rng, name, frames, 0.20))
            if frames > 1:
                fastest = max(fastest, float(torch.hypot(x.diff(), y.diff()).max()))
    return fastest


@dataclass(frozen=True)
class ClipStability:
    """One clip. found_every_frame: the object is found in all frames. shape_kept: share of the found frames whose
    shape is the clip's majority shape (0 if never found). largest_jump: the largest centroid move between two
    neighbouring frames where both are found (canvas units; inf if fewer than two neighbours are). size_ratio: the
    largest found area over the smallest (1 = constant size)."""

    found_every_frame: bool
    found_frames: int
    shape_kept: float
    largest_jump: float
    size_ratio: float


def clip_stability(track: ObjectTrack) -> ClipStability:
    found = track.found
    shapes = [s for s in track.frame_shapes if s is not None]
    shape_kept = sum(s == track.shape for s in shapes) / len(shapes) if shapes else 0.0
    both = found[1:] & found[:-1]
    steps = torch.hypot(track.x.diff(), track.y.diff())[both]
    jump = float(steps.max()) if steps.numel() else math.inf
    areas = track.area[found]
    ratio = float(areas.max() / areas.min()) if areas.numel() else math.inf
    return ClipStability(bool(found.all()), int(found.sum()), shape_kept, jump, ratio)


def summarize(rows: list[dict], fastest: float) -> dict:
    """Shares over samples; the jump goal counts a sample only when every neighbouring pair was found."""
    n, limit = len(rows), JUMP_TOLERANCE * fastest
    jumps = sorted(r["largest_jump"] for r in rows)
    out = {
        "samples": n,
        "found_every_frame": sum(r["found_every_frame"] for r in rows) / n,
        "shape_kept": sum(r["shape_kept"] for r in rows) / n,
        "shape_same_every_frame": sum(r["shape_kept"] == 1.0 and r["found_every_frame"] for r in rows) / n,
        "jump_within_limit": sum(r["found_every_frame"] and r["largest_jump"] <= limit for r in rows) / n,
        "median_largest_jump": jumps[n // 2],
        "fastest_step": fastest,
        "jump_limit": limit,
        "median_size_ratio": sorted(r["size_ratio"] for r in rows)[n // 2],
    }
    for key in ("colour_ok", "shape_ok", "motion_ok"):
        if rows and key in rows[0]:
            out[key.replace("_ok", "")] = sum(r[key] for r in rows) / n
    return out


def _write_png(frames: torch.Tensor, path: Path) -> None:
    """The clip's frames side by side, 1 px apart, so a reader sees what a user sees."""
    from PIL import Image

    f, h, w, _ = frames.shape
    strip = torch.ones(h, f * (w + 1) - 1, 3)
    for i in range(f):
        strip[:, i * (w + 1):i * (w + 1) + w] = frames[i, ..., :3].float().clamp(0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.png")
    Image.fromarray((strip * 255).round().byte().numpy()).save(partial)
    partial.replace(path)


def evaluate(backbone, samples_per_motion: int = 4, seed: int = 0, steps: int = 25, cfg: float = 5.0,
             scheduler: str = "auto", png_dir: Path | None = None, log=print) -> dict:
    frames = clip_frames(backbone)
    fastest = fastest_step(frames)
    rows, started = [], time.monotonic()
    for i, (motion, colour, shape, request) in enumerate(base_requests(frames, samples_per_motion, seed, steps,
                                                                        cfg, scheduler)):
        video = sample_video(backbone, request).frames
        track = track_object(video)
        row = {"prompt": request.prompt, "seed": request.seed, **quality_row(track, motion, colour, shape),
               **asdict(clip_stability(track)), "frame_shapes": list(track.frame_shapes)}
        rows.append(row)
        if png_dir is not None:
            _write_png(torch.as_tensor(video), Path(png_dir) / f"{i:02d}_{request.prompt.replace(' ', '_')}.png")
        log(f"{i + 1:2d} {request.prompt}: found {row['found_frames']}/{frames}, shape kept {row['shape_kept']:.0%}, "
            f"largest jump {row['largest_jump']:.3f} ({time.monotonic() - started:.0f}s)")
    return {"summary": summarize(rows, fastest), "rows": rows}


def main(argv=None) -> int:
    from ..backbones import load_backbone

    p = argparse.ArgumentParser(prog="python -m motion_core.toy.base_stability", description=__doc__)
    p.add_argument("--model", required=True, help="a model folder, or a built-in name (shapes_t2v, shapes_wan, ...)")
    p.add_argument("--samples", type=int, default=4, help="samples per basic motion (base_quality's draws)")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--cfg", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scheduler", default="auto")
    p.add_argument("--png", type=Path, default=None, help="write each sample's frames as a PNG strip here")
    p.add_argument("--json", type=Path, default=None, help="write the summary and per-sample rows here")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    backbone = load_backbone(resolve_builtin(args.model), device=args.device)
    result = evaluate(backbone, args.samples, args.seed, args.steps, args.cfg, args.scheduler, args.png)
    s = result["summary"]
    print(f"found in every frame {s['found_every_frame']:.0%}  shape kept {s['shape_kept']:.0%} "
          f"(same in every frame {s['shape_same_every_frame']:.0%})  jump within {JUMP_TOLERANCE}x fastest "
          f"{s['jump_within_limit']:.0%} (median largest jump {s['median_largest_jump']:.3f}, limit "
          f"{s['jump_limit']:.3f})  colour {s['colour']:.0%}  shape {s['shape']:.0%}  motion {s['motion']:.0%}")
    if args.json is not None:
        partial = args.json.with_name(args.json.name + ".partial")
        partial.write_text(json.dumps(result, indent=1, default=float) + "\n")
        partial.replace(args.json)
    print(json.dumps(s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
