"""Which reader handles a path: decided by extension (or being a folder) before any bytes are decoded."""

from __future__ import annotations

from pathlib import Path

from ..errors import VideoReadError

# Containers go through PyAV (FFmpeg). Animated GIF/WebP go through Pillow: measured with PyAV 18, FFmpeg cannot
# decode animated WebP at all and reads a 125 ms GIF frame delay as 120 ms (GIF stores centiseconds), while Pillow
# composites GIF disposal modes and reports the delay it stored.
CONTAINER_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv", ".m4v", ".avi")
ANIMATED_IMAGE_EXTENSIONS = (".gif", ".webp")
FRAME_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")

CONTAINER = "container"
ANIMATED_IMAGE = "animated_image"
FRAMES_FOLDER = "frames_folder"


def reader_kind(path: Path) -> str:
    """CONTAINER, ANIMATED_IMAGE or FRAMES_FOLDER for an existing path; unsupported extensions are refused."""
    if path.is_dir():
        return FRAMES_FOLDER
    suffix = path.suffix.lower()
    if suffix in CONTAINER_EXTENSIONS:
        return CONTAINER
    if suffix in ANIMATED_IMAGE_EXTENSIONS:
        return ANIMATED_IMAGE
    raise VideoReadError(
        f"Unsupported file type {suffix or '(no extension)'!r} for reference video {str(path)!r}. "
        f"Use one of {', '.join(CONTAINER_EXTENSIONS + ANIMATED_IMAGE_EXTENSIONS)}, or a folder of numbered "
        f"{'/'.join(e.lstrip('.') for e in FRAME_IMAGE_EXTENSIONS)} frames; convert other files with e.g. "
        "`ffmpeg -i input -c:v libx264 -pix_fmt yuv420p output.mp4`."
    )
