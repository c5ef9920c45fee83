"""Peak resident memory (RSS) of one block of CPU work, above what the process held when the block began.

Why: the process-wide high-water mark (``getrusage``) never goes down, so in a bench that trains one recipe after
another only the first recipe showed a figure and the rest showed +0. Linux lets a process reset its own mark
(writing 5 to ``/proc/self/clear_refs`` sets VmHWM to the current RSS). Before the reset, ``malloc_trim`` hands the
allocator's free pages back to the system, so memory freed by an earlier recipe and reused by this one counts
again. Where either is missing (not Linux, or a /proc that refuses the write) the figure is None, never a guess.
"""

from __future__ import annotations

import ctypes
import re
from pathlib import Path
from typing import Self

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise OSError(f"{field} is not in {_STATUS}")
    return int(match.group(1))


def _trim_heap() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to hand back, the figure may only be higher
        pass


class PeakRss:
    """``with PeakRss() as peak: work()`` then ``peak.mib``: the block's peak RSS growth in MiB, or None where the
    system cannot measure it."""

    def __init__(self) -> None:
        self.mib: float | None = None
        self._baseline_kib: int | None = None

    def __enter__(self) -> Self:
        _trim_heap()
        try:
            _CLEAR_REFS.write_text("5")
            self._baseline_kib = _status_kib("VmRSS")
        except OSError:
            self._baseline_kib = None
        return self

    def __exit__(self, *exc) -> None:
        if self._baseline_kib is None:
            return
        try:
            self.mib = max(0, _status_kib("VmHWM") - self._baseline_kib) / 1024.0
        except OSError:
            self.mib = None
