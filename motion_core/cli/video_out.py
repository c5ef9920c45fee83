"""Writing a sampled clip (float [F, H, W, 3] in 0..1) to .mp4, .gif or .webp for the command line.

Written next to the target under a temporary name and renamed into place, so an interrupted or failed write never
leaves a half file; an existing file is replaced only when the caller says so. When the target refuses the video
(full disk), ``write_or_recover`` saves it to a fallback folder and the error says where: sampling is not redone.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import InvalidInputError, MotionCoreError
from ..numbers import positive_fps
from .recovery import recovery_name

VIDEO_SUFFIXES = (".mp4", ".gif", ".webp")


def check_output_path(path: str | os.PathLike, *, overwrite: bool, suffixes=VIDEO_SUFFIXES) -> Path:
    """The output path, or an InvalidInputError when its type is unknown or it exists and overwrite is off."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise InvalidInputError(f"--out must end in one of {', '.join(suffixes)}; got {path.name}.")
    if path.exists() and not overwrite:
        raise InvalidInputError(f"{path} already exists; choose another name or pass --overwrite to replace it.")
    return path


def check_fps(fps, option: str = "--fps") -> float:
    """A frame rate every writer takes (finite, above 0), checked before sampling rather than at the write."""
    return positive_fps(fps, option)


def _pixels(frames: torch.Tensor) -> np.ndarray:
    return (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def write_video(frames: torch.Tensor, path: str | os.PathLike, fps: float, *, overwrite: bool = False) -> Path:
    """Encode ``frames`` to ``path`` (format from the suffix) all-or-nothing; returns the path."""
    path = check_output_path(path, overwrite=overwrite)
    fps = check_fps(fps)
    pixels = _pixels(frames)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
        os.close(fd)
    except OSError as err:
        raise _write_error(path, err) from err
    try:
        _encode(pixels, Path(tmp), float(fps))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:
        raise _write_error(path, err) from err
    except Exception as err:  # an encoder failure (ffmpeg, Pillow) must reach write_or_recover, not lose the video
        raise MotionCoreError(f"Could not encode {path}: {type(err).__name__}: {err}. Try another format "
                              f"({', '.join(VIDEO_SUFFIXES)}).") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _write_error(path: Path, err: OSError) -> MotionCoreError:
    return MotionCoreError(f"Could not write {path}: {err.strerror or err}. Free some disk space or choose a folder "
                           "you can write to.")


def write_or_recover(frames: torch.Tensor, path: Path, fps: float, *, overwrite: bool, fallbacks: list[Path]) -> Path:
    """``write_video`` to ``path``; when that fails, the same video (or, if no video can be encoded there, the
    frames as a uint8 [F, H, W, 3] .npy) goes to the first fallback folder that takes it, named in the error."""
    try:  # also when --out appeared while sampling: the video is kept, never written over
        return write_video(frames, path, fps, overwrite=overwrite)
    except MotionCoreError as error:
        failed = error
    for folder in fallbacks:
        rescue = folder / recovery_name(Path(path))
        try:
            write_video(frames, rescue, fps)
        except MotionCoreError:
            rescue = _save_frames(frames, folder / recovery_name(Path(path), ".npy"))
            if rescue is None:
                continue
            raise MotionCoreError(
                f"{failed} The sampled frames were saved instead to {rescue} (uint8 [frames, height, width, 3], "
                f"{fps:g} fps; numpy.load reads them), so nothing is lost.") from None
        raise MotionCoreError(f"{failed} The sampled video was saved instead to {rescue}; move it where you want "
                              "it (nothing is lost).") from None
    raise MotionCoreError(f"{failed} No fallback folder ({', '.join(map(str, fallbacks))}) could take the video "
                          "either; free some space and sample again (same seed, same video).") from None


def _save_frames(frames: torch.Tensor, path: Path) -> Path | None:
    """The frames as .npy, written atomically; None when this folder cannot take them either."""
    tmp = path.with_name(f".{path.name}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            np.save(handle, _pixels(frames))
        os.replace(tmp, path)
        return path
    except OSError:
        tmp.unlink(missing_ok=True)
        return None


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
    # GIF and WebP store whole milliseconds per frame: at least 1, so a very high fps still writes a valid file.
    images[0].save(path, format=kind, save_all=True, append_images=images[1:], duration=max(1, int(1000 / fps)),
                   loop=0, **({"lossless": True} if kind == "WEBP" else {}))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
