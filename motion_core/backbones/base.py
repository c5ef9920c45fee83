"""The Backbone interface: the one door through which recipes, the trainer and the sampler reach a video model.

A backbone bundles a family's denoiser, VAE, text encoder, tokenizer and noise scheduler and knows three things the
rest of the engine must not hard-code: the latent layout, how to run the denoiser on a whole clip or on chosen frames,
and which of the denoiser's modules form each *target set* (the named groups LoRA adapters are injected into).

Target sets (exact names; the LoRA module and the LoRA files speak them):

- ``spatial_self_attn``      to_q, to_k, to_v, to_out.0 of the per-frame self-attention (attn1 of the spatial
                             transformers).
- ``spatial_cross_attn_q``   to_q of the per-frame text cross-attention (attn2 of the spatial transformers).
- ``spatial_cross_attn_kv``  to_k, to_v of that cross-attention (what NewMove tunes: the text-to-image binding).
- ``spatial_cross_attn``     to_q, to_k, to_v, to_out.0 of that cross-attention (a superset of the two above).
- ``spatial_ff``             the two linear layers of the spatial transformers' feed-forward (ff.net.0.proj, ff.net.2).
- ``temporal_attn``          to_q, to_k, to_v, to_out.0 of every attention inside the temporal transformers
                             (both attn1 and attn2: in ModelScope and AnimateDiff both are self-attention over frames).
- ``temporal_attn_qkv``      to_q, to_k, to_v only of those (VMC's choice: the output projection stays frozen).
- ``temporal_ff``            the feed-forward linears of the temporal transformers (MotionDirector's "+ ff").
- ``temporal_conv``          the temporal (frame-axis) convolutions; only families that have them (UNet3D).
- family extras, e.g. ``transformer_in`` (UNet3D): every attention projection and ff linear of the input temporal
                             transformer, so MotionDirector's "transformer_in included" is one set.

Why attention sets include to_out.0: MotionDirector (whose reference code adapts every linear of an attention block)
and Customize-A-Video adapt all four projections; leaving the output projection out would weaken them. The one
method that wants q/k/v only (VMC) gets ``temporal_attn_qkv``. The projections in and out of a transformer
(proj_in/proj_out) are in no set: no method adapts them.

In the UNet families spatial sets and temporal sets never share a module, so a spatial LoRA and a temporal LoRA can
be switched independently (MotionDirector's dual path, Customize-A-Video's absorber).

Diffusion transformers (joint space-time attention; Wan, see wan.py) map by data, as METHODS.md reads them: their
single self-attention mixes space and time, so it is ``temporal_attn`` (motion lives there) and ``spatial_*`` sets are
what is frame-local (text cross-attention, ff), except ``spatial_self_attn``, which names the SAME joint
self-attention modules: a spatial LoRA trained on one-frame clips sits there as a second adapter, switched by name.
Their latents may be temporally compressed (F_latent != F_video), which ``encode_video``'s contract already allows,
and ``text_states`` may be a dict (tokens plus masks) rather than one tensor: recipes only pass it along.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from ..errors import InvalidInputError
from .conditioning import StartImageSupport
from .fingerprint import architecture_fingerprint, config_fingerprint  # noqa: F401 (re-exported)
from .memory import holds_fp8, is_fp8
from .objectives import DiffusionObjective, Objective
from .related import RelatedBase

SHARED_TARGET_SETS = (
    "spatial_self_attn",
    "spatial_cross_attn_q",
    "spatial_cross_attn_kv",
    "spatial_cross_attn",
    "spatial_ff",
    "temporal_attn",
    "temporal_attn_qkv",
    "temporal_ff",
    "temporal_conv",
)
"""Set names every family uses with the same meaning (a family lists the ones it has in ``target_sets``)."""

VAE_FRAMES_PER_CALL = 8
"""Frames sent through the VAE at once: bounds the VAE's activation memory on long clips (SD's VAE decoder needs
about 1.5 GB per 512x512 frame in fp16), while still batching short clips in one call."""

ATTN_ALL = r"(to_q|to_k|to_v|to_out\.0)"
ATTN_QKV = r"(to_q|to_k|to_v)"
FF = r"ff\.net\.(0\.proj|2)"
SPATIAL_BLOCK = r"(^|\.)attentions\.\d+\.transformer_blocks\.\d+\."


def unet_target_patterns(temporal_block: str) -> dict[str, list[str]]:
    """The shared target sets of UNet families whose spatial transformers live in ``attentions.N`` and whose
    temporal transformers match ``temporal_block`` (a regex prefix ending in a dot); families add their extras."""
    return {
        "spatial_self_attn": [SPATIAL_BLOCK + r"attn1\." + ATTN_ALL + "$"],
        "spatial_cross_attn_q": [SPATIAL_BLOCK + r"attn2\.to_q$"],
        "spatial_cross_attn_kv": [SPATIAL_BLOCK + r"attn2\.(to_k|to_v)$"],
        "spatial_cross_attn": [SPATIAL_BLOCK + r"attn2\." + ATTN_ALL + "$"],
        "spatial_ff": [SPATIAL_BLOCK + FF + "$"],
        "temporal_attn": [temporal_block + r"attn[12]\." + ATTN_ALL + "$"],
        "temporal_attn_qkv": [temporal_block + r"attn[12]\." + ATTN_QKV + "$"],
        "temporal_ff": [temporal_block + FF + "$"],
    }


@dataclass(frozen=True)
class PlanningShapes:
    """One training sample as the denoiser sees it (what Backbone.planning_shapes returns; training/memory_plan.py)."""

    latents: tuple[int, ...]
    """[1, C, F', h, w] of the clip's latents."""
    text_states: tuple[int, ...]
    """[1, tokens, width] of the text states."""
    tokens: int
    """Tokens (latent positions after patching) the denoiser's attention runs over: what activations scale with."""


class Backbone(StartImageSupport, ABC):
    """A loaded text-to-video model, seen through the operations that training and sampling need.

    Attributes: ``family`` (e.g. "unet3d", "animatediff"), ``denoiser`` (the nn.Module LoRAs go into), ``vae``,
    ``text_encoder``, ``tokenizer``, ``scheduler`` (a diffusers scheduler carrying the training noise schedule),
    ``prediction_type`` ("epsilon" or "v_prediction", read from the scheduler), ``device`` and ``dtype``.

    Latents are always [B, C, F, h, w]; frames are float [B, F, H, W, 3] in 0..1 (ComfyUI's IMAGE layout, batched).
    Image-to-video models also read a start image's condition (conditioning.py: ``start_image``, ``conditioned``).
    """

    family: str = ""
    target_patterns: dict[str, Sequence[str]] = {}
    """Set name -> regexes matched (re.search) against full module names of ``denoiser``; subclasses fill it."""

    def __init__(self, *, denoiser: nn.Module, vae: Any, text_encoder: Any, tokenizer: Any, scheduler: Any,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, source: str = ""):
        self.denoiser = denoiser
        self.vae = vae
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.device = torch.device(device)
        self.dtype = dtype
        self.source = source
        self.objective = self.make_objective()
        self.prediction_type = self.objective.prediction_type

    def make_objective(self) -> Objective:
        """The training objective (noising, target, clean estimate); the DDPM families read it from their
        scheduler, flow-matching families override this."""
        return DiffusionObjective(self.scheduler)

    temporal_compression: int = 1
    """Video frames per latent frame (after the first, for causal video VAEs). 1: one latent frame per frame."""

    def latent_frames(self, video_frames: int) -> int:
        """Latent frames for a clip of ``video_frames`` frames (causal VAEs: 1 + (F − 1) / compression)."""
        c = int(self.temporal_compression)
        return int(video_frames) if c == 1 else 1 + (int(video_frames) - 1) // c

    def frames_up_to(self, limit: int) -> int:
        """The longest clip of at most ``limit`` frames that the VAE can encode (what `check_video_frames` accepts:
        causal VAEs 1 + k·c; Wan's 1 + 4k whatever its compression)."""
        for frames in range(int(limit), 1, -1):
            try:
                self.check_video_frames(frames)
            except InvalidInputError:
                continue
            return frames
        return 1

    def check_video_frames(self, video_frames: int) -> None:
        """Raise InvalidInputError when the VAE cannot encode a clip of this length (causal VAEs need 1 + k·c)."""
        c = int(self.temporal_compression)
        if c > 1 and (int(video_frames) - 1) % c:
            low = 1 + (int(video_frames) - 1) // c * c
            raise InvalidInputError(
                f"This {self.family} model encodes clips of 1 + {c}·k frames (e.g. {low} or {low + c}); got "
                f"{video_frames}. Set frames to one of those."
            )

    def encode_frames_as_images(self, frames: torch.Tensor) -> torch.Tensor:
        """Each frame encoded on its own, as an image: [B, C, F, h, w] with one latent frame per video frame.
        What single-frame paths train on (MotionDirector's spatial path, Customize-A-Video's absorber). For VAEs
        that encode frame by frame this is ``encode_video``; a temporally compressing VAE must encode each frame
        alone, since one latent frame of a clip mixes several video frames."""
        return self.encode_video(frames)

    def encoders(self) -> list:
        """The models that only encode inputs (VAE, text encoder, an I2V model's image encoder): training runs them
        while caching clips, then they may leave the accelerator."""
        parts = [self.vae, self.text_encoder, getattr(self, "image_encoder", None)]
        return [part for part in parts if part is not None]

    # ---- encoding -------------------------------------------------------------------------------------------
    @abstractmethod
    def encode_video(self, frames: torch.Tensor, *, sample_posterior: bool = False,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """Frames float [B, F, H, W, 3] or [F, H, W, 3] in 0..1 -> latents [B, C, F', h, w], already multiplied by
        the VAE's scaling factor. The posterior mean by default (deterministic, so cached latents are reproducible)."""

    @abstractmethod
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [B, C, F', h, w] (scaled) -> frames float32 [B, F, H, W, 3] in 0..1 on the CPU."""

    @abstractmethod
    def encode_prompt(self, prompts: Sequence[str]) -> Any:
        """Prompts -> text states for ``denoise`` (a tensor [B, tokens, dim] for CLIP families)."""

    # ---- denoising ------------------------------------------------------------------------------------------
    @abstractmethod
    def denoise(self, latents: torch.Tensor, timesteps: torch.Tensor | int, text_states: Any,
                frame_indices: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        """The model's prediction (ε or v, see ``prediction_type``) for noisy latents [B, C, F, h, w].

        ``timesteps``: an int or a tensor [] / [B]. ``text_states`` of batch B or 1 (broadcast). With
        ``frame_indices`` the denoiser sees only those frames, in that order, as a clip of their own (a single index
        gives MotionDirector's one-frame spatial path); the result then has len(frame_indices) frames.
        The result is in the backbone's dtype; no grad mode is imposed (training needs grads to reach the LoRAs).
        """

    @abstractmethod
    def enable_gradient_checkpointing(self) -> None:
        """Trade compute for memory in training: activations of each layer are recomputed in the backward pass.
        Has no effect under torch.no_grad (sampling), so it may stay on."""

    @abstractmethod
    def disable_gradient_checkpointing(self) -> None:
        """Undo ``enable_gradient_checkpointing``."""

    # ---- memory planning (training/memory_plan.py) ------------------------------------------------------------
    offload_blocks = None
    """The denoiser's block list that block offload moves one block at a time (memory.BlockOffload); None: the
    family has none."""

    def planning_denoiser(self) -> nn.Module:
        """The denoiser's architecture on the meta device (no weights): what the memory plan traces a training step
        on. Built from the model's config, which every diffusers model class accepts; a family whose denoiser is
        built otherwise overrides this."""
        with torch.device("meta"):
            return type(self.denoiser).from_config(self.denoiser.config)

    @abstractmethod
    def planning_shapes(self, frames: int, height: int, width: int):
        """A training sample of ``frames`` frames at ``width`` x ``height`` pixels as the denoiser sees it: a
        PlanningShapes of the latents [1, C, F', h, w], the text states [1, T, D] and the number of
        tokens the denoiser attends over (what activation memory grows with)."""

    # ---- adapter targets ------------------------------------------------------------------------------------
    @property
    def target_sets(self) -> tuple[str, ...]:
        """Names of the target sets this family offers (see the module docstring for their meaning)."""
        return tuple(self.target_patterns)

    def target_modules(self, set_name: str) -> list[str]:
        """Full module names within ``denoiser`` (as named_modules() gives them) for one target set, in model
        order; ready for peft's ``LoraConfig(target_modules=...)``."""
        return find_target_modules(self.denoiser, self.target_patterns, set_name, self.family)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(family={self.family!r}, source={self.source!r}, "
                f"prediction_type={self.prediction_type!r}, device={self.device}, dtype={self.dtype})")

    def fingerprint(self) -> str:
        """A short hash of the denoiser's architecture (its config, not its weights): LoRA files record it so a LoRA
        can be checked against the model it is applied to. Stable across runs, devices and dtypes."""
        return architecture_fingerprint(self.family, self.denoiser)

    def related_bases(self) -> tuple[RelatedBase, ...]:
        """Other base models whose LoRAs apply to this one on the layers the two share (none by default)."""
        return ()


def as_batched_frames(frames: torch.Tensor) -> torch.Tensor:
    """ComfyUI IMAGE frames [F, H, W, 3|4] or a batch [B, F, H, W, 3|4], float 0..1 -> [B, F, H, W, 3]; what every
    family's VAE encoding starts from."""
    if not isinstance(frames, torch.Tensor) or frames.ndim not in (4, 5) or frames.shape[-1] not in (3, 4):
        raise InvalidInputError(
            "Frames must be a float tensor [frames, height, width, 3] or [batch, frames, height, width, 3] in 0..1; "
            f"got shape {tuple(getattr(frames, 'shape', ()))}."
        )
    if not frames.is_floating_point():
        raise InvalidInputError(
            f"Frames must be float in 0..1 (ComfyUI IMAGE); got {frames.dtype}. Convert uint8 clips with "
            "Clip.as_image()."
        )
    video = frames if frames.ndim == 5 else frames[None]
    return video[..., :3]


def cut_prompt_message(tokenizer, prompt: str, length: int) -> str | None:
    """What a prompt loses when CLIP's ``length`` tokens (start and end tokens included) cut it, or None if it fits.

    transformers only logs an over-long input, once, in the console; the end of a prompt is often its subject or
    trigger word, so the user is told where it was cut and what was dropped. The tokens are counted without
    truncation, as CLIP's own tokenizer cuts: the start token, the first ``length - 2`` tokens, the end token.
    """
    ids = tokenizer(prompt, verbose=False).input_ids
    if len(ids) <= length:
        return None
    room = length - 2
    words = ids[1:-1]
    kept_end = " ".join(tokenizer.decode(words[:room]).split()[-3:])[-40:]  # the last words kept, a cut one too
    lost = tokenizer.decode(words[room:]).strip()
    return (
        f'The prompt "{_shorten(prompt)}" is {len(words)} tokens long but this model reads at most {room}: it was cut '
        f'after "...{kept_end}", so its end "{_shorten(lost)}" is lost. Shorten the prompt, or put what matters '
        "(subject, trigger word) first."
    )


def _shorten(text: str, limit: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def denoise_inputs(latents: torch.Tensor, timesteps, text_states, frame_indices=None, *,
                   timestep_dtype: torch.dtype | None = None):
    """The checks and broadcasting every ``Backbone.denoise`` shares: latents [B, C, F, h, w] (only ``frame_indices``
    kept, in that order), per-sample timesteps [B] and text states of batch B (one prompt is broadcast)."""
    if latents.ndim != 5:
        raise InvalidInputError(f"Latents must be [batch, channels, frames, h, w]; got {tuple(latents.shape)}.")
    if frame_indices is not None:
        index = torch.as_tensor(frame_indices, dtype=torch.long, device=latents.device).reshape(-1)
        num_frames = latents.shape[2]
        if index.numel() == 0 or int(index.min()) < -num_frames or int(index.max()) >= num_frames:
            raise InvalidInputError(f"frame_indices {index.tolist()} do not fit a clip of {num_frames} latent frames.")
        latents = latents.index_select(2, index % num_frames)
    batch = latents.shape[0]
    if text_states.shape[0] == 1 and batch > 1:
        text_states = text_states.expand(batch, *text_states.shape[1:])
    elif text_states.shape[0] != batch:
        raise InvalidInputError(
            f"Got text states for {text_states.shape[0]} prompts but {batch} clips; pass one prompt or one per clip."
        )
    t = torch.as_tensor(timesteps, device=latents.device, dtype=timestep_dtype)
    t = t.expand(batch) if t.ndim == 0 else t.reshape(-1)
    return latents, t, text_states


def find_target_modules(module: nn.Module, patterns: dict[str, Sequence[str]], set_name: str,
                        family: str) -> list[str]:
    """Names of the Linear/Conv leaves of ``module`` matching the regexes of ``set_name``."""
    if set_name not in patterns:
        raise InvalidInputError(
            f"Target set {set_name!r} does not exist for the {family} family; available: "
            f"{', '.join(patterns)}. Pick one of those in the recipe's options."
        )
    compiled = [re.compile(p) for p in patterns[set_name]]
    names = []
    for name, sub in module.named_modules():
        # A layer peft already wrapped keeps its name and holds the original as .base_layer: it still counts, so a
        # second adapter on the same set (one spatial LoRA per clip) finds the same modules.
        leaf = getattr(sub, "base_layer", sub)
        if isinstance(leaf, _LEAF_TYPES) and any(c.search(name) for c in compiled):
            names.append(name)
    return names


_LEAF_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def move(module: nn.Module, device=None, dtype: torch.dtype | None = None) -> nn.Module:
    """module.to(device, dtype) through torch's own Module.to: diffusers' override logs a misleading "should be kept
    in float32: []" warning on every dtype cast of a model that keeps nothing in float32.

    A module holding fp8 weights (loaded as its file stores them, or under fp8 storage) keeps them: Module.to(dtype)
    would widen each fp8 weight without its scale, i.e. to a different model. Its other floating tensors take
    ``dtype``; the fp8 scales stay float32."""
    if dtype is None or not holds_fp8(module):
        return nn.Module.to(module, device=device, dtype=dtype)
    fp8_layers = [m for m in module.modules() if m._buffers.get("fp8_scale") is not None]
    scales = {id(m._buffers["fp8_scale"]) for m in fp8_layers}

    def convert(tensor: torch.Tensor) -> torch.Tensor:
        keep = not tensor.is_floating_point() or is_fp8(tensor) or id(tensor) in scales
        return tensor.to(device=device, dtype=None if keep else dtype)

    module._apply(convert)
    for layer in fp8_layers:  # they compute in the model's dtype, as the layers around them now do
        layer.compute_dtype = dtype
        if hasattr(layer.__dict__.get("forward"), "compute_dtype"):
            layer.forward.compute_dtype = dtype
    return module


def ready(cls, unet, vae, text_encoder, tokenizer, scheduler, dtype, device, source):
    """Move to device/dtype, freeze everything (adapters add the trainable weights), wrap in ``cls``."""
    for module in (unet, vae, text_encoder):
        move(module, device, dtype).requires_grad_(False)
    vae.eval()
    text_encoder.eval()
    return cls(denoiser=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
               device=device, dtype=dtype, source=source)

