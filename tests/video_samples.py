"""Synthetic reference clips for tests: a red square moving left to right over a dark blue background.

Shared by the video-reader tests and the end-to-end tests. Every format the reader accepts can be written here, so
round-trip tests compare decoded frames against `sample_frames` with the same arguments.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

BACKGROUND = (20, 30, 90)
SQUARE = (230, 40, 30)

# Which PyAV encoder writes each container; all ship in the PyAV 18 wheel (libx264, libvpx, libvpx-vp9, mpeg4).
CONTAINER_CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx"}
ANIMATED_IMAGE_FORMATS = {".gif": "GIF", ".webp": "WEBP"}


def sample_frames(frames: int = 12, width: int = 64, height: int = 48) -> np.ndarray:
    """uint8 [F, H, W, 3]: the square (side = height/3) slides from the left edge to the right edge."""
    side = max(2, height // 3)
    top = (height - side) // 2
    video = np.empty((frames, height, width, 3), dtype=np.uint8)
    video[:] = BACKGROUND
    for i in range(frames):
        left = square_left(i, frames, width, height)
        video[i, top : top + side, left : left + side] = SQUARE
    return video


def square_left(index: int, frames: int, width: int, height: int) -> int:
    """Left edge of the square in frame `index`, so tests can predict where it should be."""
    side = max(2, height // 3)
    travel = width - side
    return round(travel * index / max(1, frames - 1))


def square_centroid_x(frame: np.ndarray) -> float:
    """Horizontal centre of the red square's pixels (tolerant of lossy codecs: thresholds, not equality)."""
    f = np.asarray(frame).astype(np.int16)
    mask = (f[..., 0] > 140) & (f[..., 2] < 100)
    if not mask.any():
        return float("nan")
    return float(np.nonzero(mask)[1].mean())


def write_sample_video(path, frames: int = 12, width: int = 64, height: int = 48, fps: float = 8) -> Path:
    """Write the sample clip to `path`, the format chosen by its extension.

    .mp4/.mov/.mkv (H.264), .webm (VP8), .gif and .webp (animated, Pillow); a path without an extension becomes a
    folder of numbered PNG frames (frame_0001.png, ...).
    """
    path = Path(path)
    video = sample_frames(frames, width, height)
    suffix = path.suffix.lower()
    if suffix in CONTAINER_CODECS:
        write_container(path, video, fps, CONTAINER_CODECS[suffix])
    elif suffix in ANIMATED_IMAGE_FORMATS:
        write_animated_image(path, video, fps)
    elif suffix == "":
        write_frames_folder(path, video)
    else:
        raise ValueError(f"write_sample_video cannot write {suffix!r} files")
    return path


def write_container(path, video: np.ndarray, fps: float, codec: str = "libx264", faststart: bool = False) -> Path:
    """Encode frames with PyAV; near-lossless settings keep the round-trip tolerances tight."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    container_options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=container_options) as container:
        stream = container.add_stream(codec, rate=_fps_fraction(fps))
        stream.width, stream.height = int(video.shape[2]), int(video.shape[1])
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "12", "preset": "ultrafast"}
        elif codec.startswith("libvpx"):
            stream.options = {"crf": "4", "b": "2M", "deadline": "realtime", "cpu-used": "8"}
        for frame in video:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_empty_container(path) -> Path:
    """A valid mp4 with no frames: with nothing encoded, FFmpeg stores no video stream either."""
    path = Path(path)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        container.start_encoding()
    return path


def write_animated_image(path, video: np.ndarray, fps: float) -> Path:
    """Animated GIF or WebP through Pillow (lossless WebP; GIF's palette is exact for two colours)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(frame) for frame in video]
    options = {"lossless": True} if path.suffix.lower() == ".webp" else {"optimize": False, "disposal": 1}
    images[0].save(
        path,
        format=ANIMATED_IMAGE_FORMATS[path.suffix.lower()],
        save_all=True,
        append_images=images[1:],
        duration=round(1000 / fps),
        loop=0,
        **options,
    )
    return path


def write_frames_folder(path, video: np.ndarray, ext: str = "png", name: str = "frame_{:04d}", first: int = 1) -> Path:
    """One image per frame, numbered from `first`; `name` is a format string for the stem."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(video):
        Image.fromarray(frame).save(path / f"{name.format(first + i)}.{ext}", quality=95)
    return path


def _fps_fraction(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)
