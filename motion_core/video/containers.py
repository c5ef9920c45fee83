"""mp4 / webm / mov (and mkv, avi) through PyAV: packets are demuxed and decoded one frame at a time."""

from __future__ import annotations

from pathlib import Path

import av

from ..errors import VideoReadError
from .formats import CONTAINER
from .source import DecodeStopped, FrameSource, SourceFrame

_REENCODE = "re-encode it with `ffmpeg -i input -c:v libx264 -pix_fmt yuv420p output.mp4`"


def open_container(path: Path) -> FrameSource:
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise VideoReadError(
            f"{str(path)!r} is not a readable video ({_what(error)}). It may be truncated, corrupt or another kind "
            f"of file renamed; re-export it or {_REENCODE}."
        ) from None
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"{str(path)!r} has no video stream (audio only or empty). Pick a file with video.")
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or rate <= 0:
        container.close()
        raise VideoReadError(f"{str(path)!r} does not state a frame rate; {_REENCODE} -r 24.")
    fps = float(rate)
    return FrameSource(
        path=path,
        kind=CONTAINER,
        width=int(stream.codec_context.width or stream.width),
        height=int(stream.codec_context.height or stream.height),
        fps=fps,
        frame_count=int(stream.frames) or None,
        _frames=_decode(container, stream, fps),
        _close=container.close,
        duration=_stated_duration(container, stream),
    )


def _stated_duration(container, stream) -> float | None:
    """The video stream's duration from the header; the container's only when nothing else (audio) could make
    it longer than the video."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and len(container.streams) == 1:
        return container.duration / 1_000_000
    return None


def _what(error) -> str:
    """FFmpeg's error in the user's words (its own strings are library internals)."""
    if isinstance(error, av.error.FileNotFoundError):
        return "it does not exist"
    if isinstance(error, av.error.PermissionError):
        return "permission denied"
    return "FFmpeg found no decodable video data in it"


def _decode(container, stream, fps: float):
    index = 0
    start = None
    try:
        for frame in container.decode(stream):
            # Timestamps make nearest-in-time resampling right for variable-frame-rate phone videos too.
            time = frame.time if frame.time is not None else index / fps
            start = time if start is None else start
            yield SourceFrame(index, time - start, lambda f=frame: f.to_ndarray(format="rgb24"))
            index += 1
    except (av.error.FFmpegError, EOFError) as error:
        raise DecodeStopped(f"FFmpeg: {getattr(error, 'strerror', None) or error}") from None
