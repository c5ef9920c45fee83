"""A folder of numbered frames (frame_0001.png, 0002.png, img-3.jpg): ordered by the trailing number in the name.

Numbering problems are checked up front from file names and image headers (cheap), so a gap or an odd-sized frame
is reported before any pixels are decoded.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InvalidInputError, VideoReadError
from .animated_images import image_problem
from .formats import FRAME_IMAGE_EXTENSIONS, FRAMES_FOLDER
from .source import FrameSource, SourceFrame

_TRAILING_NUMBER = re.compile(r"(\d+)$")
# Every frame's header is read before any pixels, so a folder is scanned whole; past this many entries the scan
# stops with an error instead of stalling the node (a minute of 30 fps footage is 1,800 frames).
MAX_FOLDER_ENTRIES = 50_000


def numbered_frames(folder: Path) -> list[Path]:
    """The folder's frame images in numeric order; gaps, duplicates and unnumbered images are errors."""
    images = sorted(_frame_images(folder))
    if not images:
        raise VideoReadError(
            f"Frames folder {str(folder)!r} has no {'/'.join(e.lstrip('.') for e in FRAME_IMAGE_EXTENSIONS)} "
            "images. Export the frames into it as frame_0001.png, frame_0002.png, ..."
        )
    by_number: dict[int, Path] = {}
    for image in images:
        match = _TRAILING_NUMBER.search(image.stem)
        if match is None:
            raise VideoReadError(
                f"Frame {image.name!r} in {str(folder)!r} has no number at the end of its name, so its place in the "
                "clip is unknown. Rename it like frame_0001.png or move it out of the folder."
            )
        number = int(match.group(1))
        if number in by_number:
            raise VideoReadError(
                f"Frames {by_number[number].name!r} and {image.name!r} in {str(folder)!r} both have number {number}. "
                "Keep one of them."
            )
        by_number[number] = image
    numbers = sorted(by_number)
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    if missing:
        raise VideoReadError(
            f"Frames folder {str(folder)!r} has gaps in its numbering: missing {_ranges(missing)}. Add the missing "
            "frames or renumber the files consecutively."
        )
    return [by_number[n] for n in numbers]


def _frame_images(folder: Path) -> list[Path]:
    """The folder's image files, scanning at most MAX_FOLDER_ENTRIES entries (files of any kind, sub-folders)."""
    images = []
    with os.scandir(folder) as entries:
        for count, entry in enumerate(entries):
            if count >= MAX_FOLDER_ENTRIES:
                raise VideoReadError(
                    f"Frames folder {str(folder)!r} holds more than {MAX_FOLDER_ENTRIES:,} entries, more than the loader "
                    "scans. Move the frames you want to train on into a folder of their own."
                )
            if Path(entry.name).suffix.lower() in FRAME_IMAGE_EXTENSIONS and entry.is_file():
                images.append(Path(entry.path))
    return images


def open_frames_folder(folder: Path, fps: float) -> FrameSource:
    if not fps > 0:
        raise InvalidInputError(f"folder_fps must be positive for a frames folder; got {fps}. Try 8.")
    files = numbered_frames(folder)
    sizes = [_header_size(f) for f in files]
    for file, size in zip(files, sizes):
        if size != sizes[0]:
            raise VideoReadError(
                f"Frame {file.name!r} is {size[0]}x{size[1]} but {files[0].name!r} is {sizes[0][0]}x{sizes[0][1]}; "
                f"all frames in {str(folder)!r} must have the same size. Resize or remove {file.name!r}."
            )
    frames = (SourceFrame(i, i / fps, lambda f=f: _read_rgb(f)) for i, f in enumerate(files))
    return FrameSource(folder, FRAMES_FOLDER, sizes[0][0], sizes[0][1], float(fps), len(files), frames)


def _header_size(file: Path) -> tuple[int, int]:
    try:
        with Image.open(file) as image:
            return image.size
    except Exception as error:  # UnidentifiedImageError, OSError, SyntaxError, DecompressionBombError, ...
        message = f"Frame {str(file)!r} is not a readable image ({image_problem(error)}); re-export or remove it."
        raise VideoReadError(message) from None


def _read_rgb(file: Path) -> np.ndarray:
    try:
        with Image.open(file) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except Exception as error:  # Pillow's plugins raise many types on cut files; all mean "broken frame".
        message = f"Frame {str(file)!r} is corrupt or truncated ({image_problem(error)}); re-export or remove it."
        raise VideoReadError(message) from None


def _ranges(numbers: list[int], limit: int = 10) -> str:
    """[3, 4, 5, 9] -> '3-5, 9' (long lists are cut, the count stays)."""
    spans: list[str] = []
    start = prev = numbers[0]
    for n in numbers[1:] + [None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        spans.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    shown = ", ".join(spans[:limit])
    return shown if len(spans) <= limit else f"{shown}, ... ({len(numbers)} frames in all)"
