"""ShapesT2V's component configurations: real diffusers/transformers classes, sized for a 2-core CPU.

64x64 RGB frames, 8 per clip, become 4x16x16 latents (a factor-4 VAE: the objects are 13-18 px, so a factor-8 latent
would leave them ~2 latent pixels wide). Weights are stored in float16 to keep the folder under 25 MB.
"""

from __future__ import annotations

from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

FRAME_SIZE = 64
NUM_FRAMES = 8
FPS = 8.0
LATENT_CHANNELS = 4
TEXT_DIM = 64
MAX_TOKENS = 16  # the longest caption ("a purple triangle moves down and left next to a white circle") is 13 tokens

VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS,
    down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(16, 32, 64), layers_per_block=1, norm_num_groups=16, sample_size=FRAME_SIZE,
)

# Attention only at the 8x8 and 4x4 levels: spatial attention over 16x16 latents cost 3x the step time on this
# CPU (measured: 4.2 s vs 1.45 s per batch of 8 clips) and the text only has to place one or two objects.
# Channels (32, 48, 64), 2.4M parameters: 141 ms per clip per training step on 2 threads against 216 ms for
# (32, 64, 128) (7.1M). FINDINGS.md records how well each followed its prompts.
UNET_CONFIG = dict(
    sample_size=FRAME_SIZE // 4, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS,
    down_block_types=("DownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D"),
    up_block_types=("CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "UpBlock3D"),
    block_out_channels=(32, 48, 64), layers_per_block=1, cross_attention_dim=TEXT_DIM,
    attention_head_dim=8, norm_num_groups=16,
)

# v-prediction on a cosine schedule: a small model learns the low-noise end (where colours and edges settle) far
# better than with epsilon on the linear SD schedule, measured on this world.
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
    clip_sample=False, set_alpha_to_one=False, steps_offset=0, timestep_spacing="trailing",
)


def text_config(vocab_size: int, pad_id: int, bos_id: int, eos_id: int) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=TEXT_DIM, intermediate_size=TEXT_DIM * 2, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=MAX_TOKENS, projection_dim=TEXT_DIM,
        pad_token_id=pad_id, bos_token_id=bos_id, eos_token_id=eos_id,
    )


def build_vae(latent_channels: int = LATENT_CHANNELS) -> AutoencoderKL:
    return AutoencoderKL(**{**VAE_CONFIG, "latent_channels": latent_channels})


def build_unet(latent_channels: int = LATENT_CHANNELS) -> UNet3DConditionModel:
    return UNet3DConditionModel(**{**UNET_CONFIG, "in_channels": latent_channels, "out_channels": latent_channels})


def build_text_encoder(tokenizer) -> CLIPTextModel:
    cfg = text_config(len(tokenizer), tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id)
    return CLIPTextModel(cfg)


def build_scheduler() -> DDIMScheduler:
    return DDIMScheduler(**SCHEDULER_CONFIG)
