"""``python -m motion_core.bench det``: what DeT's temporal kernel costs, in parameters and in step time.

1. Per real Wan architecture (built on the meta device from the shipped configs, no weights): the trainable numbers
   of DeT (a rank-32 LoRA on the joint self-attention + the kernel: 128 middle channels, 3 taps, every block) next to
   that LoRA alone (MotionDirector's temporal LoRA on Wan), and the floating-point operations of one training step
   (forward + backward of one clip, counted by torch's FlopCounterMode) with and without the kernel. The clip is
   49 frames at 832x480 (a usual LoRA training clip; the 5B's own VAE makes its latents 16x smaller per side).
2. On the tiny Wan (real classes, two blocks): the median time of a DeT step (tracking loss on at every step, the
   most it costs) over a MotionDirector step, alternating step by step in one trainer run so a shared machine's load
   hits both alike. Goal <= 1.3 at 33 frames.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from ..recipes import DeT, MotionDirector, Recipe

ARCHITECTURES = ("wan2.1_t2v_1.3b", "wan2.2_ti2v_5b", "wan2.1_t2v_14b", "wan2.2_t2v_a14b_expert")
CLIP = (49, 480, 832)  # frames, height, width


def _meta_denoiser(name: str):
    from diffusers import WanTransformer3DModel

    from ..backbones.wan import CONFIGS_DIR

    config = json.loads((CONFIGS_DIR / "wan_transformer" / name / "config.json").read_text())
    with torch.device("meta"):
        return WanTransformer3DModel.from_config(config).requires_grad_(False).train()


def _to_meta(model) -> None:
    """peft creates adapters beside a meta weight on the CPU; the count needs them on meta too."""
    for module in model.modules():
        for key, tensor in module._parameters.items():
            if tensor is not None and tensor.device.type != "meta":
                module._parameters[key] = torch.nn.Parameter(tensor.detach().to("meta"),
                                                             requires_grad=tensor.requires_grad)


def step_flops(name: str, kernel: bool) -> tuple[int, int]:
    """(trainable numbers, FLOPs of one forward + backward) with DeT's adapter, its kernel on or off."""
    from torch.utils.flop_counter import FlopCounterMode

    from ..backbones.base import find_target_modules
    from ..backbones.wan.backbone import WAN_TARGET_PATTERNS
    from ..lora import AdapterSpec, add_adapter
    from ..lora.temporal_kernel import KernelSpec

    model = _meta_denoiser(name)
    targets = find_target_modules(model, WAN_TARGET_PATTERNS, "temporal_attn", "wan")
    add_adapter(model, AdapterSpec("det", targets, rank=32, alpha=32.0,
                                   temporal_kernel=KernelSpec() if kernel else None))
    _to_meta(model)
    trainable = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    c = model.config
    z = int(c.out_channels)
    scale = 16 if z == 48 else 8  # the Wan 2.2 VAE is 16x per side, the 2.1 one 8x; both 4x in time
    frames, height, width = CLIP
    latents = torch.empty(1, z, 1 + (frames - 1) // 4, height // scale, width // scale, device="meta")
    text = torch.empty(1, 512, int(c.text_dim), device="meta")
    with FlopCounterMode(display=False) as counter:
        out = model(hidden_states=latents, timestep=torch.full((1,), 500.0, device="meta"),
                    encoder_hidden_states=text, return_dict=False)[0]
        out.float().pow(2).mean().backward()
    return trainable, int(counter.get_total_flops())


class AlternatingDeTAndMotionDirector(Recipe):
    """A DeT step on even steps, a MotionDirector step on odd ones, in one run: each with its own adapters (the
    other's are off, so a step pays only for its own), the same optimiser and clipping."""

    name = "det_md_alternating"
    uses_clip_extras = True

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.det = DeT(tracking_share=1.0)
        self.det.motion_adapter = "det"
        self.md = MotionDirector()

    def adapters(self, backbone, num_clips, *, rank, alpha, dropout):
        import dataclasses

        det = [dataclasses.replace(s, name="det") for s in self.det.adapters(backbone, num_clips, rank=rank,
                                                                             alpha=alpha, dropout=dropout)]
        return [*self.md.adapters(backbone, num_clips, rank=rank, alpha=alpha, dropout=dropout), *det]

    def clip_extras(self, backbone, video, latents):
        return self.det.clip_extras(backbone, video, latents)

    def step(self, ctx):
        return (self.det if ctx.step % 2 == 0 else self.md).step(ctx)


def step_ratio(frames: int, size: int, pairs: int) -> tuple[float, float]:
    """Median seconds of a DeT step and of a MotionDirector step on the tiny Wan."""
    from .train import step_seconds
    from ..backbones.wan.tiny import tiny_wan_backbone

    seconds = step_seconds(tiny_wan_backbone(0), AlternatingDeTAndMotionDirector(), frames, size, 2 * pairs + 1)
    # seconds[i] is step i + 1: odd i are DeT's even steps; the first MotionDirector step still warms up.
    det, md = seconds[1::2], seconds[0::2][1:]
    return statistics.median(det), statistics.median(md)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m motion_core.bench det", description=__doc__.split("\n")[0])
    parser.add_argument("--architectures", default=",".join(ARCHITECTURES))
    parser.add_argument("--frames", type=int, default=33, help="tiny Wan clip length for the step ratio (1 + 4k)")
    parser.add_argument("--size", type=int, default=32, help="tiny Wan training size in pixels")
    parser.add_argument("--pairs", type=int, default=12, help="timed DeT / MotionDirector step pairs")
    parser.add_argument("--skip-steps", action="store_true", help="only the real-architecture counts")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    figures = {}
    print(f"{'architecture':24s} {'LoRA r32 (attn1)':>17s} {'+ kernel':>12s} {'kernel share':>12s} "
          f"{'step TFLOPs':>12s} {'with kernel':>12s} {'ratio':>7s}")
    for name in args.architectures.split(","):
        lora, flops = step_flops(name, kernel=False)
        det, det_flops = step_flops(name, kernel=True)
        figures[name] = {"lora_parameters": lora, "det_parameters": det, "kernel_parameters": det - lora,
                         "step_tflops_lora": round(flops / 1e12, 2), "step_tflops_det": round(det_flops / 1e12, 2),
                         "flops_ratio": round(det_flops / flops, 4)}
        print(f"{name:24s} {lora:17,d} {det:12,d} {(det - lora) / det:12.2f} {flops / 1e12:12.1f} "
              f"{det_flops / 1e12:12.1f} {det_flops / flops:7.3f}", flush=True)
    if not args.skip_steps:
        det_s, md_s = step_ratio(args.frames, args.size, args.pairs)
        figures["tiny_wan_det_over_md_step"] = round(det_s / md_s, 3)
        print(f"tiny Wan, {args.frames} frames at {args.size}px: DeT step {det_s:.3f}s / MotionDirector step "
              f"{md_s:.3f}s = {det_s / md_s:.3f} (goal <= 1.3)")
    print(json.dumps(figures))
    return 0
