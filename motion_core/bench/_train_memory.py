"""Peak extra memory of one MotionDirector training step on the real ZeroScope UNet (random init), CPU.

Method: each measurement runs in a fresh subprocess (nothing cached from another measurement), with glibc's
MALLOC_MMAP_THRESHOLD_ fixed at 64 KiB so every sizeable tensor is its own mmap and freeing it returns the memory
to the OS at once; RSS then follows live tensor memory. After the model is built and the LoRAs injected, RSS is
taken as the baseline; a thread samples RSS (psutil) every millisecond during the step, and the figure is peak RSS
minus baseline: the step's activations, gradients and optimiser-free temporaries, without the 5.6 GB of weights
that are the same with and without checkpointing. (tracemalloc cannot see torch's C++ allocations.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

FRAMES, LATENT_SIZE = 8, 16


def measure(gradient_checkpointing: bool) -> int:
    """Bytes; raises RuntimeError with the child's stderr if the measurement fails."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    code = f"from {__package__}._train_memory import _child; _child({gradient_checkpointing!r})"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"memory measurement failed:\n{done.stderr[-2000:]}")
    return int(json.loads(done.stdout.strip().splitlines()[-1])["bytes"])


def _zeroscope_backbone():
    import torch
    from diffusers import DDIMScheduler, UNet3DConditionModel

    from ..backbones.loading import CONFIGS_DIR
    from ..backbones.unet3d import UNet3DBackbone

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


def _child(gradient_checkpointing: bool) -> None:
    import ctypes

    import psutil
    import torch

    from ..lora import add_adapter
    from ..recipes import MotionDirector
    from ..training.context import StepContext, TrainingSample
    from ..training.precision import Precision

    backbone = _zeroscope_backbone()
    recipe = MotionDirector(spatial_skip_probability=0.0)
    names = {}
    for spec in recipe.adapters(backbone, 1, rank=32, alpha=32.0, dropout=0.1):
        add_adapter(backbone.denoiser, spec, enabled=False, trainable=False)
        names[spec.name] = spec.name
    if gradient_checkpointing:
        backbone.enable_gradient_checkpointing()
    g = torch.Generator().manual_seed(0)
    sample = TrainingSample(latents=torch.randn(1, 4, FRAMES, LATENT_SIZE, LATENT_SIZE, generator=g),
                            text_states=torch.randn(1, 77, 1024, generator=g), clip_index=0, caption="")
    ctx = StepContext(backbone, recipe, g, sample, stage="main", step=0, loss_scale=1.0,
                      precision=Precision("fp32", torch.device("cpu")), adapter_names=names)
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    process = psutil.Process()
    baseline = peak = process.memory_info().rss
    running = True

    def sample_rss():
        nonlocal peak
        while running:
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.001)

    watcher = threading.Thread(target=sample_rss, daemon=True)
    watcher.start()
    recipe.step(ctx)
    running = False
    watcher.join()
    print(json.dumps({"bytes": peak - baseline}))
