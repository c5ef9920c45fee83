"""Wan 2.1 / 2.2 text-to-video: diffusers' WanTransformer3DModel, the causal video VAE AutoencoderKLWan and UMT5.

A Wan block has one self-attention over every token of every frame (3D RoPE tells each token its frame, row and column),
a text cross-attention and a feed-forward; there is no frame-local self-attention and no temporal module of its own.
So, following METHODS.md's reading of DiTs, the UNet split "spatial vs temporal modules" becomes a split by data:

- ``temporal_attn`` / ``temporal_attn_qkv``: the joint self-attention ``attn1`` (q, k, v, o / q, k, v): the only place
  tokens of different frames meet, hence where motion is learned.
- ``spatial_self_attn``: the SAME four attn1 modules. A spatial LoRA (MotionDirector, Customize-A-Video's absorber) is
  trained on one-frame clips, where attn1 sees one frame only; it lives on those modules as a second adapter and is
  switched by name. So unlike the UNet families, spatial and temporal sets share modules here.
- ``spatial_cross_attn_q|_kv`` and ``spatial_cross_attn``: ``attn2`` (text cross-attention), to_q / to_k, to_v / all
  four. The image-conditioning projections of image-to-video models (add_k_proj, add_v_proj) are in no set.
- ``spatial_ff``: ``ffn.net.0.proj`` and ``ffn.net.2`` (per-token, so frame-local).
- No ``temporal_ff`` (the ff is per token and has no frame axis) and no ``temporal_conv`` (Wan has none; DeT's added
  temporal convolutions are a different architecture). Recipes asking for them fall back as for AnimateDiff.

Latents: [B, z_dim, 1 + (F − 1)/4, H/s, W/s], normalised per channel with the VAE's latents_mean/std as WanPipeline
does. The objective is flow matching with the shift of the model's scheduler (see objectives.py).
"""

from __future__ import annotations

import html
import re
import warnings
from typing import Sequence

import torch
import torch.nn.functional as F

from ...errors import InvalidInputError
from .. import checkpointing
from ..base import (ATTN_ALL, ATTN_QKV, VAE_FRAMES_PER_CALL, Backbone, PlanningShapes, as_batched_frames,
                    config_fingerprint, denoise_inputs)
from ..objectives import FlowMatchObjective
from ..related import RelatedBase
from . import image_condition

WAN_BLOCK = r"^blocks\.\d+\."
WAN_TARGET_PATTERNS = {
    "spatial_self_attn": [WAN_BLOCK + r"attn1\." + ATTN_ALL + "$"],
    "spatial_cross_attn_q": [WAN_BLOCK + r"attn2\.to_q$"],
    "spatial_cross_attn_kv": [WAN_BLOCK + r"attn2\.(to_k|to_v)$"],
    "spatial_cross_attn": [WAN_BLOCK + r"attn2\." + ATTN_ALL + "$"],
    "spatial_ff": [WAN_BLOCK + r"ffn\.net\.(0\.proj|2)$"],
    "temporal_attn": [WAN_BLOCK + r"attn1\." + ATTN_ALL + "$"],
    "temporal_attn_qkv": [WAN_BLOCK + r"attn1\." + ATTN_QKV + "$"],
}

MAX_TEXT_TOKENS = 512
"""What every Wan model was trained with (WanPipeline's max_sequence_length); tokenizers that report a longer or
unlimited length are capped here, tiny test tokenizers that report less keep theirs."""

VAE_CHUNK_FRAMES = 4
"""AutoencoderKLWan encodes a clip's first frame, then chunks of this many frames (its causal cache's unit)."""

DEFAULT_FLOW_SHIFT = 3.0
"""Wan's shift at 480p, used when the scheduler carries none."""


class WanBackbone(Backbone):
    """Wan 2.1 / 2.2 (family "wan"). Text states: UMT5's last hidden state [B, 512, 4096], zero past each prompt."""

    family = "wan"
    target_patterns = WAN_TARGET_PATTERNS
    image_encoder = None
    """The CLIP vision model whose features Wan 2.1 I2V reads (None for every other Wan)."""
    first_frame_conditioning: bool | None = None
    """Whether the model takes a start image as its clean first latent frame (Wan 2.2 TI2V 5B; set by the loader
    from the file's architecture or the folder's expand_timesteps). None: decided by the latent width (48: TI2V)."""

    def make_objective(self) -> FlowMatchObjective:
        config = getattr(self.scheduler, "config", None) or {}
        # UniPCMultistepScheduler (Wan's shipped sampler) calls it flow_shift, FlowMatchEulerDiscreteScheduler shift.
        shift = config.get("flow_shift", config.get("shift", DEFAULT_FLOW_SHIFT))
        return FlowMatchObjective(shift=DEFAULT_FLOW_SHIFT if shift is None else float(shift),
                                  num_train_timesteps=int(config.get("num_train_timesteps", 1000)))

    # ---- layout ---------------------------------------------------------------------------------------------
    @property
    def temporal_compression(self) -> int:
        return 2 ** sum(bool(d) for d in self.vae.config.temperal_downsample)

    def check_video_frames(self, video_frames: int) -> None:
        """diffusers' Wan VAE reads a clip as its first frame then chunks of ``VAE_CHUNK_FRAMES`` frames and drops a
        shorter tail, whatever its temporal compression (a VAE without one, like ShapesWan's, too): 1 + 4k frames."""
        f = int(video_frames)
        if (f - 1) % VAE_CHUNK_FRAMES:
            low = 1 + (f - 1) // VAE_CHUNK_FRAMES * VAE_CHUNK_FRAMES
            raise InvalidInputError(
                f"This wan model encodes clips of 1 + {VAE_CHUNK_FRAMES}·k frames (e.g. {low} or "
                f"{low + VAE_CHUNK_FRAMES}); got {video_frames}. Set frames to one of those."
            )

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent pixel: one halving per level after the first, times the Wan 2.2 VAE's pixel-unshuffle
        patch (2), so 8 for Wan 2.1 and 16 for Wan 2.2 (what WanPipeline reads as scale_factor_spatial)."""
        return 2 ** len(self.vae.config.temperal_downsample) * int(self.vae.config.get("patch_size") or 1)

    @property
    def patch_size(self) -> tuple[int, int, int]:
        return tuple(int(p) for p in self.denoiser.config.patch_size)

    @property
    def pixel_multiple(self) -> int:
        """Width and height must be multiples of this: the VAE's factor times the transformer's spatial patch."""
        return self.vae_scale_factor * max(self.patch_size[1:])

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.z_dim)

    @property
    def variant(self) -> str:
        """A readable name of the architecture, e.g. "wan2.1-1.3b"; 14B-wide models are "wan-14b" because Wan 2.1
        14B and each Wan 2.2 A14B expert share one architecture."""
        c = self.denoiser.config
        dim, layers = int(c.num_attention_heads) * int(c.attention_head_dim), int(c.num_layers)
        names = {(1536, 30, 16): "wan2.1-1.3b", (5120, 40, 16): "wan-14b", (3072, 30, 48): "wan2.2-ti2v-5b"}
        name = names.get((dim, layers, int(c.out_channels)), f"wan-{dim}d-{layers}l")
        return name + ("-i2v" if c.get("image_dim") or int(c.in_channels) != int(c.out_channels) else "")

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", variant={self.variant!r})"

    # ---- video <-> latents ----------------------------------------------------------------------------------
    def _latent_stats(self, like: torch.Tensor):
        shape = (1, self.latent_channels, 1, 1, 1)
        mean = torch.tensor(self.vae.config.latents_mean, dtype=torch.float32).view(shape).to(like.device)
        std = torch.tensor(self.vae.config.latents_std, dtype=torch.float32).view(shape).to(like.device)
        return mean, std

    @torch.no_grad()
    def _encode_clips(self, video, per_call, sample_posterior, generator):
        """Frames [N, F, H, W, 3] -> normalised latents, ``per_call`` clips per VAE call (bounds its memory)."""
        n, f, h, w, _ = video.shape
        s = self.vae_scale_factor
        if h % s or w % s:
            raise InvalidInputError(
                f"Frame size {w}x{h} is not a multiple of {s}, which this model's VAE needs. Resize or crop the clip "
                f"to a multiple of {self.pixel_multiple} (e.g. {w - w % self.pixel_multiple}x"
                f"{h - h % self.pixel_multiple})."
            )
        vae_dtype = next(self.vae.parameters()).dtype
        latents = []
        for chunk in video.split(per_call):
            pixels = chunk.to(self.device, vae_dtype).permute(0, 4, 1, 2, 3) * 2.0 - 1.0
            dist = self.vae.encode(pixels).latent_dist
            latents.append((dist.sample(generator) if sample_posterior else dist.mean).float())
        z = torch.cat(latents)
        mean, std = self._latent_stats(z)
        return ((z - mean) / std).to(self.dtype)

    def encode_video(self, frames, *, sample_posterior=False, generator=None):
        video = as_batched_frames(frames)
        self.check_video_frames(video.shape[1])
        # One clip per call: a Wan VAE's activations for a whole clip are already large (the causal cache holds them).
        return self._encode_clips(video, 1, sample_posterior, generator)

    def encode_frames_as_images(self, frames, *, sample_posterior=False, generator=None):
        """Each frame as a one-frame clip (the causal VAE's image path): one latent frame per video frame."""
        video = as_batched_frames(frames)
        b, f = video.shape[:2]
        singles = video.reshape(b * f, 1, *video.shape[2:])
        z = self._encode_clips(singles, VAE_FRAMES_PER_CALL, sample_posterior, generator)
        return z.reshape(b, f, *z.shape[1:]).squeeze(3).permute(0, 2, 1, 3, 4)

    @torch.no_grad()
    def decode_latents(self, latents):
        if latents.ndim != 5:
            raise InvalidInputError(f"Latents must be [batch, channels, frames, h, w]; got {tuple(latents.shape)}.")
        vae_dtype = next(self.vae.parameters()).dtype
        z = latents.to(self.device, torch.float32)
        mean, std = self._latent_stats(z)
        z = (z * std + mean).to(vae_dtype)
        clips = [self.vae.decode(clip).sample.float() for clip in z.split(1)]
        video = (torch.cat(clips) / 2.0 + 0.5).clamp(0.0, 1.0)
        return video.permute(0, 2, 3, 4, 1).cpu()

    # ---- start image (image_condition.py) -------------------------------------------------------------------
    @property
    def image_mode(self) -> str | None:
        """"concat" (Wan I2V models), "first_frame" (Wan 2.2 TI2V 5B) or None (text-to-video only)."""
        first = self.first_frame_conditioning
        if first is None:
            first = int(self.denoiser.config.out_channels) == 48
        return image_condition.image_mode(self.denoiser.config, bool(first))

    @property
    def start_image(self) -> str:
        return {"concat": "required", "first_frame": "optional"}.get(self.image_mode, "none")

    def encode_start_image(self, image, frames, width, height):
        mode = self.image_mode
        if mode is None:
            return super().encode_start_image(image, frames, width, height)
        return image_condition.encode_condition(self, image, frames, width, height, mode)

    def related_bases(self):
        """An image-to-video Wan ("concat") shares every block layer with the text-to-video Wan of its size; only the
        patch embedding reads more channels (noise + mask + image latents). That model's LoRAs apply here."""
        config = image_condition.text_to_video_config(self.denoiser.config)
        if config is None:
            return ()
        fingerprint = config_fingerprint(self.family, type(self.denoiser).__name__, config)
        return (RelatedBase(fingerprint, "the text-to-video Wan of this size", (image_condition.IMAGE_INPUT_LAYER,)),)

    def blank_condition(self, latents):
        return image_condition.blank_condition(self.denoiser.config, latents, self.image_mode)

    def without_image(self, condition):
        return image_condition.without_image(condition)

    def finish_latents(self, latents):
        cond = self.condition
        if cond is not None and cond.mode == "first_frame" and latents.shape[2] == cond.latent_frames:
            latents = latents.clone()
            latents[:, :, :1] = cond.latents.to(latents.device, latents.dtype)
        return latents

    # ---- text -------------------------------------------------------------------------------------------------
    @property
    def max_text_tokens(self) -> int:
        return min(int(self.tokenizer.model_max_length), MAX_TEXT_TOKENS)

    def encode_prompt(self, prompts: Sequence[str]) -> torch.Tensor:
        """UMT5's last hidden state [B, max_text_tokens, 4096]; states past each prompt's own tokens (its eos
        included) are zero, as WanPipeline feeds them: the model never saw padding tokens' states."""
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = [_clean_prompt(p) for p in prompts]
        length = self.max_text_tokens
        # transformers only logs an over-long input; a cut prompt changes the video, so the user is told.
        for i, ids in enumerate(self.tokenizer(prompts, verbose=False).input_ids):
            if len(ids) > length:
                warnings.warn(
                    f"Prompt {i + 1} is {len(ids)} tokens long but this Wan model reads at most {length}: it was cut "
                    f"at {length} tokens. Shorten the prompt to keep its end.", UserWarning, stacklevel=2,
                )
        tokens = self.tokenizer(prompts, padding="max_length", max_length=length, truncation=True,
                                return_attention_mask=True, return_tensors="pt")
        ids, mask = tokens.input_ids.to(self.device), tokens.attention_mask.to(self.device)
        with torch.no_grad():
            states = self.text_encoder(ids, attention_mask=mask).last_hidden_state
        return (states * mask[..., None].to(states.dtype)).to(self.dtype)

    # ---- denoising --------------------------------------------------------------------------------------------
    def denoise(self, latents, timesteps, text_states, frame_indices=None):
        """Model timesteps are 1000·σ (float) [] or [B]; ``frame_indices`` pick LATENT frames, run as their own clip
        (their RoPE frame positions restart at 0, as for a clip that short)."""
        clip_frames = int(latents.shape[2]) if latents.ndim == 5 else 0
        if self.condition is None and self.start_image == "required":
            raise InvalidInputError(
                "This Wan model is image-to-video: it needs a start image. Connect an image to 'start_image' (Sample "
                "Video) or pass --image on the command line; training uses the reference clip's first frame."
            )
        latents, t, text_states = denoise_inputs(latents, timesteps, text_states, frame_indices,
                                                 timestep_dtype=torch.float32)
        hidden, t, image_states, first_given = image_condition.model_inputs(
            self.condition, latents, t, clip_frames, frame_indices, self.patch_size)
        self._check_latent_layout(hidden)
        if image_states is not None:
            # diffusers' Wan attention splits image from text states assuming 512 text tokens (as Wan was trained).
            pad = MAX_TEXT_TOKENS - text_states.shape[1]
            text_states = F.pad(text_states, (0, 0, 0, pad)) if pad > 0 else text_states
            image_states = image_states.to(self.dtype)
        out = self.denoiser(hidden_states=hidden.to(self.dtype), timestep=t,
                            encoder_hidden_states=text_states.to(self.dtype),
                            encoder_hidden_states_image=image_states, return_dict=False)[0]
        if first_given and torch.is_grad_enabled():
            out = torch.cat([out[:, :, :1].detach(), out[:, :, 1:]], dim=2)  # the given frame is not learned
        return out

    def _check_latent_layout(self, latents: torch.Tensor) -> None:
        c = self.denoiser.config
        _, channels, frames, h, w = latents.shape
        if channels != int(c.in_channels):
            raise InvalidInputError(
                f"This Wan model takes {c.in_channels}-channel latents; got {channels}. Encode the clip with the "
                "same model's VAE."
            )
        p_t, p_h, p_w = self.patch_size
        if frames % p_t or h % p_h or w % p_w:
            raise InvalidInputError(
                f"Latents of {w}x{h} do not split into the transformer's {p_w}x{p_h} patches. Use frames whose width "
                f"and height are multiples of {self.pixel_multiple} pixels."
            )
        longest = max(frames // p_t, h // p_h, w // p_w)
        if longest > int(c.rope_max_seq_len):
            raise InvalidInputError(
                f"The clip is {longest} patches along one axis but this Wan model's position table holds "
                f"{c.rope_max_seq_len}. Use fewer frames or a smaller size."
            )

    # ---- memory options (memory.py) ---------------------------------------------------------------------------
    @property
    def offload_blocks(self):
        """The transformer blocks block offload moves to the accelerator one at a time (memory.BlockOffload)."""
        return self.denoiser.blocks

    def planning_shapes(self, frames: int, height: int, width: int):
        """Latents [1, C, 1 + (F - 1)/c, H/s, W/s], UMT5 states [1, 512, text width]; tokens: latent frames times
        patches per frame. Without a VAE (a denoiser-only backbone) the Wan VAE's factors are inferred from the
        transformer: 48 latent channels mean the Wan 2.2 VAE (spatial 16), else the Wan 2.1 one (8); both compress
        time by 4."""
        c = self.denoiser.config
        if self.vae is not None:
            compression, s = self.temporal_compression, self.vae_scale_factor
        else:
            compression, s = 4, 16 if int(c.out_channels) == 48 else 8
        latent_frames = int(frames) if compression == 1 else 1 + (int(frames) - 1) // compression
        h, w = int(height) // s, int(width) // s
        p_t, p_h, p_w = self.patch_size
        tokens = (latent_frames // p_t) * (h // p_h) * (w // p_w)
        text = self.max_text_tokens if self.tokenizer is not None else MAX_TEXT_TOKENS
        return PlanningShapes(latents=(1, int(c.out_channels), latent_frames, h, w),
                              text_states=(1, text, int(c.text_dim)), tokens=tokens)

    # ---- gradient checkpointing -------------------------------------------------------------------------------
    def enable_gradient_checkpointing(self) -> None:
        """Checkpoint each transformer block with our own wrapper (checkpointing.py), not diffusers' switch: the same
        mechanism as the UNet families, so it behaves the same with peft-wrapped layers, under no_grad and on
        deepcopy. diffusers' flag is forced off so no block is checkpointed twice."""
        self.denoiser.gradient_checkpointing = False
        checkpointing.enable(self.denoiser.blocks)

    def disable_gradient_checkpointing(self) -> None:
        checkpointing.disable(self.denoiser.blocks)

    @property
    def gradient_checkpointing(self) -> bool:
        return checkpointing.is_enabled(self.denoiser.blocks)


def _clean_prompt(text: str) -> str:
    """The normalisation Wan's prompts went through in training (entities unescaped, whitespace collapsed); ftfy's
    mojibake repair, which WanPipeline adds when installed, is left out."""
    return re.sub(r"\s+", " ", html.unescape(html.unescape(str(text)))).strip()
