"""The common shape every reader returns: metadata known up front plus a lazy, streaming frame iterator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import logging

import numpy as np

from ..errors import VideoReadError

log = logging.getLogger(__name__)


class SourceFrame(NamedTuple):
    """One decoded frame. `to_rgb` converts on demand, so skipped frames never pay for colour conversion."""

    index: int
    time: float
    to_rgb: Callable[[], np.ndarray]


class DecodeStopped(Exception):
    """Raised by a reader's frame generator when the file turns out truncated or corrupt mid-stream."""


@dataclass
class FrameSource:
    """An opened video. `frames()` streams SourceFrames in order and stops as soon as the caller stops pulling.

    A file that breaks after some frames decoded ends early (the reason is kept in `stopped_early`, so a too-short
    result can say why); one that breaks before any frame is a VideoReadError.
    """

    path: Path
    kind: str
    width: int
    height: int
    fps: float
    frame_count: int | None
    _frames: Iterator[SourceFrame] = field(repr=False)
    _close: Callable[[], None] = field(default=lambda: None, repr=False)
    stopped_early: str = ""
    duration: float | None = None
    """Seconds of video the header states, where it does (webm states no frame count, only this)."""

    def frames(self) -> Iterator[SourceFrame]:
        decoded, last_time = 0, 0.0
        try:
            for frame in self._frames:
                decoded += 1
                last_time = frame.time
                yield frame
        except DecodeStopped as stop:
            # The decoder's own words go to the log only: users get what it means, not library internals.
            log.info("%s: decoder stopped after %d frames: %s", self.path, decoded, stop)
            if decoded == 0:
                raise VideoReadError(
                    f"{str(self.path)!r} is corrupt or truncated: no frame could be decoded. Re-export or "
                    "re-download it, or re-encode with `ffmpeg -i input -c:v libx264 -pix_fmt yuv420p output.mp4`."
                ) from None
            self.stopped_early = f"frame {decoded + 1} could not be decoded: the file is truncated or corrupt there"
        if 0 < decoded < (self.frame_count or 0) and not self.stopped_early:
            self.stopped_early = f"the file ends after frame {decoded} of the {self.frame_count} its header states"
        # Cut webm/mkv files decode cleanly up to the cut and state no frame count: only their duration tells.
        if decoded and not self.stopped_early and self.duration and last_time + 2.0 / self.fps < self.duration:
            self.stopped_early = (f"the file ends at {last_time + 1.0 / self.fps:.2f} s of the {self.duration:.2f} s "
                                  "its header states (truncated)")
        if decoded == 0:
            raise VideoReadError(
                f"{str(self.path)!r} contains no video frames. Check that the export finished, or pick another file."
            )

    def close(self) -> None:
        self._close()

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
