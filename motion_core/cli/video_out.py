"""Writing a sampled clip (float [F, H, W, 3] in 0..1) to .mp4, .gif or .webp for the command line.

Written next to the target under a temporary name and renamed into place, so an interrupted or failed write never
leaves a half file; an existing file is replaced only when the caller says so.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import InvalidInputError, MotionCoreError

VIDEO_SUFFIXES = (".mp4", ".gif", ".webp")


def check_output_path(path: str | os.PathLike, *, overwrite: bool, suffixes=VIDEO_SUFFIXES) -> Path:
    """The output path, or an InvalidInputError when its type is unknown or it exists and overwrite is off."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise InvalidInputError(f"--out must end in one of {', '.join(suffixes)}; got {path.name}.")
    if path.exists() and not overwrite:
        raise InvalidInputError(f"{path} already exists; choose another name or pass --overwrite to replace it.")
    return path


def write_video(frames: torch.Tensor, path: str | os.PathLike, fps: float, *, overwrite: bool = False) -> Path:
    """Encode ``frames`` to ``path`` (format from the suffix) all-or-nothing; returns the path."""
    path = check_output_path(path, overwrite=overwrite)
    pixels = (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        _encode(pixels, Path(tmp), float(fps))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:
        raise MotionCoreError(f"Could not write {path}: {err.strerror or err}. Free some disk space or choose a "
                              "folder you can write to.") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _encode(pixels: np.ndarray, path: Path, fps: float) -> None:
    if path.suffix.lower() == ".mp4":
        import imageio.v2 as imageio

        # yuv420p needs even sides; pad by repeating the last row/column rather than resizing the clip.
        _, h, w, _ = pixels.shape
        pixels = np.pad(pixels, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        with imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", quality=8,
                                macro_block_size=1, pixelformat="yuv420p") as writer:
            for frame in pixels:
                writer.append_data(frame)
        return
    from PIL import Image

    images = [Image.fromarray(frame) for frame in pixels]
    kind = "GIF" if path.suffix.lower() == ".gif" else "WEBP"
    images[0].save(path, format=kind, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0,
                   **({"lossless": True} if kind == "WEBP" else {}))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
