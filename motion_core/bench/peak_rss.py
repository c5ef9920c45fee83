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
import threading
import time
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


class SampledPeakRss:
    """``with SampledPeakRss() as peak: work()`` then ``peak.bytes``: the highest RSS a watcher thread saw (psutil,
    every millisecond) above the RSS at entry. For one measurement in a fresh subprocess, where a figure in bytes and
    the RSS at entry (``peak.baseline``, e.g. the weights already loaded) are wanted."""

    def __init__(self, interval_s: float = 0.001) -> None:
        import psutil

        self._process, self._interval = psutil.Process(), interval_s
        self.baseline = self.peak = 0
        self._running = False
        self._watcher = threading.Thread(target=self._watch, daemon=True)

    @property
    def bytes(self) -> int:
        return self.peak - self.baseline

    def _watch(self) -> None:
        while self._running:
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(self._interval)

    def __enter__(self) -> Self:
        _trim_heap()
        self.baseline = self.peak = self._process.memory_info().rss
        self._running = True
        self._watcher.start()
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(self._interval * 10)  # one more reading after the work's last allocation
        self._running = False
        self._watcher.join()


class SampledStatus:
    """``with SampledStatus() as peaks: work()`` then ``peaks.growth["RssAnon"]``: for each /proc/self/status field
    (VmRSS: all resident memory; RssAnon: the private part, what the process allocated; RssFile: mapped file pages),
    the highest value a watcher thread saw every millisecond, minus its value at entry, in bytes. For loading a model
    file, where a map of the file (RssFile) and the tensors made from it (RssAnon) must be told apart."""

    FIELDS = ("VmRSS", "RssAnon", "RssFile")

    def __init__(self, interval_s: float = 0.001) -> None:
        self._interval = interval_s
        self.baseline: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.end: dict[str, int] = {}
        self._running = False
        self._watcher = threading.Thread(target=self._watch, daemon=True)

    @staticmethod
    def read() -> dict[str, int]:
        text = _STATUS.read_text()
        out = {}
        for field in SampledStatus.FIELDS:
            match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
            if match is None:
                raise OSError(f"{field} is not in {_STATUS}")
            out[field] = int(match.group(1)) * 1024
        return out

    @property
    def growth(self) -> dict[str, int]:
        return {field: self.peak[field] - self.baseline[field] for field in self.FIELDS}

    @property
    def kept(self) -> dict[str, int]:
        """Growth at exit: what the work left resident."""
        return {field: self.end[field] - self.baseline[field] for field in self.FIELDS}

    def _sample(self) -> None:
        now = self.read()
        self.peak = {field: max(self.peak.get(field, 0), now[field]) for field in self.FIELDS}

    def _watch(self) -> None:
        while self._running:
            self._sample()
            time.sleep(self._interval)

    def __enter__(self) -> Self:
        _trim_heap()
        self.baseline = self.read()
        self.peak = dict(self.baseline)
        self._running = True
        self._watcher.start()
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(self._interval * 10)
        self._running = False
        self._watcher.join()
        self._sample()
        self.end = self.read()
