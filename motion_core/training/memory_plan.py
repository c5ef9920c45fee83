"""The memory plan of one training run: predicted peak accelerator and host memory, from the architecture.

What a run holds at its peak, and where each figure comes from:

- weights: the denoiser's parameters and buffers, by dtype, read from the loaded model (exact). fp8 storage turns
  each base Linear weight (memory.fp8_linear_names) into one byte per element plus a scale, the original parked on
  the CPU (on a CPU run it stays where it is, so fp8 costs memory there instead of saving it); a model loaded as its
  fp8 file stores it already counts one byte per such weight, and fp8 storage has nothing left to convert; block
  offload keeps the offloaded blocks' tensors on the host and copies one block at a time to the accelerator.
- adapters: the recipe's LoRA tensors (injected into a meta-device copy of the denoiser, so their count and dtype are
  exactly what the run will have), their gradients and AdamW's two moments.
- activations: one training step's forward and backward (all the recipe's adapters on, the clip's latents and text
  states of the planned size) run on a META copy of the denoiser (step_trace.py): no weights, no compute.
  A dispatch mode counts every tensor storage the step creates and every one it frees, so the figure is the step's
  live-bytes peak (saved activations, the recompute of a checkpointed block, gradients, temporaries). Attention is
  counted as a fused kernel does (output and log-sum-exp saved, no [L, L] matrix), which is what PyTorch's SDPA runs
  on CUDA and on the CPU for these models.
- samples: the cached latents (float32) and text states of every clip.
- encoders: VAE and text encoder. On CUDA they wait on the host while the denoiser trains (trainer._offload_encoders)
  and are on the accelerator only while the clips are cached; on the CPU they are simply in memory.

The activation trace is what the plan costs (a second or two for a real 1.3B; milliseconds for the tiny models);
traces are cached per architecture, adapters, shapes and checkpointing. ``auto_memory`` picks options from these
predictions; ``python -m motion_core.bench memory`` compares them with measured process memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..backbones.base import PlanningShapes
from ..backbones.memory import fp8_linear_names, is_fp8
from .step_trace import StepTrace, tensor_bytes, trace_step

GIB = 2**30
MIB = 2**20


# ---- what is chosen ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MemorySettings:
    """The memory options of one run: what auto chooses, or the user's in manual mode."""

    gradient_checkpointing: bool = True
    base_storage: str = "native"
    offloaded_blocks: int = 0
    """How many transformer blocks stay on the host (0: block offload off)."""

    @property
    def block_offload(self) -> bool:
        return self.offloaded_blocks > 0

    def describe(self, total_blocks: int | None = None) -> str:
        parts = ["gradient checkpointing " + ("on" if self.gradient_checkpointing else "off"),
                 "base weights in fp8" if self.base_storage == "fp8" else "base weights native"]
        if self.offloaded_blocks:
            of = f" of {total_blocks}" if total_blocks else ""
            parts.append(f"{self.offloaded_blocks}{of} blocks offloaded to the host")
        return ", ".join(parts)


def module_bytes(module: nn.Module | None) -> int:
    if module is None or not isinstance(module, nn.Module):
        return 0
    return tensor_bytes([*module.parameters(), *module.buffers()])


def bytes_by_dtype(module: nn.Module) -> dict[str, int]:
    out: dict[str, int] = {}
    seen = set()
    for t in [*module.parameters(), *module.buffers()]:
        if id(t) in seen:
            continue
        seen.add(id(t))
        key = str(t.dtype).replace("torch.", "")
        out[key] = out.get(key, 0) + t.numel() * t.element_size()
    return out


@dataclass(frozen=True)
class WeightFacts:
    """The loaded denoiser's weights as the memory options see them (adapters of earlier LoRAs excluded)."""

    total: int
    by_dtype: dict[str, int]
    fp8_saving_elements: int
    """Elements of the base Linear weights fp8 storage converts."""
    fp8_original_bytes: int
    """Their bytes now (what fp8 storage parks on the host)."""
    fp8_layers: int
    """How many layers it converts (one float32 scale each)."""
    largest_linear: int
    """Bytes of the largest such weight in its compute dtype (fp8's per-layer upcast copy)."""
    stored_fp8_largest: int
    """The same for the Linear weights already in fp8 (a model loaded as its fp8 file stores it): their upcast copy
    is made per layer whatever the settings, and fp8 storage has nothing left to convert there."""
    block_bytes: tuple[int, ...]
    """Bytes of each offloadable block (empty: the family has no block list)."""
    block_fp8_bytes: tuple[int, ...]
    """Bytes of each block with its Linear weights in fp8."""
    encoders: int
    """VAE + text encoder."""

    @classmethod
    def of(cls, backbone) -> "WeightFacts":
        denoiser = backbone.denoiser
        fp8_names = set(fp8_linear_names(denoiser))
        base_params = {name: p for name, p in denoiser.named_parameters() if "lora_" not in name}
        total = tensor_bytes([*base_params.values(), *denoiser.buffers()])
        by_dtype: dict[str, int] = {}
        for p in [*base_params.values(), *denoiser.buffers()]:
            key = str(p.dtype).replace("torch.", "")
            by_dtype[key] = by_dtype.get(key, 0) + p.numel() * p.element_size()
        elements = original = largest = stored_largest = 0
        fp8_weight_ids = set()
        for name in fp8_names:
            layer = denoiser.get_submodule(name)
            weight = layer.weight
            if is_fp8(weight):
                compute = getattr(layer, "compute_dtype", backbone.dtype)
                stored_largest = max(stored_largest, weight.numel() * compute.itemsize)
                continue
            fp8_weight_ids.add(id(weight))
            elements += weight.numel()
            original += weight.numel() * weight.element_size()
            largest = max(largest, weight.numel() * weight.element_size())
        blocks, blocks_fp8 = [], []
        for block in getattr(backbone, "offload_blocks", None) or ():
            tensors = [t for name, t in [*block.named_parameters(), *block.named_buffers()] if "lora_" not in name]
            plain = tensor_bytes(tensors)
            converted = sum(t.numel() * (t.element_size() - 1) for t in tensors if id(t) in fp8_weight_ids)
            blocks.append(plain)
            blocks_fp8.append(plain - converted)
        encoders = sum(module_bytes(part) for part in backbone.encoders())
        return cls(total, by_dtype, elements, original, len(fp8_weight_ids), largest, stored_largest, tuple(blocks),
                   tuple(blocks_fp8), encoders)


# ---- the plan -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryPlan:
    """Predicted peaks of one run with ``settings`` on ``device`` (bytes), what they are made of and the verdict."""

    device: str
    settings: MemorySettings
    device_peak: int
    host_peak: int
    parts: dict[str, int]
    """device-side parts of the peak: weights, adapters, optimizer, activations, samples, encoders, transient."""
    tokens: int
    frames: int
    width: int
    height: int
    blocks: int = 0
    mode: str = "manual"
    available: int | None = None
    """Bytes free for this run on the device (None: not known)."""
    margin: float = 0.1
    considered: tuple[str, ...] = field(default_factory=tuple)
    """One line per cheaper setting auto rejected, with its predicted peak."""
    loading_host: int | None = None
    """Predicted peak host bytes while the model loads (plans made before loading: preload_plan.py)."""
    planned_from: str = ""
    """Where a plan made before loading read the architecture ("the files' headers"); empty after loading."""

    @property
    def shared_memory(self) -> bool:
        """CPU runs: the device is the host, so the two peaks are one."""
        return self.device == "cpu"

    @property
    def needed(self) -> int:
        """Device bytes the plan asks for, margin included."""
        return int(self.device_peak * (1.0 + self.margin))

    @property
    def fits(self) -> bool | None:
        return None if self.available is None else self.needed <= self.available

    def summary(self) -> str:
        where = "CPU memory (device and host are one)" if self.shared_memory else f"{self.device} memory"
        when = f", before loading, from {self.planned_from}" if self.planned_from else ""
        lines = [f"Memory plan ({self.mode}{when}): {self.frames} frames at {self.width}x{self.height} = "
                 f"{self.tokens} tokens on {self.device}",
                 f"  settings: {self.settings.describe(self.blocks)}",
                 f"  predicted peak {where}: {_gib(self.device_peak)}"
                 + ("" if self.shared_memory else f"; host: {_gib(self.host_peak)}")]
        shown = ", ".join(f"{k} {_gib(v)}" for k, v in self.parts.items() if v)
        lines.append(f"  made of: {shown}")
        if self.loading_host is not None:
            lines.append(f"  host memory while loading: {_gib(self.loading_host)} (the weights as loaded and the "
                         "reader's buffers)")
        if self.available is not None:
            verdict = "fits" if self.fits else "does NOT fit"
            lines.append(f"  free: {_gib(self.available)}; needed with a {self.margin:.0%} margin: "
                         f"{_gib(self.needed)}: {verdict}")
        lines += [f"  rejected: {line}" for line in self.considered]
        return "\n".join(lines)


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB" if abs(n) >= 0.1 * GIB else f"{n / MIB:.0f} MiB"


@dataclass
class Predictor:
    """Predicts a run's peaks for any settings; traces are made on first need and kept."""

    backbone: object
    recipe: object
    frames: int
    width: int
    height: int
    rank: int
    alpha: float
    dropout: float
    device: torch.device
    clips: int = 1
    autocast_dtype: torch.dtype | None = None
    weights: WeightFacts = None
    shapes: PlanningShapes = None

    def __post_init__(self):
        self.device = torch.device(self.device)
        if self.weights is None:
            self.weights = WeightFacts.of(self.backbone)
        if self.shapes is None:
            self.shapes = self.backbone.planning_shapes(self.frames, self.height, self.width)

    @property
    def blocks(self) -> int:
        return len(self.weights.block_bytes)

    def trace(self, checkpointing: bool) -> StepTrace:
        cast = self.autocast_dtype if self.autocast_dtype not in (None, self.backbone.dtype) else None
        return trace_step(self.backbone, self.recipe, shapes=self.shapes, checkpointing=checkpointing,
                          rank=self.rank, alpha=self.alpha, dropout=self.dropout, clips=self.clips,
                          compute_dtype=cast)

    def plan(self, settings: MemorySettings, *, mode: str = "manual", available: int | None = None,
             margin: float = 0.1, considered=()) -> MemoryPlan:
        w, on_cpu = self.weights, self.device.type == "cpu"
        trace = self.trace(settings.gradient_checkpointing)
        fp8 = settings.base_storage == "fp8"
        fp8_bytes = w.fp8_saving_elements + 4 * w.fp8_layers if fp8 else 0
        # Weights on the device: fp8 replaces the converted weights by one byte each; on the CPU the originals stay.
        weights = w.total - (w.fp8_original_bytes if fp8 and not on_cpu else 0) + fp8_bytes
        host_parked = w.fp8_original_bytes if fp8 and not on_cpu else 0
        transient = max(w.largest_linear if fp8 else 0, w.stored_fp8_largest)
        offloaded = settings.offloaded_blocks
        if offloaded and not on_cpu:
            sizes = (w.block_fp8_bytes if fp8 else w.block_bytes)[:offloaded]
            weights -= sum(sizes)
            host_parked += sum(sizes)
            transient += max(sizes)  # the block being run (or recomputed and back-propagated) is copied in
        adapters = trace.adapter_bytes
        optimizer = 2 * adapters
        samples = self.clips * (2 * 4 * _numel(self.shapes.latents)
                                + _numel(self.shapes.text_states) * self.backbone.dtype.itemsize)
        cast_copies = 0
        if self.autocast_dtype is not None and self.autocast_dtype != self.backbone.dtype:
            # autocast caches a cast copy of each weight it multiplies for the whole forward
            cast_copies = w.total * self.autocast_dtype.itemsize // max(self.backbone.dtype.itemsize, 1)
        parts = {"weights": weights, "adapters": adapters, "optimizer": optimizer, "activations": trace.peak,
                 "samples": samples, "autocast copies": cast_copies, "transient": transient}
        train_peak = sum(parts.values())
        if on_cpu:
            parts["encoders"] = w.encoders
            device_peak = train_peak + w.encoders
            host_peak = device_peak
        else:
            # Caching the clips: denoiser (as placed), VAE and text encoder on the device at once.
            cache_peak = weights + w.encoders + samples
            device_peak = max(train_peak, cache_peak)
            host_peak = host_parked + w.encoders
        return MemoryPlan(device=str(self.device), settings=settings, device_peak=int(device_peak),
                          host_peak=int(host_peak), parts=parts, tokens=self.shapes.tokens, frames=self.frames,
                          width=self.width, height=self.height, blocks=self.blocks, mode=mode,
                          available=available, margin=margin, considered=tuple(considered))


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n
