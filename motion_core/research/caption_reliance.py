"""How much a ShapesT2V model listens to each part of its caption.

For held-out clips of the basic motions, the denoising loss is measured with the true caption and again with the
colour, the shape or the motion swapped for another (and with no caption at all), on the same noise and timesteps.
The relative rise of the loss says how much the model relies on that part: a model that draws the prompted colour
loses a lot when the colour word is wrong; a rise near 0 means the words are ignored. It takes forward passes only,
about a minute on the CPU, so it is a cheap check between pretraining runs beside the slower sampled
`base_quality`. Run as ``python -m motion_core.research.caption_reliance --model motion_core/toy/shapes_t2v``.
"""

from __future__ import annotations

import argparse
import json
import random

import torch

from ..toy.pretrain.architecture import FPS, FRAME_SIZE, NUM_FRAMES
from ..toy.pretrain.data import render_dataset
from ..toy.pretrain.motion_contrast import PARTS, swapped
from ..toy.render import ClipSpec, sample_spec

# Timestep bands of a 1000-step schedule: "high" noise is where the layout and colours are decided from the text
# alone; at "mid" noise the object is already faintly visible in the noisy input.
BANDS = {"high": (600, 1000), "mid": (300, 600)}


def held_out_specs(count: int, seed: int) -> list[ClipSpec]:
    """Basic-motion clips from a seed stream apart from pretraining's (which starts at seed 0)."""
    rng = random.Random(10_000 + seed)
    return [sample_spec(rng, frames=NUM_FRAMES, size=FRAME_SIZE, fps=FPS) for _ in range(count)]


@torch.no_grad()
def caption_reliance(backbone, specs, *, repeats: int = 3, seed: int = 0) -> dict:
    """{band: {"loss": true-caption loss, "<part>"/"empty": % rise of the loss with that caption}}."""
    rng = random.Random(seed)
    frames, true_captions = render_dataset(specs)
    captions = {"true": true_captions, "empty": [""] * len(specs)}
    for part in PARTS:
        captions[part] = [swapped(s, part, rng).text() for s in specs]
    states = {name: backbone.encode_prompt(texts) for name, texts in captions.items()}
    latents = backbone.encode_video(frames.float().to(backbone.device)).float()
    scheduler, g = backbone.scheduler, torch.Generator().manual_seed(seed)
    result = {}
    for band, (lo, hi) in BANDS.items():
        totals = dict.fromkeys(captions, 0.0)
        for _ in range(repeats):
            noise = torch.randn(latents.shape, generator=g).to(latents.device)
            t = torch.randint(lo, hi, (latents.shape[0],), generator=g).to(latents.device)
            noisy = scheduler.add_noise(latents, noise, t)
            target = noise if backbone.prediction_type == "epsilon" else scheduler.get_velocity(latents, noise, t)
            for name, state in states.items():
                pred = backbone.denoise(noisy.to(backbone.dtype), t, state).float()
                totals[name] += torch.nn.functional.mse_loss(pred, target).item() / repeats
        base = totals.pop("true")
        result[band] = {"loss": base, **{name: 100.0 * (value - base) / base for name, value in totals.items()}}
    return result


def main(argv=None) -> int:
    from ..backbones import load_backbone

    p = argparse.ArgumentParser(prog="python -m motion_core.research.caption_reliance", description=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--clips", type=int, default=48, help="held-out clips (random looks and basic motions)")
    p.add_argument("--repeats", type=int, default=3, help="noise draws per clip and band")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    backbone = load_backbone(args.model, device=args.device)
    result = caption_reliance(backbone, held_out_specs(args.clips, args.seed), repeats=args.repeats, seed=args.seed)
    print(f"{'band':<6} {'loss':>8} " + " ".join(f"{name:>8}" for name in ("empty", *PARTS)))
    for band, row in result.items():
        print(f"{band:<6} {row['loss']:8.4f} " + " ".join(f"{row[n]:+7.1f}%" for n in ("empty", *PARTS)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
