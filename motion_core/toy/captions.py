"""ShapesT2V captions and the closed word list they are made of (the tokenizer vocabulary's source).

Captions are "a <colour> <shape> <motion phrase>", optionally followed by "next to a <colour> <shape>" for a still
second object. Recipes that train a trigger word replace the motion phrase ("a blue circle V*" or "a blue circle
moves like sks"): the spare trigger words below are in the vocabulary for that purpose.
"""

from __future__ import annotations

from .motions import MOTIONS
from .palette import BACKGROUNDS, COLOURS
from .shapes import SHAPES

# Whole-word spare tokens for trigger words. "V*" itself is not a single token under CLIP's pre-tokenizer (it splits
# letters from punctuation), so it is covered by the single-character tokens "v" and "*", which are in the
# vocabulary; these letter-only words each get one token of their own (digits would be split off too).
SPARE_TRIGGERS: tuple[str, ...] = ("sks", "ohwx", "vmo", "zqx", "qvx", "jkw", "wzp", "xmv")
TRIGGER_EXAMPLES: tuple[str, ...] = ("V*",)

# Words recipes and prompts use beside the captions: appearance-invariant VMC captions ("an object is moving"),
# NewMove class prompts ("a shape moving"), trigger phrasing ("moves like V*"), backgrounds.
EXTRA_WORDS: tuple[str, ...] = (
    "an", "object", "shape", "is", "moving", "motion", "like", "in", "the", "of", "on", "background", "and", "with",
    "video", "clip", "two", "objects", "plain", "textured",
)


def object_phrase(colour: str, shape: str) -> str:
    return f"a {colour} {shape}"


def caption(colour: str, shape: str, motion: str, companion: tuple[str, str] | None = None,
            motion_phrase: str | None = None) -> str:
    """The training caption; `motion_phrase` replaces the family's phrase (e.g. with a trigger word)."""
    phrase = MOTIONS[motion].phrase if motion_phrase is None else motion_phrase
    text = f"{object_phrase(colour, shape)} {phrase}"
    if companion is not None:
        text += f" next to {object_phrase(*companion)}"
    return text


def _world_words() -> tuple[str, ...]:
    words: set[str] = {"a", "next", "to"}
    words.update(COLOURS)
    words.update(SHAPES)
    words.update(BACKGROUNDS)
    for family in MOTIONS.values():
        words.update(family.phrase.split())
    words.update(EXTRA_WORDS)
    words.update(SPARE_TRIGGERS)
    return tuple(sorted(words))


# Every word any caption uses, plus extras and the spare triggers, lower case.
WORLD_WORDS: tuple[str, ...] = _world_words()
