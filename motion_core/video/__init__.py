"""Reading reference videos into Clips: mp4/webm/mov (PyAV), animated gif/webp (Pillow), numbered frames folders.

Decoding streams frame by frame, so start/every-n-th/cap options never decode more than they use. Every failure is
a VideoReadError or InvalidInputError whose message names the file, the problem and the fix. In-memory ComfyUI
IMAGE batches become Clips through `Clip.from_image` instead.
"""

from .formats import ANIMATED_IMAGE_EXTENSIONS, CONTAINER_EXTENSIONS, FRAME_IMAGE_EXTENSIONS
from .load import load_reference_video
from .options import DEFAULT_MAX_PIXELS, VideoReadOptions
from .probe import VideoInfo, probe_video
from .resize import RESIZE_MODES

__all__ = [
    "ANIMATED_IMAGE_EXTENSIONS",
    "CONTAINER_EXTENSIONS",
    "DEFAULT_MAX_PIXELS",
    "FRAME_IMAGE_EXTENSIONS",
    "RESIZE_MODES",
    "VideoInfo",
    "VideoReadOptions",
    "load_reference_video",
    "probe_video",
]
