"""Image-to-video on Wan: how the start image enters the transformer, in the two ways Wan models take it.

- "concat" (Wan 2.1 I2V 14B, Wan 2.2 I2V A14B; diffusers WanImageToVideoPipeline, ComfyUI WanImageToVideo): the
  transformer's input is [noisy latents, mask, image latents] along channels (in_channels = 2·z + T). The image latents
  encode a clip of the same length whose first frame is the image and whose other frames are mid-gray; the mask (T
  channels, T = the VAE's temporal compression) is 1 on latent frame 0 and 0 elsewhere. Wan 2.1 I2V also reads CLIP
  vision features of the image (the penultimate layer's states) through extra cross-attention keys (k_img / v_img).
  The model generates every frame, the first included, so the loss covers all of them.
- "first_frame" (Wan 2.2 TI2V 5B; diffusers' expand_timesteps, ComfyUI Wan22ImageToVideoLatent): the first latent
  frame IS the image's latent, kept clean (timestep 0 on its tokens) while the rest is denoised. That frame is given,
  not generated: it gets no gradient, and the sampler writes it back before decoding.

Paths that run the model on other frames than the clip's own (MotionDirector's one-frame spatial path, the absorber)
see no image: in "concat" mode a blank condition (mask 0, gray image latents), in "first_frame" mode none at all.
They learn a frame's look, which an image-to-video model would otherwise just copy from the start image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...errors import InvalidInputError
from ..conditioning import single_image

GRAY = 0.5
"""The value of the frames after the start image in the conditioning clip (0 in the VAE's -1..1 range)."""
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class WanImageCondition:
    """A start image prepared for one clip length and size."""

    mode: str
    """"concat" or "first_frame"."""
    latents: torch.Tensor
    """concat: mask + image latents [1, T + z, F', h, w]; first_frame: the image's own latent [1, z, 1, h, w]."""
    latent_frames: int
    """Latent frames of the clip this condition was made for."""
    image_embeds: torch.Tensor | None = None
    """CLIP-vision states [1, tokens, width] (Wan 2.1 I2V only)."""
    mask_channels: int = 0
    """T: the leading mask channels of a concat condition."""

    def blank(self, frames: int) -> torch.Tensor:
        """A concat condition that shows no image on ``frames`` latent frames: mask 0 and the gray frames' latent
        (the condition's last frame, a gray one) on every frame."""
        blank = self.latents[:, :, -1:].expand(-1, -1, int(frames), -1, -1).clone()
        blank[:, : self.mask_channels] = 0.0
        return blank


def image_mode(config, first_frame: bool) -> str | None:
    """How a Wan transformer with this config takes a start image: "concat" when its input is wider than its output,
    "first_frame" when the model is a TI2V one (``first_frame``, from the loader), else None (text-to-video)."""
    if int(config.in_channels) > int(config.out_channels):
        return "concat"
    return "first_frame" if first_frame else None


IMAGE_INPUT_LAYER = "patch_embedding"
"""The one layer a "concat" image-to-video Wan shapes differently from its text-to-video form (same name in the
original and the diffusers layout): its input is noise, mask and image latents instead of the noise alone."""
IMAGE_ONLY_CONFIG = {"image_dim": None, "added_kv_proj_dim": None, "pos_embed_seq_len": None}
"""What a "concat" image-to-video Wan's config has beyond its text-to-video form: the CLIP image embedder and its
cross-attention keys (Wan 2.1 I2V), the first/last-frame position table (FLF2V)."""


def text_to_video_config(config) -> dict | None:
    """The config of the text-to-video Wan a "concat" image-to-video one extends: the same blocks, read from the
    noise alone, without the image layers. None for every other Wan."""
    if int(config.in_channels) <= int(config.out_channels):
        return None
    return {**dict(config), "in_channels": int(config.out_channels), **IMAGE_ONLY_CONFIG}


def fit_image(picture: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """float [H, W, 3] -> float [height, width, 3]: scaled to cover the frame, centre-cropped (as the clips are).
    Kept in float, so an image that already has the size passes unchanged (core's graph then sees the same pixels)."""
    h, w = picture.shape[:2]
    if (w, h) == (width, height):
        return picture
    scale = max(width / w, height / h)
    size = (max(height, round(h * scale)), max(width, round(w * scale)))
    scaled = F.interpolate(picture.permute(2, 0, 1)[None], size=size, mode="bilinear", antialias=True,
                           align_corners=False)[0].permute(1, 2, 0)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    return scaled[top:top + height, left:left + width].clamp(0.0, 1.0).contiguous()


def encode_condition(backbone, image, frames: int, width: int, height: int, mode: str) -> WanImageCondition:
    """The condition of a ``frames``-frame clip at ``width`` x ``height`` starting from ``image``."""
    picture = single_image(image)
    backbone.check_video_frames(frames)
    fitted = fit_image(picture, int(width), int(height))
    if mode == "first_frame":
        z = backbone._encode_clips(fitted[None, None], 1, False, None)
        return WanImageCondition(mode, z, backbone.latent_frames(frames))
    video = torch.full((1, int(frames), int(height), int(width), 3), GRAY)
    video[0, 0] = fitted
    z = backbone._encode_clips(video, 1, False, None)
    config = backbone.denoiser.config
    mask = z.new_zeros(1, mask_channels(config), *z.shape[2:])
    mask[:, :, 0] = 1.0
    embeds = clip_image_states(backbone, picture) if config.get("image_dim") else None
    return WanImageCondition(mode, torch.cat([mask, z], dim=1), int(z.shape[2]), embeds, mask.shape[1])


def mask_channels(config) -> int:
    """T of the concat layout: the transformer's extra input channels beyond noise and image latents."""
    return int(config.in_channels) - 2 * int(config.out_channels)


def clip_image_states(backbone, picture: torch.Tensor) -> torch.Tensor:
    """The CLIP vision encoder's penultimate-layer states of the image [1, tokens, width]: what Wan 2.1 I2V reads
    (diffusers' encode_image, core's CLIPVisionEncode). Preprocessing: shortest side to the encoder's size (bicubic,
    antialiased), centre crop, 8-bit rounding, CLIP's mean and std."""
    encoder = getattr(backbone, "image_encoder", None)
    if encoder is None:
        raise InvalidInputError(
            "This Wan image-to-video model reads CLIP vision features of the start image but no CLIP vision model is "
            "loaded: choose clip_vision_h.safetensors (models/clip_vision) in the model loader."
        )
    size = int(encoder.config.image_size)
    pixels = picture.permute(2, 0, 1)[None]
    h, w = pixels.shape[-2:]
    if (h, w) != (size, size):
        scale = size / min(h, w)
        pixels = F.interpolate(pixels, size=(round(h * scale), round(w * scale)), mode="bicubic", antialias=True)
        top, left = (pixels.shape[-2] - size) // 2, (pixels.shape[-1] - size) // 2
        pixels = pixels[:, :, top:top + size, left:left + size]
    pixels = (pixels * 255.0).clamp(0, 255).round() / 255.0
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    pixels = ((pixels - mean) / std).to(backbone.device, next(encoder.parameters()).dtype)
    with torch.no_grad():
        states = encoder(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
    return states.to(backbone.dtype)


def blank_condition(config, latents: torch.Tensor, mode: str | None) -> WanImageCondition | None:
    """Zero condition of the right shapes (the memory planner's trace; values do not matter there)."""
    if mode != "concat":
        return None
    b, _, f, h, w = latents.shape
    cond = latents.new_zeros(1, mask_channels(config) + int(config.out_channels), f, h, w)
    embeds = None
    if config.get("image_dim"):
        embeds = latents.new_zeros(1, 257, int(config.image_dim))
    return WanImageCondition("concat", cond, int(f), embeds, mask_channels(config))


def without_image(condition: WanImageCondition | None) -> WanImageCondition | None:
    """The clip's condition showing no image, as the single-frame paths see it: concat models get mask 0 and the
    gray frames' latent on every frame (Wan 2.1 I2V keeps the image's CLIP states, as those paths do: the
    transformer needs them and never saw any other); "first_frame" models get none, i.e. text-to-video."""
    if condition is None or condition.mode != "concat":
        return None
    return WanImageCondition("concat", condition.blank(condition.latent_frames), condition.latent_frames,
                             condition.image_embeds, condition.mask_channels)


def model_inputs(condition: WanImageCondition | None, latents: torch.Tensor, t: torch.Tensor, clip_frames: int,
                 frame_indices, patch: tuple[int, int, int]):
    """(hidden states, timesteps, image states, first frame given) for the transformer call.

    ``latents`` are the frames the model runs on (after ``frame_indices``), ``clip_frames`` the frames of the clip
    they came from. The condition applies to the clip's own frames only; other runs see none (see the module doc)."""
    if condition is None:
        return latents, t, None, False
    batch, frames = latents.shape[0], latents.shape[2]
    own_clip = clip_frames == condition.latent_frames
    if condition.mode == "first_frame":
        if not own_clip or frame_indices is not None:
            return latents, t, None, False
        hidden = latents.clone()
        hidden[:, :, :1] = condition.latents.to(latents.dtype)
        tokens_per_frame = (latents.shape[3] // patch[1]) * (latents.shape[4] // patch[2])
        per_token = t[:, None].expand(batch, (frames // patch[0]) * tokens_per_frame).clone()
        per_token[:, :tokens_per_frame] = 0
        return hidden, per_token, None, True
    cond = condition.latents
    if own_clip and frame_indices is not None:
        index = torch.as_tensor(frame_indices, dtype=torch.long, device=cond.device).reshape(-1)
        cond = cond.index_select(2, index % condition.latent_frames)
    if not own_clip or cond.shape[2] != frames:
        cond = condition.blank(frames)
    cond = cond.to(latents.device, latents.dtype).expand(batch, *cond.shape[1:])
    embeds = condition.image_embeds
    if embeds is not None:
        embeds = embeds.expand(batch, *embeds.shape[1:])
    return torch.cat([latents, cond], dim=1), t, embeds, False

