"""What a sampling run is asked to do (SampleRequest), what it gives back (SampleResult), and the checks that run
before the model is touched: a bad size, an unknown scheduler or a LoRA for another model fails here, with the
model still clean, instead of halfway through a merge or after minutes of sampling."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..backbones.conditioning import single_image
from ..clips import Clip
from ..errors import InvalidInputError, LoraMismatchError
from ..lora.fit import fit_lora
from ..lora.stack import LoraStack, LoraStackEntry
from ..numbers import positive_fps
from .noise_prior import check_noise_prior_mode
from .schedulers import check_scheduler


@dataclass(frozen=True)
class SampleRequest:
    """One text-to-video run.

    cfg: classifier-free guidance scale; 1.0 runs only the prompt branch (half the cost, the negative prompt is
    unused). lora_stack: merged into the weights per step range and removed afterwards. noise_prior_clip /
    noise_prior_p: start from the reference clip's DDIM inversion blended with fresh noise (p = 0: off).
    noise_prior_mode: "full" blends the whole inversion (METHODS.md); "motion" only its frame-to-frame part.
    strict_base: refuse LoRAs trained on another base model (by architecture fingerprint). fps: only passed through
    to the result for video writers (the denoiser has no frame-rate input). cfg_low_noise: Wan 2.2 A14B with both
    experts loaded: the guidance of the low-noise expert's steps (WanPipeline's guidance_scale_2; Wan-AI's A14B
    config uses 3.0 there and 4.0 for the high-noise expert); None: ``cfg`` for every step. start_image: the
    picture the clip starts from (IMAGE [1, H, W, 3] in 0..1), which image-to-video models need and Wan 2.2 TI2V
    5B takes; text-to-video models refuse one.
    """

    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 25
    cfg: float = 7.5
    frames: int = 16
    width: int = 256
    height: int = 256
    scheduler: str = "auto"
    """A name from sampling.SCHEDULER_NAMES that the model's family takes; "auto" = the family's usual solver."""
    lora_stack: LoraStack = field(default_factory=LoraStack)
    noise_prior_clip: Clip | torch.Tensor | None = None
    noise_prior_p: float = 0.0
    noise_prior_mode: str = "full"
    strict_base: bool = True
    fps: float = 8.0
    cfg_low_noise: float | None = None
    start_image: torch.Tensor | None = None


@dataclass
class SampleResult:
    """frames: float32 [F, H, W, 3] in 0..1 on the CPU (ComfyUI IMAGE). latents: the final latents [1, C, F, h, w]
    (float32, CPU, scaled as the denoiser sees them). merge_count: how often the stack's active set was merged into
    the weights (one per step-range segment with LoRAs). seconds: wall time of "prepare" (prompts, noise prior),
    "denoise" (the step loop) and "decode"."""

    frames: torch.Tensor
    latents: torch.Tensor
    fps: float
    merge_count: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    not_applied: tuple[str, ...] = ()
    """What of the stack's LoRA files was left out, in words: a text-encoder part, or the layers a text-to-video
    LoRA has that its image-to-video model lacks (with a line saying what it applied there)."""


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise InvalidInputError(f"{name} must be a whole number of at least 1; got {value!r}.")
    return int(value)


def validate_request(backbone, request: SampleRequest) -> None:
    """Raise a MotionCoreError describing the first problem with ``request`` for ``backbone``; touches nothing."""
    steps = _positive_int(request.steps, "steps")
    frames = _positive_int(request.frames, "frames")
    _positive_int(request.width, "width")
    _positive_int(request.height, "height")
    # Checked before sampling: a NaN frame rate would otherwise fail only in the video writer, after the whole run.
    positive_fps(request.fps, "frame rate (fps)")
    for name, cfg in (("CFG", request.cfg), ("cfg_low_noise", request.cfg_low_noise)):
        if cfg is not None and (not math.isfinite(float(cfg)) or cfg < 0):
            raise InvalidInputError(f"{name} must be a finite number >= 0 (1 disables guidance); got {cfg}.")
    multiple = int(getattr(backbone, "pixel_multiple", getattr(backbone, "vae_scale_factor", 8)))
    if request.width % multiple or request.height % multiple:
        raise InvalidInputError(
            f"Width and height must be multiples of {multiple} for this model's VAE; got {request.width}x"
            f"{request.height}. Try {request.width - request.width % multiple or multiple}x"
            f"{request.height - request.height % multiple or multiple}."
        )
    max_frames = getattr(backbone, "max_frames", None)
    if max_frames is not None and frames > max_frames:
        raise InvalidInputError(
            f"This {backbone.family} model handles at most {max_frames} frames in one window; asked for {frames}."
        )
    backbone.check_video_frames(frames)
    check_scheduler(request.scheduler, backbone.objective.kind)
    p = float(request.noise_prior_p)
    if not 0.0 <= p <= 1.0:
        raise InvalidInputError(f"noise_prior_p must be between 0 and 1; got {p}.")
    if p > 0 and request.noise_prior_clip is None:
        raise InvalidInputError(
            f"noise_prior_p is {p} but no reference clip was given; connect the reference video or set p to 0.")
    check_noise_prior_mode(request.noise_prior_mode)
    check_start_image(backbone, request.start_image)
    if not isinstance(request.lora_stack, LoraStack):
        raise InvalidInputError(f"lora_stack must be a LoraStack; got {type(request.lora_stack).__name__}.")
    validate_stack(backbone, request.lora_stack, strict_base=request.strict_base)
    request.lora_stack.segments(steps)


def check_start_image(backbone, image) -> None:
    """A start image where the model needs one, none where it takes none (the messages name the fix)."""
    support = backbone.start_image
    if image is None and support == "required":
        raise InvalidInputError(
            "This Wan model is image-to-video: it needs a start image. Connect your picture (Load Image) to "
            "'start_image', or pass --image on the command line.")
    if image is not None and support == "none":
        raise InvalidInputError(
            "This model is text-to-video and takes no start image. Leave it out (Sample Video's 'start_image', "
            "--image), or load an image-to-video model (Wan 2.1 I2V, Wan 2.2 I2V A14B) or Wan 2.2 TI2V 5B.")
    if image is not None:
        single_image(image)


def validate_stack(backbone, stack: LoraStack, *, strict_base: bool = True) -> None:
    """Every LoRA in ``stack`` must fit ``backbone`` (family, base model, module names and shapes), or be a related
    base's LoRA with layers in common (see fitted_stack)."""
    fitted_stack(backbone, stack, strict_base=strict_base)


def fitted_stack(backbone, stack: LoraStack, *, strict_base: bool = True) -> tuple[LoraStack, tuple[str, ...]]:
    """(the stack as it applies to ``backbone``, notes on what was cut). Each LoRA applies whole, or, when it was
    trained on a base the model's family declares related (a text-to-video Wan's LoRA on its image-to-video form),
    on the layers the two models share; the notes name what applied and what did not."""
    fingerprint = backbone.fingerprint()
    related = backbone.related_bases()
    entries, notes = [], []
    for position, entry in enumerate(stack, start=1):
        try:
            lora, said = fit_lora(backbone.denoiser, entry.lora, family=backbone.family, fingerprint=fingerprint,
                                  strict_base=strict_base, related=related)
        except LoraMismatchError as err:
            raise LoraMismatchError(f"LoRA stack entry {position} of {len(stack)}: {err}") from None
        entries.append(LoraStackEntry(lora, entry.strength, entry.start_percent, entry.end_percent))
        notes += said
    return LoraStack(tuple(entries)), tuple(notes)
