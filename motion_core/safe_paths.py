"""Folder listings that always finish, and dropdown values that can only name files inside their folders.

A model folder may hold link loops, millions of files or a network mount that stalls; one listing request must
not hang the server, so walks visit each real directory once (links are followed, but never twice into the same
inode), stop at a depth, an entry count and a time budget, and say when they stopped early.

A dropdown value comes from the browser and may have been edited: it is only ever joined to its own folder after
a lexical check, and the result must stay inside that folder (or be an entry the listing itself offered, e.g. a
file the user linked in on purpose). Every refusal reads the same whether or not the named file exists.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from .errors import UnsafePathError

MAX_DEPTH = 12
MAX_ENTRIES = 20_000
TIME_BUDGET_S = 2.0


@dataclass
class Walk:
    """What a bounded walk found: file paths relative to the root ('/'-separated) and why it stopped, if early."""

    files: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    stopped: str = ""


def _dir_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def walk_bounded(root: str, *, max_depth: int = MAX_DEPTH, max_entries: int = MAX_ENTRIES,
                 time_budget: float = TIME_BUDGET_S, clock: Callable[[], float] = time.monotonic) -> Walk:
    """Every file and folder under ``root`` (links followed once per real folder), breadth-first and bounded."""
    walk = Walk()
    start = clock()
    key = _dir_key(root)
    if key is None:
        return walk
    visited = {key}
    queue: list[tuple[str, str, int]] = [(root, "", 0)]
    seen = 0
    while queue:
        here, rel, depth = queue.pop(0)
        try:
            with os.scandir(here) as entries:
                for entry in entries:
                    seen += 1
                    if seen > max_entries:
                        walk.stopped = f"stopped after {max_entries:,} entries"
                        return walk
                    if seen % 256 == 0 and clock() - start > time_budget:
                        walk.stopped = f"stopped after {time_budget:g} s"
                        return walk
                    name = f"{rel}/{entry.name}" if rel else entry.name
                    try:
                        is_dir = entry.is_dir(follow_symlinks=True)
                        is_file = not is_dir and entry.is_file(follow_symlinks=True)
                    except OSError:
                        continue
                    if is_file:
                        walk.files.append(name)
                    elif is_dir:
                        sub = _dir_key(entry.path)
                        if sub is None or sub in visited:
                            continue  # a link loop, or a second link to a folder already listed
                        visited.add(sub)
                        walk.dirs.append(name)
                        if depth + 1 < max_depth:
                            queue.append((entry.path, name, depth + 1))
                        else:
                            walk.stopped = walk.stopped or f"not listing deeper than {max_depth} folders"
        except OSError:
            continue  # unreadable folder: list what the others hold
        if clock() - start > time_budget:
            walk.stopped = f"stopped after {time_budget:g} s"
            return walk
    return walk


def folders_containing(root: str, marker: str, **limits) -> Walk:
    """Relative folders under ``root`` that hold a file named ``marker`` (e.g. diffusers' model_index.json)."""
    walk = walk_bounded(root, **limits)
    found = sorted({f.rpartition("/")[0] or "." for f in walk.files if f.rpartition("/")[2] == marker})
    return Walk(files=[], dirs=found, stopped=walk.stopped)


def is_plain_relative(name: str) -> bool:
    """True for 'a/b.safetensors'; False for '', '/abs', 'C:\\x', '~user', '../x', 'a/../../x' and NUL bytes."""
    if not isinstance(name, str) or not name.strip() or "\x00" in name:
        return False
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\", "~")) or os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):
        return False
    return ".." not in parts


def refusal(name: str, label: str, fix: str) -> UnsafePathError:
    """The one refusal message: identical whether the file is missing, outside, or a link out."""
    shown = name if isinstance(name, str) else repr(name)
    shown = shown.replace("\x00", "\\x00")
    if len(shown) > 200:
        shown = shown[:200] + "..."
    return UnsafePathError(f"{shown!r} is not one of the files in {label}. {fix}")


def _inside(path: str, root: str) -> bool:
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def resolve_in_folders(name: str, roots: Iterable[str], *, label: str, fix: str, want: str = "file",
                       listed: Callable[[], Collection[str]] | None = None) -> str:
    """The path of dropdown value ``name`` under the first of ``roots`` that has it, or UnsafePathError.

    want: "file", "dir" or "any". A path whose real location leaves its root is accepted only when ``listed()``
    (the dropdown's own listing) offers ``name``: links a user placed in a models folder keep working, links that
    the listing never showed do not.
    """
    if not is_plain_relative(name):
        raise refusal(name, label, fix)
    checks = {"file": os.path.isfile, "dir": os.path.isdir, "any": os.path.exists}
    offered: Collection[str] | None = None
    for root in roots:
        candidate = os.path.join(root, *name.replace("\\", "/").split("/"))
        if not checks[want](candidate):
            continue
        if _inside(candidate, root):
            return candidate
        if offered is None:
            offered = set(listed()) if listed is not None else set()
        if name in offered:
            return candidate
    raise refusal(name, label, fix)

