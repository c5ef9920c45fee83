"""Tiny UNet-family models written as diffusers folders, for loader tests (the same seed gives the same weights as
the families' ``tiny_*_backbone`` builders). It sits above the family packages because it picks one by name; each
family's own tiny builders live in its package (``unet3d/tiny.py``, ``animatediff/tiny.py``, ``wan/tiny.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .animatediff.tiny import tiny_animatediff_parts, tiny_animatediff_scheduler
from .tiny_clip import tiny_clip_text_encoder, tiny_clip_vae, tiny_tokenizer
from .unet3d.tiny import tiny_unet3d_denoiser, tiny_unet3d_scheduler


def save_tiny_diffusers_folder(path, family: str = "unet3d", seed: int = 0, *, with_motion_adapter: bool = True):
    """Write a tiny model as a diffusers folder (model_index.json + one subfolder per component) for loader tests.

    family "unet3d": a TextToVideoSDPipeline folder. family "animatediff": an AnimateDiffPipeline folder (SD1.5-style
    unet + motion_adapter); with_motion_adapter=False writes a plain StableDiffusionPipeline folder instead, which
    needs a separate motion module. The same seed gives the same weights as the tiny_*_backbone builders."""
    from diffusers import DDIMScheduler

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family == "unet3d":
            components = {"unet": tiny_unet3d_denoiser()}
            pipeline, scheduler_config = "TextToVideoSDPipeline", tiny_unet3d_scheduler().config
        elif family == "animatediff":
            unet2d, adapter = tiny_animatediff_parts()
            components = {"unet": unet2d, "motion_adapter": adapter}
            pipeline, scheduler_config = "AnimateDiffPipeline", tiny_animatediff_scheduler().config
            if not with_motion_adapter:
                del components["motion_adapter"]
                pipeline = "StableDiffusionPipeline"
        else:
            raise ValueError(f"Unknown tiny family {family!r}; use 'unet3d' or 'animatediff'.")
        components.update(vae=tiny_clip_vae(), text_encoder=tiny_clip_text_encoder())
    index = {"_class_name": pipeline, "_diffusers_version": "0.42.1"}
    for name, module in components.items():
        module.save_pretrained(path / name)
        library = "transformers" if name == "text_encoder" else "diffusers"
        index[name] = [library, type(module).__name__]
    tiny_tokenizer().save_pretrained(path / "tokenizer")
    index["tokenizer"] = ["transformers", "CLIPTokenizer"]
    DDIMScheduler.from_config(scheduler_config).save_pretrained(path / "scheduler")
    index["scheduler"] = ["diffusers", "DDIMScheduler"]
    (path / "model_index.json").write_text(json.dumps(index, indent=2))
    return path


