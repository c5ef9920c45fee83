"""The Wan transformer and VAE from ComfyUI's single files, built on the meta device and filled by assignment.

Architectures come from tensor shapes: the released sizes map to the configs shipped in configs/wan_transformer and
configs/wan_vae; other sizes (tiny test models, community prunes) get a config derived from the same shapes.

The VAE is converted here rather than through ``AutoencoderKLWan.from_single_file``: diffusers 0.42's converter
hard-codes the Wan 2.1 block indices (three resnets + one upsampler per decoder level) and does not read the Wan 2.2
layout at all (``downsamples.N.downsamples.M``), while both layouts follow one rule given ``num_res_blocks``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch

from ...errors import ModelLoadError
from ..files import load_weights_into
from ..memory import adopt_fp8_weight, fp8_linear_names, is_fp8
from .files import CONFIGS_DIR, block_count, check_weight_tensors, expect_kind, read_weights, widen
from .keys import original_to_diffusers, strip_original_prefix

HEAD_DIM = 128  # every released Wan (and ComfyUI's loader) uses 128-channel heads
KNOWN_TRANSFORMERS = {  # (dim, layers, in_channels, ffn_dim, reads CLIP vision features) -> shipped config
    (1536, 30, 16, 8960, False): "wan2.1_t2v_1.3b",
    (5120, 40, 16, 13824, False): "wan2.1_t2v_14b",
    (3072, 30, 48, 14336, False): "wan2.2_ti2v_5b",
    # 36 = 16 noise + 4 mask + 16 image-latent channels; of the 14B image-to-video models only Wan 2.1's reads CLIP.
    (5120, 40, 36, 13824, True): "wan2.1_i2v_14b",
    (5120, 40, 36, 13824, False): "wan2.2_i2v_a14b_expert",
}
A14B_NAME_HINTS = ("high_noise", "low_noise", "a14b", "wan2.2_t2v")


def transformer_config_from_weights(weights: dict) -> dict:
    """A WanTransformer3DModel config (diffusers names) read off diffusers-named weights."""
    dim, in_channels, *patch = weights["patch_embedding.weight"].shape
    layers = block_count(weights, "blocks.", "the file", "Wan transformer")
    return {
        "patch_size": list(patch), "num_attention_heads": max(1, dim // HEAD_DIM),
        "attention_head_dim": HEAD_DIM if dim >= HEAD_DIM else dim, "in_channels": in_channels,
        "out_channels": weights["proj_out.weight"].shape[0] // math.prod(patch),
        "text_dim": weights["condition_embedder.text_embedder.linear_1.weight"].shape[1],
        "freq_dim": weights["condition_embedder.time_embedder.linear_1.weight"].shape[1],
        "ffn_dim": weights["blocks.0.ffn.net.0.proj.weight"].shape[0], "num_layers": layers,
        "cross_attn_norm": "blocks.0.norm2.weight" in weights,
        "qk_norm": "rms_norm_across_heads" if "blocks.0.attn1.norm_q.weight" in weights else None,
        "eps": 1e-6, **_image_config(weights),
    }


def _image_config(weights: dict) -> dict:
    """Wan 2.1 I2V's CLIP-feature path: the embedder's input width (1280 for clip_vision_h) and the width its
    per-block k_img / v_img projections read (the model width)."""
    if "condition_embedder.image_embedder.norm1.weight" not in weights:
        return {}
    return {"image_dim": weights["condition_embedder.image_embedder.norm1.weight"].shape[0],
            "added_kv_proj_dim": weights["blocks.0.attn2.add_k_proj.weight"].shape[1]}


def transformer_arch(config: dict, file_name: str = "") -> str | None:
    """The shipped config name for a derived config, None for sizes Wan-AI did not release. Wan 2.1 T2V 14B and each
    Wan 2.2 T2V A14B expert share every shape, so only the file name can tell them apart (the I2V ones differ: only
    Wan 2.1's reads CLIP features)."""
    key = (config["num_attention_heads"] * config["attention_head_dim"], config["num_layers"],
           config["in_channels"], config["ffn_dim"], bool(config.get("image_dim")))
    arch = KNOWN_TRANSFORMERS.get(key)
    if arch == "wan2.1_t2v_14b" and any(hint in file_name.lower() for hint in A14B_NAME_HINTS):
        arch = "wan2.2_t2v_a14b_expert"
    return arch


def transformer_on_meta(weights: dict, name: str, file_name: str = ""):
    """(WanTransformer3DModel on the meta device, arch name or None) from diffusers-named weights' shapes alone:
    ``weights`` may be meta tensors read off a header (what the memory plan builds before loading)."""
    from diffusers import WanTransformer3DModel

    check_weight_tensors(weights, name, "Wan transformer")
    try:
        config = transformer_config_from_weights(weights)
    except (KeyError, ValueError, IndexError, ZeroDivisionError) as error:
        raise ModelLoadError(f"{name} lacks core Wan transformer weights ({error}); re-download it.") from error
    arch = transformer_arch(config, file_name)
    shipped = CONFIGS_DIR / "wan_transformer" / str(arch) / "config.json"
    if arch and shipped.is_file():
        config = json.loads(shipped.read_text())
    with torch.device("meta"):
        return WanTransformer3DModel.from_config(config), arch


def build_transformer(weights: dict, name: str, dtype: torch.dtype, file_name: str = "",
                      fp8_scales: dict | None = None):
    """(WanTransformer3DModel, arch name or None) from diffusers-named weights, without a random-init pass.
    ``fp8_scales``: the scales of weights kept in fp8 (read_weights); those of Linear layers stay fp8 and compute
    through memory.adopt_fp8_weight, the rest are widened to ``dtype`` here, in ``weights`` itself (each narrow
    original is freed as soon as it is replaced)."""
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

    model, arch = transformer_on_meta(weights, name, file_name)
    what = f"Wan transformer ({arch or 'size derived from the weights'})"
    kept = _kept_fp8(model, weights, fp8_scales or {})
    for key in [k for k in weights if k not in kept]:  # in place: each narrow original is freed once widened
        weights[key] = _widened(key, weights[key], fp8_scales, dtype, name)
    load_weights_into(model, weights, name, what)
    for key, scale in kept.items():
        adopt_fp8_weight(model.get_submodule(key.removesuffix(".weight")), scale, dtype)
    c = model.config
    # The RoPE tables are non-persistent buffers (in no file); recompute them on the CPU, in float64 as diffusers does.
    model.rope = WanRotaryPosEmbed(c.attention_head_dim, c.patch_size, c.rope_max_seq_len)
    return model, arch


def _kept_fp8(model, weights: dict, fp8_scales: dict) -> dict:
    """Weight key -> scale for the fp8 weights that stay fp8: those of the Linear layers fp8 storage would convert.
    The others (the condition embedder, the head: diffusers reads the time embedder's dtype to cast the timestep)
    are widened, as fp8 storage leaves them in full precision too."""
    linears = {f"{layer}.weight" for layer in fp8_linear_names(model)}
    return {k: s for k, s in fp8_scales.items() if k in linears and k in weights and is_fp8(weights[k])}


def _widened(key: str, tensor: torch.Tensor, fp8_scales: dict | None, dtype: torch.dtype, name: str):
    if fp8_scales and key in fp8_scales:
        return widen(key, tensor, fp8_scales[key], dtype, name)
    return tensor.to(dtype)


def load_transformer_file(path, dtype: torch.dtype = torch.float32, keep_fp8: bool = False):
    """(model, arch) from a models/diffusion_models file: bf16/fp16/fp8/scaled-fp8, with or without ComfyUI's
    ``model.diffusion_model.`` prefix. ``keep_fp8``: the Linear weights an fp8 file stores stay fp8 (with their
    scales), each layer computing in ``dtype``; host memory while loading is then about the file's size."""
    from .files import file_keys

    path = Path(path)
    keys = file_keys(path)
    expect_kind(path, keys, "transformer")
    block_count([strip_original_prefix(k) for k in keys], "blocks.", path.name, "Wan transformer")  # before reading
    scales = {} if keep_fp8 else None
    weights = read_weights(path, dtype, scales)
    check_weight_tensors(weights, path.name, "Wan transformer")  # named as in the file, before renaming
    weights = original_to_diffusers(weights, path.name)
    scales = original_to_diffusers(scales, path.name) if scales else None
    return build_transformer(weights, path.name, dtype, path.name, fp8_scales=scales)


# ---- VAE ------------------------------------------------------------------------------------------------------------
_RESNET = {"residual.0": "norm1", "residual.2": "conv1", "residual.3": "norm2", "residual.6": "conv2",
           "shortcut": "conv_shortcut"}
_FIXED = {"encoder.conv1": "encoder.conv_in", "decoder.conv1": "decoder.conv_in", "conv1": "quant_conv",
          "conv2": "post_quant_conv", "encoder.head.0": "encoder.norm_out", "encoder.head.2": "encoder.conv_out",
          "decoder.head.0": "decoder.norm_out", "decoder.head.2": "decoder.conv_out"}


def _resnet_tail(tail: str) -> str:
    for original, diffusers_name in _RESNET.items():
        if tail.startswith(original + "."):
            return diffusers_name + tail[len(original):]
    return tail  # resample.1.* / time_conv.* keep their names


def vae_layout(state: dict) -> tuple[bool, int]:
    """(is_residual i.e. the Wan 2.2 layout, num_res_blocks) from original VAE keys."""
    residual = any(k.startswith("encoder.downsamples.0.downsamples.") for k in state)
    if residual:
        pattern = re.compile(r"encoder\.downsamples\.0\.downsamples\.(\d+)\.residual\.")
        indices = {int(m[1]) for m in map(pattern.match, state) if m}
    else:
        first_resample = min(int(k.split(".")[2]) for k in state if re.match(r"encoder\.downsamples\.\d+\.resample", k))
        indices = range(first_resample)
    return residual, len(indices)


def vae_to_diffusers(state: dict) -> dict:
    """Original Wan 2.1 / 2.2 VAE keys -> AutoencoderKLWan names."""
    residual, blocks = vae_layout(state)
    out = {}
    for key, value in state.items():
        module, _, parameter = key.rpartition(".")
        if module in _FIXED:
            out[f"{_FIXED[module]}.{parameter}"] = value
            continue
        m = re.match(r"(encoder|decoder)\.middle\.([012])\.(.+)$", key)
        if m:  # resnet, attention, resnet
            slot = "attentions.0" if m[2] == "1" else f"resnets.{int(m[2]) // 2}"
            out[f"{m[1]}.mid_block.{slot}.{_resnet_tail(m[3])}"] = value
            continue
        m = re.match(r"encoder\.downsamples\.(\d+)\.(?:downsamples\.(\d+)\.)?(.+)$", key)
        if m and residual:
            level, index, tail = int(m[1]), int(m[2]), m[3]
            name = f"resnets.{index}.{_resnet_tail(tail)}" if index < blocks else f"downsampler.{tail}"
            out[f"encoder.down_blocks.{level}.{name}"] = value
            continue
        if m:
            out[f"encoder.down_blocks.{m[1]}.{_resnet_tail(m[3])}"] = value
            continue
        m = re.match(r"decoder\.upsamples\.(\d+)\.(?:upsamples\.(\d+)\.)?(.+)$", key)
        if m:
            if residual:
                level, index = int(m[1]), int(m[2])
                upsampler = "upsampler"
            else:  # flat list: per level num_res_blocks + 1 resnets, then one upsampler
                level, index = divmod(int(m[1]), blocks + 2)
                upsampler = "upsamplers.0"
            name = f"resnets.{index}.{_resnet_tail(m[3])}" if index <= blocks else f"{upsampler}.{m[3]}"
            out[f"decoder.up_blocks.{level}.{name}"] = value
            continue
        out[key] = value  # left for the key check to report
    return out


def vae_config_from_weights(state: dict) -> dict:
    """An AutoencoderKLWan config from original VAE keys: the shipped Wan 2.1 / 2.2 config for the released sizes,
    otherwise one derived from the shapes (no attention in the down path, as in every released Wan VAE)."""
    residual, blocks = vae_layout(state)
    z_dim, base_dim, in_channels = state["conv2.weight"].shape[0], *state["encoder.conv1.weight"].shape[:2]
    if in_channels % 3:  # RGB, or RGB patches of p x p pixels (Wan 2.2: 12 = 3 x 2 x 2)
        raise ValueError(f"the encoder takes {in_channels} input channels, not RGB or RGB patches")
    for name in ("wan2.1", "wan2.2"):
        config = json.loads((CONFIGS_DIR / "wan_vae" / name / "config.json").read_text())
        if (config["z_dim"], config["base_dim"], config["is_residual"]) == (z_dim, base_dim, residual):
            return config
    if residual:
        levels = sorted({int(k.split(".")[2]) for k in state if k.startswith("encoder.downsamples.")})
        widths = [state[f"encoder.downsamples.{i}.downsamples.0.residual.6.weight"].shape[0] for i in levels]
        temporal = [any(k.startswith(f"encoder.downsamples.{i}.downsamples.{blocks}.time_conv") for k in state)
                    for i in levels[:-1]]
    else:
        per_level = blocks + 1
        count = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.downsamples.")) // per_level
        widths = [state[f"encoder.downsamples.{i * per_level}.residual.6.weight"].shape[0] for i in range(count)]
        temporal = [f"encoder.downsamples.{i * per_level + blocks}.time_conv.weight" in state for i in range(count - 1)]
    patch = int(round(math.sqrt(in_channels // 3)))
    decoder_base = state["decoder.head.2.weight"].shape[1] // (widths[0] // base_dim)
    config = {"base_dim": base_dim, "decoder_base_dim": decoder_base if decoder_base != base_dim else None,
              "z_dim": z_dim, "dim_mult": [w // base_dim for w in widths], "num_res_blocks": blocks,
              "temperal_downsample": temporal, "is_residual": residual, "in_channels": in_channels,
              "out_channels": state["decoder.head.2.weight"].shape[0], "patch_size": patch if patch > 1 else None,
              "scale_factor_temporal": 2 ** sum(temporal), "scale_factor_spatial": 2 ** len(temporal) * patch}
    if z_dim == 48:  # ComfyUI normalises every 48-channel Wan latent with Wan 2.2's statistics (latent_formats.Wan22)
        wan22 = json.loads((CONFIGS_DIR / "wan_vae" / "wan2.2" / "config.json").read_text())
        config.update(latents_mean=wan22["latents_mean"], latents_std=wan22["latents_std"])
    elif z_dim != 16:  # diffusers' default statistics are Wan 2.1's 16 channels; others get identity statistics
        config.update(latents_mean=[0.0] * z_dim, latents_std=[1.0] * z_dim)
    return config


def load_vae_file(path, dtype: torch.dtype = torch.float32):
    """AutoencoderKLWan from models/vae's wan_2.1_vae.safetensors or wan2.2_vae.safetensors (Wan 2.2 from shapes)."""
    from .files import file_keys

    path = Path(path)
    keys = file_keys(path)
    expect_kind(path, keys, "vae")
    bare = [strip_original_prefix(k) for k in keys]
    for prefix in ("encoder.downsamples.", "decoder.upsamples."):  # the level lists, checked before reading
        block_count(bare, prefix, path.name, "Wan VAE")
    state = read_weights(path, dtype)
    return load_weights_into(vae_on_meta(state, path.name), vae_to_diffusers(state), path.name, "Wan VAE")


def vae_on_meta(state: dict, name: str):
    """AutoencoderKLWan on the meta device from original VAE weights' shapes (meta tensors of a header will do)."""
    from diffusers import AutoencoderKLWan

    check_weight_tensors(state, name, "Wan VAE")
    try:
        config = vae_config_from_weights(state)
    except (KeyError, ValueError, IndexError, ZeroDivisionError) as error:
        raise ModelLoadError(f"{name} lacks core Wan VAE weights ({error}); re-download it.") from error
    with torch.device("meta"):
        return AutoencoderKLWan.from_config(config)
