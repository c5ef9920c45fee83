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
    on_warning: Callable[[str], None] | None = None,
    **options,
) -> Clip:
    """Read a reference video (mp4, webm, mov, gif, animated webp or a numbered frames folder) into a Clip.

    `options` are the fields of VideoReadOptions (start_frame, frame_cap, every_nth, target_fps, width, height,
    resize_mode, min_frames, max_pixels, folder_fps). Relative paths are looked up in `search_dirs`, then the
    working folder. `progress(frames_read)` is called after every kept frame; it may raise (e.g. CancelledError)
    to stop reading. Only as many frames as needed are decoded. A file that breaks part-way gives the frames
    read before the break; `on_warning(message)` (and the log) then says how many and why, the same for every
    container. Frames kept, pixels kept and frames decoded are bounded (InvalidInputError beyond the limits).
    """
    opts = VideoReadOptions(**options)
    file = locate_video(path, search_dirs)
    with open_video(file, opts.folder_fps) as source:
        check_pixels(f"{source.width}x{source.height} video {str(file)!r}", source.width, source.height, opts)
        width, height = output_size(source.width, source.height, opts.width, opts.height)
        check_pixels(f"output size {width}x{height}", width, height, opts)
        chosen = select_frames(
            _bounded(source.frames(), opts.max_decoded_frames, file),
            start_frame=opts.start_frame,
            every_nth=opts.every_nth,
            target_fps=opts.target_fps,
            frame_cap=opts.frame_cap,
            source_fps=source.fps,
        )
        frames = []
        for frame in chosen:
            check_totals(file, len(frames) + 1, width * height, opts)
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
            message = (f"{file.name}: read {len(frames)} frames, then stopped: {source.stopped_early}. Re-export the "
                       "video for the rest.")
            log.warning("%s (%s)", message, file)
            if on_warning is not None:
                on_warning(message)
    return Clip(frames=torch.stack(frames), fps=float(fps), caption=caption, source=str(file))


def check_pixels(what: str, width: int, height: int, opts: VideoReadOptions) -> None:
    if width * height > opts.max_pixels:
        raise InvalidInputError(
            f"The {what} has {width * height:,} pixels per frame, above the limit of {opts.max_pixels:,} "
            "(max_pixels). Lower the resolution first (e.g. `ffmpeg -i input -vf scale=1280:-2 output.mp4`), set a "
            "smaller width/height, or raise max_pixels if you have the memory."
        )


def check_totals(file, frames: int, pixels_per_frame: int, opts: VideoReadOptions) -> None:
    """Refuse before decoding the frame that would pass the frame or total-pixel limit."""
    if frames > opts.max_frames:
        raise InvalidInputError(
            f"{str(file)!r} yields more than {opts.max_frames:,} frames (max_frames). Set frame_cap (training uses "
            "8-24 frames), raise every_nth, or cut the clip."
        )
    if frames * pixels_per_frame > opts.max_total_pixels:
        raise InvalidInputError(
            f"{str(file)!r}: {frames:,} frames of {pixels_per_frame:,} pixels pass the limit of "
            f"{opts.max_total_pixels:,} pixels in all (max_total_pixels). Set a smaller frame_cap or width/height."
        )


def _bounded(frames, limit: int, file):
    for count, frame in enumerate(frames, 1):
        if count > limit:
            raise InvalidInputError(
                f"{str(file)!r}: reached {limit:,} decoded source frames (max_decoded_frames) before the selection "
                "was complete. Lower start_frame or every_nth, or cut the video to the part you need."
            )
        yield frame


def _checked_rgb(rgb, source):
    # Containers may change resolution mid-stream; a clip needs one size, so say so instead of failing in stack().
    if rgb.shape[:2] != (source.height, source.width):
        raise VideoReadError(
            f"{str(source.path)!r} changes frame size mid-stream ({source.width}x{source.height} to "
            f"{rgb.shape[1]}x{rgb.shape[0]}). Re-encode it to one size with `ffmpeg -i input -vf scale=W:H out.mp4`."
        )
    return rgb
