"""Load Video Model: opens a text- or image-to-video model from ComfyUI's models folders as an MD_MODEL.

Caching between prompts is ComfyUI's own node-output cache (same inputs, same object); when the user frees models
and node cache, that cache drops the only reference and the model's memory is released with it.
"""

from __future__ import annotations

import comfy.model_management
import folder_paths
import torch
from comfy_api.latest import io

from ..motion_core.backbones import load_backbone
from ..motion_core.backbones.wan.experts import load_other_expert
from ..motion_core.backbones.wan.loading import is_wan_folder
from ..motion_core.devices import resolve_device
from . import paths
from .types import CATEGORY, ModelType

MOTION_MODULE_FIX = ("Pick a motion module from the list (press R after adding one to models/animatediff_models/), "
                     "or choose none.")
FOLDER_OTHER_EXPERT = "the folder's other expert"
FP8_AS_STORED = "fp8 as stored"
DTYPES = {"auto": None, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, FP8_AS_STORED: None}
DTYPE_TOOLTIP = (
    "Weight precision. auto: bf16/fp16 on GPU, fp32 on CPU; a Wan file stored in fp8 keeps its fp8 weights on GPU "
    "(as ComfyUI does). fp32/fp16/bf16: every weight in that precision (an fp8 file is widened: twice its size in "
    "bf16). fp8 as stored: on any device, the Linear weights a Wan diffusion-model file stores in fp8 stay fp8 with "
    "their scales and each layer computes in auto's precision (memory about the file's size; norms, embeddings and "
    "the head are widened; other files and folders load as auto).")


def _device(choice: str) -> torch.device:
    """auto: ComfyUI's device; a named one must exist here (a clear error instead of torch's driver message)."""
    if choice == "auto":
        return comfy.model_management.get_torch_device()
    return resolve_device(choice, "Load Video Model: device", also=("auto",))


def _keep_fp8(choice: str) -> bool | None:
    """auto lets the loader decide by device (fp8 kept on CUDA); a named precision widens; fp8 as stored keeps."""
    return {"auto": None, FP8_AS_STORED: True}.get(choice, False)


def _dtype(choice: str, device: torch.device) -> torch.dtype:
    if DTYPES[choice] is not None:
        return DTYPES[choice]
    if device.type == "cuda":
        return torch.bfloat16 if comfy.model_management.should_use_bf16(device) else torch.float16
    return torch.float32


def _diffusion_model_files() -> list[str]:
    names = folder_paths.get_filename_list("diffusion_models")
    return [name for name in names if name.lower().endswith(".safetensors")]


class LoadVideoModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MDLoadVideoModel",
            display_name="Load Video Model",
            category=f"{CATEGORY}/model",
            description="Load a video model for motion-LoRA training and sampling: a ModelScope/ZeroScope, "
            "AnimateDiff or Wan diffusers folder (models/diffusers), an SD1.5 checkpoint plus an AnimateDiff motion "
            "module, a Wan 2.1 / 2.2 text- or image-to-video diffusion-model file (models/diffusion_models) with its "
            "VAE and UMT5 text encoder (and for Wan 2.1 I2V its CLIP vision file), or a built-in demo model "
            "(ShapesT2V: UNet3D; ShapesWan: the Wan classes, 9-frame clips).",
            inputs=[
                io.Combo.Input(
                    "model",
                    options=paths.model_choices(),
                    tooltip="diffusers folders from models/diffusers, SD1.5 checkpoints from "
                    "models/checkpoints (need a motion module), Wan files from models/diffusion_models (need a VAE "
                    "and a text encoder), or a built-in model: ShapesT2V (8 frames), ShapesWan / ShapesWan v2 (Wan, 9 "
                    "frames) or ShapesWan-I2V (image-to-video).",
                ),
                io.Combo.Input(
                    "motion_module",
                    options=["none", *folder_paths.get_filename_list(paths.ANIMATEDIFF_MODELS)],
                    default="none",
                    tooltip="AnimateDiff motion module (v2/v3) from models/animatediff_models; needed "
                    "for SD1.5 checkpoints, overrides an AnimateDiff folder's own.",
                ),
                io.Combo.Input(
                    "vae",
                    options=["none", *folder_paths.get_filename_list("vae")],
                    default="none",
                    tooltip="Wan files only: the VAE from models/vae (wan_2.1_vae for Wan 2.1 and the A14B, "
                    "wan2.2_vae for Wan 2.2 5B).",
                    optional=True,
                ),
                io.Combo.Input(
                    "text_encoder",
                    options=["none", *folder_paths.get_filename_list("text_encoders")],
                    default="none",
                    tooltip="Wan files only: the UMT5 text encoder from models/text_encoders "
                    "(umt5_xxl_fp16 or umt5_xxl_fp8_e4m3fn_scaled).",
                    optional=True,
                ),
                io.Combo.Input(
                    "wan_expert",
                    options=["high_noise", "low_noise"],
                    default="high_noise",
                    tooltip="Wan 2.2 A14B diffusers folders: which expert is the model (the one trained; a file's "
                    "name says which expert it is). Motion forms at high noise, so motion LoRAs train the high-noise "
                    "expert; each expert's LoRA is its own file.",
                    optional=True,
                ),
                io.Combo.Input(
                    "dtype",
                    options=list(DTYPES),
                    default="auto",
                    tooltip=DTYPE_TOOLTIP,
                ),
                io.Combo.Input(
                    "device", options=["auto", "cpu", "cuda"], default="auto", tooltip="auto: the device ComfyUI uses."
                ),
                io.Combo.Input(
                    "wan_second_expert",
                    options=["none", FOLDER_OTHER_EXPERT, *_diffusion_model_files()],
                    default="none",
                    tooltip="Wan 2.2 A14B, for sampling: the other expert, so Sample Video runs the high-noise "
                    "expert above the model's boundary and the low-noise one below it (as Wan's own pipeline), each "
                    "with its own LoRAs. With the *_high_noise_* file as model, pick the *_low_noise_* file here; "
                    "for a diffusers folder, the folder's other expert. Training needs only the model.",
                    optional=True,
                ),
                io.Combo.Input(
                    "clip_vision",
                    options=["none", *folder_paths.get_filename_list("clip_vision")],
                    default="none",
                    tooltip="Wan 2.1 image-to-video only: the CLIP vision encoder from models/clip_vision "
                    "(clip_vision_h.safetensors), whose features of the start image that model reads. Wan 2.2 "
                    "image-to-video and text-to-video models take none.",
                    optional=True,
                ),
            ],
            outputs=[
                ModelType.Output(
                    "video_model",
                    display_name="video_model",
                    tooltip="The loaded model, for training and sampling nodes.",
                )
            ],
        )

    @classmethod
    def execute(cls, model, motion_module, dtype, device, vae="none", text_encoder="none",
                wan_expert="high_noise", wan_second_expert="none", clip_vision="none") -> io.NodeOutput:
        target = _device(device)
        files = {}
        if vae != "none":
            files["vae"] = paths.resolve_listed("vae", vae, "models/vae", paths.MODEL_FIX)
        if text_encoder != "none":
            files["text_encoder"] = paths.resolve_listed("text_encoders", text_encoder, "models/text_encoders",
                                                         paths.MODEL_FIX)
        if clip_vision != "none":
            files["clip_vision"] = paths.resolve_listed("clip_vision", clip_vision, "models/clip_vision",
                                                        paths.MODEL_FIX)
        module = (
            None
            if motion_module == "none"
            else paths.resolve_listed(paths.ANIMATEDIFF_MODELS, motion_module, "models/animatediff_models",
                                      MOTION_MODULE_FIX)
        )
        path = paths.resolve_model(model)
        # The bundled CLIP tokenizer serves SD1.5 files only; Wan files and folders carry their UMT5 tokenizer.
        clip_fallback = not (paths.is_single_file_dit(model) or is_wan_folder(path))
        # ComfyUI runs nodes under inference mode; weights created there could never take part in training.
        with torch.inference_mode(False):
            backbone = load_backbone(
                path,
                dtype=_dtype(dtype, target),
                device=target,
                motion_module=module,
                tokenizer_dir=paths.comfy_tokenizer_dir() if clip_fallback else None,
                expert=wan_expert,
                keep_fp8=_keep_fp8(dtype),
                **files,
            )
            if wan_second_expert != "none":
                second = (None if wan_second_expert == FOLDER_OTHER_EXPERT else
                          paths.resolve_listed("diffusion_models", wan_second_expert, "models/diffusion_models",
                                               paths.MODEL_FIX))
                load_other_expert(backbone, second)
        return io.NodeOutput(backbone)


NODES = [LoadVideoModel]
