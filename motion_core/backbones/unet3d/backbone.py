"""ModelScope text-to-video / ZeroScope: diffusers' UNet3DConditionModel with an SD-style VAE and a CLIP text encoder.

Each UNet3D block interleaves per-frame layers (resnets, spatial transformers ``attentions``) with frame-axis layers
(``temp_convs``: convolutions along F; ``temp_attentions``: self-attention along F), and an input temporal transformer
``transformer_in`` sits after conv_in. Those names are what the target sets below are written against.
"""

from __future__ import annotations

from .. import checkpointing
from ..base import ATTN_ALL, FF, unet_target_patterns
from ..clip_unet import ClipUNetBackbone

UNET3D_TARGET_PATTERNS = {
    **unet_target_patterns(r"(^|\.)temp_attentions\.\d+\.transformer_blocks\.\d+\."),
    # TemporalConvLayer holds four nn.Sequential (norm, act, [dropout,] Conv3d); the Conv3d is the last entry.
    "temporal_conv": [r"(^|\.)temp_convs\.\d+\.conv[1-4]\.\d+$"],
    "transformer_in": [r"^transformer_in\.transformer_blocks\.\d+\.(attn[12]\." + ATTN_ALL + "|" + FF + ")$"],
}


class UNet3DBackbone(ClipUNetBackbone):
    """ModelScope / ZeroScope (family "unet3d"). Text states: CLIP last hidden state [B, 77, 1024]."""

    family = "unet3d"
    target_patterns = UNET3D_TARGET_PATTERNS

    def _run_denoiser(self, latents, timesteps, text_states):
        return self.denoiser(latents, timesteps, encoder_hidden_states=text_states, return_dict=False)[0]

    def checkpointable_layers(self):
        """Each resnet, temporal conv, spatial and temporal transformer and transformer_in (see checkpointing.py for
        why diffusers' own switch cannot be used here)."""
        yield self.denoiser.transformer_in
        yield from checkpointing.block_layers(self.denoiser, ("resnets", "temp_convs", "attentions",
                                                              "temp_attentions"))
