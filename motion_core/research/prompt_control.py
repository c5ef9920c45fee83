"""Who sets the motion in a ShapesT2V sample: the prompt's motion words or the starting noise?

Each seed's starting noise is sampled under several motion prompts (same colour and shape). Every sample is tracked
and reduced to its mean velocity (dx, dy per clip). The velocities' variance is then split in two parts. One is
the spread between prompts for a fixed seed; the other is the spread between seeds for a fixed prompt. The prompt
share, prompt / (prompt + seed), is 1 when the words alone set where the object goes and 0 when the noise alone
does. A model that follows "left" and "right" must score high; the sampled motion rate of `base_quality` cannot
say why a model fails, this can. About a minute on the CPU for the defaults.
Run as ``python -m motion_core.research.prompt_control --model motion_core/toy/shapes_t2v``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from ..errors import InvalidInputError
from ..sampling import SampleRequest, sample_video
from ..toy.builtin import clip_frames, resolve_builtin
from ..toy.captions import caption
from ..toy.pretrain.architecture import FPS, FRAME_SIZE
from ..toy.tracking import ObjectTrack, track_object

DEFAULT_MOTIONS = ("left", "right", "up", "down")


def mean_velocity(track: ObjectTrack) -> np.ndarray:
    """(dx, dy) per clip from the first to the last frame where the object was found; NaN when found < 2 times."""
    xs, ys = track.x.double().numpy(), track.y.double().numpy()
    found = np.flatnonzero(~(np.isnan(xs) | np.isnan(ys)))
    if found.size < 2:
        return np.full(2, np.nan)
    a, b = found[0], found[-1]
    return np.array([xs[b] - xs[a], ys[b] - ys[a]]) * (len(xs) - 1) / (b - a)


def prompt_share(velocities: np.ndarray) -> dict:
    """velocities [seeds, prompts, 2], NaN where untracked. Variance between prompts (within a seed) and between
    seeds (within a prompt), each a mean over the other axis of complete rows, and the prompt share of their sum."""
    v = np.asarray(velocities, dtype=np.float64)
    if v.ndim != 3 or v.shape[2] != 2 or v.shape[0] < 2 or v.shape[1] < 2:
        raise InvalidInputError(f"Need velocities shaped [seeds >= 2, prompts >= 2, 2]; got {v.shape}.")
    ok = ~np.isnan(v).any(axis=2)
    between_prompts = [v[s, ok[s]].var(axis=0).sum() for s in range(v.shape[0]) if ok[s].sum() >= 2]
    between_seeds = [v[ok[:, p], p].var(axis=0).sum() for p in range(v.shape[1]) if ok[:, p].sum() >= 2]
    if not between_prompts or not between_seeds:
        raise InvalidInputError("Too few tracked samples to compare prompts and seeds; sample more seeds.")
    prompt_var, seed_var = float(np.mean(between_prompts)), float(np.mean(between_seeds))
    total = prompt_var + seed_var
    return {"prompt_variance": prompt_var, "seed_variance": seed_var,
            "prompt_share": prompt_var / total if total > 0 else float("nan"),
            "tracked": float(ok.mean())}


def measure(backbone, *, seeds: int = 3, motions=DEFAULT_MOTIONS, colour: str = "blue", shape: str = "circle",
            steps: int = 20, cfg: float = 5.0, log=print) -> dict:
    velocities = np.full((seeds, len(motions), 2), np.nan)
    frames = clip_frames(backbone)
    for s in range(seeds):
        for j, motion in enumerate(motions):
            request = SampleRequest(prompt=caption(colour, shape, motion), seed=s, steps=steps, cfg=cfg,
                                    frames=frames, width=FRAME_SIZE, height=FRAME_SIZE, fps=FPS)
            velocities[s, j] = mean_velocity(track_object(sample_video(backbone, request).frames))
        log(f"seed {s}: " + ", ".join(f"{m} ({v[0]:+.2f}, {v[1]:+.2f})" for m, v in zip(motions, velocities[s])))
    return {**prompt_share(velocities), "velocities": velocities.round(3).tolist(), "motions": list(motions)}


def main(argv=None) -> int:
    from ..backbones import load_backbone

    p = argparse.ArgumentParser(prog="python -m motion_core.research.prompt_control", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a model folder, or shapes_t2v / shapes_wan")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--motions", default=",".join(DEFAULT_MOTIONS), help="basic motions to prompt, comma-separated")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=5.0)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    result = measure(load_backbone(resolve_builtin(args.model), device=args.device), seeds=args.seeds,
                     motions=tuple(args.motions.split(",")), steps=args.steps, cfg=args.cfg)
    print(f"prompt share of the motion {result['prompt_share']:.2f} (variance between prompts "
          f"{result['prompt_variance']:.4f}, between seeds {result['seed_variance']:.4f}; "
          f"{result['tracked']:.0%} of samples tracked)")
    print(json.dumps({k: result[k] for k in ("prompt_share", "prompt_variance", "seed_variance", "tracked")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
