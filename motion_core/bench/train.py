"""``python -m motion_core.bench train``: what MotionDirector's dual path and gradient checkpointing cost.

1. md_step_ratio_f8 / _f16: median time of a MotionDirector training step (spatial path on one frame, skipped on
   20% of steps, plus the temporal path on the full clip) over a plain LoRA step (one forward+backward of the full
   clip with the same adapters), both through the real trainer (same optimiser, clipping, checkpointing), on a
   UNet3D with ZeroScope's block layout at reduced width. Goal <= 1.25.
2. ckpt_memory_ratio: extra memory of one MotionDirector training step with gradient checkpointing over without,
   on the real ZeroScope architecture (random init, 8 frames, 128x128 px latents 16x16). Goal <= 0.6. Method in
   _train_memory.py (RSS of a fresh subprocess per measurement; the model weights are subtracted as baseline).
3. wan_md_step_ratio_f<F>: the same ratio as 1 on the tiny Wan (tiny_wan_backbone: the real Wan classes, two
   blocks) at 32x32 px. A Wan clip of F frames is 1 + (F - 1)/4 latent frames while the spatial path still runs one
   whole latent frame, so short clips pay relatively more for it than on a UNet.
4. wan_ckpt_memory_ratio: as 2 on the real Wan 2.1 T2V 1.3B architecture (bf16, random init; 9 frames at 128x128
   px by default, 192 transformer tokens; --wan-memory-frames / --wan-memory-pixels for more).

``--family unet3d`` or ``wan`` runs one family's figures only (default: both)."""

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
    from ..backbones.tiny_clip import TINY_TEXT_DIM

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
    config = TrainingConfig(steps=steps + 1, width=size, height=size, frames=frames, rank=16, seed=0,
                            memory="manual")  # the figures were taken with checkpointing on, the old default
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


FAMILIES = ("unet3d", "wan")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m motion_core.bench train", description=__doc__.split("\n")[0])
    parser.add_argument("--family", default="all", choices=[*FAMILIES, "all"], help="which family's figures")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round (after one warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of MotionDirector / plain steps")
    parser.add_argument("--size", type=int, default=32, help="training size in pixels for the step-time ratios")
    parser.add_argument("--frames", default="8,16", type=_ints, help="UNet clip lengths for the step-time ratio")
    parser.add_argument("--wan-frames", default="5,9", type=_ints,
                        help="tiny Wan clip lengths for the step-time ratio (1 + 4k)")
    parser.add_argument("--wan-memory-frames", type=int, default=9, help="Wan 1.3B memory clip length (1 + 4k)")
    parser.add_argument("--wan-memory-pixels", type=int, default=128,
                        help="Wan 1.3B memory clip width = height in pixels (a multiple of 16)")
    parser.add_argument("--skip-memory", action="store_true", help="skip the real-architecture memory measurements")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads here and in the memory subprocesses (one: a shared machine's load then "
                             "slows both sides of a ratio alike)")
    args = parser.parse_args(argv)
    if any((f - 1) % 4 for f in (*args.wan_frames, args.wan_memory_frames)):
        parser.error("Wan clip lengths must be 1 + 4k frames (5, 9, 13, ...): its VAE compresses time by 4")
    if args.wan_memory_pixels % 16 or args.size % 8:
        parser.error("--wan-memory-pixels must be a multiple of 16 and --size of 8 (VAE factor x 2x2 patches)")
    return args


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def step_ratio_rows(label: str, key: str, backbone, frame_counts, args) -> tuple[dict, list]:
    """``key``_f<F> figures and table rows of the MotionDirector / plain step ratio, one per clip length."""
    figures, rows = {}, []
    for frames in frame_counts:
        md, plain = interleaved_medians(backbone, frames, args.size, args.steps, args.rounds)
        figures[f"{key}_f{frames}"] = round(md / plain, 3)
        rows.append((f"{label}: MotionDirector step / plain LoRA step, {frames} frames",
                     f"{md:.3f}s / {plain:.3f}s", f"{md / plain:.3f}", "<= 1.25"))
    return figures, rows


def memory_rows(label: str, key: str, **where) -> tuple[dict, list]:
    """``key`` (with / without checkpointing) and its table row; ``where`` goes to _train_memory.measure."""
    from ._train_memory import measure

    with_ckpt, without = measure(True, **where), measure(False, **where)
    row = (f"step memory with / without checkpointing, {label}",
           f"{with_ckpt / 2**20:.0f} MiB / {without / 2**20:.0f} MiB", f"{with_ckpt / without:.3f}", "<= 0.6")
    return {key: round(with_ckpt / without, 3)}, [row]


def unet_figures(args) -> tuple[dict, list]:
    figures, rows = step_ratio_rows("UNet3D", "md_step_ratio", real_shaped_backbone(), args.frames, args)
    if not args.skip_memory:
        more = memory_rows("ZeroScope 8f", "ckpt_memory_ratio", threads=args.threads)
        figures.update(more[0])
        rows += more[1]
    return figures, rows


def wan_figures(args) -> tuple[dict, list]:
    from ..backbones import tiny_wan_backbone

    figures, rows = step_ratio_rows("tiny Wan", "wan_md_step_ratio", tiny_wan_backbone(0), args.wan_frames, args)
    if not args.skip_memory:
        from ._train_memory import wan_tokens

        frames, pixels = args.wan_memory_frames, args.wan_memory_pixels
        tokens = wan_tokens(frames, pixels)
        more = memory_rows(f"Wan 1.3B {frames}f {pixels}px ({tokens} tokens)", "wan_ckpt_memory_ratio",
                           model="wan2.1_t2v_1.3b", frames=frames, pixels=pixels, threads=args.threads)
        figures.update(more[0], wan_ckpt_memory_tokens=tokens)
        rows += more[1]
    return figures, rows


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    figures, rows = {}, []
    for family, measure in (("unet3d", unet_figures), ("wan", wan_figures)):
        if args.family in (family, "all"):
            more = measure(args)
            figures.update(more[0])
            rows += more[1]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'values':<24} {'ratio':>7}  goal")
    for name, values, ratio, goal in rows:
        print(f"{name:<{width}}  {values:<24} {ratio:>7}  {goal}")
    print(json.dumps(figures))
    return 0
