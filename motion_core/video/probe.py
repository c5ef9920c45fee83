"""probe_video: what a reference video is (size, fps, frame count) without decoding its frames, for node UIs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .locate import locate_video
from .readers import open_video


@dataclass(frozen=True)
class VideoInfo:
    """frame_count is None where the format does not state it (webm, gif, webp) and counting would mean decoding."""

    path: str
    kind: str
    width: int
    height: int
    fps: float
    frame_count: int | None


def probe_video(path, *, folder_fps: float = 8.0, search_dirs: Sequence = ()) -> VideoInfo:
    file = locate_video(path, search_dirs)
    with open_video(file, folder_fps) as source:
        return VideoInfo(str(file), source.kind, source.width, source.height, source.fps, source.frame_count)
