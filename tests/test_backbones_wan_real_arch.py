"""Target-set sizes and parameter counts of the REAL Wan architectures (built on the meta device from the shipped
configs, no weights).

Pinned, so that a change in a pattern or in diffusers' module layout cannot silently move LoRAs onto other layers: a
Wan LoRA file names every block's modules, and ComfyUI's native loader must find each of them.
"""

import json

import pytest
import torch

from motion_core.backbones import WanBackbone
from motion_core.backbones.base import find_target_modules
from motion_core.backbones.wan import CONFIGS_DIR
from motion_core.backbones.wan.backbone import WAN_TARGET_PATTERNS


def _per_layer_counts(layers):
    """Every Wan block contributes attn1 q/k/v/o, attn2 q/k/v/o and two ff linears."""
    return {"spatial_self_attn": 4 * layers, "spatial_cross_attn_q": layers, "spatial_cross_attn_kv": 2 * layers,
            "spatial_cross_attn": 4 * layers, "spatial_ff": 2 * layers, "temporal_attn": 4 * layers,
            "temporal_attn_qkv": 3 * layers}


ARCHITECTURES = {  # name: (set sizes, parameter count, model width, variant)
    "wan2.1_t2v_1.3b": ({"spatial_self_attn": 120, "spatial_cross_attn_q": 30, "spatial_cross_attn_kv": 60,
                         "spatial_cross_attn": 120, "spatial_ff": 60, "temporal_attn": 120, "temporal_attn_qkv": 90},
                        1_418_996_800, 1536, "wan2.1-1.3b"),
    "wan2.1_t2v_14b": ({"spatial_self_attn": 160, "spatial_cross_attn_q": 40, "spatial_cross_attn_kv": 80,
                        "spatial_cross_attn": 160, "spatial_ff": 80, "temporal_attn": 160, "temporal_attn_qkv": 120},
                       14_288_491_584, 5120, "wan-14b"),
    "wan2.2_ti2v_5b": ({"spatial_self_attn": 120, "spatial_cross_attn_q": 30, "spatial_cross_attn_kv": 60,
                        "spatial_cross_attn": 120, "spatial_ff": 60, "temporal_attn": 120, "temporal_attn_qkv": 90},
                       4_999_787_712, 3072, "wan2.2-ti2v-5b"),
    "wan2.2_t2v_a14b_expert": ({"spatial_self_attn": 160, "spatial_cross_attn_q": 40, "spatial_cross_attn_kv": 80,
                                "spatial_cross_attn": 160, "spatial_ff": 80, "temporal_attn": 160,
                                "temporal_attn_qkv": 120},
                               14_288_491_584, 5120, "wan-14b"),
    # Image-to-video: the same blocks and sets; 20 more input channels (4 mask + 16 image latents) in the patch
    # embedding (+409,600), and for Wan 2.1 the CLIP embedder (+8,211,200) and per block add_k/add_v/norm_added_k
    # (+52,444,160 x 40), which no set targets.
    "wan2.1_i2v_14b": ({"spatial_self_attn": 160, "spatial_cross_attn_q": 40, "spatial_cross_attn_kv": 80,
                        "spatial_cross_attn": 160, "spatial_ff": 80, "temporal_attn": 160, "temporal_attn_qkv": 120},
                       16_394_878_784, 5120, "wan-14b-i2v"),
    "wan2.2_i2v_a14b_expert": ({"spatial_self_attn": 160, "spatial_cross_attn_q": 40, "spatial_cross_attn_kv": 80,
                                "spatial_cross_attn": 160, "spatial_ff": 80, "temporal_attn": 160,
                                "temporal_attn_qkv": 120},
                               14_288_901_184, 5120, "wan-14b-i2v"),
}


def _build(name):
    from diffusers import WanTransformer3DModel

    config = json.loads((CONFIGS_DIR / "wan_transformer" / name / "config.json").read_text())
    with torch.device("meta"):
        return WanTransformer3DModel.from_config(config)


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def architecture(request):
    return request.param, _build(request.param)


def test_target_set_sizes_are_pinned(architecture):
    name, model = architecture
    counts = {s: len(find_target_modules(model, WAN_TARGET_PATTERNS, s, "wan")) for s in WAN_TARGET_PATTERNS}
    assert counts == ARCHITECTURES[name][0]
    assert counts == _per_layer_counts(model.config.num_layers)


def test_parameter_count_is_pinned(architecture):
    name, model = architecture
    assert sum(p.numel() for p in model.parameters()) == ARCHITECTURES[name][1]


def test_heads_are_128_wide_and_cross_attention_reads_projected_text(architecture):
    """Wan's text (4096-wide UMT5 states) is projected to the model width before attn2, so attn2's k/v map width to
    width; a LoRA's shapes follow the width alone."""
    name, model = architecture
    width = ARCHITECTURES[name][2]
    assert model.config.attention_head_dim * model.config.num_attention_heads == width
    modules = dict(model.named_modules())
    for module_name in find_target_modules(model, WAN_TARGET_PATTERNS, "spatial_cross_attn_kv", "wan"):
        assert (modules[module_name].in_features, modules[module_name].out_features) == (width, width)
    assert modules["condition_embedder.text_embedder.linear_1"].in_features == 4096


def test_backbone_names_the_variant_and_offers_every_set(architecture):
    name, model = architecture
    bb = WanBackbone(denoiser=model, vae=None, text_encoder=None, tokenizer=None, scheduler=None)
    assert bb.variant == ARCHITECTURES[name][3]
    assert bb.objective.shift == 3.0, "Wan's 480p shift when the scheduler carries none"
    assert set(bb.target_sets) == set(WAN_TARGET_PATTERNS)
    assert bb.target_modules("spatial_self_attn") == bb.target_modules("temporal_attn")


def test_image_conditioning_projections_of_i2v_models_are_in_no_set():
    """Wan 2.1 I2V adds add_k_proj/add_v_proj (CLIP image tokens) to attn2; text-LoRA sets must not pick them up."""
    from diffusers import WanTransformer3DModel

    with torch.device("meta"):
        i2v = WanTransformer3DModel(num_attention_heads=1, attention_head_dim=128, num_layers=2, ffn_dim=256,
                                    in_channels=36, out_channels=16, image_dim=64, added_kv_proj_dim=128)
    everything = {n for s in WAN_TARGET_PATTERNS for n in find_target_modules(i2v, WAN_TARGET_PATTERNS, s, "wan")}
    assert any("add_k_proj" in n for n, _ in i2v.named_modules())
    assert not any("add_" in n for n in everything)
    assert len(find_target_modules(i2v, WAN_TARGET_PATTERNS, "spatial_cross_attn", "wan")) == 8
    bb = WanBackbone(denoiser=i2v, vae=None, text_encoder=None, tokenizer=None, scheduler=None)
    assert bb.variant.endswith("-i2v")


@pytest.mark.parametrize("name, reads_clip", [("wan2.1_i2v_14b", True), ("wan2.2_i2v_a14b_expert", False)])
def test_image_to_video_configs_take_36_channels_and_only_wan21_reads_clip(name, reads_clip):
    """36 = 16 noise + 4 mask + 16 image-latent channels; Wan 2.1 I2V's CLIP path is 1280 wide in (clip_vision_h)
    and model-wide in every block's k_img / v_img, as diffusers' converter configures it."""
    model = _build(name)
    config = model.config
    assert (config.in_channels, config.out_channels) == (36, 16)
    assert (config.image_dim, config.added_kv_proj_dim) == ((1280, 5120) if reads_clip else (None, None))
    added = [n for n, _ in model.named_modules() if n.endswith(("attn2.add_k_proj", "attn2.add_v_proj"))]
    assert len(added) == (80 if reads_clip else 0)
    assert model.patch_embedding.in_channels == 36
    bb = WanBackbone(denoiser=model, vae=None, text_encoder=None, tokenizer=None, scheduler=None)
    assert bb.image_mode == "concat"
