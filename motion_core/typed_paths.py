"""Paths a user types into a free text field on a shared server (Load Reference Video's ``path``, Train Motion
LoRA's ``resume_from``): kept inside the server's own folders unless its owner opens reach.

Why closed by default: anyone who can queue a prompt could otherwise read any folder of images on the machine and
get its frames back through ComfyUI's /view, or probe which files exist. A server owner who wants the old reach
(a single-user machine) sets MOTION_CORE_ALLOW_ANY_PATH=1 in ComfyUI's environment. Paths under the folders the
caller names (ComfyUI's input, output, temp and models folders) are always allowed.

A refusal reads the same whether or not the path exists, and nothing outside the allowed folders is looked at:
the decision is made on the path's real location (links resolved), and the path handed back is that location, so
a ``..`` that climbs through a folder outside cannot be used to test whether that folder exists.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from .errors import UnsafePathError

ALLOW_ANY_PATH_ENV = "MOTION_CORE_ALLOW_ANY_PATH"
_YES = ("1", "true", "yes", "on")


def any_path_allowed(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the server's owner opened typed paths to the whole machine."""
    return environ.get(ALLOW_ANY_PATH_ENV, "").strip().lower() in _YES


def _inside(real: str, roots: list[str]) -> bool:
    return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def _shown(text: str) -> str:
    text = text.replace("\x00", "\\x00")
    return repr(text if len(text) <= 200 else text[:200] + "...")


def confine_typed_path(path: str, search_dirs: Iterable, roots: Iterable, *, allow_any: bool, what: str,
                       where: str, fix: str) -> str:
    """The path to open for what the user typed, or UnsafePathError when reach is closed and it lies outside
    ``roots``.

    A relative path is tried under each of ``search_dirs``, then the working folder (as the readers do); the first
    candidate inside ``roots`` that exists wins, else the first one inside (so the reader says "not found" about a
    place the user may see). With ``allow_any`` (or an empty or NUL-holding text, which the readers refuse
    themselves) the text is handed back unchanged. ``what`` names the field, ``where`` the allowed folders and
    ``fix`` the alternative inside them, for the message."""
    text = str(path).strip()
    if allow_any or not text or "\x00" in text:
        return text
    given = Path(text).expanduser()
    candidates = [given] if given.is_absolute() else [Path(d) / given for d in search_dirs] + [Path.cwd() / given]
    real_roots = [os.path.realpath(r) for r in roots]
    inside = [real for real in (os.path.realpath(c) for c in candidates) if _inside(real, real_roots)]
    for real in inside:
        if os.path.lexists(real):
            return real
    if inside:
        return inside[0]
    raise UnsafePathError(
        f"{what} {_shown(text)} not found in {where}: this server reads typed paths only there. {fix} To let "
        f"typed paths reach anywhere on this machine, the server's owner can start ComfyUI with "
        f"{ALLOW_ANY_PATH_ENV}=1 in its environment (see the pack's README).")
