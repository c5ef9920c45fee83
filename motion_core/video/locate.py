"""Turn the path a user typed into an existing file, looking in the folders the caller names (e.g. ComfyUI input)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from ..errors import VideoReadError


def locate_video(path, search_dirs: Sequence = ()) -> Path:
    """An absolute path is used as is; a relative one is tried in each of `search_dirs`, then the working folder."""
    if not str(path).strip():
        raise VideoReadError("No reference video given: enter a file name or a frames folder path.")
    shown = _shown(path)
    if "\x00" in str(path):
        raise VideoReadError(f"Reference video {shown} contains a NUL byte, which no file name can hold: type the "
                             "path again, or pick the video from the list.")
    given = Path(path).expanduser()
    candidates = [given] if given.is_absolute() else [Path(d) / given for d in search_dirs] + [Path.cwd() / given]
    for candidate in candidates:
        kind = _kind(candidate)
        # Only regular files and folders: a FIFO or device named clip.mp4 would block the decoder forever.
        if kind in ("file", "dir"):
            return candidate
        if kind == "other":
            raise VideoReadError(
                f"Reference video {str(candidate)!r} is not a regular file or folder (a pipe, socket or device). "
                "Copy the video into a file and pick that."
            )
        if kind == "too_long":
            raise VideoReadError(f"Reference video {shown} is not a usable path: it or one of its folder names is "
                                 "longer than the file system allows. Rename the file or folder to something shorter.")
    looked = ", ".join(_shown(c) for c in candidates)
    raise VideoReadError(
        f"Reference video {shown} not found (looked at {looked}). Put the file in one of those folders or "
        "give its absolute path."
    )


def _kind(candidate: Path) -> str | None:
    """"file", "dir", "other" (FIFO, socket, device), "too_long", or None (absent, unreadable, a link loop)."""
    try:
        mode = os.stat(candidate).st_mode
    except OSError as error:
        return "too_long" if error.errno == errno.ENAMETOOLONG else None
    return "file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode) else "other"


def _shown(path) -> str:
    """A path as quoted in messages, cut so a hostile 100 kB name does not fill the error dialog."""
    text = str(path)
    return repr(text if len(text) <= 300 else text[:300] + "...")
