"""A model as the memory plan sees it before loading: its Backbone with every part built on the meta device from
configs and file headers (no weight read), each tensor in the dtype the loader would give it, and the host memory the
load itself would take.

Why before loading: a run that cannot fit should say so in a second, not after minutes of reading a 14B model (and
not after the host ran out of memory while reading it). The plan made on this backbone is the plan made on the loaded
one (training/preload_plan.py), because the meta parts are the loaded parts without their data: the same classes,
configs, tensor names, shapes and dtypes (an fp8 file's kept Linear weights included).

Host memory while loading (``loading_host``), what each reader holds at its peak:
- a .safetensors file read by stream_read.SafetensorsStream: the tensors kept, in their loaded dtypes, plus the one
  16 MiB buffer widened tensors are read through; the pages of the file stay in the kernel's page cache, which is
  not the process's. ``bench memory --cases none`` measured 1.03x the file for a Wan 2.1 1.3B fp8 file kept in fp8
  and 2.01x widened to bf16 (docs/benchmarks.md), where this count gives 1.03x and 2.01x (tests/test_preload_plan.py).
- a diffusers folder read by diffusers / transformers ``from_pretrained``: they map each weights file and copy its
  tensors out, so the largest file's pages may be resident beside the model at once; counted as a bound (not
  measured).
The model is loaded on the CPU in both (train loads there first whenever memory options may apply).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import MotionCoreError
from .stream_read import CHUNK_BYTES


class NoPlanBeforeLoading(MotionCoreError):
    """This model's family or files cannot be planned before loading; the message says why. The caller plans after
    loading instead, and says so."""


@dataclass(frozen=True)
class PlannedModel:
    """A backbone on the meta device and what loading it would cost the host."""

    backbone: object
    """The family's Backbone, every part on the meta device in its loaded dtypes."""
    loading_host: int
    """Predicted peak host bytes while the model loads (see the module docstring)."""
    how: str
    """Where the architecture came from, in a user's words (for the plan's summary)."""


def parts_bytes(backbone) -> int:
    """Bytes of the denoiser and every encoder as loaded (tied tensors once)."""
    seen, total = set(), 0
    for part in (backbone.denoiser, *backbone.encoders()):
        for tensor in [*part.parameters(), *part.buffers()]:
            if id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
    return total


def streamed_loading_host(backbone) -> int:
    """Host peak of a load through SafetensorsStream: the parts as kept plus its read buffer."""
    return parts_bytes(backbone) + CHUNK_BYTES


def mapped_loading_host(backbone, folders) -> int:
    """Host peak bound of a ``from_pretrained`` load: the parts plus the largest weights file of ``folders``, whose
    mapped pages may stay resident while its tensors are copied out."""
    from .folders import WEIGHT_SUFFIXES

    largest = 0
    for folder in folders:
        for entry in Path(folder).glob("*"):
            if entry.name.lower().endswith(WEIGHT_SUFFIXES) and entry.is_file():
                largest = max(largest, entry.stat().st_size)
    return parts_bytes(backbone) + largest
