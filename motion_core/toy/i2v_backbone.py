"""The pack's WanBackbone on an image-to-video folder of the world (ShapesWan-I2V), for the benchmarks.

The ordinary loader (`backbones.load_backbone`) is tried first. On this branch it still refuses
WanImageToVideoPipeline folders (backbones/wan/loading.py reads WanPipeline folders only, while the engine itself
takes start images); until it opens them, the folder's parts are read here with the same diffusers and
transformers classes and handed to the same WanBackbone, frozen, as the loader would hand them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import ModelLoadError


def load_i2v_backbone(folder, *, device="cpu", dtype: torch.dtype = torch.float32):
    from ..backbones import load_backbone

    folder = Path(folder)
    try:
        return load_backbone(folder, device=device, dtype=dtype)
    except ModelLoadError:
        index = json.loads((folder / "model_index.json").read_text()) if (folder / "model_index.json").is_file() else {}
        if index.get("_class_name") != "WanImageToVideoPipeline":
            raise
    return _from_parts(folder, device, dtype)


def _from_parts(folder: Path, device, dtype):
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
    from transformers import AutoTokenizer, UMT5EncoderModel

    from ..backbones.base import ready
    from ..backbones.wan.backbone import WanBackbone

    if (folder / "transformer" / "config.json").is_file():
        config = json.loads((folder / "transformer" / "config.json").read_text())
        if config.get("image_dim"):
            raise ModelLoadError(f"{folder} reads CLIP image features; this helper opens concat-only I2V folders.")
    return ready(WanBackbone, WanTransformer3DModel.from_pretrained(folder, subfolder="transformer"),
                 AutoencoderKLWan.from_pretrained(folder, subfolder="vae"),
                 UMT5EncoderModel.from_pretrained(folder, subfolder="text_encoder"),
                 AutoTokenizer.from_pretrained(folder / "tokenizer"),
                 FlowMatchEulerDiscreteScheduler.from_pretrained(folder, subfolder="scheduler"), dtype, device,
                 str(folder))
