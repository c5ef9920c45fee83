"""Target-set sizes on the REAL architectures (built on the meta device from the shipped configs, no weights).

The counts are pinned so that a change in a pattern or in diffusers' module layout cannot silently move LoRAs onto
other layers (or none): a LoRA trained against one count would not load into a model that gives another.
"""

import json

import pytest
import torch

from motion_core.backbones.animatediff import CONFIGS_DIR
from motion_core.backbones.animatediff.backbone import ANIMATEDIFF_TARGET_PATTERNS
from motion_core.backbones.base import find_target_modules
from motion_core.backbones.unet3d import CONFIGS_DIR as UNET3D_CONFIGS
from motion_core.backbones.unet3d.backbone import UNET3D_TARGET_PATTERNS

UNET3D_COUNTS = {  # 16 spatial + 16 temporal transformers, 22 temporal conv layers of 4 Conv3d, transformer_in
    "spatial_self_attn": 64, "spatial_cross_attn_q": 16, "spatial_cross_attn_kv": 32, "spatial_cross_attn": 64,
    "spatial_ff": 32, "temporal_attn": 128, "temporal_attn_qkv": 96, "temporal_ff": 32, "temporal_conv": 88,
    "transformer_in": 10,
}
SD15_SPATIAL = {"spatial_self_attn": 64, "spatial_cross_attn_q": 16, "spatial_cross_attn_kv": 32,
                "spatial_cross_attn": 64, "spatial_ff": 32}
ANIMATEDIFF_COUNTS = {  # v3: 8 down + 12 up motion modules; v2 adds one in the mid block
    "v3": {**SD15_SPATIAL, "temporal_attn": 160, "temporal_attn_qkv": 120, "temporal_ff": 40},
    "v2": {**SD15_SPATIAL, "temporal_attn": 168, "temporal_attn_qkv": 126, "temporal_ff": 42},
}


def _config(name):
    folder = UNET3D_CONFIGS if (UNET3D_CONFIGS / name).is_dir() else CONFIGS_DIR
    return json.loads((folder / name / "config.json").read_text())


def _counts(model, patterns):
    return {s: len(find_target_modules(model, patterns, s, "test")) for s in patterns}


@pytest.mark.parametrize("config_name", ["zeroscope_v2_576w_unet", "modelscope_t2v_1_7b_unet"])
def test_unet3d_target_counts(config_name):
    from diffusers import UNet3DConditionModel

    with torch.device("meta"):
        unet = UNet3DConditionModel.from_config(_config(config_name))
    assert _counts(unet, UNET3D_TARGET_PATTERNS) == UNET3D_COUNTS


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_animatediff_target_counts(version):
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    with torch.device("meta"):
        unet2d = UNet2DConditionModel.from_config(_config("sd15/unet"))
        adapter = MotionAdapter.from_config(_config(f"animatediff_motion_adapter_{version}"))
        unet = UNetMotionModel.from_unet2d(unet2d, adapter, load_weights=False)
    assert _counts(unet, ANIMATEDIFF_TARGET_PATTERNS) == ANIMATEDIFF_COUNTS[version]


def test_real_unet3d_projection_widths_match_the_published_model():
    """ModelScope/ZeroScope: 64-dim heads, 1024-wide OpenCLIP text states feeding cross-attention k/v."""
    from diffusers import UNet3DConditionModel

    with torch.device("meta"):
        unet = UNet3DConditionModel.from_config(_config("zeroscope_v2_576w_unet"))
    modules = dict(unet.named_modules())
    first_kv = find_target_modules(unet, UNET3D_TARGET_PATTERNS, "spatial_cross_attn_kv", "test")[0]
    assert modules[first_kv].in_features == 1024 and modules[first_kv].out_features == 320
    assert sum(p.numel() for p in unet.parameters()) == pytest.approx(1.41e9, rel=0.02)
