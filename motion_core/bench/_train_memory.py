"""Peak extra memory of one MotionDirector training step on a real architecture (random init), CPU.

Method: each measurement runs in a fresh subprocess (nothing cached from another measurement), with glibc's
MALLOC_MMAP_THRESHOLD_ fixed at 64 KiB so every sizeable tensor is its own mmap and freeing it returns the memory
to the OS at once; RSS then follows live tensor memory. After the model is built and the LoRAs injected, RSS is
taken as the baseline; a thread samples RSS (psutil) every millisecond during the step, and the figure is peak RSS
minus baseline: the step's activations, gradients and optimiser-free temporaries, without the weights (5.6 GB for
ZeroScope, 2.8 GB for Wan 1.3B in bf16) that are the same with and without checkpointing. (tracemalloc cannot see
torch's C++ allocations.)

Models (``MODELS``): ZeroScope v2 576w (UNet3D, fp32, 8 frames of 16x16 latents, CLIP states [1, 77, 1024]) and
Wan 2.1 T2V 1.3B (bf16 as Wan is run, video latents [1, 16, 1 + (F - 1)/4, H/8, W/8] plus the per-frame image
latents MotionDirector's spatial path trains on, UMT5 states [1, 512, 4096] as WanBackbone feeds them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from .peak_rss import SampledPeakRss

FRAMES, LATENT_SIZE = 8, 16
WAN_FRAMES, WAN_PIXELS = 9, 128
"""Wan default: 9 video frames at 128x128 px -> latents [1, 16, 3, 16, 16], 3 x 8 x 8 = 192 transformer tokens."""

MODELS = ("zeroscope", "wan2.1_t2v_1.3b")


def measure(gradient_checkpointing: bool, model: str = "zeroscope", *, frames: int | None = None,
            pixels: int | None = None, threads: int | None = None) -> int:
    """Bytes; raises RuntimeError with the child's stderr if the measurement fails. ``frames`` and ``pixels``
    (square) set the Wan clip; ZeroScope's is fixed. ``threads``: the child's torch threads (default: inherited)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    args = (gradient_checkpointing, model, frames or WAN_FRAMES, pixels or WAN_PIXELS)
    code = f"from {__package__}._train_memory import _child; _child{args!r}"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"memory measurement failed:\n{done.stderr[-2000:]}")
    return int(json.loads(done.stdout.strip().splitlines()[-1])["bytes"])


def wan_tokens(frames: int, pixels: int) -> int:
    """Transformer tokens of a Wan 2.1 clip: latent frames x (pixels / 8 / 2)^2 (VAE factor 8, 2x2 patches)."""
    return (1 + (frames - 1) // 4) * (pixels // 16) ** 2


def _zeroscope_backbone():
    import torch
    from diffusers import DDIMScheduler, UNet3DConditionModel

    from ..backbones.unet3d import CONFIGS_DIR
    from ..backbones.unet3d.backbone import UNet3DBackbone

    config = UNet3DConditionModel.load_config(str(CONFIGS_DIR / "zeroscope_v2_576w_unet"))
    with torch.device("meta"):
        unet = UNet3DConditionModel.from_config(config)
    unet = unet.to_empty(device="cpu")
    with torch.no_grad():  # a cheap random init: memory, not quality, is measured
        g = torch.Generator().manual_seed(0)
        for p in unet.parameters():
            p.normal_(0.0, 0.02, generator=g)
        for b in unet.buffers():
            b.zero_()
    unet.requires_grad_(False).train()
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    return UNet3DBackbone(denoiser=unet, vae=None, text_encoder=None, tokenizer=None, scheduler=scheduler)


def _setup(model: str, frames: int, pixels: int, g):
    """(backbone, TrainingSample) of ``model`` with random cached latents and text states."""
    import torch

    from ..training.context import TrainingSample

    if model == "zeroscope":
        return _zeroscope_backbone(), TrainingSample(
            latents=torch.randn(1, 4, FRAMES, LATENT_SIZE, LATENT_SIZE, generator=g),
            text_states=torch.randn(1, 77, 1024, generator=g), clip_index=0, caption="")
    from ..backbones.wan.backbone import MAX_TEXT_TOKENS
    from ._real_wan import denoiser_only_backbone

    backbone = denoiser_only_backbone(model)
    size, dtype = pixels // 8, backbone.dtype
    return backbone, TrainingSample(
        latents=torch.randn(1, 16, 1 + (frames - 1) // 4, size, size, generator=g).to(dtype),
        image_latents=torch.randn(1, 16, frames, size, size, generator=g).to(dtype),
        text_states=torch.randn(1, MAX_TEXT_TOKENS, 4096, generator=g).to(dtype), clip_index=0, caption="")


def _child(gradient_checkpointing: bool, model: str = "zeroscope", frames: int = WAN_FRAMES,
           pixels: int = WAN_PIXELS) -> None:
    import torch

    from ..lora import add_adapter
    from ..recipes import MotionDirector
    from ..training.context import StepContext
    from ..training.precision import Precision

    g = torch.Generator().manual_seed(0)
    backbone, sample = _setup(model, frames, pixels, g)
    recipe = MotionDirector(spatial_skip_probability=0.0)
    names = {}
    for spec in recipe.adapters(backbone, 1, rank=32, alpha=32.0, dropout=0.1):
        add_adapter(backbone.denoiser, spec, enabled=False, trainable=False)
        names[spec.name] = spec.name
    if gradient_checkpointing:
        backbone.enable_gradient_checkpointing()
    ctx = StepContext(backbone, recipe, g, sample, stage="main", step=0, loss_scale=1.0,
                      precision=Precision("fp32", torch.device("cpu")), adapter_names=names)
    with SampledPeakRss() as watcher:
        began = time.perf_counter()
        recipe.step(ctx)
        step_s = time.perf_counter() - began
    print(json.dumps({"bytes": watcher.bytes, "step_s": step_s, "weights_rss": watcher.baseline}))
