"""UMT5-XXL and its tokenizer from ComfyUI's models/text_encoders file (umt5_xxl_fp16 / fp8_e4m3fn_scaled).

ComfyUI's files hold the encoder in transformers' key layout plus a ``spiece_model`` uint8 tensor: the SentencePiece
model's bytes. The tokenizer is rebuilt from those bytes without the sentencepiece or protobuf packages: the model
file is a small protobuf whose pieces, scores and normalisation table (the only parts a Unigram tokenizer needs) are
read here with a few lines of wire-format decoding and handed to transformers' T5Tokenizer, which is what UMT5 uses.
"""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

import torch

from ...errors import ModelLoadError
from ..files import load_weights_into
from .files import CONFIGS_DIR, FOLDERS, block_count, check_weight_tensors, expect_kind, file_keys, read_weights

log = logging.getLogger(__name__)

MAX_TOKENS = 512
MAX_SENTENCEPIECE_BYTES = 64 << 20
"""UMT5's SentencePiece model is 4.3 MB; the reader is linear in its size, and this bounds that size too."""
_MAX_VARINT_BYTES = 10  # a protobuf varint holds at most 64 bits


def umt5_config_from_weights(weights: dict) -> dict:
    """The shipped UMT5-XXL config when the shapes are XXL's, otherwise one derived from the shapes (the bucket
    distance, which no shape records, stays at UMT5's 128)."""
    shipped = json.loads((CONFIGS_DIR / "umt5_xxl" / "config.json").read_text())
    vocab, d_model = weights["shared.weight"].shape
    layers = block_count(weights, "encoder.block.", "the file", "UMT5 text encoder")
    if (vocab, d_model, layers) == (shipped["vocab_size"], shipped["d_model"], shipped["num_layers"]):
        return shipped
    attention = "encoder.block.0.layer.0.SelfAttention."
    buckets, heads = weights[attention + "relative_attention_bias.weight"].shape
    ff = "encoder.block.0.layer.1.DenseReluDense."
    gated = ff + "wi_0.weight" in weights
    return {**shipped, "vocab_size": vocab, "d_model": d_model, "num_layers": layers, "num_decoder_layers": layers,
            "num_heads": heads, "d_kv": weights[attention + "q.weight"].shape[0] // heads,
            "relative_attention_num_buckets": buckets,
            "d_ff": weights[ff + ("wi_0" if gated else "wi") + ".weight"].shape[0],
            "feed_forward_proj": "gated-gelu" if gated else "relu"}


def load_text_encoder_file(path, dtype: torch.dtype = torch.float32):
    """(UMT5EncoderModel, the embedded SentencePiece bytes or None) from a models/text_encoders file."""
    path = Path(path)
    keys = file_keys(path)
    expect_kind(path, keys, "text_encoder")
    for prefix in ("encoder.block.", "block."):  # ComfyUI's files say either; checked before reading
        block_count(keys, prefix, path.name, "UMT5 text encoder")
    weights = read_weights(path, dtype)
    spiece = weights.get("spiece_model")
    model, weights = umt5_on_meta(weights, path.name)
    load_weights_into(model, weights, path.name, "UMT5 text encoder")
    model.encoder.embed_tokens = model.shared  # keep the tie after assignment replaced the parameters
    spiece_bytes = None if spiece is None else spiece.to(torch.uint8).numpy().tobytes()
    return model.eval(), spiece_bytes


def umt5_on_meta(weights: dict, name: str):
    """(UMT5EncoderModel on the meta device, the weights under its names) from a text encoder file's weights; their
    shapes are all it reads, so meta tensors of a header will do (the memory plan before loading)."""
    from transformers import UMT5Config, UMT5EncoderModel

    check_weight_tensors(weights, name, "UMT5 text encoder", keep=("spiece_model",))
    weights = {("encoder." + k if k.startswith(("block.", "final_layer_norm")) else k): v for k, v in weights.items()
               if k != "spiece_model"}
    # The input embedding is one matrix under two names (tied); files carry either.
    shared = weights.get("shared.weight", weights.get("encoder.embed_tokens.weight"))
    if shared is None:
        raise ModelLoadError(f"{name} has no token embedding (shared.weight); re-download the text encoder.")
    weights["shared.weight"] = weights["encoder.embed_tokens.weight"] = shared
    try:
        config = UMT5Config(**umt5_config_from_weights(weights))
    except (KeyError, ValueError, IndexError, ZeroDivisionError) as error:
        raise ModelLoadError(f"{name} lacks core UMT5 weights ({error}); re-download it.") from error
    with torch.device("meta"):
        model = UMT5EncoderModel(config)
    if "encoder.embed_tokens.weight" not in model.state_dict():
        del weights["encoder.embed_tokens.weight"]
    return model, weights


# ---- tokenizer --------------------------------------------------------------------------------------------------
def _varint(data: bytes, i: int) -> tuple[int, int]:
    """One protobuf varint at ``i``: at most 10 bytes, so a run of continuation bytes cannot grow a number (and the
    time to read it) without end."""
    value = shift = 0
    for _ in range(_MAX_VARINT_BYTES):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if byte < 0x80:
            return value, i
    raise ValueError(f"a protobuf number at byte {i - _MAX_VARINT_BYTES} runs past 64 bits")


def _fields(data: bytes):
    """(field number, value) pairs of one protobuf message; length-delimited values stay bytes."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        wire = key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 2:
            length, i = _varint(data, i)
            value, i = data[i:i + length], i + length
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield key >> 3, value


def read_sentencepiece_model(data: bytes) -> dict:
    """pieces [(text, score)], unk_id, byte_fallback and the precompiled normaliser of a SentencePiece model."""
    pieces, unk_id, byte_fallback, charsmap = [], 0, False, b""
    for field, value in _fields(data):
        if field == 1:  # SentencePiece {piece = 1, score = 2}
            entry = dict(_fields(value))
            pieces.append((entry.get(1, b"").decode("utf-8"), struct.unpack("<f", entry[2])[0] if 2 in entry else 0.0))
        elif field == 2:  # TrainerSpec {byte_fallback = 35, unk_id = 40}
            spec = dict(_fields(value))
            unk_id, byte_fallback = spec.get(40, 0), bool(spec.get(35, 0))
        elif field == 3:  # NormalizerSpec {precompiled_charsmap = 2}
            charsmap = dict(_fields(value)).get(2, b"")
    return {"pieces": pieces, "unk_id": unk_id, "byte_fallback": byte_fallback, "charsmap": charsmap}


def tokenizer_from_sentencepiece(data: bytes, source: str = "the text encoder file"):
    """A T5Tokenizer (UMT5's) from SentencePiece model bytes."""
    from tokenizers.models import Unigram
    from transformers import T5Tokenizer

    def damaged(why) -> str:
        return (f"The tokenizer embedded in {source} is damaged ({why}); re-download the file, or pass tokenizer_dir "
                "(a folder with the umt5-xxl tokenizer.json).")

    if len(data) > MAX_SENTENCEPIECE_BYTES:
        raise ModelLoadError(damaged(f"{len(data):,} bytes, where UMT5's is 4.3 MB"))
    try:
        model = read_sentencepiece_model(data)
    except (ValueError, IndexError, UnicodeDecodeError, struct.error, TypeError, AttributeError) as error:
        # TypeError / AttributeError: a field of the wrong wire type (a number where text belongs, or the reverse)
        raise ModelLoadError(damaged(error)) from error
    pieces = model["pieces"]
    if len(pieces) < 3:
        raise ModelLoadError(f"The tokenizer embedded in {source} is empty; pass tokenizer_dir instead.")
    if not isinstance(model["unk_id"], int) or not 0 <= model["unk_id"] < len(pieces):
        raise ModelLoadError(damaged(f"its unknown-token id {model['unk_id']!r} names no piece"))
    try:
        tokenizer = T5Tokenizer(vocab=pieces, extra_ids=0, _spm_precompiled_charsmap=model["charsmap"] or None,
                                pad_token=pieces[0][0], eos_token=pieces[1][0], unk_token=pieces[model["unk_id"]][0],
                                model_max_length=MAX_TOKENS)
        if model["unk_id"] != 2 or model["byte_fallback"]:  # T5Tokenizer assumes unk 2 and no byte fallback
            tokenizer.backend_tokenizer.model = Unigram(pieces, unk_id=model["unk_id"],
                                                        byte_fallback=model["byte_fallback"])
    except Exception as error:  # the tokenizers library reports its Rust errors as a bare Exception
        log.warning("building the UMT5 tokenizer from %s failed: %s", source, error)
        raise ModelLoadError(damaged("its pieces or normaliser do not make a tokenizer")) from error
    return tokenizer


def load_umt5_tokenizer(spiece_bytes: bytes | None, tokenizer_dir=None, source: str = "the text encoder file"):
    """The tokenizer from ``tokenizer_dir`` when given, else from the bytes embedded in the text encoder file."""
    from transformers import AutoTokenizer

    if tokenizer_dir is not None:
        directory = Path(tokenizer_dir)
        if not any((directory / name).is_file() for name in ("tokenizer.json", "spiece.model")):
            raise ModelLoadError(f"{directory} holds no UMT5 tokenizer (tokenizer.json or spiece.model): point "
                                 "tokenizer_dir at the tokenizer/ folder of a Wan diffusers model (google/umt5-xxl).")
        if not (directory / "tokenizer.json").is_file():
            return tokenizer_from_sentencepiece((directory / "spiece.model").read_bytes(), str(directory))
        try:
            return AutoTokenizer.from_pretrained(directory, local_files_only=True)
        except (OSError, ValueError) as error:
            raise ModelLoadError(f"Could not read the tokenizer in {directory}: {error}") from error
    if spiece_bytes is None:
        raise ModelLoadError(f"{source} carries no tokenizer (ComfyUI's umt5_xxl files embed one as 'spiece_model'). "
                             f"Use umt5_xxl_fp16.safetensors from {FOLDERS['text_encoder'].split(' (')[0]}, or pass "
                             "tokenizer_dir (the tokenizer/ folder of a Wan diffusers model).")
    return tokenizer_from_sentencepiece(spiece_bytes, source)
