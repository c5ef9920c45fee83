"""The ShapesT2V pretraining command produces a ZeroScope-layout folder that the ordinary loader opens."""

import json

import torch

from motion_core.backbones import detect_family, load_backbone
from motion_core.toy.pretrain.__main__ import main as pretrain


def test_pretraining_writes_a_loadable_unet3d_folder(tmp_path):
    out = tmp_path / "shapes_t2v"
    assert pretrain(["--out", str(out), "--clips", "6", "--vae-steps", "2", "--t2v-steps", "2", "--batch", "2",
                     "--threads", "1"]) == 0
    index = json.loads((out / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet3DConditionModel"] and index["vae"] == ["diffusers", "AutoencoderKL"]
    assert detect_family(out) == "unet3d"
    backbone = load_backbone(out)
    assert backbone.prediction_type == "v_prediction"
    states = backbone.encode_prompt(["a red circle moves left"])
    latents = torch.zeros(1, 4, 8, 16, 16)
    assert backbone.denoise(latents, 500, states).shape == latents.shape
    tokens = backbone.tokenizer.tokenize("a purple triangle moves down and left next to a white circle")
    assert "circle</w>" in tokens and len(tokens) == 12
    assert "Text-to-video steps: 2" in (out / "README.md").read_text()
