"""Where a finished result goes when its own destination refuses it (full disk, read-only folder): minutes of
training or sampling must not be lost to a failed final write, so the commands save it to the first of these
folders that takes it and name that file in the error."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fallback_dirs(first=None) -> list[Path]:
    """``first`` (e.g. the run's checkpoint folder) if given, then the system temp dir, then the home folder."""
    dirs = [Path(first)] if first else []
    dirs += [Path(tempfile.gettempdir()) / "motion_core_recovery", Path.home() / ".motion_core_recovery"]
    return dirs


def recovery_name(target: Path, suffix: str | None = None) -> str:
    """'clip.mp4' -> 'clip-recovered-<pid>.mp4': one name per process, so two runs never replace each other's."""
    return f"{target.stem}-recovered-{os.getpid()}{target.suffix if suffix is None else suffix}"
