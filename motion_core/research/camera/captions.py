"""Captions of the camera world ("the camera pans left over a red and blue pattern") and its word list.

The words the shipped ShapesT2V tokenizer lacks ("camera", "pans", "pattern", ...) would be split into letters and
push a caption past its 16 tokens; `CAMERA_WORDS` is added to the world's words when a camera model builds its own
vocabulary (`vocab.clip_tokenizer(dir, WORLD_WORDS + CAMERA_WORDS)`), so every caption stays 12 tokens.
"""

from __future__ import annotations

PHRASES: dict[str, str] = {
    "pan_left": "pans left",
    "pan_right": "pans right",
    "tilt_up": "tilts up",
    "tilt_down": "tilts down",
    "zoom_in": "zooms in",
    "zoom_out": "zooms out",
    "roll_clockwise": "rolls clockwise",
    "roll_anticlockwise": "rolls anticlockwise",
}

CAMERA_WORDS: tuple[str, ...] = tuple(sorted(
    {"the", "camera", "over", "pattern", "a", "and"} | {w for p in PHRASES.values() for w in p.split()}))


def camera_caption(move: str, colours: tuple[str, str], phrase: str | None = None) -> str:
    """`phrase` replaces the move's phrase (e.g. with a trigger word)."""
    words = PHRASES[move] if phrase is None else phrase
    return f"the camera {words} over a {colours[0]} and {colours[1]} pattern"
