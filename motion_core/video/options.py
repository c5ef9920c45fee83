"""The knobs of reading a reference video, as data: validated once, before a file is opened."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InvalidInputError
from .resize import RESIZE_MODES

# 4096 x 4096: a 4K frame fits, an 8K one (about 3 GB per 100 frames as uint8) is refused before decoding.
DEFAULT_MAX_PIXELS = 4096 * 4096
# Kept frames and their pixels in total: a tiny gif may hold thousands of frames, and each kept frame costs 3 bytes
# per pixel here and 12 as a ComfyUI IMAGE. 2**28 pixels is about 130 frames of 1080p or 1,000 of 512x512 (3 GB
# as IMAGE); training uses 8-24 frames.
DEFAULT_MAX_FRAMES = 4096
DEFAULT_MAX_TOTAL_PIXELS = 2**28
# Source frames decoded (kept or skipped): bounds the time a huge start_frame or every_nth can cost.
DEFAULT_MAX_DECODED_FRAMES = 100_000


@dataclass(frozen=True)
class VideoReadOptions:
    """start_frame: first source frame used. frame_cap: most frames returned (0 = all). every_nth: keep every n-th
    source frame. target_fps: resample to this rate by nearest frame in time (0 = keep). width/height: output size,
    multiples of 8 (0 = keep; one 0 follows the aspect). resize_mode: "crop" or "pad". min_frames: fewer frames
    than this is an error. max_pixels: largest source or output frame (width*height). folder_fps: fps of a
    frames folder. max_frames / max_total_pixels: most frames kept and most pixels kept in all.
    max_decoded_frames: most source frames decoded, kept or skipped."""

    start_frame: int = 0
    frame_cap: int = 0
    every_nth: int = 1
    target_fps: float = 0.0
    width: int = 0
    height: int = 0
    resize_mode: str = "crop"
    min_frames: int = 1
    max_pixels: int = DEFAULT_MAX_PIXELS
    folder_fps: float = 8.0
    max_frames: int = DEFAULT_MAX_FRAMES
    max_total_pixels: int = DEFAULT_MAX_TOTAL_PIXELS
    max_decoded_frames: int = DEFAULT_MAX_DECODED_FRAMES

    def __post_init__(self):
        checks = (
            (self.start_frame >= 0, f"start_frame must be 0 or more; got {self.start_frame}."),
            (self.frame_cap >= 0, f"frame_cap must be 0 (all frames) or more; got {self.frame_cap}."),
            (self.every_nth >= 1, f"every_nth must be 1 (every frame) or more; got {self.every_nth}."),
            (math.isfinite(self.target_fps) and self.target_fps >= 0,
             f"target_fps must be 0 (keep the source rate) or a finite positive rate; got {self.target_fps}."),
            (self.min_frames >= 1, f"min_frames must be at least 1; got {self.min_frames}."),
            (self.max_pixels > 0, f"max_pixels must be positive; got {self.max_pixels}."),
            (self.max_frames > 0, f"max_frames must be positive; got {self.max_frames}."),
            (self.max_total_pixels > 0, f"max_total_pixels must be positive; got {self.max_total_pixels}."),
            (self.max_decoded_frames > 0, f"max_decoded_frames must be positive; got {self.max_decoded_frames}."),
            (math.isfinite(self.folder_fps) and self.folder_fps > 0,
             f"folder_fps must be a finite positive rate; got {self.folder_fps}. Try 8."),
            (
                self.resize_mode in RESIZE_MODES,
                f"resize_mode must be one of {', '.join(RESIZE_MODES)}; got {self.resize_mode!r}.",
            ),
            (
                self.frame_cap == 0 or self.min_frames <= self.frame_cap,
                f"min_frames={self.min_frames} is more than frame_cap={self.frame_cap}; raise frame_cap or lower "
                "min_frames.",
            ),
        )
        for ok, message in checks:
            if not ok:
                raise InvalidInputError(message)

    def describe_selection(self) -> str:
        """The options that shrink the frame count, in the user's words, for 'too few frames' messages."""
        parts = [f"start_frame={self.start_frame}", f"every_nth={self.every_nth}"]
        if self.target_fps:
            parts.append(f"target_fps={self.target_fps:g}")
        return ", ".join(parts)
