"""ShapesWan's component configurations: the REAL diffusers/transformers Wan classes (WanTransformer3DModel,
AutoencoderKLWan, UMT5EncoderModel, a T5 tokenizer, FlowMatchEulerDiscreteScheduler), sized for a 2-core CPU.

The same world as ShapesT2V at the same 64x64 size, with two departures that the Wan layout asks for:
- 9 frames, not 8: diffusers' Wan VAE reads a clip as its first frame then chunks of 4, so a clip must be 1 + 4k
  frames long or its tail is dropped.
- No temporal compression (``temperal_downsample`` all False): a real Wan VAE folds 4 frames into one latent frame;
  a VAE this small, trained in minutes, cannot keep 4 positions of a moving object apart in one latent cell, and the
  motion would be lost before the transformer sees it. Space is compressed 4x (objects of 13-18 px stay 3-4 latent
  cells wide), and the causal 3D convolutions and per-channel latent statistics are the real Wan ones.

4 latent channels (a real Wan 2.1 has 16): three are anchored to the frame's colour as in ShapesT2V (vae_stage.py
says why), one is free. The transformer's text width is the tiny UMT5's own (64), not Wan's 4096: this folder is
opened by the pack's Wan loader, not by ComfyUI's single-file Wan detection, which fixes those widths.
"""

from __future__ import annotations

from .architecture import FPS, FRAME_SIZE  # noqa: F401  (the same world size and speed as ShapesT2V)

WAN_NUM_FRAMES = 9
WAN_LATENT_CHANNELS = 4
WAN_TEXT_DIM = 64
WAN_MAX_TOKENS = 24  # the longest caption is 13 words; each word is one token, plus the closing </s>
WAN_FLOW_SHIFT = 2.0  # 16x16 latents: less shift than Wan's 480p default of 3-5 (fewer tokens, less redundancy)

VAE_CONFIG = dict(base_dim=16, z_dim=WAN_LATENT_CHANNELS, dim_mult=[1, 2, 2], num_res_blocks=1,
                  temperal_downsample=[False, False], scale_factor_temporal=1, scale_factor_spatial=4)

# 2 heads of 64 channels, 5 blocks, 1.5M parameters: ~1.1 s per training step of 16 clips on 2 CPU threads.
TRANSFORMER_CONFIG = dict(
    patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=64, in_channels=WAN_LATENT_CHANNELS,
    out_channels=WAN_LATENT_CHANNELS, text_dim=WAN_TEXT_DIM, freq_dim=64, ffn_dim=512, num_layers=5,
    cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=64,
)

TEXT_CONFIG = dict(d_model=WAN_TEXT_DIM, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
                   relative_attention_num_buckets=8, relative_attention_max_distance=32,
                   feed_forward_proj="gated-gelu", dropout_rate=0.0, pad_token_id=0, eos_token_id=1)


def build_wan_tokenizer():
    """A T5Tokenizer (UMT5's class) whose vocabulary holds every world word and trigger example as ONE piece
    ("▁circle", "▁sks", "▁V*": T5's pre-tokenizer splits on spaces only, so "V*" stays whole, unlike under CLIP),
    then single characters as a fallback, so an unknown word still tokenizes (in pieces) instead of vanishing."""
    from transformers import T5Tokenizer

    from ..captions import TRIGGER_EXAMPLES, WORLD_WORDS

    words = sorted(set(WORLD_WORDS) | set(TRIGGER_EXAMPLES))
    characters = [chr(c) for c in (*range(0x21, 0x7F), *range(0xA1, 0x100)) if chr(c) != "▁"]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [("▁" + w, -1.0) for w in words] + [(c, -4.0) for c in characters]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=WAN_MAX_TOKENS)


def build_wan_vae():
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan(**VAE_CONFIG)


def build_wan_transformer():
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(**TRANSFORMER_CONFIG)


def build_wan_text_encoder(tokenizer):
    from transformers import UMT5Config, UMT5EncoderModel

    return UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), **TEXT_CONFIG))


def build_wan_scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=WAN_FLOW_SHIFT)
