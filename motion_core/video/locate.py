"""Turn the path a user typed into an existing file, looking in the folders the caller names (e.g. ComfyUI input)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import VideoReadError


def locate_video(path, search_dirs: Sequence = ()) -> Path:
    """An absolute path is used as is; a relative one is tried in each of `search_dirs`, then the working folder."""
    if not str(path).strip():
        raise VideoReadError("No reference video given: enter a file name or a frames folder path.")
    given = Path(path).expanduser()
    candidates = [given] if given.is_absolute() else [Path(d) / given for d in search_dirs] + [given.resolve()]
    for candidate in candidates:
        # Only regular files and folders: a FIFO or device named clip.mp4 would block the decoder forever.
        if candidate.is_file() or candidate.is_dir():
            return candidate
        if candidate.exists():
            raise VideoReadError(
                f"Reference video {str(candidate)!r} is not a regular file or folder (a pipe, socket or device). "
                "Copy the video into a file and pick that."
            )
    looked = ", ".join(repr(str(c)) for c in candidates)
    raise VideoReadError(
        f"Reference video {str(path)!r} not found (looked at {looked}). Put the file in one of those folders or "
        "give its absolute path."
    )
