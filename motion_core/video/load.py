"""load_reference_video: open, check limits, stream the chosen frames, resize them, and return a Clip."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch

from ..clips import Clip
from ..errors import InvalidInputError, VideoReadError
from .locate import locate_video
from .options import VideoReadOptions
from .readers import open_video
from .resize import fit_frame, output_size
from .selection import select_frames

log = logging.getLogger(__name__)


def load_reference_video(
    path,
    *,
    caption: str = "",
    search_dirs: Sequence = (),
    progress: Callable[[int], None] | None = None,
    **options,
) -> Clip:
    """Read a reference video (mp4, webm, mov, gif, animated webp or a numbered frames folder) into a Clip.

    `options` are the fields of VideoReadOptions (start_frame, frame_cap, every_nth, target_fps, width, height,
    resize_mode, min_frames, max_pixels, folder_fps). Relative paths are looked up in `search_dirs`, then the
    working folder. `progress(frames_read)` is called after every kept frame; it may raise (e.g. CancelledError)
    to stop reading. Only as many frames as needed are decoded.
    """
    opts = VideoReadOptions(**options)
    file = locate_video(path, search_dirs)
    with open_video(file, opts.folder_fps) as source:
        check_pixels(f"{source.width}x{source.height} video {str(file)!r}", source.width, source.height, opts)
        width, height = output_size(source.width, source.height, opts.width, opts.height)
        check_pixels(f"output size {width}x{height}", width, height, opts)
        chosen = select_frames(
            source.frames(),
            start_frame=opts.start_frame,
            every_nth=opts.every_nth,
            target_fps=opts.target_fps,
            frame_cap=opts.frame_cap,
            source_fps=source.fps,
        )
        frames = []
        for frame in chosen:
            frames.append(fit_frame(_checked_rgb(frame.to_rgb(), source), width, height, opts.resize_mode))
            if progress is not None:
                progress(len(frames))
        fps = opts.target_fps or source.fps / opts.every_nth
        if len(frames) < opts.min_frames:
            why = f" ({source.stopped_early})" if source.stopped_early else ""
            raise VideoReadError(
                f"{str(file)!r} has {len(frames)} frames after {opts.describe_selection()}{why}; asked for "
                f"{opts.min_frames}. Lower start_frame, every_nth or min_frames, or use a longer video."
            )
        if source.stopped_early:
            log.warning("%s: %s; using the %d frames read before it.", file, source.stopped_early, len(frames))
    return Clip(frames=torch.stack(frames), fps=float(fps), caption=caption, source=str(file))


def check_pixels(what: str, width: int, height: int, opts: VideoReadOptions) -> None:
    if width * height > opts.max_pixels:
        raise InvalidInputError(
            f"The {what} has {width * height:,} pixels per frame, above the limit of {opts.max_pixels:,} "
            "(max_pixels). Lower the resolution first (e.g. `ffmpeg -i input -vf scale=1280:-2 output.mp4`), set a "
            "smaller width/height, or raise max_pixels if you have the memory."
        )


def _checked_rgb(rgb, source):
    # Containers may change resolution mid-stream; a clip needs one size, so say so instead of failing in stack().
    if rgb.shape[:2] != (source.height, source.width):
        raise VideoReadError(
            f"{str(source.path)!r} changes frame size mid-stream ({source.width}x{source.height} to "
            f"{rgb.shape[1]}x{rgb.shape[0]}). Re-encode it to one size with `ffmpeg -i input -vf scale=W:H out.mp4`."
        )
    return rgb
