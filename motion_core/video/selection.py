"""Which source frames make the clip: start, every n-th, nearest-in-time resampling and a cap, all streaming.

Each stage is a generator, so when the cap is reached the decoder is simply not asked for more frames.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from .source import SourceFrame

_EPS = 1e-6


def select_frames(
    frames: Iterable[SourceFrame],
    *,
    start_frame: int = 0,
    every_nth: int = 1,
    target_fps: float = 0.0,
    frame_cap: int = 0,
    source_fps: float,
) -> Iterator[SourceFrame]:
    """Frames after `start_frame`, every `every_nth`-th, then resampled to `target_fps` (0 keeps them), at most
    `frame_cap` (0 = all). every_nth is applied before resampling, so target_fps sees the thinned stream."""
    chosen: Iterator[SourceFrame] = islice(frames, start_frame, None, every_nth)
    if target_fps > 0:
        chosen = nearest_in_time(chosen, target_fps, frame_interval=every_nth / source_fps)
    return islice(chosen, frame_cap) if frame_cap > 0 else chosen


def nearest_in_time(frames: Iterable[SourceFrame], target_fps: float, frame_interval: float) -> Iterator[SourceFrame]:
    """For output times 0, 1/target_fps, ... yield the source frame closest in time (repeated when upsampling).

    Uses the frames' own timestamps, so variable-frame-rate sources resample correctly; needs one frame of
    lookahead to know where the current frame's time slot ends. The last frame covers half an interval after it.
    """
    k = 0
    origin = None
    previous: SourceFrame | None = None
    for frame in frames:
        origin = frame.time if origin is None else origin
        if previous is not None:
            boundary = (previous.time + frame.time) / 2 - origin
            while k / target_fps < boundary - _EPS:
                yield previous
                k += 1
        previous = frame
    if previous is not None:
        end = previous.time - origin + frame_interval / 2
        while k / target_fps < end - _EPS:
            yield previous
            k += 1
