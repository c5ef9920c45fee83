"""``memory: auto``: the cheapest memory settings whose predicted peak fits the device's free memory with a margin.

Order of preference (cheapest first), each tried only if everything before it does not fit:
1. nothing: no checkpointing, native weights, no offload (the fastest step: on ShapesT2V checkpointing alone makes
   the naive recipe's step about 1.5x slower, docs/benchmarks.md);
2. gradient checkpointing (exact: the same gradients, one more forward per step);
3. + fp8 storage of the frozen base (lossy: the weights the LoRA trains against are rounded to 3 mantissa bits, so
   it comes after the exact option although its time cost is smaller);
4. + block offload of the fewest blocks that fit (Wan; each offloaded block is copied to the device twice a step).
A base loaded as its fp8 file stores it is in fp8 already (the plan reads its bytes): 3 is skipped, nothing is
converted twice.
On the CPU fp8 storage and offload save nothing (the originals stay in the same memory; "offloaded" blocks are
already there), so only 1 and 2 are candidates. Options the user set explicitly are kept and only the others chosen.
When nothing fits, ``MemoryPlanError`` says what is needed, what is free and what would fit.

Free memory: on CUDA ``torch.cuda.mem_get_info`` plus what PyTorch's allocator holds unused plus what the model
already occupies there (the run reuses it); on the CPU ``MemAvailable`` (bounded by a cgroup limit when one is
set) plus what the model already holds in RAM. Elsewhere it is unknown: the plan is reported without a verdict and
auto keeps the manual defaults.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..errors import InvalidInputError
from .memory_plan import GIB, MemoryPlan, MemorySettings, Predictor, _gib, module_bytes

DEFAULT_MARGIN = 0.10
"""Fraction added to the predicted device peak before comparing with free memory (allocator fragmentation, what the
prediction does not see: the CUDA context's growth, cuDNN/cuBLAS workspaces, the VAE's activations while caching)."""


class MemoryPlanError(InvalidInputError):
    """No memory setting fits; the message says what is needed, what is free and what would fit."""

    def __init__(self, message: str, plan: MemoryPlan):
        super().__init__(message)
        self.plan = plan


# ---- free memory --------------------------------------------------------------------------------------------------
def _meminfo_available() -> int | None:
    try:
        match = re.search(r"^MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    except OSError:
        match = None
    if match:
        return int(match.group(1)) * 1024
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - no psutil or no reading: unknown
        return None


def _cgroup_room() -> int | None:
    """Bytes left under this process's cgroup v2 memory limit, or None without one."""
    root = Path("/sys/fs/cgroup")
    try:
        limit, current = (root / "memory.max").read_text().strip(), (root / "memory.current").read_text().strip()
    except OSError:
        return None
    if limit == "max":
        return None
    return max(0, int(limit) - int(current))


def free_bytes(device) -> int | None:
    """Bytes a new allocation on ``device`` can get now, or None where that cannot be read."""
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return None
        index = device.index if device.index is not None else torch.cuda.current_device()
        free, _ = torch.cuda.mem_get_info(index)
        cached = torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
        return int(free + max(0, cached))
    if device.type == "cpu":
        available, room = _meminfo_available(), _cgroup_room()
        if available is None:
            return room
        return available if room is None else min(available, room)
    return None


def resident_bytes(backbone, device) -> int:
    """Bytes of the backbone's tensors already on ``device`` (the run takes them over instead of allocating)."""
    device = torch.device(device)
    total = 0
    for part in (backbone.denoiser, *backbone.encoders()):
        if isinstance(part, torch.nn.Module):
            seen = set()
            for t in [*part.parameters(), *part.buffers()]:
                if id(t) not in seen and t.device.type == device.type and (
                        device.index is None or t.device.index in (None, device.index)):
                    seen.add(id(t))
                    total += t.numel() * t.element_size()
    return total


def available_bytes(backbone, device) -> int | None:
    free = free_bytes(device)
    return None if free is None else free + resident_bytes(backbone, device)


# ---- choosing -----------------------------------------------------------------------------------------------------
def candidates(predictor: Predictor, fixed: dict) -> list[MemorySettings]:
    """The settings auto may pick, cheapest first, within what the user fixed."""
    on_cpu = predictor.device.type == "cpu"
    blocks = predictor.blocks
    out = [MemorySettings(False), MemorySettings(True)]
    if not on_cpu:
        # A base already in fp8 (loaded as its file stores it) has nothing left to convert: offload is the next lever.
        storage = "fp8" if predictor.weights.fp8_saving_elements else "native"
        if storage == "fp8":
            out.append(MemorySettings(True, "fp8"))
        out += [MemorySettings(True, storage, k) for k in range(1, blocks + 1)]
    if "base_storage" in fixed or "block_offload" in fixed:
        # What the user fixed replaces the matching dimension; offload set by hand means every block.
        storage = fixed.get("base_storage")
        offload = fixed.get("block_offload")
        reshaped = []
        for c in out:
            s = storage or c.base_storage
            k = c.offloaded_blocks
            if offload is True:
                k = blocks
            elif offload is False:
                k = 0
            reshaped.append(MemorySettings(c.gradient_checkpointing or k > 0, s, k))
        out = list(dict.fromkeys(reshaped))
    if "gradient_checkpointing" in fixed:
        out = [c for c in out if c.gradient_checkpointing == fixed["gradient_checkpointing"]]
    return out


def manual_settings(config, blocks: int) -> MemorySettings:
    options = config.memory_options
    count = 0
    if options.block_offload:
        count = blocks if options.offload_count is None else min(int(options.offload_count), blocks)
    checkpointing = True if config.gradient_checkpointing is None else bool(config.gradient_checkpointing)
    return MemorySettings(checkpointing, options.base_storage, count)


def choose(predictor: Predictor, *, available: int | None, fixed: dict | None = None,
           margin: float = DEFAULT_MARGIN) -> MemoryPlan:
    """The plan of the cheapest candidate that fits ``available`` bytes; MemoryPlanError when none does."""
    options = candidates(predictor, fixed or {})
    if not options:
        raise InvalidInputError("The memory options set leave nothing to choose from; unset one of them.")
    if available is None:  # nothing to compare with: what manual mode would do, reported without a verdict
        default = MemorySettings(fixed.get("gradient_checkpointing", True) if fixed else True,
                                 options[0].base_storage, options[0].offloaded_blocks)
        return predictor.plan(default, mode="auto", margin=margin)
    rejected = []
    plan = None
    for settings in options:
        plan = predictor.plan(settings, mode="auto", available=available, margin=margin, considered=rejected)
        if plan.fits:
            return plan
        rejected.append(f"{settings.describe(predictor.blocks)}: {_gib(plan.device_peak)}")
    raise MemoryPlanError(refusal(predictor, plan, available), plan)


def refusal(predictor: Predictor, plan: MemoryPlan, available: int) -> str:
    """What is needed, what is free, what would fit: fewer frames, a smaller size, or a smaller model."""
    fixed = plan.device_peak - plan.parts["activations"] - plan.parts["samples"]
    per_token = (plan.parts["activations"] + plan.parts["samples"]) / max(plan.tokens, 1)
    room = available / (1.0 + plan.margin) - fixed
    message = (f"This run needs about {_gib(plan.needed)} of {plan.device} memory even with "
               f"{plan.settings.describe(plan.blocks)} ({_gib(plan.device_peak)} predicted + {plan.margin:.0%} "
               f"margin), but {_gib(available)} is free.")
    if room <= 0:
        return (f"{message} The model alone (weights, adapters, optimiser) needs {_gib(int(fixed))}: use a smaller "
                f"model (e.g. Wan 2.1 1.3B instead of a 14B), or free memory (close other programs, or another "
                f"device).")
    ideas = []
    frames = _fewer_frames(predictor, room, per_token)
    if frames:
        ideas.append(f"{frames} frames at {predictor.width}x{predictor.height}")
    size = _smaller_size(predictor, room, per_token)
    if size:
        ideas.append(f"{size[0]}x{size[1]} at {predictor.frames} frames")
    if ideas:
        return f"{message} What would fit: {' or '.join(ideas)}; or a smaller model, or free memory."
    return f"{message} Even the shortest clip does not fit: use a smaller model, or free memory."


def _tokens(backbone, frames: int, width: int, height: int) -> int:
    return backbone.planning_shapes(frames, height, width).tokens


def _fewer_frames(predictor: Predictor, room: float, per_token: float) -> int | None:
    backbone = predictor.backbone
    frames = predictor.frames - 1
    while frames >= 1:
        frames = backbone.frames_up_to(frames) if frames > 1 else 1
        try:
            backbone.check_video_frames(frames)
            tokens = _tokens(backbone, frames, predictor.width, predictor.height)
        except InvalidInputError:
            tokens = None
        if tokens is not None and tokens * per_token <= room:
            return frames
        frames -= 1
    return None


def _smaller_size(predictor: Predictor, room: float, per_token: float) -> tuple[int, int] | None:
    backbone = predictor.backbone
    step = int(getattr(backbone, "pixel_multiple", 0) or 0) if backbone.vae is not None else 0
    step = step or 16
    for tenths in range(9, 1, -1):
        width = max(step, int(predictor.width * tenths / 10) // step * step)
        height = max(step, int(predictor.height * tenths / 10) // step * step)
        if _tokens(backbone, predictor.frames, width, height) * per_token <= room:
            return width, height
    return None


# ---- one run ------------------------------------------------------------------------------------------------------
def plan_run(backbone, recipe, config, settings, device, *, clips: int = 1,
             available: int | None = None, margin: float = DEFAULT_MARGIN) -> MemoryPlan:
    """The plan of one run: auto's choice (or MemoryPlanError), or the user's settings in manual mode.
    ``settings``: the run's ResolvedSettings (rank, alpha, dropout); ``available`` overrides the reading.
    Planning draws nothing from the run's random streams: a seeded run trains the same LoRA with or without it."""
    with torch.random.fork_rng(devices=[]):
        return _plan_run(backbone, recipe, config, settings, device, clips=clips, available=available, margin=margin)


def _plan_run(backbone, recipe, config, settings, device, *, clips, available, margin) -> MemoryPlan:
    from .precision import Precision

    device = torch.device(device)
    precision = Precision(config.mixed_precision, device) if device.type in ("cpu", "cuda") else None
    predictor = Predictor(backbone, recipe, frames=config.frames, width=config.width, height=config.height,
                          rank=settings.rank, alpha=settings.alpha, dropout=settings.dropout, device=device,
                          clips=clips, autocast_dtype=precision.dtype if precision else None)
    if available is None:
        available = available_bytes(backbone, device)
    if config.memory == "manual":
        return predictor.plan(manual_settings(config, predictor.blocks), mode="manual", available=available,
                          margin=margin)
    return choose(predictor, available=available, fixed=config.fixed_memory_options, margin=margin)


__all__ = ["DEFAULT_MARGIN", "GIB", "MemoryPlanError", "available_bytes", "candidates", "choose", "free_bytes",
           "manual_settings", "module_bytes", "plan_run", "refusal", "resident_bytes"]
