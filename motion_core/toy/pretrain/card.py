"""The model card written next to the ShapesT2V weights: data, steps, time; base quality is appended by evaluation."""

from __future__ import annotations

import json

from ..motions import BASIC_MOTIONS, HELD_OUT_MOTIONS
from .architecture import FRAME_SIZE, LATENT_CHANNELS, NUM_FRAMES, SCHEDULER_CONFIG, UNET_CONFIG, VAE_CONFIG
from .vae_stage import ANCHOR_CHANNELS, ANCHOR_WEIGHT, LUMA_LATENT_CHANNELS


def model_card(*, args: dict, t2v_steps: int, vae_error: float, minutes: float, object_error=None,
               previous: str | None = None) -> str:
    """`previous`: the card of the run this one continued from; kept, one heading level down, as provenance."""
    shown = {k: str(v) for k, v in args.items()}
    return f"""# ShapesT2V

A small text-to-video model of a procedural world of coloured shapes, shipped as the embedded default model of the
motion-customization node pack. Diffusers folder in the ZeroScope layout (UNet3DConditionModel, AutoencoderKL,
CLIPTextModel + CLIPTokenizer, DDIM scheduler); weights stored in float16.

- Clips: {NUM_FRAMES} frames of {FRAME_SIZE}x{FRAME_SIZE} pixels, 8 fps; latents {_channels(args)}x{LATENT}x{LATENT}.
- Pretraining motions: {', '.join(BASIC_MOTIONS)}.
- Held-out motion families (never seen in pretraining; for customization): {', '.join(HELD_OUT_MOTIONS)}.
- Command: `python -m motion_core.toy.pretrain` with {json.dumps(shown)}
- Text-to-video steps: {t2v_steps}{_stage(previous)}; VAE reconstruction error (mean abs, 0..1): {vae_error:.4f}{_split(object_error)};
  wall time {minutes:.1f} min on {_where(args)}.
- Prediction: {SCHEDULER_CONFIG['prediction_type']}, {SCHEDULER_CONFIG['beta_schedule']} schedule.
- UNet: {json.dumps({k: v for k, v in _unet(args).items() if k != 'sample_size'})}
- VAE: {json.dumps({**VAE_CONFIG, "latent_channels": _channels(args)})}
- VAE latents: channels 0-{ANCHOR_CHANNELS - 1} are anchored (weight {ANCHOR_WEIGHT}) to the frame's average colour over
  each 4x4-pixel cell, so colour is as strong in the latents as in the pixels{_luma(args)}; the rest are free.
""" + ("" if previous is None else _earlier_stage(previous))


LATENT = FRAME_SIZE // 4


def _stage(previous) -> str:
    return "" if previous is None else " in this run (the earlier run's are below)"


def _split(object_error) -> str:
    if object_error is None:
        return ""
    return f" ({object_error[0]:.4f} on object pixels, {object_error[1]:.4f} on the background)"


def _channels(args: dict) -> int:
    return LUMA_LATENT_CHANNELS if args.get("luma_anchor") else LATENT_CHANNELS


def _unet(args: dict) -> dict:
    return {**UNET_CONFIG, "in_channels": _channels(args), "out_channels": _channels(args)}


def _luma(args: dict) -> str:
    if not args.get("luma_anchor"):
        return ""
    return (f"; channels {ANCHOR_CHANNELS}-{ANCHOR_CHANNELS + 3} to the luminance of each 2x2-pixel cell, folded "
            "into channels (space-to-depth), so outlines are too")


def _where(args: dict) -> str:
    device = str(args.get("device", "cpu"))
    return "the 2-core reference machine" if device == "cpu" else f"{device} (an exploration run, not the CPU one)"


def _earlier_stage(previous: str) -> str:
    """The earlier card without its title and base-quality section, its headings one level down."""
    lines = previous.split("## Measured base quality")[0].strip().splitlines()[1:]
    body = "\n".join("#" + line if line.startswith("#") else line for line in lines).strip()
    return f"\n## Continued from this earlier run\n\n{body}\n"
