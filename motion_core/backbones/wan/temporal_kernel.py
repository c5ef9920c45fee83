"""Where DeT's temporal kernel sits in diffusers' WanTransformer3DModel, and how Wan's tokens split into frames.

Sites: every block's joint self-attention ``blocks.N.attn1``. The kernel reads the attention's input (the block's
modulated norm of the tokens) and adds to its output, before the block's gate: the public code's Wan processor does
exactly that, so the gate that scales attention at each timestep scales the kernel too.

Frames: the transformer patchifies latents [B, C, F, H, W] with patch (p_t, p_h, p_w) and flattens them frame-major,
so its token sequence is F/p_t frames of (H/p_h)·(W/p_w) tokens each. A forward pre-hook on the transformer records
that per-frame count on every site before the blocks run; a site divides its own token count by it. The count, not
the frame number, is kept because it does not change between a clip and its one-frame spatial path at the same
size, so a checkpointed block recomputed in the backward pass after another forward still splits right.
"""

from __future__ import annotations

import torch.nn as nn

from ...errors import InvalidInputError

TOKENS_PER_FRAME = "_motion_core_tokens_per_frame"


def matches(model: nn.Module) -> bool:
    """Whether ``model`` is a Wan transformer (diffusers' layout: patch_size in its config, blocks with attn1)."""
    config = getattr(model, "config", None)
    blocks = getattr(model, "blocks", None)
    return (config is not None and "patch_size" in config and isinstance(blocks, nn.ModuleList) and len(blocks) > 0
            and hasattr(blocks[0], "attn1"))


def kernel_sites(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(site name, module the kernel hooks) for every block, in model order: ("blocks.N", blocks[N].attn1)."""
    return [(f"blocks.{i}", block.attn1) for i, block in enumerate(model.blocks)]


def width(model: nn.Module) -> int:
    """The tokens' channels (what a kernel maps to itself)."""
    return int(model.config.num_attention_heads) * int(model.config.attention_head_dim)


def record_tokens_per_frame(model: nn.Module, args, kwargs) -> None:
    """Forward pre-hook of the transformer: every site learns how many tokens one frame has in this call."""
    hidden = kwargs.get("hidden_states", args[0] if args else None)
    if hidden is None or hidden.ndim != 5:
        return
    _, p_h, p_w = (int(p) for p in model.config.patch_size)
    per_frame = (int(hidden.shape[3]) // p_h) * (int(hidden.shape[4]) // p_w)
    for _, site in kernel_sites(model):
        site.__dict__[TOKENS_PER_FRAME] = per_frame


def frames_at(site: nn.Module, tokens: int) -> int:
    """How many frames the ``tokens`` a site sees span (1: a one-frame clip)."""
    per_frame = site.__dict__.get(TOKENS_PER_FRAME)
    if not per_frame or tokens % per_frame:
        raise InvalidInputError(
            f"The temporal kernel cannot split {tokens} tokens into frames of {per_frame} tokens: this block ran "
            "outside the Wan transformer's own forward. Call the whole transformer (backbone.denoise), not a block.")
    return tokens // per_frame
