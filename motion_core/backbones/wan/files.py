"""Reading the Wan files ComfyUI users have (models/diffusion_models, models/vae, models/text_encoders) as they are.

Each file is read tensor by tensor with plain reads (never a map of the whole file) and cast to the requested dtype
on the way in; or, when asked, its fp8 matrices are kept as stored with their scales, so a 14B fp8 file costs its own
size in memory instead of twice that as a bf16 copy. ComfyUI's "scaled" fp8 files store ``weight / scale`` in
float8_e4m3fn next to a per-tensor ``<module>.scale_weight`` (and a ``scaled_fp8`` marker); the product is restored
here (or computed per layer, when kept), so the model sees the same weights ComfyUI computes with. What a file is
comes from its keys, never from its name, and a file of the wrong kind is refused with the folder it belongs in.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ...errors import ModelLoadError
from ..files import all_finite, check_finite, read_state_dict, safetensors_header
from ..memory import FP8_DTYPES
from ..stream_read import SafetensorsStream
from .keys import strip_original_prefix

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
"""Shipped configs of the released Wan parts (see configs/README.md): single files carry no config of their own."""

FOLDERS = {
    "transformer": "models/diffusion_models (e.g. wan2.1_t2v_1.3B_fp16.safetensors)",
    "vae": "models/vae (wan_2.1_vae.safetensors, or wan2.2_vae.safetensors for the Wan 2.2 TI2V 5B)",
    "text_encoder": "models/text_encoders (umt5_xxl_fp16.safetensors or umt5_xxl_fp8_e4m3fn_scaled.safetensors)",
    "clip_vision": "models/clip_vision (clip_vision_h.safetensors, for Wan 2.1 image-to-video)",
}
_SCALE_SUFFIXES = ("scale_weight", "weight_scale")
_SKIPPED = ("scaled_fp8", "scale_input", "input_scale", "comfy_quant")


MAX_BLOCKS = 64
"""More numbered blocks than any released Wan part has (the 14B transformer 40, UMT5-XXL 24, a VAE level list 15).
A file that claims more is refused before any module is built: one crafted index (blocks.100000000) would otherwise
make the loader build blocks without end."""
_INDEX = re.compile(r"[0-9]{1,9}")


def block_count(keys, prefix: str, name: str, what: str) -> int:
    """How many numbered blocks sit under ``prefix`` (``blocks.`` -> 0..N-1): a ModelLoadError for gaps, for
    non-numeric indices and for more than MAX_BLOCKS, read from key names alone (a header suffices)."""
    indices = set()
    for key in keys:
        if key.startswith(prefix):
            head = key[len(prefix):].partition(".")[0]
            if not _INDEX.fullmatch(head):
                raise ModelLoadError(f"{name} is not a usable {what}: tensor {key[:80]!r} has no block number. The "
                                     "file is damaged or crafted; re-download it.")
            indices.add(int(head))
    count = max(indices) + 1 if indices else 0
    if count > MAX_BLOCKS or len(indices) != count:
        shown = sorted(indices)
        numbers = ", ".join(map(str, shown[:3])) + (f", ... {shown[-1]}" if len(shown) > 3 else "")
        raise ModelLoadError(
            f"{name} is not a usable {what}: its blocks ({prefix}N) are numbered {numbers}, where a {what} numbers "
            f"them from 0 without gaps and has at most {MAX_BLOCKS}. The file is damaged or crafted; re-download it "
            "from its publisher.")
    return count


def check_weight_tensors(weights: dict, name: str, what: str, keep: tuple[str, ...] = ()) -> None:
    """Every weight of a model file must be a non-empty floating tensor: integer or bool weights would be cast to
    floats silently, and a zero-size one would divide by zero where the architecture is read off the shapes.
    ``keep``: names that are data, not weights (UMT5's embedded tokenizer bytes)."""
    for key, tensor in weights.items():
        if key in keep:
            continue
        if not tensor.is_floating_point():
            raise ModelLoadError(f"{name}: weight {key!r} is stored as {str(tensor.dtype).removeprefix('torch.')}, "
                                 f"not as floating point, so it is not a {what}'s weight. The file is damaged or "
                                 "converted wrongly; re-download it.")
        if tensor.numel() == 0:
            raise ModelLoadError(f"{name}: weight {key!r} is empty (shape {list(tensor.shape)}), so this is not a "
                                 f"usable {what}. The file is damaged or crafted; re-download it.")


def file_keys(path) -> list[str]:
    """The tensor names of a weights file without reading the tensors (safetensors: its header only)."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        return list(safetensors_header(path, complete=False))
    return list(read_state_dict(path))


def header_shape(path, name: str) -> tuple[int, ...] | None:
    """The shape of tensor ``name`` (ComfyUI's prefix optional) from a .safetensors header, without reading tensors;
    None for other files or an absent tensor."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        return None
    for key, entry in safetensors_header(path, complete=False).items():
        if strip_original_prefix(key) == name and isinstance(entry, dict):
            return tuple(entry.get("shape") or ())
    return None


def read_weights(path, dtype: torch.dtype, fp8_scales: dict | None = None) -> dict[str, torch.Tensor]:
    """Every tensor of ``path`` with ComfyUI's prefix kept, floats cast to ``dtype`` (fp8 upcast, scaled fp8
    multiplied back by its scale); integer tensors (the embedded tokenizer) are kept as they are. Each tensor and
    each scale factor is checked for NaN/inf as it is read (no second pass over a 14B model).

    ``fp8_scales``: given a dict, fp8 matrices (2-D ``.weight`` tensors with one scale, or none) are KEPT in fp8 and
    their scale (float32, 1.0 for an unscaled file) goes into the dict under the weight's key, so a 14B fp8 file
    costs its own size in memory instead of twice that in bf16. A .safetensors file is read tensor by tensor with
    plain reads (stream_read.py), so memory holds the tensors kept and never the file's pages besides."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        return _convert(_InMemory(read_state_dict(path)), dtype, path.name, fp8_scales)  # checked as it was read
    with SafetensorsStream(path) as stream:
        return _convert(stream, dtype, path.name, fp8_scales)


class _InMemory:
    """Tensors already read (a .ckpt) behind the reading interface of SafetensorsStream (read_as may hand out the
    tensor itself: _convert owns them)."""

    def __init__(self, tensors: dict):
        self.tensors = tensors

    def keys(self) -> list[str]:
        return list(self.tensors)

    def spec(self, key: str):
        return self.tensors[key].dtype, tuple(self.tensors[key].shape)

    def read(self, key: str) -> torch.Tensor:
        return self.tensors[key]

    def read_as(self, key: str, dtype: torch.dtype) -> torch.Tensor:
        return self.tensors[key].to(dtype)


def _convert(source, dtype: torch.dtype, file_name: str, fp8_scales: dict | None) -> dict:
    """What read_weights returns, from a SafetensorsStream or _InMemory: each tensor kept, read as stored, or read
    already widened (see widen)."""
    keys = source.keys()
    names = set(keys)
    out = {}
    for key in keys:
        tail = key.rsplit(".", 1)[-1]
        if tail in _SKIPPED or tail in _SCALE_SUFFIXES:
            continue
        stored, shape = source.spec(key)
        if not stored.is_floating_point:
            out[key] = source.read(key)
            continue
        scale_key = next((key[: -len("weight")] + s for s in _SCALE_SUFFIXES
                          if key.endswith("weight") and key[: -len("weight")] + s in names), None)
        factor = None
        if scale_key is not None:
            factor = source.read(scale_key)
            check_finite(factor, file_name, scale_key)
        if fp8_scales is not None and _keepable(key, stored, shape, factor):
            tensor = source.read(key)
            scale = torch.ones((), dtype=torch.float32) if factor is None else factor.float().reshape(())
            fp8_scales[key] = check_fp8_fits(key, tensor, scale, dtype, file_name)
            out[key] = tensor
        elif factor is None or factor.numel() == 1:
            out[key] = widen(key, source.read_as(key, dtype), factor, dtype, file_name, lambda k=key: source.read(k))
        else:  # a scale per row or column: widened whole (broadcast)
            out[key] = widen(key, source.read(key), factor, dtype, file_name)
    return out


def read_weights_on_meta(path, dtype: torch.dtype, fp8_scales: dict | None = None) -> dict[str, torch.Tensor]:
    """What ``read_weights`` would return, as meta tensors, from a .safetensors header alone: the same keys, each
    float in ``dtype`` unless kept in fp8 (then its scale, a meta float32, goes into ``fp8_scales``), integers as
    stored. Nothing is read but the header (stream_read.meta_tensors), so nothing is checked for NaN either."""
    from ..stream_read import meta_tensors

    stored = meta_tensors(path)
    out = {}
    for key, tensor in stored.items():
        tail = key.rsplit(".", 1)[-1]
        if tail in _SKIPPED or tail in _SCALE_SUFFIXES:
            continue
        if not tensor.is_floating_point():
            out[key] = tensor
            continue
        factor = next((stored[key[: -len("weight")] + s] for s in _SCALE_SUFFIXES
                       if key.endswith("weight") and key[: -len("weight")] + s in stored), None)
        if fp8_scales is not None and _keepable(key, tensor.dtype, tuple(tensor.shape), factor):
            fp8_scales[key] = torch.empty((), dtype=torch.float32, device="meta")
            out[key] = tensor
        else:
            out[key] = torch.empty(tensor.shape, dtype=dtype, device="meta")
    return out


def _keepable(key: str, stored: torch.dtype, shape: tuple, factor: torch.Tensor | None) -> bool:
    """An fp8 matrix with one scale (or none) can stay fp8 as a Linear weight (memory.adopt_fp8_weight)."""
    return (key.endswith(".weight") and len(shape) == 2 and stored in FP8_DTYPES
            and (factor is None or factor.numel() == 1))


def widen(key: str, tensor: torch.Tensor, factor: torch.Tensor | None, dtype: torch.dtype,
          file_name: str = "the file", stored=None) -> torch.Tensor:
    """``tensor`` (times its scale ``factor``, if any) in ``dtype``, refused if that holds NaN/inf: checked once,
    after the cast; the cause (a damaged file or an overflow of ``dtype``) is looked for only on failure, in the
    tensor as stored. ``stored``: for a tensor converted on the way in (read_as, so this call owns it and scales it
    in place), how to read it as stored for that diagnosis.

    A one-number scale multiplies the tensor in ``dtype`` in place, as a Python float: torch computes a bf16/fp16
    product in float32 and rounds once, which gave the same bits as widening to float32 first (checked on 45M values
    in each dtype) without a float32 copy of the tensor (600 MB for the largest matrix of a 14B model)."""
    if factor is None:
        wide = tensor.to(dtype)
    elif factor.numel() == 1:
        wide, scale = tensor.to(dtype), float(factor.to(torch.float32))
        wide = wide.mul_(scale) if wide is not tensor or stored is not None else wide * scale
    else:  # a scale per row or column (broadcast)
        wide = (tensor.to(torch.float32) * factor.to(torch.float32)).to(dtype)
    if not all_finite(wide):
        check_finite(stored() if stored is not None else tensor, file_name, key)
        raise _overflow(key, dtype, file_name)
    return wide


def check_fp8_fits(key: str, tensor: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype,
                   file_name: str = "the file") -> torch.Tensor:
    """``scale`` after checking the kept fp8 ``tensor`` for NaN and its largest possible product with the scale
    against ``dtype``, in which each layer computes (a bound, without widening the tensor: scaled files map their
    largest weight to fp8's largest value, so it is tight there)."""
    check_finite(tensor, file_name, key)
    if torch.finfo(tensor.dtype).max * float(scale.abs()) > torch.finfo(dtype).max:
        raise _overflow(key, dtype, file_name)
    return scale


def _overflow(key: str, dtype: torch.dtype, file_name: str) -> ModelLoadError:
    return ModelLoadError(f"{file_name}: tensor {key!r} does not fit {str(dtype).removeprefix('torch.')} (its values "
                          "overflow to infinity); load the model in bf16 or fp32.")


_OTHER_TASKS = ("vace_", "motion_encoder.", "face_adapter.", "pose_patch_embedding", "img_emb.emb_pos",
                "control_adapter.", "casual_audio_encoder.", "audio_proj.", "ref_conv.")
"""Keys of Wan transformers made for other tasks than text- or image-to-video: VACE, Animate, first-last-frame
(FLF2V: its image embedder has a position table for two images), camera control, speech-to-video, HuMo, Fun control.
Their extra inputs are not ours to give, so they are refused by name (ComfyUI's own detection reads the same keys)."""


def classify(keys) -> str:
    """What a Wan-ecosystem file holds, from its key names: "transformer" (text-to-video, and Wan 2.2 I2V A14B whose
    image arrives as extra input channels: its keys are a T2V model's), "transformer_clip" (Wan 2.1 I2V: it also
    reads CLIP vision features, through img_emb and k_img / v_img), "transformer_i2v" (VACE, Animate, FLF2V and
    other tasks, refused), "vae", "vae_diffusers", "text_encoder", "clip_vision" or "unknown"."""
    bare = {strip_original_prefix(k) for k in keys}
    if "patch_embedding.weight" in bare and any(k.startswith("blocks.0.self_attn.") for k in bare):
        if any(k.startswith(_OTHER_TASKS) for k in bare):
            return "transformer_i2v"
        if any(k.startswith("img_emb.") or ".k_img." in k for k in bare):
            return "transformer_clip"
        return "transformer"
    if "decoder.middle.0.residual.0.gamma" in bare or "encoder.conv1.weight" in bare and "conv2.weight" in bare:
        return "vae"
    if "decoder.mid_block.resnets.0.norm1.gamma" in bare:
        return "vae_diffusers"
    if any(k.startswith(("encoder.block.0.layer.0.SelfAttention", "block.0.layer.0.SelfAttention")) for k in bare):
        return "text_encoder"
    if any(k.startswith(("visual.", "vision_model.", "log_scale")) for k in bare):
        return "clip_vision"
    return "unknown"


_WHAT = {"vae": "a Wan VAE", "vae_diffusers": "a VAE in diffusers layout", "text_encoder": "a UMT5 text encoder",
         "clip_vision": "a CLIP vision encoder (for image-to-video models)", "transformer": "a Wan diffusion model",
         "transformer_clip": "a Wan 2.1 image-to-video diffusion model",
         "transformer_i2v": "a Wan VACE, Animate or first-last-frame diffusion model",
         "unknown": "not a Wan model file"}
ACCEPTED = {"transformer": ("transformer", "transformer_clip")}
"""Kinds a wanted kind takes: a diffusion model may read CLIP vision features (the loader then asks for that file)."""


def expect_kind(path, keys, wanted: str) -> str:
    """The file's kind if it is ``wanted`` (or a kind ``wanted`` takes, see ACCEPTED); else a refusal naming what it
    is and where the right file lives."""
    kind = classify(keys)
    if kind in ACCEPTED.get(wanted, (wanted,)):
        return kind
    name = Path(path).name
    if kind == "transformer_i2v" and wanted == "transformer":
        raise ModelLoadError(
            f"{name} is a Wan model for another task (VACE, Animate, first-last-frame or a control model); motion "
            "LoRAs here train Wan's text-to-video and image-to-video models. Pick one of those from "
            f"{FOLDERS['transformer']}, e.g. wan2.1_t2v_1.3B_fp16.safetensors, wan2.1_i2v_480p_14B_fp16.safetensors "
            "or wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors.")
    where = FOLDERS.get(kind.removesuffix("_i2v").removesuffix("_clip"), "")
    hint = f" (it belongs in {where})" if where else ""
    raise ModelLoadError(f"{name} is {_WHAT[kind]}{hint}, but {_WHAT.get(wanted, wanted)} was expected here: "
                         f"choose one from {FOLDERS[wanted]}.")
