"""Reading a .safetensors file one tensor at a time with plain reads, below every family.

Why not safetensors' ``safe_open``: it maps the whole file, and the tensors it hands out are backed by that map, so
the pages of every tensor read stay in the process's resident memory besides whatever is made from them (a 14B fp8
file cast to bf16 costs the 28 GB of bf16 plus the file's own pages). Here each tensor is read with ``readinto``
straight into a fresh tensor's memory: the process holds exactly the tensors it keeps, and the file's pages live in
the kernel's page cache, which is not the process's and is given back under pressure. (safetensors 0.8 has a
``pread`` backend that does the same, but the pack supports safetensors from 0.4, which ComfyUI installs.)

A file may be hostile: the header is read by ``files.safetensors_header`` (its size bounded), and every entry is
checked before any tensor data is read: a known dtype, a shape of non-negative sizes whose byte count equals the
entry's span, a span inside the data area, and no two spans overlapping, so reading every tensor never needs more
memory than the file's own size.
"""

from __future__ import annotations

import logging
import math
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import torch

from ..errors import ModelLoadError
from .files import safetensors_header

log = logging.getLogger(__name__)

DTYPES = {name: dtype for name, dtype in {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
    # torch 2.3 added the wider unsigned types; on older torch such a file is refused by name
    "U16": getattr(torch, "uint16", None), "U32": getattr(torch, "uint32", None), "U64": getattr(torch, "uint64", None),
}.items() if dtype is not None}
"""safetensors' dtype names -> torch dtypes (the names safetensors writes; little-endian, as the format is)."""


CHUNK_BYTES = 16 << 20
"""The piece ``read_as`` reads and converts at a time."""


@dataclass(frozen=True)
class Entry:
    """One tensor of the file: where its bytes are (relative to the data area) and what they are."""

    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


class SafetensorsStream:
    """``with SafetensorsStream(path) as stream: stream.read(key)``: the file's tensors, each read from disk when
    asked, after the whole table was checked (see the module docstring)."""

    def __init__(self, path):
        if sys.byteorder != "little":  # safetensors stores little-endian; a byte-for-byte read assumes the same
            raise ModelLoadError("Reading .safetensors files needs a little-endian machine.")
        self.path = Path(path)
        header = safetensors_header(self.path)
        # Raw reads go straight into each tensor (no buffer copy); the file stays open until close() / the with-block.
        self._file = open(self.path, "rb", buffering=0)  # noqa: SIM115
        self._buffer: torch.Tensor | None = None
        try:
            size = self._file.seek(0, 2)
            self._file.seek(0)
            (length,) = struct.unpack("<Q", self._file.read(8))
            self._data_start = 8 + length
            self.entries = _checked_entries(header, size - self._data_start, self.path.name)
        except BaseException:
            self._file.close()
            raise

    def keys(self) -> list[str]:
        """Tensor names in the order their bytes sit in the file (sequential reads)."""
        return list(self.entries)

    def spec(self, key: str) -> tuple[torch.dtype, tuple[int, ...]]:
        """(dtype, shape) of tensor ``key``, from the checked table (nothing is read)."""
        entry = self.entries[key]
        return entry.dtype, entry.shape

    def read(self, key: str) -> torch.Tensor:
        """The tensor ``key``, in a fresh CPU buffer that nothing else shares."""
        entry = self.entries[key]
        raw = torch.empty(entry.end - entry.begin, dtype=torch.uint8)
        self._read_bytes(key, entry.begin, raw)
        return raw.view(entry.dtype).reshape(entry.shape)

    def read_as(self, key: str, dtype: torch.dtype) -> torch.Tensor:
        """The tensor ``key`` converted to ``dtype`` on the way in: read piece by piece through one buffer this stream
        keeps (CHUNK_BYTES), so the stored form of a tensor is never held whole beside the converted one, and no
        freed copy is left between the tensors kept (glibc cannot return such holes to the system)."""
        entry = self.entries[key]
        if entry.dtype == dtype:
            return self.read(key)
        out = torch.empty(entry.shape, dtype=dtype)
        target, size = out.view(-1), entry.dtype.itemsize
        if self._buffer is None:
            self._buffer = torch.empty(CHUNK_BYTES, dtype=torch.uint8)
        step = CHUNK_BYTES // size
        for start in range(0, target.numel(), step):
            count = min(step, target.numel() - start)
            piece = self._buffer[: count * size]
            self._read_bytes(key, entry.begin + start * size, piece)
            target[start:start + count] = piece.view(entry.dtype)
        return out

    def _read_bytes(self, key: str, begin: int, into: torch.Tensor) -> None:
        """Fill the uint8 tensor ``into`` from byte ``begin`` of the data area."""
        count = into.numel()
        if not count:
            return
        view = memoryview(into.numpy()).cast("B")
        self._file.seek(self._data_start + begin)
        done = 0
        try:
            while done < count:
                got = self._file.readinto(view[done:])
                if not got:
                    raise ModelLoadError(f"{self.path.name} ends inside tensor {key!r}: the file was cut off while it "
                                         "was being read; re-download it.")
                done += got
        except OSError as error:
            log.warning("reading %s from %s failed: %s", key, self.path, error)
            raise ModelLoadError(f"{self.path.name} could not be read ({error.strerror or 'I/O error'}); check the "
                                 "disk, or re-download the file.") from error

    def close(self) -> None:
        self._file.close()
        self._buffer = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def meta_tensors(path) -> dict[str, torch.Tensor]:
    """The file's tensors as meta tensors of their stored dtype and shape, in file order: its checked header is all
    that is read (what the memory plan builds an architecture from before loading)."""
    with SafetensorsStream(path) as stream:
        return {key: torch.empty(e.shape, dtype=e.dtype, device="meta") for key, e in stream.entries.items()}


def _checked_entries(header: dict, data_size: int, name: str) -> dict[str, Entry]:
    """Every entry of ``header`` checked against the data area's size, sorted by position; a ModelLoadError naming
    the first bad one."""
    entries = {}
    for key, raw in header.items():
        entries[key] = _entry(key, raw, data_size, name)
    ordered = dict(sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)))
    last_end, last_key = 0, None
    for key, entry in ordered.items():
        if entry.begin < entry.end and entry.begin < last_end:
            raise ModelLoadError(f"{name} is not a valid .safetensors file: tensors {last_key!r} and {key!r} claim the "
                                 "same bytes. The file is damaged or crafted; re-download it from its publisher.")
        if entry.end > entry.begin:
            last_end, last_key = entry.end, key
    return ordered


def _entry(key: str, raw, data_size: int, name: str) -> Entry:
    def bad(why: str) -> ModelLoadError:
        return ModelLoadError(f"{name} is not a valid .safetensors file: tensor {str(key)[:80]!r} {why}. The file is "
                              "damaged or crafted; re-download it from its publisher.")

    if not isinstance(raw, dict):
        raise bad("has no description")
    dtype = DTYPES.get(raw.get("dtype")) if isinstance(raw.get("dtype"), str) else None
    if dtype is None:
        raise bad(f"is of an unknown type {str(raw.get('dtype'))[:20]!r} (known: {', '.join(DTYPES)})")
    shape, offsets = raw.get("shape"), raw.get("data_offsets")
    if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
        raise bad("has no valid shape")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
        raise bad("has no valid position")
    begin, end = offsets
    if not 0 <= begin <= end <= data_size:
        raise bad(f"lies at bytes {begin:,}-{end:,}, outside the file's {data_size:,} bytes of tensor data")
    needed = math.prod(shape) * dtype.itemsize
    if needed != end - begin:
        raise bad(f"is {list(shape)} of {raw['dtype']} ({needed:,} bytes) but spans {end - begin:,} bytes")
    return Entry(dtype, tuple(shape), begin, end)
