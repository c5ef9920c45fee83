"""One training step's activation memory, measured on a META copy of the denoiser: no weights, no compute.

A dispatch mode counts every tensor storage the step creates and every one it frees, so the figure is the step's
live-bytes peak (saved activations, the recompute of a checkpointed block, gradients, temporaries). Attention is
counted as a fused kernel does (output and log-sum-exp saved, no [L, L] matrix), which is what PyTorch's SDPA runs on
CUDA and on the CPU for these models. Traces are cached per architecture, adapters, shapes and checkpointing; the
memory plan (memory_plan.py) adds weights, adapters' optimiser state and samples to this figure.
"""

from __future__ import annotations

import copy
import dataclasses
import weakref
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

from ..backbones.base import PlanningShapes
from ..backbones.memory import is_fp8


# ---- the architecture's facts -----------------------------------------------------------------------------------
def tensor_bytes(tensors) -> int:
    """Bytes of the distinct tensors in ``tensors`` (a tensor listed twice, e.g. a tied weight, counts once)."""
    seen, total = set(), 0
    for t in tensors:
        if t is None:
            continue
        key = id(t)
        if key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
    return total


# ---- the activation trace -----------------------------------------------------------------------------------------
class LiveBytes(TorchDispatchMode):
    """Counts the bytes of tensor storages created inside it that are still alive, and their peak. Storages that
    existed before (parameters, inputs) are never counted; views add nothing; a storage counts until its last
    tensor dies (weak references to the storages, as torch.distributed._tools.mem_tracker keeps them)."""

    def __init__(self):
        super().__init__()
        self._known = WeakIdKeyDictionary()
        self.live = 0
        self.peak = 0

    def _freed(self, nbytes: int, _ref) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for t in tree_flatten((args, kwargs))[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                if storage not in self._known:
                    self._known[storage] = None  # existed before: not ours to count
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                if storage in self._known:
                    continue
                nbytes = storage.nbytes()
                self._known[storage] = weakref.ref(storage, lambda ref, n=nbytes: self._freed(n, ref))
                self.live += nbytes
        self.peak = max(self.peak, self.live)
        return out


class _FusedAttention(torch.autograd.Function):
    """Stands in for scaled_dot_product_attention in the trace with a fused kernel's memory: out and a float32
    log-sum-exp are saved with q, k, v; the backward makes one gradient per input."""

    @staticmethod
    def forward(ctx, q, k, v):
        out = q.new_empty(*q.shape[:-1], v.shape[-1])
        lse = q.new_empty(q.shape[:-1], dtype=torch.float32)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, _, _ = ctx.saved_tensors
        return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _fused_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    return _FusedAttention.apply(query, key, value)


@dataclass(frozen=True)
class StepTrace:
    peak: int
    """Live-bytes peak of one step (activations, gradients, temporaries), weights and inputs excluded."""
    adapter_bytes: int
    """The recipe's adapter tensors (trainable)."""


_TRACES: dict[tuple, StepTrace] = {}


_TRACE_CACHE_SIZE = 64


def planning_denoiser(backbone) -> nn.Module:
    """The backbone's denoiser architecture on the meta device, with each tensor in the dtype it has in the loaded
    model (the family builds it; see Backbone.planning_denoiser). A weight stored in fp8 takes the dtype its layer
    computes in (the trace runs plain layers; the plan adds the per-layer upcast copy itself)."""
    meta = backbone.planning_denoiser()
    real = dict(backbone.denoiser.named_parameters())
    real.update(dict(backbone.denoiser.named_buffers()))
    with torch.no_grad():
        for name, tensor in [*meta.named_parameters(), *meta.named_buffers()]:
            source = real.get(name)
            if source is None:
                continue
            dtype = backbone.dtype if is_fp8(source) else source.dtype
            if dtype != tensor.dtype:
                tensor.data = tensor.data.to(dtype)
    return meta.requires_grad_(False).train()


def trace_step(backbone, recipe, *, shapes: PlanningShapes, checkpointing: bool, rank: int, alpha: float,
               dropout: float, clips: int = 1, compute_dtype: torch.dtype | None = None) -> StepTrace:
    """One forward + backward of the full clip with all of ``recipe``'s adapters trained, on a meta copy."""
    from ..lora import add_adapter

    key = (backbone.fingerprint(), type(recipe).__name__, getattr(recipe, "name", ""), shapes, checkpointing, rank,
           float(alpha), float(dropout), clips, str(compute_dtype), str(backbone.dtype))
    if key in _TRACES:
        return _TRACES[key]
    probe = copy.copy(backbone)
    probe.denoiser = planning_denoiser(backbone)
    if compute_dtype is not None:
        for tensor in [*probe.denoiser.parameters(), *probe.denoiser.buffers()]:
            if tensor.is_floating_point():
                tensor.data = tensor.data.to(compute_dtype)
        probe.dtype = compute_dtype
    probe.device = torch.device("meta")
    for spec in recipe.adapters(probe, clips, rank=rank, alpha=alpha, dropout=dropout):
        add_adapter(probe.denoiser, dataclasses.replace(spec, name="plan_" + spec.name), enabled=True,
                    trainable=True)
    # peft creates a second adapter of a layer on the CPU when its base weight is on meta
    for module in probe.denoiser.modules():
        for key, tensor in module._parameters.items():
            if tensor is not None and tensor.device.type != "meta":
                module._parameters[key] = nn.Parameter(tensor.detach().to("meta"), requires_grad=tensor.requires_grad)
        for key, tensor in module._buffers.items():
            if tensor is not None and tensor.device.type != "meta":
                module._buffers[key] = tensor.to("meta")
    adapters = [p for name, p in probe.denoiser.named_parameters() if "lora_" in name]
    for p in adapters:
        p.requires_grad_(True)
    if checkpointing:
        probe.enable_gradient_checkpointing()
    dtype = compute_dtype or backbone.dtype
    latents = torch.empty(shapes.latents, device="meta", dtype=torch.float32)
    text = torch.empty(shapes.text_states, device="meta", dtype=dtype)
    timestep = torch.full((1,), 500.0, device="meta")
    original = F.scaled_dot_product_attention
    F.scaled_dot_product_attention = _fused_sdpa
    try:
        with LiveBytes() as live, probe.conditioned(probe.blank_condition(latents)):
            prediction = probe.denoise(latents, timestep, text)
            loss = (prediction.float() - latents[:, : prediction.shape[1]]).pow(2).mean()
            loss.backward()
            del prediction, loss
    finally:
        F.scaled_dot_product_attention = original
    trace = StepTrace(peak=live.peak, adapter_bytes=tensor_bytes(adapters))
    if len(_TRACES) >= _TRACE_CACHE_SIZE:
        _TRACES.pop(next(iter(_TRACES)))
    _TRACES[key] = trace
    return trace
