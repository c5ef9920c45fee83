"""The tiny CLIP-side parts both UNet families' tiny models share (an SD-style VAE, a CLIP text encoder, a
byte-level CLIP tokenizer), built from the REAL classes with a few thousand parameters and no download.

The tokenizer gets an in-memory byte-level vocabulary (every byte as a token, no merges), which tokenizes any text.
Frames must be a multiple of 2 pixels (the tiny VAE downsamples once); latents have 4 channels.
"""

from __future__ import annotations

from .base import move

TINY_TEXT_DIM = 32
TINY_VAE_SCALE = 2


def tiny_tokenizer(model_max_length: int = 77):
    """A CLIPTokenizer over a byte-level vocabulary built in memory (512 byte tokens + start/end)."""
    from transformers import CLIPTokenizer

    symbols = _bytes_to_unicode()
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": len(symbols) + i for i, s in enumerate(symbols)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def tiny_clip_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32), layers_per_block=1,
        norm_num_groups=8, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        sample_size=16, scaling_factor=0.18215,
    )


def tiny_clip_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=514, hidden_size=TINY_TEXT_DIM, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, bos_token_id=512, eos_token_id=513, pad_token_id=513, projection_dim=TINY_TEXT_DIM,
    )
    return CLIPTextModel(config).eval()


def ready_tiny(cls, parts, scheduler, dtype, device, source):
    for module in parts.values():
        move(module, device, dtype).requires_grad_(False)
    parts["denoiser"].train()
    parts["vae"].eval()
    return cls(**parts, tokenizer=tiny_tokenizer(), scheduler=scheduler, device=device, dtype=dtype, source=source)


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP's printable stand-ins for the 256 byte values, in CLIP's vocabulary order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]
