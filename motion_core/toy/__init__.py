"""ShapesT2V: a procedural text-to-video world for the tiny default model and the motion-customization benchmark.

Coloured shapes move over plain or textured backgrounds with captions such as "a blue circle moves left". Basic
motions are for pretraining the base model; held-out motion families (zigzag, circle, bounce, grow-shrink) are only
ever learned through a motion LoRA. `tracking` recovers an object's path, size, colour and shape from pixels and
`metrics` turns that into motion fidelity, appearance accuracy and leakage.
"""

from .captions import SPARE_TRIGGERS, WORLD_WORDS, caption
from .metrics import (
    SampleScore,
    appearance_accuracy,
    family_fidelity,
    leakage,
    motion_fidelity,
    score_sample,
    summarize,
)
from .motions import BASIC_MOTIONS, HELD_OUT_MOTIONS, MOTIONS, MotionParams, sample_params
from .palette import BACKGROUNDS, COLOURS
from .render import ClipSpec, Companion, render_clip, render_frames, sample_spec
from .shapes import SHAPES
from .tracking import ObjectTrack, track_object
from .vocab import build_vocab, clip_tokenizer, write_vocab

__all__ = [
    "BACKGROUNDS", "BASIC_MOTIONS", "COLOURS", "ClipSpec", "Companion", "HELD_OUT_MOTIONS", "MOTIONS", "MotionParams",
    "ObjectTrack", "SHAPES", "SPARE_TRIGGERS", "SampleScore", "WORLD_WORDS", "appearance_accuracy", "build_vocab",
    "caption", "clip_tokenizer", "family_fidelity", "leakage", "motion_fidelity", "render_clip", "render_frames",
    "sample_params", "sample_spec", "score_sample", "summarize", "track_object", "write_vocab",
]
