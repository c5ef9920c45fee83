"""Names of Wan transformer weights in the original layout and in diffusers' WanTransformer3DModel.

The original layout is what Wan-AI released and what ComfyUI's models/diffusion_models files hold (optionally under
``model.diffusion_model.``); ComfyUI's native LoRA loader expects ``diffusion_model.<original module>`` keys. The
table is per module, so one mapping serves whole state dicts (loading) and single module names (LoRA export).

Why not ``str.replace`` chains (diffusers' converter): the original calls the cross-attention norm ``norm3`` and
diffusers calls it ``norm2``, and ``modulation`` occurs both in blocks and in the head; exact names avoid the
placeholder juggling and make the inverse direction the same table read backwards.
"""

from __future__ import annotations

import re

from ...errors import LoraMismatchError, ModelLoadError

ORIGINAL_PREFIXES = ("model.diffusion_model.", "diffusion_model.")

# original -> diffusers, modules (and the two bare parameters) at the top level of the transformer
_TOP = {
    "patch_embedding": "patch_embedding",
    "text_embedding.0": "condition_embedder.text_embedder.linear_1",
    "text_embedding.2": "condition_embedder.text_embedder.linear_2",
    "time_embedding.0": "condition_embedder.time_embedder.linear_1",
    "time_embedding.2": "condition_embedder.time_embedder.linear_2",
    "time_projection.1": "condition_embedder.time_proj",
    "head.head": "proj_out",
    "head.modulation": "scale_shift_table",
    # Wan 2.1 image-to-video only: the embedder of the CLIP vision features (the image's k/v are per block, below)
    "img_emb.proj.0": "condition_embedder.image_embedder.norm1",
    "img_emb.proj.1": "condition_embedder.image_embedder.ff.net.0.proj",
    "img_emb.proj.3": "condition_embedder.image_embedder.ff.net.2",
    "img_emb.proj.4": "condition_embedder.image_embedder.norm2",
}

# original -> diffusers, inside ``blocks.N.``
_BLOCK = {
    "modulation": "scale_shift_table",
    "norm3": "norm2",  # the affine LayerNorm before cross-attention
    "ffn.0": "ffn.net.0.proj",
    "ffn.2": "ffn.net.2",
}
for _orig, _diff in (("self_attn", "attn1"), ("cross_attn", "attn2")):
    _BLOCK.update({f"{_orig}.q": f"{_diff}.to_q", f"{_orig}.k": f"{_diff}.to_k", f"{_orig}.v": f"{_diff}.to_v",
                   f"{_orig}.o": f"{_diff}.to_out.0", f"{_orig}.norm_q": f"{_diff}.norm_q",
                   f"{_orig}.norm_k": f"{_diff}.norm_k"})
_BLOCK.update({"cross_attn.k_img": "attn2.add_k_proj", "cross_attn.v_img": "attn2.add_v_proj",
               "cross_attn.norm_k_img": "attn2.norm_added_k"})

_TOP_BACK = {v: k for k, v in _TOP.items()}
_BLOCK_BACK = {v: k for k, v in _BLOCK.items()}
_BLOCK_NAME = re.compile(r"^blocks\.(\d+)\.(.+)$")
_PARAMETERS = ("weight", "bias")


def strip_original_prefix(key: str) -> str:
    for prefix in ORIGINAL_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def _rename(name: str, top: dict, block: dict) -> str | None:
    """A module (or bare parameter) name through one direction of the table; None when it has no counterpart."""
    if name in top:
        return top[name]
    match = _BLOCK_NAME.match(name)
    if match and match.group(2) in block:
        return f"blocks.{match.group(1)}.{block[match.group(2)]}"
    return None


def _rename_key(key: str, top: dict, block: dict) -> str | None:
    whole = _rename(key, top, block)  # modulation / scale_shift_table are parameters without a module
    if whole is not None:
        return whole
    module, _, parameter = key.rpartition(".")
    renamed = _rename(module, top, block) if parameter in _PARAMETERS else None
    return None if renamed is None else f"{renamed}.{parameter}"


def original_key_to_diffusers(key: str) -> str | None:
    """``blocks.0.self_attn.q.weight`` (with or without ComfyUI's prefix) -> ``blocks.0.attn1.to_q.weight``."""
    return _rename_key(strip_original_prefix(key), _TOP, _BLOCK)


def original_to_diffusers(state_dict: dict, name: str = "the file") -> dict:
    """A whole original-layout state dict in diffusers names; keys with no counterpart are an error naming them."""
    converted, unknown = {}, []
    for key, value in state_dict.items():
        new = original_key_to_diffusers(key)
        if new is None:
            unknown.append(key)
        else:
            converted[new] = value
    if unknown:
        raise ModelLoadError(f"{name} has weights that are not part of a Wan text- or image-to-video transformer: "
                             f"{unknown[:5]}{' …' if len(unknown) > 5 else ''}.")
    return converted


def diffusers_to_original(state_dict: dict, prefix: str = "") -> dict:
    """The inverse of ``original_to_diffusers`` (used to write files in ComfyUI's layout)."""
    converted = {}
    for key, value in state_dict.items():
        new = _rename_key(key, _TOP_BACK, _BLOCK_BACK)
        if new is None:
            raise ModelLoadError(f"{key} has no name in the original Wan layout.")
        converted[prefix + new] = value
    return converted


def diffusers_module_to_original(module_name: str) -> str:
    """``blocks.0.attn1.to_q`` -> ``blocks.0.self_attn.q``: where ComfyUI's Wan LoRA loader looks for the adapter
    of that module (it reads ``diffusion_model.<this>.lora_A.weight``). A leading ``transformer.`` is accepted."""
    bare = module_name.removeprefix("transformer.")
    renamed = _rename(bare, _TOP_BACK, _BLOCK_BACK)
    if renamed is None:
        raise LoraMismatchError(f"The Wan module {module_name!r} has no counterpart in ComfyUI's Wan layout, so a "
                                "LoRA on it cannot be exported there; keep the LoRA in the diffusers layout.")
    return renamed
