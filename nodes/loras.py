"""Nodes that load LoRAs into a stack for sampling, and save trained LoRAs to ComfyUI's models folders."""

from __future__ import annotations

import os

import folder_paths
from comfy_api.latest import io, ui

from ..motion_core.backbones.wan.experts import expert_file_name, expert_from_name, lora_expert, tag_lora
from ..motion_core.errors import InvalidInputError
from ..motion_core.lora import load_lora, save_lora
from ..motion_core.lora.formats.wan_comfy import KERNEL_NOTE
from ..motion_core.lora.report import stack_note
from ..motion_core.lora.stack import LoraStack
from ..motion_core.safe_paths import is_plain_relative, resolve_in_folders
from . import paths
from .types import CATEGORY, LoraStackType, LoraType, ModelType

NONE = "none"

FORMAT_HELP = (
    "canonical: this pack's format (PEFT/diffusers keys + metadata), loads everywhere in the pack; "
    "animatediff: original AnimateDiff motion-LoRA layout for AnimateDiff-Evolved's Load AnimateDiff "
    "LoRA (temporal LoRAs of AnimateDiff models only), saved to models/animatediff_motion_lora; kohya: for "
    "appearance (spatial) LoRAs in other tools; comfyui: ComfyUI's native Wan layout for core's "
    "LoraLoaderModelOnly (Wan LoRAs only), saved to models/loras."
)
FORMATS = ["canonical", "animatediff", "kohya", "comfyui"]
# A file goes where the node that reads its format lists files: comfyui-format files to models/loras for core's
# LoraLoaderModelOnly (and our Load Appearance LoRA), animatediff-format ones to models/animatediff_motion_lora for
# AnimateDiff-Evolved's Load AnimateDiff LoRA; neither lists models/motion_loras. Load Motion LoRA lists both.
SAVE_FOLDERS = {"comfyui": "loras", "animatediff": paths.ANIMATEDIFF_MOTION_LORA}
SAVE_LABELS = {"comfyui": "models/loras", "animatediff": f"models/{paths.ANIMATEDIFF_MOTION_LORA}"}
# Load Motion LoRA's entries from AnimateDiff-Evolved's folder carry this label, as Load Video Model labels models.
ADE_LABEL = f"{paths.ANIMATEDIFF_MOTION_LORA}: "


def _next_free_path(folder: str, prefix: str, expert: str | None = None) -> str:
    """prefix may contain sub-folders; files are numbered prefix_00001.safetensors, never overwriting. A Wan 2.2
    A14B expert's LoRA ends in its expert, prefix_00001_high_noise.safetensors, as Wan 2.2 LoRAs are named in
    ComfyUI's repackaged files and by ai-toolkit (name, step, expert), so the pair of one run shares its number."""
    prefix = prefix.strip().replace("\\", "/").lstrip("/") or "motion_lora"
    name = os.path.basename(os.path.normpath(folder))
    if not is_plain_relative(prefix):
        raise InvalidInputError(
            f"filename_prefix {prefix!r} must stay inside the {name} folder; remove '..', '~' and NUL bytes."
        )
    base = os.path.join(folder, prefix)
    # Checked before any folder is made: realpath resolves the links of the part that exists, so a prefix through a
    # linked folder is refused without leaving an empty folder outside.
    real_folder = os.path.realpath(folder)
    if not os.path.realpath(os.path.dirname(base)).startswith(real_folder.rstrip(os.sep) + os.sep) and (
        os.path.realpath(os.path.dirname(base)) != real_folder
    ):
        raise InvalidInputError(
            f"filename_prefix {prefix!r} leads out of the {name} folder through a link; choose another "
            "sub-folder name."
        )
    os.makedirs(os.path.dirname(base) or folder, exist_ok=True)
    if expert_from_name(prefix) == expert:
        expert = None  # the prefix already says it
    counter = 1
    while os.path.exists(expert_file_name(f"{base}_{counter:05d}", expert)):
        counter += 1
    return expert_file_name(f"{base}_{counter:05d}", expert)


class SaveMotionLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MDSaveMotionLoRA",
            display_name="Save Motion LoRA",
            category=f"{CATEGORY}/lora",
            description="Save a trained LoRA to models/motion_loras; in the comfyui format to models/loras for "
            "core's LoraLoaderModelOnly, in the animatediff format to models/animatediff_motion_lora for "
            "AnimateDiff-Evolved's Load AnimateDiff LoRA (written atomically; existing files are never "
            "overwritten). Shows the LoRA's metadata once saved.",
            inputs=[
                LoraType.Input("lora", tooltip="A LoRA from Train Motion LoRA."),
                io.String.Input(
                    "filename_prefix",
                    default="motion_lora/my_motion",
                    tooltip="File name under models/motion_loras (models/loras for the comfyui format, "
                    "models/animatediff_motion_lora for the animatediff format); a number "
                    "and .safetensors are added, and for a Wan 2.2 A14B expert's LoRA its expert (_high_noise / "
                    "_low_noise), one file per expert.",
                ),
                io.Combo.Input("format", options=FORMATS, default="canonical", tooltip=FORMAT_HELP),
            ],
            outputs=[io.String.Output("path", display_name="path", tooltip="Where the file was written.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, lora, filename_prefix, format) -> io.NodeOutput:
        folder = paths.save_folder(SAVE_FOLDERS.get(format, paths.MOTION_LORAS))
        for _attempt in range(100):  # another save may take the same number between the check and the write
            target = _next_free_path(folder, filename_prefix, lora_expert(lora))
            try:
                save_lora(lora, target, format=format, overwrite=False)
                break
            except FileExistsError:
                continue
        where = SAVE_LABELS.get(format, "models/motion_loras")
        text = f"saved {os.path.relpath(target, folder)} in {where} ({format})\n{lora.describe()}"
        if lora.kernel and format == "comfyui":  # what core's loader loses (docs/wan.md measures it)
            text += f"\n{KERNEL_NOTE}"
        return io.NodeOutput(target, ui=ui.PreviewText(text))


def motion_lora_choices() -> list[str]:
    """models/motion_loras' files, then AnimateDiff-Evolved's motion-LoRA folder's, labelled (ADE's own files and
    what Save Motion LoRA wrote there in the animatediff format load here too)."""
    ade = [f"{ADE_LABEL}{name}" for name in folder_paths.get_filename_list(paths.ANIMATEDIFF_MOTION_LORA)]
    return [*folder_paths.get_filename_list(paths.MOTION_LORAS), *ade]


def _stack_inputs(folder_label: str, files: list[str], kind: str) -> list:
    return [
        io.Combo.Input(
            "lora_name",
            options=[NONE, *files],
            default=NONE,
            tooltip=f"A {kind} LoRA file from {folder_label} (any of: this pack's files, diffusers/PEFT, "
            "kohya, original AnimateDiff, Wan LoRAs from ComfyUI, ai-toolkit or musubi-tuner). Ignored when "
            "`trained_lora` is connected.",
        ),
        io.Float.Input(
            "strength",
            default=1.0,
            min=-5.0,
            max=5.0,
            step=0.05,
            tooltip="How strongly the LoRA acts; 0 turns it off, negative values push away from it.",
        ),
        io.Float.Input(
            "start_percent",
            default=0.0,
            min=0.0,
            max=1.0,
            step=0.01,
            tooltip="Share of the denoising steps done before the LoRA starts acting (motion forms "
            "early: keep motion LoRAs from 0).",
        ),
        io.Float.Input(
            "end_percent",
            default=1.0,
            min=0.0,
            max=1.0,
            step=0.01,
            tooltip="Share of the steps done when the LoRA stops acting (1 = to the end). About 0.7 lets the base "
            "model redraw the look: less of the reference's colour, smooth paths kept, jittery ones weakened.",
        ),
        LoraStackType.Input("previous_stack", optional=True, tooltip="Chain LoRA loaders to stack several LoRAs."),
        LoraType.Input(
            "trained_lora", optional=True, tooltip="A LoRA straight from Train Motion LoRA, used instead of a file."
        ),
    ]


def _add_to_stack(
    folder: str, lora_name, strength, start_percent, end_percent, previous_stack, trained_lora, module_names=None
):
    if trained_lora is not None:
        lora = trained_lora
    elif lora_name == NONE:
        raise InvalidInputError("Choose a LoRA file in `lora_name`, or connect a LoRA to `trained_lora`.")
    else:
        if folder == paths.MOTION_LORAS and str(lora_name).startswith(ADE_LABEL):
            folder, lora_name = paths.ANIMATEDIFF_MOTION_LORA, str(lora_name)[len(ADE_LABEL):]
        label = f"models/{folder}"
        fix = f"Pick a LoRA from the list (press R after adding files to {label}), or connect `trained_lora`."
        path = resolve_in_folders(lora_name, folder_paths.get_folder_paths(folder), label=label, fix=fix,
                                  listed=lambda: folder_paths.get_filename_list(folder))
        lora = load_lora(path, module_names)
        if lora_expert(lora) is None:  # a Wan 2.2 LoRA pair from other tools says its expert in the file name
            lora = tag_lora(lora, expert_from_name(lora_name))
    stack = (previous_stack or LoraStack()).add(lora, strength, start_percent, end_percent)
    return io.NodeOutput(stack, lora, ui=ui.PreviewText(stack_note(stack, lora)))


class LoadMotionLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MDLoadMotionLoRA",
            display_name="Load Motion LoRA",
            category=f"{CATEGORY}/lora",
            description="Add a motion LoRA (from models/motion_loras or models/animatediff_motion_lora, or freshly "
            "trained) to a LoRA stack with a strength and a step range. Stack several to combine motions.",
            inputs=_stack_inputs("models/motion_loras (or models/animatediff_motion_lora, listed as "
                                 f"'{ADE_LABEL}...')", motion_lora_choices(), "motion"),
            outputs=[
                LoraStackType.Output(
                    "lora_stack", display_name="lora_stack", tooltip="The stack with this LoRA added."
                ),
                LoraType.Output(
                    "lora",
                    display_name="lora",
                    tooltip="The loaded LoRA itself (e.g. to re-save it in another format).",
                ),
            ],
        )

    @classmethod
    def execute(
        cls, lora_name, strength, start_percent, end_percent, previous_stack=None, trained_lora=None
    ) -> io.NodeOutput:
        return _add_to_stack(
            paths.MOTION_LORAS, lora_name, strength, start_percent, end_percent, previous_stack, trained_lora
        )


class LoadAppearanceLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MDLoadAppearanceLoRA",
            display_name="Load Appearance LoRA",
            category=f"{CATEGORY}/lora",
            description="Add an appearance (spatial) LoRA from models/loras to a LoRA stack, e.g. to give the "
            "moving subject a trained look. Late step ranges (e.g. 0.3..1.0) keep it off the motion.",
            inputs=[
                *_stack_inputs("models/loras", folder_paths.get_filename_list("loras"), "appearance"),
                ModelType.Input(
                    "video_model",
                    optional=True,
                    tooltip="Needed only for kohya-layout files, whose flattened names are "
                    "matched against this model's layers.",
                ),
            ],
            outputs=[
                LoraStackType.Output(
                    "lora_stack", display_name="lora_stack", tooltip="The stack with this LoRA added."
                ),
                LoraType.Output("lora", display_name="lora", tooltip="The loaded LoRA itself."),
            ],
        )

    @classmethod
    def execute(
        cls, lora_name, strength, start_percent, end_percent, previous_stack=None, trained_lora=None, video_model=None
    ) -> io.NodeOutput:
        names = None if video_model is None else [n for n, _ in video_model.denoiser.named_modules()]
        return _add_to_stack(
            "loras", lora_name, strength, start_percent, end_percent, previous_stack, trained_lora, names
        )


NODES = [LoadMotionLoRA, LoadAppearanceLoRA, SaveMotionLoRA]
