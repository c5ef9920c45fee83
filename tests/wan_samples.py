"""Tiny Wan models written in the ORIGINAL file layouts ComfyUI users have (models/diffusion_models, models/vae,
models/text_encoders), for the loader tests and the end-to-end tier. The transformer goes through wan/keys.py; the VAE
through an inverse of the loader's rule written independently here; the UMT5 file carries an embedded SentencePiece
model as ComfyUI's files do."""

import struct
from pathlib import Path

import torch
from safetensors.torch import save_file

from motion_core.backbones.wan.keys import diffusers_to_original
from motion_core.backbones.wan.tiny import tiny_wan_parts, tiny_wan_tokenizer

PREFIX = "model.diffusion_model."
FP8 = torch.float8_e4m3fn


def _vae_to_original(state, residual, blocks):
    """The inverse of the loader's VAE rule (diffusers -> Wan-AI names), written independently for the test."""
    resnet = {"norm1": "residual.0", "conv1": "residual.2", "norm2": "residual.3", "conv2": "residual.6",
              "conv_shortcut": "shortcut"}
    fixed = {"encoder.conv_in": "encoder.conv1", "decoder.conv_in": "decoder.conv1", "quant_conv": "conv1",
             "post_quant_conv": "conv2", "encoder.norm_out": "encoder.head.0", "encoder.conv_out": "encoder.head.2",
             "decoder.norm_out": "decoder.head.0", "decoder.conv_out": "decoder.head.2"}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        module, parameter = ".".join(parts[:-1]), parts[-1]
        if module in fixed:
            out[f"{fixed[module]}.{parameter}"] = value
            continue

        def tail(rest):
            return ".".join([resnet.get(rest[0], rest[0]), *rest[1:]])
        if parts[1] == "mid_block":
            slot = 1 if parts[2] == "attentions" else 2 * int(parts[3])
            rest = parts[4:] if parts[2] == "attentions" else [resnet[parts[4]], *parts[5:]]
            out[f"{parts[0]}.middle.{slot}." + ".".join(rest)] = value
        elif parts[1] == "down_blocks" and residual:
            level = parts[2]
            if parts[3] == "resnets":
                out[f"encoder.downsamples.{level}.downsamples.{parts[4]}." + tail(parts[5:])] = value
            else:
                out[f"encoder.downsamples.{level}.downsamples.{blocks}." + ".".join(parts[4:])] = value
        elif parts[1] == "down_blocks":
            out[f"encoder.downsamples.{parts[2]}." + tail(parts[3:])] = value
        elif parts[1] == "up_blocks" and residual:
            if parts[3] == "resnets":
                out[f"decoder.upsamples.{parts[2]}.upsamples.{parts[4]}." + tail(parts[5:])] = value
            else:
                out[f"decoder.upsamples.{parts[2]}.upsamples.{blocks + 1}." + ".".join(parts[4:])] = value
        elif parts[1] == "up_blocks":
            base = int(parts[2]) * (blocks + 2)
            if parts[3] == "resnets":
                out[f"decoder.upsamples.{base + int(parts[4])}." + tail(parts[5:])] = value
            else:
                out[f"decoder.upsamples.{base + blocks + 1}." + ".".join(parts[5:])] = value
        else:
            raise AssertionError(f"unmapped VAE key {key}")
    return out


def _proto_varint(n):
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _proto_bytes(field, payload):
    return _proto_varint(field << 3 | 2) + _proto_varint(len(payload)) + payload


def _sentencepiece_model(pieces):
    """A SentencePiece ModelProto with these (piece, score) pairs, unk_id 2, an empty normaliser."""
    body = b"".join(_proto_bytes(1, _proto_bytes(1, p.encode()) + _proto_varint(2 << 3 | 5) + struct.pack("<f", s))
                    for p, s in pieces)
    return body + _proto_bytes(2, _proto_varint(40 << 3) + _proto_varint(2))


def _scaled_fp8(state):
    """ComfyUI's scaled fp8: 2-D weights stored as (w / s) in float8 with a float32 scale_weight, plus a marker."""
    out = {PREFIX + "scaled_fp8": torch.empty(0, dtype=FP8)}
    for key, value in state.items():
        if key.endswith(".weight") and value.dim() == 2:
            scale = value.abs().max().float() / 448.0
            out[key] = (value / scale).to(FP8)
            out[key[: -len("weight")] + "scale_weight"] = scale.reshape(1)
        else:
            out[key] = value.half()
    return out


def _rounded_like_file(state, kind):
    """What the file's tensors are worth once read back (the reference the loaded model must equal)."""
    if kind == "fp16":
        return {k: v.half().float() for k, v in state.items()}
    if kind == "fp8":
        return {k: v.to(FP8).float() for k, v in state.items()}
    out = {}
    for key, value in state.items():
        if key.endswith(".weight") and value.dim() == 2:
            scale = value.abs().max().float() / 448.0
            out[key] = (value / scale).to(FP8).float() * scale.reshape(1)
        else:
            out[key] = value.half().float()
    return out



def write_tiny_wan_files(root, seed: int = 0, *, freq_dim: int = 32) -> dict:
    """fp16, fp8 and scaled-fp8 transformer files, a VAE file and a UMT5 file of the tiny Wan of ``seed``.
    ``freq_dim=COMFY_FREQ_DIM`` makes a transformer core's own UNETLoader can load (it assumes 256)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    parts = tiny_wan_parts(seed, freq_dim=freq_dim)
    original = diffusers_to_original(parts["denoiser"].state_dict(), PREFIX)
    save_file({k: v.half().contiguous() for k, v in original.items()}, str(root / "wan_tiny_fp16.safetensors"))
    save_file({k: v.to(FP8).contiguous() for k, v in original.items()}, str(root / "wan_tiny_fp8_e4m3fn.safetensors"))
    save_file({k: v.contiguous() for k, v in _scaled_fp8(original).items()},
              str(root / "wan_tiny_fp8_scaled.safetensors"))
    residual, blocks = False, parts["vae"].config.num_res_blocks
    save_file({k: v.contiguous() for k, v in _vae_to_original(parts["vae"].state_dict(), residual, blocks).items()},
              str(root / "wan_tiny_vae.safetensors"))
    from transformers import UMT5Config, UMT5EncoderModel

    # The derived UMT5 config keeps UMT5's bucket distance (128; no shape records it): the reference uses the same.
    config = UMT5Config(**{**parts["text_encoder"].config.to_dict(), "relative_attention_max_distance": 128})
    text_encoder = UMT5EncoderModel(config).eval()
    text_encoder.load_state_dict(parts["text_encoder"].state_dict())
    vocab = tiny_wan_tokenizer().backend_tokenizer.model
    pieces = [(vocab.id_to_token(i), -3.0) for i in range(len(tiny_wan_tokenizer()))]
    text_state = {k: v.half() for k, v in text_encoder.state_dict().items() if k != "encoder.embed_tokens.weight"}
    text_state["spiece_model"] = torch.frombuffer(bytearray(_sentencepiece_model(pieces)), dtype=torch.uint8)
    save_file(text_state, str(root / "umt5_tiny_fp16.safetensors"))
    return {"root": root, "parts": parts, "original": original, "text_encoder": text_encoder}


COMFY_FILES = {"diffusion_models": "wan_tiny_fp16.safetensors", "vae": "wan_tiny_vae.safetensors",
               "text_encoders": "umt5_tiny_fp16.safetensors"}
"""Where each tiny Wan file goes in a ComfyUI models tree (the folders ComfyUI's own Wan workflows use)."""


def place_tiny_wan_files(models_dir, *, made=None, **options) -> dict:
    """Write the tiny Wan's files once (into ``made``, default models_dir/wan_made) and copy each into its ComfyUI
    models folder; returns COMFY_FILES. ``options`` go to write_tiny_wan_files (e.g. freq_dim)."""
    import shutil

    models_dir = Path(models_dir)
    made = Path(made) if made is not None else models_dir / "wan_made"
    if not made.exists():
        write_tiny_wan_files(made, **options)
    for folder, name in COMFY_FILES.items():
        (models_dir / folder).mkdir(parents=True, exist_ok=True)
        if not (models_dir / folder / name).exists():
            shutil.copy(made / name, models_dir / folder / name)
    return dict(COMFY_FILES)


def write_tiny_wan_i2v_files(root, seed: int = 0, *, freq_dim: int = 32) -> dict:
    """Tiny image-to-video Wan files as ComfyUI users keep them, next to the T2V ones of write_tiny_wan_files (whose
    VAE and UMT5 they share): Wan 2.1 I2V (reads CLIP) in fp16, fp8 and scaled fp8; its clip_vision file (fp16, in
    the transformers names of clip_vision_h, projection included); and the two Wan 2.2 I2V A14B experts (fp16,
    seeds ``seed`` and ``seed + 1``), named as ComfyUI's repackaged files are."""
    from motion_core.backbones.wan.tiny import CLIP_VISION_DIM, tiny_wan_i2v_parts

    root = Path(root)
    name = "wan2.1_i2v_480p_tiny_{}.safetensors"
    made = write_tiny_wan_files(root, seed, freq_dim=freq_dim)
    clip = tiny_wan_i2v_parts(seed, kind="clip", freq_dim=freq_dim)
    original = diffusers_to_original(clip["denoiser"].state_dict(), PREFIX)
    save_file({k: v.half().contiguous() for k, v in original.items()}, str(root / name.format("fp16")))
    save_file({k: v.to(FP8).contiguous() for k, v in original.items()}, str(root / name.format("fp8_e4m3fn")))
    save_file({k: v.contiguous() for k, v in _scaled_fp8(original).items()}, str(root / name.format("fp8_scaled")))
    # transformers 5 names a bare CLIPVisionModel's weights without the "vision_model." that the file has.
    vision = {"vision_model." + k.removeprefix("vision_model."): v
              for k, v in clip["image_encoder"].state_dict().items()}
    generator = torch.Generator().manual_seed(seed + 7)
    vision["visual_projection.weight"] = torch.randn(64, CLIP_VISION_DIM, generator=generator) * 0.02
    save_file({k: v.half().contiguous() for k, v in vision.items()}, str(root / "clip_vision_h_tiny.safetensors"))
    experts = {}
    for offset, expert in enumerate(("high_noise", "low_noise")):
        experts[expert] = tiny_wan_i2v_parts(seed + offset, kind="concat", freq_dim=freq_dim)["denoiser"]
        state = diffusers_to_original(experts[expert].state_dict(), PREFIX)
        save_file({k: v.half().contiguous() for k, v in state.items()},
                  str(root / f"wan2.2_i2v_{expert}_tiny_fp16.safetensors"))
    return {**made, "i2v_parts": clip, "i2v_original": original, "clip_vision_state": vision, "experts": experts}
