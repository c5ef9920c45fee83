"""Does motion carry weight in the loss? Three figures per world, on a model's own VAE latents.

Why: the issue's hypothesis is that in ShapesT2V the motion is a few percent of what the denoising loss sees (one
object of ~5% of the pixels moves), so a model that ignores the motion words loses almost nothing. Measured here:
- **change share** ||z - mean_f z||^2 / ||z||^2: the part of a latent clip's energy that is frame-to-frame change;
- **reversal share** ||z - z_rev||^2 / ||z||^2 (z_rev: the clip played backwards): the x-prediction error, relative to
  the clip's energy, of a denoiser that has everything right but the direction of motion. Model-free;
- **reversal loss change**: a model's denoising loss on the reversed clip against the original, same noise, same
  timestep, the ORIGINAL caption: (L_rev - L) / L. A model that reads the motion word must find the reversed clip
  harder to denoise under it. At a fixed timestep the x- and epsilon-prediction losses differ by the constant factor
  alpha_bar / (1 - alpha_bar), so their relative changes are the same number; both absolute losses are reported.
Run as ``python -m motion_core.research.camera.weight`` (about 2 minutes on one thread).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random

import numpy as np
import torch

from .world import render_camera_frames, sample_camera_spec

SHIPPED = "motion_core/toy/shapes_t2v"


def change_share(z: torch.Tensor) -> np.ndarray:
    """[B] ||z - mean over frames||^2 / ||z||^2 of latents [B, C, F, h, w] (or frames [B, F, H, W, 3] with dim=1)."""
    z = z.double()
    return ((z - z.mean(2, keepdim=True)).pow(2).flatten(1).sum(1) / z.pow(2).flatten(1).sum(1)).numpy()


def reversal_share(z: torch.Tensor) -> np.ndarray:
    """[B] ||z - z played backwards||^2 / ||z||^2 of latents [B, C, F, h, w]."""
    z = z.double()
    return ((z - z.flip(2)).pow(2).flatten(1).sum(1) / z.pow(2).flatten(1).sum(1)).numpy()


@torch.no_grad()
def reversal_loss_change(backbone, latents: torch.Tensor, captions, timestep: int = 500, seed: int = 0,
                         batch: int = 16) -> dict:
    """Denoising losses (x- and epsilon-prediction, mean squared error) of `backbone` on each clip and on the clip
    reversed, same noise and timestep, the original caption; returns means and the relative change."""
    obj = backbone.objective
    g = torch.Generator().manual_seed(seed)
    sums = {"x": 0.0, "x_rev": 0.0, "eps": 0.0, "eps_rev": 0.0}
    per_clip = []
    for i in range(0, len(latents), batch):
        z = latents[i:i + batch].to(backbone.device, backbone.dtype)
        states = backbone.encode_prompt(list(captions[i:i + batch]))
        noise = torch.randn(z.shape, generator=g).to(z)
        t = torch.full((len(z),), int(timestep), dtype=torch.long, device=z.device)
        ab = obj.alpha_bar(int(timestep))
        out = {}
        for name, clean in (("", z), ("_rev", z.flip(2))):
            noisy = obj.add_noise(clean, noise, t)
            x_hat = obj.clean_estimate(noisy, backbone.denoise(noisy, t, states), int(timestep)).float()
            eps_hat = (noisy.float() - ab ** 0.5 * x_hat) / (1 - ab) ** 0.5
            out["x" + name] = (x_hat - clean.float()).pow(2).flatten(1).mean(1)
            out["eps" + name] = (eps_hat - noise.float()).pow(2).flatten(1).mean(1)
        for k in sums:
            sums[k] += float(out[k].sum())
        per_clip += (out["x_rev"] / out["x"] - 1.0).tolist()
    n = len(latents)
    res = {k: v / n for k, v in sums.items()}
    res["relative_change"] = res["x_rev"] / res["x"] - 1.0
    res["relative_change_eps"] = res["eps_rev"] / res["eps"] - 1.0
    res["clips_harder_reversed"] = float(np.mean(np.asarray(per_clip) > 0))
    return res


def shapes_clips(count: int, seed: int, object_size: float | None = None):
    """(frames [N, F, H, W, 3], captions) of the shipped model's pretraining distribution; `object_size` overrides
    every object's size (the "objects that fill much more of the frame" lever)."""
    from ...toy.pretrain.data import pretraining_specs
    from ...toy.render import render_frames

    specs = pretraining_specs(count, seed)
    if object_size is not None:
        specs = [dataclasses.replace(s, object_size=object_size, companion=None) for s in specs]
    return torch.stack([render_frames(s) for s in specs]), [s.text() for s in specs]


def camera_clips(count: int, seed: int):
    rng = random.Random(f"camera-weight:{seed}")
    specs = [sample_camera_spec(rng) for _ in range(count)]
    return torch.stack([render_camera_frames(s) for s in specs]), [s.text() for s in specs]


@torch.no_grad()
def encode(backbone, frames: torch.Tensor, batch: int = 16) -> torch.Tensor:
    return torch.cat([backbone.encode_video(frames[i:i + batch]).float().cpu() for i in range(0, len(frames), batch)])


def measure_world(backbone, frames, captions, timesteps=(250, 500, 750), seed: int = 0) -> dict:
    z = encode(backbone, frames)
    pix = frames.permute(0, 4, 1, 2, 3)  # [B, 3, F, H, W], so the same frame axis
    res = {"clips": len(frames), "latent_change_share": float(change_share(z).mean()),
           "pixel_change_share": float(change_share(pix).mean()),
           "latent_reversal_share": float(reversal_share(z).mean()),
           "pixel_reversal_share": float(reversal_share(pix).mean()),
           # Per element, not normalised: on one VAE (unit-scaled latents) these are the extra squared error a
           # motion-blind denoiser pays, directly comparable across worlds; the shares above divide by a clip's
           # energy, which a dark background makes small and a bright canvas large.
           "latent_change_per_element": float((z - z.mean(2, keepdim=True)).pow(2).mean()),
           "latent_reversal_per_element": float((z - z.flip(2)).pow(2).mean()),
           "latent_energy_per_element": float(z.pow(2).mean()),
           "pixel_change_per_element": float((pix - pix.mean(2, keepdim=True)).pow(2).mean()),
           "pixel_reversal_per_element": float((pix - pix.flip(2)).pow(2).mean())}
    for t in timesteps:
        res[f"reversal_loss_t{t}"] = reversal_loss_change(backbone, z, captions, t, seed)
    return res


def main(argv=None) -> int:
    from ...backbones import load_backbone

    p = argparse.ArgumentParser(prog="python -m motion_core.research.camera.weight", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=SHIPPED, help="whose VAE and denoiser are measured")
    p.add_argument("--clips", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worlds", default="shapes,shapes_large,camera")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    backbone = load_backbone(args.model)
    makers = {"shapes": lambda: shapes_clips(args.clips, args.seed),
              "shapes_large": lambda: shapes_clips(args.clips, args.seed, object_size=0.5),
              "camera": lambda: camera_clips(args.clips, args.seed)}
    results = {}
    for world in args.worlds.split(","):
        frames, captions = makers[world]()
        results[world] = measure_world(backbone, frames, captions, seed=args.seed)
        r = results[world]
        print(f"{world}: change share latent {r['latent_change_share']:.3f} / pixels {r['pixel_change_share']:.3f}; "
              f"reversal share latent {r['latent_reversal_share']:.3f} / pixels {r['pixel_reversal_share']:.3f}; "
              f"per element: latent change {r['latent_change_per_element']:.4f}, reversal "
              f"{r['latent_reversal_per_element']:.4f}, energy {r['latent_energy_per_element']:.3f}; pixel change "
              f"{r['pixel_change_per_element']:.4f}, reversal {r['pixel_reversal_per_element']:.4f}; "
              + "; ".join(f"t={k[15:]}: loss x {v['x']:.4f} -> {v['x_rev']:.4f} ({v['relative_change']:+.1%}), "
                          f"harder in {v['clips_harder_reversed']:.0%}"
                          for k, v in r.items() if k.startswith("reversal_loss_")), flush=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
