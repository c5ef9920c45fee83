"""``python -m motion_core.bench train``: what MotionDirector's dual path and gradient checkpointing cost.

1. md_step_ratio_f8 / _f16: median time of a MotionDirector training step (spatial path on one frame, skipped on
   20% of steps, plus the temporal path on the full clip) over a plain LoRA step (one forward+backward of the full
   clip with the same adapters), both through the real trainer (same optimiser, clipping, checkpointing), on a
   UNet3D with ZeroScope's block layout at reduced width. Goal <= 1.25.
2. ckpt_memory_ratio: extra memory of one MotionDirector training step with gradient checkpointing over without,
   on the real ZeroScope architecture (random init, 8 frames, 128x128 px latents 16x16). Goal <= 0.6. Method in
   _train_memory.py (RSS of a fresh subprocess per measurement; the model weights are subtracted as baseline).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from ..recipes import MotionDirector, losses


class PlainLoraStep(MotionDirector):
    """The reference: MotionDirector's adapters, one plain forward+backward of the full clip per step."""

    name = "plain_lora_step"

    def step(self, ctx):
        latents = ctx.sample.latents
        noise, t = ctx.noise_like(latents), ctx.timesteps(1)
        names = [self.spatial_adapter(ctx.sample.clip_index), "temporal"]
        ctx.use_adapters(enabled=names, trainable=names)
        loss = losses.mse(ctx.predict(ctx.noisy(latents, noise, t), t), ctx.target(latents, noise, t))
        ctx.backward(loss)
        return {"mse": loss.detach(), "total": loss.detach()}


def real_shaped_backbone(seed: int = 0):
    """ZeroScope's UNet3D layout (4 levels, 2 layers per block, the same block types, transformer_in) at 1/10 of
    its width, with the tiny VAE and text encoder: step-time ratios depend on the layout, not the width."""
    from diffusers import UNet3DConditionModel

    from ..backbones import tiny_unet3d_backbone
    from ..backbones.tiny import TINY_TEXT_DIM

    backbone = tiny_unet3d_backbone(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet3DConditionModel(
            block_out_channels=(32, 64, 128, 128), layers_per_block=2, norm_num_groups=32, attention_head_dim=8,
            cross_attention_dim=TINY_TEXT_DIM,
            down_block_types=("CrossAttnDownBlock3D",) * 3 + ("DownBlock3D",),
            up_block_types=("UpBlock3D",) + ("CrossAttnUpBlock3D",) * 3,
        )
    backbone.denoiser = unet.requires_grad_(False).train()
    return backbone


def step_seconds(backbone, recipe, frames: int, size: int, steps: int) -> list[float]:
    """Seconds of each trainer step, the first (warm-up) step excluded."""
    from ..clips import Clip, ClipSet
    from ..training import TrainingCallbacks, TrainingConfig, train_motion_lora

    g = torch.Generator().manual_seed(0)
    clip = Clip(torch.randint(0, 256, (frames, size, size, 3), dtype=torch.uint8, generator=g), 8.0, "a ball moves")
    stamps = []
    callbacks = TrainingCallbacks(on_progress=lambda info: stamps.append(time.perf_counter()))
    config = TrainingConfig(steps=steps + 1, width=size, height=size, frames=frames, rank=16, seed=0)
    train_motion_lora(backbone, ClipSet((clip,)), recipe, config, callbacks)
    return [b - a for a, b in zip(stamps, stamps[1:])]


def interleaved_medians(backbone, frames: int, size: int, steps: int, rounds: int) -> tuple[float, float]:
    """Median step time of MotionDirector and of the plain step, measured in alternating rounds: on a shared
    machine, load from other processes then hits both alike instead of skewing one of them."""
    md, plain = [], []
    for _ in range(rounds):
        md += step_seconds(backbone, MotionDirector(), frames, size, steps)
        plain += step_seconds(backbone, PlainLoraStep(), frames, size, steps)
    return statistics.median(md), statistics.median(plain)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m motion_core.bench train", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round (after one warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of MotionDirector / plain steps")
    parser.add_argument("--size", type=int, default=32, help="training size in pixels for the step-time ratio")
    parser.add_argument("--skip-memory", action="store_true", help="skip the ZeroScope memory measurement")
    args = parser.parse_args(argv)

    figures, rows = {}, []
    backbone = real_shaped_backbone()
    for frames in (8, 16):
        md, plain = interleaved_medians(backbone, frames, args.size, args.steps, args.rounds)
        figures[f"md_step_ratio_f{frames}"] = round(md / plain, 3)
        rows.append((f"MotionDirector step / plain LoRA step, {frames} frames", f"{md:.3f}s / {plain:.3f}s",
                     f"{md / plain:.3f}", "<= 1.25"))
    if not args.skip_memory:
        from ._train_memory import measure

        with_ckpt, without = measure(True), measure(False)
        figures["ckpt_memory_ratio"] = round(with_ckpt / without, 3)
        rows.append(("step memory with / without checkpointing, ZeroScope 8f", f"{with_ckpt / 2**20:.0f} MiB / "
                     f"{without / 2**20:.0f} MiB", f"{with_ckpt / without:.3f}", "<= 0.6"))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'values':<24} {'ratio':>7}  goal")
    for name, values, ratio, goal in rows:
        print(f"{name:<{width}}  {values:<24} {ratio:>7}  {goal}")
    print(json.dumps(figures))
    return 0
