"""Write ShapesT2V as a diffusers folder laid out like ZeroScope (model_index.json + one folder per component)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import diffusers
import torch

MODEL_INDEX = {
    "_class_name": "TextToVideoSDPipeline",
    "scheduler": ["diffusers", "DDIMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet3DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


@contextmanager
def atomic_folder(out: Path):
    """Yield a sibling temp folder to fill; it replaces `out` only when the block completes (else it is removed)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    tmp.chmod(0o755)
    try:
        yield tmp
        if out.exists():
            old = out.with_name(out.name + ".old")
            os.replace(out, old)
            shutil.rmtree(old)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_model_folder(out: Path, *, unet, vae, vae_scaling: float, text_encoder, tokenizer, scheduler,
                      card: str) -> Path:
    """Atomic: everything is written to a sibling temp folder that replaces `out` only when complete."""
    with atomic_folder(out) as tmp:
        vae.register_to_config(scaling_factor=float(vae_scaling))
        unet.to(torch.float16).save_pretrained(tmp / "unet", safe_serialization=True)
        vae.to(torch.float16).save_pretrained(tmp / "vae", safe_serialization=True)
        text_encoder.to(torch.float16).save_pretrained(tmp / "text_encoder", safe_serialization=True)
        tokenizer.save_pretrained(tmp / "tokenizer")
        scheduler.save_pretrained(tmp / "scheduler")
        index = dict(MODEL_INDEX, _diffusers_version=diffusers.__version__)
        (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        (tmp / "README.md").write_text(card)
    return Path(out)
