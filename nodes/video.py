"""Nodes that bring reference videos into the graph as IMAGE batches and MD_CLIPS training sets."""

from __future__ import annotations

import os

import comfy.model_management
import folder_paths
from comfy_api.latest import io, ui

from ..motion_core.clips import Clip, ClipSet
from ..motion_core.errors import MotionCoreError, VideoReadError
from ..motion_core.safe_paths import resolve_in_folders
from ..motion_core.typed_paths import any_path_allowed, confine_typed_path
from ..motion_core.video import (
    ANIMATED_IMAGE_EXTENSIONS,
    CONTAINER_EXTENSIONS,
    DEFAULT_MAX_PIXELS,
    load_reference_video,
)
from . import paths
from .types import CATEGORY, ClipsType

# Users can raise or lower the largest frame size the loader accepts (width × height), e.g. for big GPUs.
MAX_PIXELS_ENV = "MD_MAX_VIDEO_PIXELS"
VIDEO_EXTENSIONS = CONTAINER_EXTENSIONS + ANIMATED_IMAGE_EXTENSIONS


INPUT_FIX = (
    "Pick a video from the list (upload one with the node's upload button, or put it in ComfyUI's input folder and "
    "press R), or type the path of a file or frames folder under ComfyUI's input, output, temp or models folders "
    "into the `path` field."
)
# A huge input folder must not stall the widget listing (and with it every /object_info request).
MAX_INPUT_CHOICES = 5000


def _input_choices() -> list[str]:
    """Videos in ComfyUI's input folder, plus sub-folders (which may hold numbered frames); bounded."""
    root = folder_paths.get_input_directory()
    videos, folders = [], []
    try:
        with os.scandir(root) as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_INPUT_CHOICES:
                    break
                try:
                    if entry.is_file() and entry.name.lower().endswith(VIDEO_EXTENSIONS):
                        videos.append(entry.name)
                    elif entry.is_dir() and not entry.name.startswith("."):
                        folders.append(entry.name + "/")
                except OSError:
                    continue
    except OSError:
        return []
    return sorted(videos) + sorted(folders)


def _choice_path(video: str) -> str:
    """The dropdown value as a path inside ComfyUI's input (or an annotated output/temp) folder, or a refusal."""
    name, base_dir = folder_paths.annotated_filepath(str(video).rstrip("/"))
    root = base_dir or folder_paths.get_input_directory()
    return resolve_in_folders(name, [root], label="ComfyUI's input folder", fix=INPUT_FIX, want="any",
                              listed=lambda: [c.rstrip("/") for c in _input_choices()])


TYPED_FIX = "Put the video or frames folder in ComfyUI's input folder and pick it from the `video` list."


def _typed_path(path: str) -> str:
    """The `path` field's file, kept inside ComfyUI's folders unless the server's owner opened reach."""
    return confine_typed_path(path, [folder_paths.get_input_directory()], paths.comfy_roots(),
                              allow_any=any_path_allowed(), what="Reference video",
                              where=paths.COMFY_ROOTS_LABEL, fix=TYPED_FIX)


def _resolve(video: str, path: str) -> str:
    if path.strip():
        return _typed_path(path)
    if not video:
        raise VideoReadError(
            "No reference video chosen: upload one with the node's upload button, put it in ComfyUI's input "
            "folder, or type a file/folder path into `path`."
        )
    return _choice_path(video)


def _max_pixels() -> int:
    raw = os.environ.get(MAX_PIXELS_ENV, "")
    return int(raw) if raw.isdigit() else DEFAULT_MAX_PIXELS


class LoadReferenceVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MDLoadReferenceVideo",
            display_name="Load Reference Video",
            category=f"{CATEGORY}/video",
            description="Load a reference clip of the motion to learn (mp4, webm, mov, gif, animated webp or a "
            "folder of numbered frames), select and resize its frames, and add it to a training set.",
            inputs=[
                io.Combo.Input(
                    "video",
                    options=_input_choices(),
                    upload=io.UploadType.video,
                    tooltip="A video or frames folder in ComfyUI's input folder.",
                ),
                io.String.Input(
                    "caption",
                    default="",
                    multiline=True,
                    tooltip="What the clip shows, e.g. 'a man is skateboarding'. Used as its training prompt.",
                ),
                io.Int.Input(
                    "start_frame", default=0, min=0, max=1_000_000, tooltip="Index of the first source frame to use."
                ),
                io.Int.Input(
                    "frame_cap",
                    default=16,
                    min=0,
                    max=4096,
                    tooltip="Most frames to keep (0 = all). Video models train on 8-24 frames.",
                ),
                io.Int.Input(
                    "min_frames",
                    default=1,
                    min=1,
                    max=4096,
                    tooltip="Fail with a clear message if the clip yields fewer frames than this.",
                ),
                io.Int.Input(
                    "every_nth", default=1, min=1, max=100, tooltip="Keep every n-th source frame (after start_frame)."
                ),
                io.Float.Input(
                    "target_fps",
                    default=0.0,
                    min=0.0,
                    max=240.0,
                    step=0.5,
                    tooltip="Resample to this frame rate by picking the nearest frames (0 = keep).",
                ),
                io.Int.Input(
                    "width",
                    default=0,
                    min=0,
                    max=8192,
                    step=8,
                    tooltip="Output width, a multiple of 8 (0 = keep the source size).",
                ),
                io.Int.Input(
                    "height",
                    default=0,
                    min=0,
                    max=8192,
                    step=8,
                    tooltip="Output height, a multiple of 8 (0 = keep the source size).",
                ),
                io.Combo.Input(
                    "resize_mode",
                    options=["crop", "pad"],
                    default="crop",
                    tooltip="crop: fill the frame and cut the overhang; pad: fit inside with black bars.",
                ),
                io.String.Input(
                    "path",
                    default="",
                    optional=True,
                    tooltip="Optional file or frames-folder path; overrides the `video` choice. It may name "
                    "anything under ComfyUI's input, output, temp or models folders; elsewhere on the machine only "
                    "where the server's owner set MOTION_CORE_ALLOW_ANY_PATH=1. A relative path "
                    "is looked up in ComfyUI's input folder first, then in ComfyUI's own folder.",
                ),
                io.Float.Input(
                    "folder_fps",
                    default=8.0,
                    min=0.1,
                    max=240.0,
                    optional=True,
                    tooltip="Frame rate of a frames folder (videos carry their own).",
                ),
                ClipsType.Input(
                    "previous_clips",
                    optional=True,
                    tooltip="Chain several Load Reference Video nodes into one training set.",
                ),
            ],
            outputs=[
                io.Image.Output(
                    "images",
                    display_name="images",
                    tooltip="The selected frames, float [frames, height, width, 3] in 0..1.",
                ),
                io.Float.Output("fps", display_name="fps", tooltip="Effective frame rate of the selected frames."),
                ClipsType.Output(
                    "clips", display_name="clips", tooltip="The training set: previous clips plus this one."
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        video,
        caption,
        start_frame,
        frame_cap,
        min_frames,
        every_nth,
        target_fps,
        width,
        height,
        resize_mode,
        path="",
        folder_fps=8.0,
        previous_clips=None,
    ) -> io.NodeOutput:
        warnings: list[str] = []
        clip = load_reference_video(
            _resolve(video, path or ""),
            caption=caption,
            start_frame=start_frame,
            frame_cap=frame_cap,
            min_frames=min_frames,
            every_nth=every_nth,
            target_fps=target_fps,
            width=width,
            height=height,
            resize_mode=resize_mode,
            folder_fps=folder_fps,
            search_dirs=[folder_paths.get_input_directory()],
            max_pixels=_max_pixels(),
            progress=lambda _count: comfy.model_management.throw_exception_if_processing_interrupted(),
            on_warning=warnings.append,
        )
        clips = (previous_clips or ClipSet()).add(clip)
        if warnings:
            return io.NodeOutput(clip.as_image(), clip.fps, clips, ui=ui.PreviewText("\n".join(warnings)))
        return io.NodeOutput(clip.as_image(), clip.fps, clips)

    @classmethod
    def fingerprint_inputs(cls, video, path="", **_):
        try:
            target = _typed_path(path) if path and path.strip() else _choice_path(video) if video else ""
        except MotionCoreError:
            return f"{video}|{path}"
        try:
            return f"{target}:{os.path.getmtime(target)}"
        except OSError:
            return target

    @classmethod
    def validate_inputs(cls, video, path=""):
        # No **kwargs: ComfyUI repeats a refusal once per input this method receives, so it takes only these two.
        if path and path.strip():
            return True
        if video:
            try:
                _choice_path(video)
            except MotionCoreError as error:
                return str(error)
        return True


class ImagesToClips(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MDImagesToClips",
            display_name="Images to Reference Clips",
            category=f"{CATEGORY}/video",
            description="Turn any IMAGE batch (e.g. from VideoHelperSuite's Load Video) into a reference clip "
            "for training, with its caption.",
            inputs=[
                io.Image.Input("images", tooltip="Frames of one clip, in order."),
                io.String.Input("caption", default="", multiline=True, tooltip="What the clip shows."),
                io.Float.Input("fps", default=8.0, min=0.1, max=240.0, step=0.5, tooltip="Frame rate of the frames."),
                ClipsType.Input("previous_clips", optional=True, tooltip="Chain clips into one training set."),
            ],
            outputs=[
                ClipsType.Output(
                    "clips", display_name="clips", tooltip="The training set: previous clips plus this one."
                )
            ],
        )

    @classmethod
    def execute(cls, images, caption, fps, previous_clips=None) -> io.NodeOutput:
        clip = Clip.from_image(images, fps=fps, caption=caption, source="IMAGE input")
        return io.NodeOutput((previous_clips or ClipSet()).add(clip))


NODES = [LoadReferenceVideo, ImagesToClips]
