"""Benchmark: what a LoRA stack costs per sampling step, merged (ours) versus diffusers/peft run-time adapters.

``python -m motion_core.bench sampling`` prints a table and, as its last line, JSON with
stack4_ratio (4 stacked LoRAs, one step range: per-step time / base), stack4_ranges_ratio (the same 4 LoRAs with
overlapping step ranges, so the weights are re-merged at every segment switch) and diffusers_runtime_ratio (the
same 4 LoRAs attached as peft adapters and mixed at run time, the reference). Goals: stack4 <= 1.05, ranges <= 1.10.

All variants run in one process on one model, interleaved repeat by repeat so a busy machine slows them alike,
with one torch thread; each figure is the median over repeats of the step loop's time (merges included, prompt
encoding and VAE decoding excluded). The model is a UNet3D with ModelScope's layer structure (four levels, two
layers per block, spatial and temporal transformers, temporal convs, transformer_in) and small channels.

``--family wan`` (or ``all``, the default) measures the same on the tiny Wan (the real Wan classes, two blocks) with
four LoRAs on Wan's target sets (WAN_LORAS); its figures carry a ``wan_`` prefix (wan_stack4_ratio, ...). Wan clips
are 1 + 4k frames, so it has its own --wan-frames.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch

from ..backbones import tiny_unet3d_backbone
from ..backbones.base import move
from ..backbones.tiny_clip import TINY_TEXT_DIM
from ..lora import attach_lora, remove_all_adapters, set_adapter_scale
from ..lora.synthetic import random_lora
from ..sampling import LoraStack, SampleRequest, sample_video

LORAS = (  # name, kind, target sets, rank, (start, end) in the ranged variant
    ("dance", "motion", ("temporal_attn", "temporal_conv", "transformer_in"), 32, (0.0, 0.6)),
    ("pan", "motion", ("temporal_attn",), 16, (0.0, 0.4)),
    ("sway", "motion", ("temporal_ff",), 8, (0.2, 0.8)),
    ("watercolour", "appearance", ("spatial_self_attn", "spatial_cross_attn"), 16, (0.3, 1.0)),
)

WAN_LORAS = (  # Wan has no temporal conv, temporal ff or transformer_in: its motion lives in the joint attn1
    ("dance", "motion", ("temporal_attn",), 32, (0.0, 0.6)),
    ("pan", "motion", ("temporal_attn_qkv",), 16, (0.0, 0.4)),
    ("sway", "motion", ("temporal_attn_qkv",), 8, (0.2, 0.8)),
    ("watercolour", "appearance", ("spatial_cross_attn", "spatial_ff"), 16, (0.3, 1.0)),
)


def bench_backbone(channels=(32, 64, 128, 128), seed: int = 0):
    """A tiny backbone (VAE, text encoder, scheduler) with a ModelScope-shaped, small-channel UNet3D denoiser."""
    from diffusers import UNet3DConditionModel

    backbone = tiny_unet3d_backbone(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet3DConditionModel(
            sample_size=32, block_out_channels=tuple(channels), layers_per_block=2, norm_num_groups=32,
            down_block_types=("CrossAttnDownBlock3D",) * 3 + ("DownBlock3D",),
            up_block_types=("UpBlock3D",) + ("CrossAttnUpBlock3D",) * 3,
            cross_attention_dim=TINY_TEXT_DIM, attention_head_dim=8,
        )
    backbone.denoiser = move(unet, backbone.device, backbone.dtype).requires_grad_(False).eval()
    return backbone


def _step_seconds(backbone, request: SampleRequest) -> tuple[float, int]:
    result = sample_video(backbone, request)
    return result.seconds["denoise"] / request.steps, result.merge_count


def _runtime_step_seconds(backbone, request: SampleRequest, loras) -> tuple[float, int]:
    try:
        for lora in loras:
            name = attach_lora(backbone.denoiser, lora, family=backbone.family, fingerprint=backbone.fingerprint())
            set_adapter_scale(backbone.denoiser, name, 0.8)
        return _step_seconds(backbone, request)
    finally:
        remove_all_adapters(backbone.denoiser)


def main(argv=None) -> int:
    """The subcommand entry (the bench package's convention: table, last-line JSON, exit status 0)."""
    run(argv)
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m motion_core.bench sampling", description=__doc__.split("\n")[0])
    parser.add_argument("--family", default="all", choices=["unet3d", "wan", "all"], help="which family's figures")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--wan-frames", type=int, default=9, help="tiny Wan clip length (1 + 4k)")
    parser.add_argument("--size", type=int, default=32, help="width = height in pixels (a multiple of 8)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if (args.wan_frames - 1) % 4 or args.size % 8:
        parser.error("--wan-frames must be 1 + 4k (Wan's VAE compresses time by 4) and --size a multiple of 8")
    return args


def run(argv=None) -> dict:
    """Measure and print; returns the JSON figures as a dict (for callers and tests)."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    report = {"steps": args.steps, "size": args.size, "repeats": args.repeats, "threads": args.threads}
    if args.family in ("unet3d", "all"):
        report.update(measure_family(bench_backbone(), LORAS, args, args.frames, "ModelScope-shaped UNet3D"))
    if args.family in ("wan", "all"):
        from ..backbones import tiny_wan_backbone

        backbone = tiny_wan_backbone(0)
        backbone.denoiser.eval()  # as the UNet bench's: sampling, not training (no dropout)
        figures = measure_family(backbone, WAN_LORAS, args, args.wan_frames, "tiny Wan (2 blocks)")
        report.update({f"wan_{k}": v for k, v in figures.items()})
    print(json.dumps(report, sort_keys=True))
    return report


def measure_family(backbone, table, args, frames: int, label: str) -> dict:
    """One family's figures: base, 4 stacked LoRAs, the same with step ranges and the peft run-time reference,
    interleaved repeat by repeat; prints the family's table."""
    loras = [random_lora(backbone, sets, rank=rank, alpha=rank, seed=seed, std=0.01, name=name, kind=kind)
             for seed, (name, kind, sets, rank, _) in enumerate(table)]
    stack4 = LoraStack()
    ranged = LoraStack()
    for lora, (_, _, _, _, (start, end)) in zip(loras, table):
        stack4 = stack4.add(lora, 0.8)
        ranged = ranged.add(lora, 0.8, start, end)
    base = SampleRequest("a bear dancing", "blurry", seed=1, steps=args.steps, cfg=7.5, frames=frames,
                         width=args.size, height=args.size, scheduler="dpmpp_2m")
    variants = {
        "base": lambda: _step_seconds(backbone, base),
        "stack4": lambda: _step_seconds(backbone, _with(base, stack4)),
        "stack4_ranges": lambda: _step_seconds(backbone, _with(base, ranged)),
        "diffusers_runtime": lambda: _runtime_step_seconds(backbone, base, loras),
    }
    for variant in variants.values():  # warm-up: first calls allocate and pick kernels
        variant()
    times: dict[str, list[float]] = {k: [] for k in variants}
    merges: dict[str, int] = {}
    for _ in range(args.repeats):
        for key, variant in variants.items():
            seconds, merges[key] = variant()
            times[key].append(seconds)
    median = {k: statistics.median(v) for k, v in times.items()}
    report = {f"{k}_ratio": round(median[k] / median["base"], 4) for k in variants if k != "base"}
    report.update({
        "base_ms_per_step": round(median["base"] * 1e3, 2),
        "stack4_merges": merges["stack4"], "stack4_ranges_merges": merges["stack4_ranges"],
        "lora_modules": sum(len(lora.modules()) for lora in loras), "frames": frames, "scheduler": base.scheduler,
    })
    _print_table(label, args, report, median, merges, times)
    return report


def _with(request: SampleRequest, stack: LoraStack) -> SampleRequest:
    from dataclasses import replace

    return replace(request, lora_stack=stack)


def _print_table(label: str, args, report: dict, median: dict, merges: dict, times: dict) -> None:
    print(f"Sampling cost per step: {label}, {report['frames']} frames {args.size}px, "
          f"{args.steps} {report['scheduler']} steps with CFG, {args.threads} thread(s), median of "
          f"{args.repeats}; 4 LoRAs on {report['lora_modules']} modules")
    print(f"{'variant':<22}{'ms/step':>10}{'spread':>10}{'ratio':>8}{'merges':>8}")
    for key in median:
        spread = (max(times[key]) - min(times[key])) * 1e3
        ratio = median[key] / median["base"]
        print(f"{key:<22}{median[key] * 1e3:>10.2f}{spread:>10.2f}{ratio:>8.3f}{merges.get(key, 0):>8}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
