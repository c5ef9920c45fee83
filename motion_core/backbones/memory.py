"""Memory options for training a motion LoRA on a big denoiser: the frozen base stored in fp8, blocks offloaded.

They exist so the 14B Wan models (Wan 2.1 14B, each Wan 2.2 A14B expert: 40 blocks, 28 GB of bf16 weights) train on a
24 GB card, together with gradient checkpointing and bf16 compute. Both are applied for one training run and taken off
after it, because the loaded base model is cached between queued prompts and must sample the same afterwards.

- ``base_storage="fp8"``: the weight of each Linear layer of the denoiser's base (norms, embeddings, the patch embedding
  and the head are skipped, with the patterns diffusers' ``enable_layerwise_casting`` uses) is stored as
  float8_e4m3fn with one fp32 scale per tensor (largest |w| -> 448, as ComfyUI's "scaled fp8" checkpoints do) and
  upcast to the original dtype inside the layer's forward, one layer at a time. It is storage only: the matmul runs in
  the original dtype, so it works on every device (no fp8 matmul, hence no need for compute capability 8.9) and the
  only error is the rounding of the weights (3 mantissa bits: at most 2^-4 relative per weight, RMS about 2^-4/sqrt3).
  The backward keeps the fp8 tensor, not the upcast one, so gradient memory holds fp8 weights too. The original weights
  are kept (moved to the CPU when they were on an accelerator) and put back by ``restore``: CPU RAM pays what the
  accelerator saves. A model loaded in fp8 as its file stores it (wan/single_file.py, ``keep_fp8``) has its layers in
  the same state from the start (``adopt_fp8_weight``), for good; fp8 storage finds nothing left to convert there.
  LoRA layers injected afterwards stay in the original dtype (peft reads ``compute_dtype`` from the base layer, as it
  does for bitsandbytes layers) and remain the only trainable tensors.
- ``block_offload=True``: the base tensors of every transformer block live on the CPU; each block's tensors are copied
  to the accelerator when the block runs and dropped after it. Adapter tensors (peft's ``lora_*``) are moved to the
  accelerator and stay there, so the optimizer, its state and the gradients never leave it. This saves memory only
  with gradient checkpointing on: without it, autograd would keep every block's copied weights until the backward.

Why our own hooks rather than diffusers' (``enable_layerwise_casting``, ``apply_group_offload``):
diffusers' layerwise casting cannot be undone (``LayerwiseCastingHook.deinitalize_hook`` raises NotImplementedError;
the cast is lossy and the originals are not kept), which breaks "the base model is unchanged after training". Its group
offload wraps the block's instance ``forward`` and swaps ``.data`` in module hooks; our per-block gradient
checkpointing (checkpointing.py) runs the block's CLASS forward again in the backward pass, outside any such hook, so
the recompute would find the block offloaded. Here the offload lives in the block's class forward (a subclass swapped
in for the run), so the checkpoint's recompute copies the block in again, and nothing is wrapped twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InvalidInputError

BASE_STORAGES = ("native", "fp8")
FP8_STORAGE_DTYPE = torch.float8_e4m3fn
FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
"""The fp8 formats weight files come in (ComfyUI's *_fp8_e4m3fn / *_fp8_e5m2 / *_fp8_scaled files)."""
DIFFUSERS_SKIP_PATTERNS = ("pos_embed", "patch_embed", "norm", "^proj_in$", "^proj_out$")
"""diffusers.hooks.layerwise_casting.DEFAULT_SKIP_MODULES_PATTERN; the model class adds its own (Wan: the patch
embedding, condition embedder, norms, time embedder and modulation tables)."""


@dataclass(frozen=True)
class MemoryOptions:
    """What TrainingConfig passes here; the defaults change nothing."""

    base_storage: str = "native"
    block_offload: bool = False
    offload_count: int | None = None
    """With block_offload: how many blocks (the first ones) stay on the host; None: all."""

    def validate(self) -> None:
        if self.base_storage not in BASE_STORAGES:
            raise InvalidInputError(f"base_storage must be one of {BASE_STORAGES}; got {self.base_storage!r}.")

    @property
    def active(self) -> bool:
        return self.base_storage != "native" or self.block_offload


# ---- fp8 storage ------------------------------------------------------------------------------------------------
class _UpcastLinear(torch.autograd.Function):
    """y = x (scale W8)^T + b with W8 stored in fp8 and upcast for the matmul. Only W8 is saved for the backward (the
    upcast copy is freed as soon as the forward returns); W8, scale and b are frozen, so only x gets a gradient."""

    @staticmethod
    def forward(ctx, x, weight, scale, bias, dtype):
        ctx.save_for_backward(weight, scale)
        ctx.x_dtype = x.dtype
        return F.linear(x, _dequantize(weight, scale, dtype), None if bias is None else bias.to(dtype))

    @staticmethod
    def backward(ctx, grad_out):
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        weight, scale = ctx.saved_tensors
        # grad_out has the forward's output dtype, which autocast may have changed from x's: compute in it.
        grad_x = grad_out.matmul(_dequantize(weight, scale, grad_out.dtype))
        return grad_x.to(ctx.x_dtype), None, None, None, None


def _dequantize(weight: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # Every e4m3 value is exact in bf16/fp16/fp32, so only the product with the scale rounds (2^-9 in bf16).
    return weight.to(dtype) * scale.to(dtype)


def _quantize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """fp8 weight and fp32 scale with the largest |w| mapped to e4m3's largest finite value (448). Without the
    scale, weights of the usual init/trained size (std 0.01-0.05) fall largely below e4m3's smallest normal (2^-6)
    and lose most of their mantissa as subnormals."""
    amax = weight.detach().abs().amax().float()
    scale = (amax / torch.finfo(FP8_STORAGE_DTYPE).max).clamp(min=torch.finfo(torch.float32).tiny)
    stored = (weight.detach().float() / scale).to(FP8_STORAGE_DTYPE)
    return stored, scale


class Fp8Forward:
    """A Linear's instance forward while its weight is stored in fp8 (holds the module, so deepcopy stays correct)."""

    def __init__(self, module: nn.Linear, compute_dtype: torch.dtype):
        self.module, self.compute_dtype = module, compute_dtype

    def __call__(self, x):
        m = self.module
        if torch.is_autocast_enabled(x.device.type):
            # Autocast would run F.linear in its dtype anyway; upcasting to it directly skips one copy.
            return _UpcastLinear.apply(x, m.weight, m.fp8_scale, m.bias, torch.get_autocast_dtype(x.device.type))
        return _UpcastLinear.apply(x.to(self.compute_dtype), m.weight, m.fp8_scale, m.bias, self.compute_dtype)


def fp8_skip_patterns(model: nn.Module) -> tuple[str, ...]:
    """Module-name regexes left in their own dtype, composed as ``ModelMixin.enable_layerwise_casting`` does."""
    patterns = list(DIFFUSERS_SKIP_PATTERNS)
    for attr in ("_keep_in_fp32_modules", "_skip_layerwise_casting_patterns"):
        patterns += list(getattr(type(model), attr, None) or ())
    return tuple(dict.fromkeys(patterns))


def fp8_linear_names(model: nn.Module) -> list[str]:
    """The Linear layers ``store_base_in_fp8`` converts: base layers only (peft's wrappers are looked through, their
    lora_* layers skipped), none whose name matches a skip pattern."""
    compiled = [re.compile(p) for p in fp8_skip_patterns(model)]
    names = []
    for name, module in model.named_modules():
        if type(module) is not nn.Linear or any(part.startswith("lora_") for part in name.split(".")):
            continue
        if not any(c.search(name) for c in compiled):
            names.append(name)
    return names


def is_fp8(tensor: torch.Tensor) -> bool:
    return tensor.dtype in FP8_DTYPES


def holds_fp8(module: nn.Module) -> bool:
    """Whether any parameter of ``module`` is stored in fp8 (a model loaded from an fp8 file as stored, or one
    under Fp8Storage)."""
    return any(is_fp8(p) for p in module.parameters())


def adopt_fp8_weight(layer: nn.Linear, scale: torch.Tensor, compute_dtype: torch.dtype,
                     weight: torch.Tensor | None = None) -> None:
    """Make ``layer`` compute ``x (scale W8)^T + b`` from its fp8 weight (``weight``, or the one it holds): the
    state Fp8Storage gives a layer, shared with models whose file stores them in fp8 (loaded as stored). The scale is
    a float32 buffer, so it travels with the layer; ``compute_dtype`` is what peft casts adapters to."""
    if weight is not None:
        layer._parameters["weight"] = nn.Parameter(weight, requires_grad=False)
    if not is_fp8(layer.weight):
        raise TypeError(f"adopt_fp8_weight needs an fp8 weight, got {layer.weight.dtype}")
    scale = scale.detach().to(device=layer.weight.device, dtype=torch.float32).reshape(())
    layer.register_buffer("fp8_scale", scale, persistent=False)
    layer.forward = Fp8Forward(layer, compute_dtype)
    layer.compute_dtype = compute_dtype


class Fp8Storage:
    """Base Linear weights of ``model`` stored in fp8 until ``restore``; see the module docstring."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.layers: list[tuple[nn.Linear, nn.Parameter, torch.device]] = []
        for name in fp8_linear_names(model):
            layer = model.get_submodule(name)
            weight = layer.weight
            if weight.requires_grad:
                raise InvalidInputError(f"{name}.weight is trainable; fp8 storage is only for a frozen base model.")
            if is_fp8(weight):
                continue  # a model loaded in fp8 as its file stores it (or converted by another Fp8Storage)
            stored, scale = _quantize(weight)
            self.layers.append((layer, weight, weight.device))
            adopt_fp8_weight(layer, scale, weight.dtype, stored)
            if weight.device.type not in ("cpu", "meta"):
                weight.data = weight.data.to("cpu")  # park the original off the accelerator (same Parameter object)

    def restore(self) -> None:
        for layer, weight, device in self.layers:
            if weight.device != device:
                weight.data = weight.data.to(device)
            layer._parameters["weight"] = weight
            layer._buffers.pop("fp8_scale", None)
            layer.__dict__.pop("forward", None)
            layer.__dict__.pop("compute_dtype", None)
        self.layers = []


def linear_weight_bytes(model: nn.Module) -> int:
    """Bytes of the weights of the Linear layers ``model`` holds now (peft's lora_* layers excluded)."""
    total = 0
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and not any(p.startswith("lora_") for p in name.split(".")):
            total += module.weight.numel() * module.weight.element_size()
    return total


# ---- block offload ----------------------------------------------------------------------------------------------
def _is_adapter_tensor(name: str) -> bool:
    return any(part.startswith("lora_") for part in name.split("."))


def _tensor_slots(block: nn.Module):
    """(owning module, slot dict, key, qualified name) of every parameter and buffer of ``block``."""
    for module_name, module in block.named_modules():
        for slots in (module._parameters, module._buffers):
            for key, tensor in slots.items():
                if tensor is not None:
                    yield module, slots, key, f"{module_name}.{key}" if module_name else key


class _Onloaded:
    """Within the block: every tensor of it that is not on ``device`` is replaced by a copy there, restored after.
    The copies are ordinary tensors, freed once the forward (and whatever autograd keeps) lets go of them; a trainable
    tensor's copy is differentiable, so its gradient still reaches the original."""

    def __init__(self, block: nn.Module, device: torch.device):
        self.block, self.device, self.swapped = block, device, []

    def __enter__(self):
        for _, slots, key, _ in _tensor_slots(self.block):
            tensor = slots[key]
            if tensor.device != self.device:
                self.swapped.append((slots, key, tensor))
                slots[key] = tensor.to(self.device, non_blocking=True)
        return self

    def __exit__(self, *exc):
        for slots, key, tensor in self.swapped:
            slots[key] = tensor
        self.swapped = []


_OFFLOADED_CLASSES: dict[type, type] = {}


def _offloaded_class(cls: type) -> type:
    """A subclass of the block's class whose forward runs the original one with the block copied in. Put in the
    class, not the instance, so checkpointing's recompute (which calls ``type(block).forward``) onloads as well."""
    if cls not in _OFFLOADED_CLASSES:
        def forward(self, *args, **kwargs):
            with _Onloaded(self, self._motion_core_onload_device):
                return cls.forward(self, *args, **kwargs)

        _OFFLOADED_CLASSES[cls] = type(f"Offloaded{cls.__name__}", (cls,), {"forward": forward,
                                                                            "__module__": cls.__module__})
    return _OFFLOADED_CLASSES[cls]


class BlockOffload:
    """Base tensors of ``blocks`` on ``offload_device`` between their forwards; see the module docstring."""

    def __init__(self, blocks: Iterable[nn.Module], onload_device, offload_device="cpu"):
        self.onload_device, self.offload_device = torch.device(onload_device), torch.device(offload_device)
        self.blocks = list(blocks)
        self.homes: list[tuple[torch.Tensor, torch.device]] = []
        for block in self.blocks:
            if type(block) in _OFFLOADED_CLASSES.values():
                raise InvalidInputError("Block offload is already on for this model; turn it off before enabling it.")
            for _, slots, key, name in _tensor_slots(block):
                tensor = slots[key]
                if not _is_adapter_tensor(name):
                    self.homes.append((tensor, tensor.device))
                    tensor.data = tensor.data.to(self.offload_device)
            block._motion_core_onload_device = self.onload_device
            block.__class__ = _offloaded_class(type(block))
        self.place_adapters()

    def place_adapters(self) -> None:
        """Adapter tensors onto the accelerator (peft puts a new adapter where its base layer's weight is: here the
        CPU). Call after injecting adapters and before building the optimizer, which must see them where they train."""
        for block in self.blocks:
            for _, slots, key, name in _tensor_slots(block):
                tensor = slots[key]
                if _is_adapter_tensor(name) and tensor.device != self.onload_device:
                    tensor.data = tensor.data.to(self.onload_device)

    def restore(self) -> None:
        """Blocks back to their own class and every base tensor back where it was (adapters are not touched)."""
        for block in self.blocks:
            if type(block) in _OFFLOADED_CLASSES.values():
                block.__class__ = type(block).__mro__[1]
            block.__dict__.pop("_motion_core_onload_device", None)
        for tensor, device in self.homes:
            if tensor.device != device:
                tensor.data = tensor.data.to(device)
        self.blocks, self.homes = [], []


def is_offloaded(block: nn.Module) -> bool:
    return type(block) in _OFFLOADED_CLASSES.values()


# ---- one run's memory plan ----------------------------------------------------------------------------------------
class MemoryPlan:
    """The options applied to one backbone's denoiser for one run; ``restore`` undoes them in reverse order."""

    def __init__(self, backbone, options: MemoryOptions, device):
        options.validate()
        self.options = options
        self.fp8: Fp8Storage | None = None
        self.offload: BlockOffload | None = None
        if options.block_offload and getattr(backbone, "offload_blocks", None) is None:
            raise InvalidInputError(f"Block offload is available for transformer families (Wan); the "
                                    f"{backbone.family} model has no block list. Turn block_offload off.")
        try:
            if options.base_storage == "fp8":
                self.fp8 = Fp8Storage(backbone.denoiser)
            if options.block_offload:
                blocks = list(backbone.offload_blocks)
                count = len(blocks) if options.offload_count is None else min(int(options.offload_count), len(blocks))
                self.offload = BlockOffload(blocks[:count], device)
        except BaseException:
            self.restore()
            raise

    @property
    def offloads_blocks(self) -> bool:
        return self.offload is not None

    @property
    def offloaded(self) -> list:
        """The blocks kept on the host (empty without block offload)."""
        return list(self.offload.blocks) if self.offload is not None else []

    def adapters_added(self) -> None:
        if self.offload is not None:
            self.offload.place_adapters()

    def restore(self) -> None:
        if self.offload is not None:
            self.offload.restore()
            self.offload = None
        if self.fp8 is not None:
            self.fp8.restore()
            self.fp8 = None


def move_outside_blocks(model: nn.Module, blocks: Iterable[nn.Module], device) -> None:
    """Every parameter and buffer of ``model`` except those of ``blocks`` to ``device``: with block offload the
    blocks stay on the CPU and only the rest (embeddings, head, modulation: a few hundred MB on a 14B) moves."""
    inside = {id(t) for block in blocks for t in [*block.parameters(), *block.buffers()]}
    device = torch.device(device)
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) not in inside and tensor.device != device:
            tensor.data = tensor.data.to(device)
