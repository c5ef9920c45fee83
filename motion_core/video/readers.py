"""Open any supported reference video as a streaming FrameSource."""

from __future__ import annotations

from pathlib import Path

from .animated_images import open_animated_image
from .containers import open_container
from .formats import ANIMATED_IMAGE, CONTAINER, reader_kind
from .frames_folder import open_frames_folder
from .source import FrameSource


def open_video(path: Path, folder_fps: float = 8.0) -> FrameSource:
    """Pick the reader by extension (or folder); nothing but headers is read until frames are pulled."""
    kind = reader_kind(path)
    if kind == CONTAINER:
        return open_container(path)
    if kind == ANIMATED_IMAGE:
        return open_animated_image(path)
    return open_frames_folder(path, folder_fps)
