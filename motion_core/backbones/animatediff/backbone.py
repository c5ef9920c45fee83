"""AnimateDiff: a Stable Diffusion 1.5 UNet with a MotionAdapter's motion modules, as diffusers' UNetMotionModel.

The SD1.5 UNet works on frames as a batch of images; after each spatial transformer a motion module (a transformer
whose two self-attentions run along the frame axis, with sinusoidal frame positions) mixes the frames. There is no
temporal convolution, so this family has no ``temporal_conv`` set: recipes that ask for it (NewMove) must fall back
to temporal attention and say so.
"""

from __future__ import annotations

from ...errors import InvalidInputError
from .. import checkpointing
from ..base import unet_target_patterns
from ..clip_unet import ClipUNetBackbone

ANIMATEDIFF_TARGET_PATTERNS = unet_target_patterns(r"(^|\.)motion_modules\.\d+\.transformer_blocks\.\d+\.")


class AnimateDiffBackbone(ClipUNetBackbone):
    """AnimateDiff on SD1.5 (family "animatediff"). Text states: CLIP last hidden state [B, 77, 768]."""

    family = "animatediff"
    target_patterns = ANIMATEDIFF_TARGET_PATTERNS

    @property
    def max_frames(self) -> int:
        """The motion modules' positional table length: longer clips cannot be denoised in one window."""
        return int(self.denoiser.config.motion_max_seq_length)

    def _run_denoiser(self, latents, timesteps, text_states):
        num_frames = latents.shape[2]
        if num_frames > self.max_frames:
            raise InvalidInputError(
                f"AnimateDiff's motion module handles at most {self.max_frames} frames; got {num_frames}. "
                f"Use {self.max_frames} or fewer frames (16 is what it was trained on)."
            )
        # UNetMotionModel folds frames into the batch (b-major) but, unlike UNet3D, leaves the text states to the
        # caller: one copy per frame, in the same order.
        per_frame_text = text_states.repeat_interleave(num_frames, dim=0)
        return self.denoiser(latents, timesteps, encoder_hidden_states=per_frame_text, return_dict=False)[0]

    def checkpointable_layers(self):
        """Each resnet, spatial transformer and motion module: diffusers' own switch on UNetMotionModel checkpoints
        only the resnets (see checkpointing.py)."""
        return checkpointing.block_layers(self.denoiser, ("resnets", "attentions", "motion_modules"))
