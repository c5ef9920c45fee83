"""Hostile model files against the loaders (issue #38, items 1-5 and 10): each is a ModelLoadError that names the file
and the problem, before any large allocation and within seconds; never a raw Python error, never an endless build,
never advice to turn torch's pickle safety off.
"""

import json
import os
import struct
import time
import tracemalloc

import pytest
import torch
from safetensors.torch import load_file, save_file
from wan_samples import write_tiny_wan_files

from motion_core.backbones import load_backbone, save_tiny_wan_diffusers_folder
from motion_core.backbones.files import MAX_HEADER_BYTES, safetensors_header
from motion_core.backbones.wan.files import MAX_BLOCKS
from motion_core.backbones.wan.single_file import load_transformer_file, load_vae_file
from motion_core.backbones.wan.text_encoder import load_text_encoder_file, tokenizer_from_sentencepiece
from motion_core.errors import ModelLoadError

RAW = (RecursionError, ZeroDivisionError, TypeError, AttributeError, IndexError, KeyError)
SECONDS = 5.0
MEMORY_BYTES = 200 << 20


@pytest.fixture(scope="module")
def wan_files(tmp_path_factory):
    return write_tiny_wan_files(tmp_path_factory.mktemp("wan_hostile"))


def _refused(load, *args, match=None):
    """The ModelLoadError ``load`` raises, checked to come within SECONDS and MEMORY_BYTES of Python allocations."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ModelLoadError, match=match) as caught:
            load(*args)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.perf_counter() - start < SECONDS
    assert peak < MEMORY_BYTES, f"{peak / 2**20:.0f} MiB allocated before the error"
    assert not isinstance(caught.value.__cause__, RAW) or "Traceback" not in str(caught.value)
    return str(caught.value)


def _with_tensor(source, target, key, tensor):
    state = load_file(str(source))
    state[key] = tensor
    save_file(state, str(target))
    return target


def test_a_transformer_file_claiming_a_huge_block_index_is_refused_before_building(wan_files, tmp_path):
    source = wan_files["root"] / "wan_tiny_fp16.safetensors"
    hostile = _with_tensor(source, tmp_path / "wan_huge_index.safetensors",
                           "model.diffusion_model.blocks.100000000.norm3.weight", torch.ones(4, dtype=torch.float16))
    message = _refused(load_transformer_file, hostile, match=r"blocks \(.*\) are numbered")
    assert "wan_huge_index.safetensors" in message and str(MAX_BLOCKS) in message


def test_the_full_model_load_refuses_a_huge_block_index_too(wan_files, tmp_path):
    root = wan_files["root"]
    hostile = _with_tensor(root / "wan_tiny_fp16.safetensors", tmp_path / "wan_gap.safetensors",
                           "model.diffusion_model.blocks.7.norm3.weight", torch.ones(4, dtype=torch.float16))
    _refused(lambda: load_backbone(hostile, vae=root / "wan_tiny_vae.safetensors",
                                   text_encoder=root / "umt5_tiny_fp16.safetensors"), match="from 0 without gaps")


def test_a_text_encoder_file_claiming_a_huge_block_index_is_refused(wan_files, tmp_path):
    source = wan_files["root"] / "umt5_tiny_fp16.safetensors"
    key = next(k for k in load_file(str(source)) if k.startswith(("encoder.block.0.", "block.0.")))
    hostile = _with_tensor(source, tmp_path / "umt5_huge.safetensors", key.replace(".0.", ".100000000.", 1),
                           torch.ones(4, dtype=torch.float16))
    assert "umt5_huge.safetensors" in _refused(load_text_encoder_file, hostile, match=r"blocks \(.*\) are numbered")


def test_a_crafted_tokenizer_of_continuation_bytes_is_refused_in_linear_time():
    crafted = b"\x0a" + b"\xff" * 400_000  # field 1, then a length varint that never ends
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="tokenizer embedded in .* is damaged"):
        tokenizer_from_sentencepiece(crafted, "umt5_crafted.safetensors")
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("crafted", [
    b"\x08\x01",  # field 1 (a piece) sent as a number
    b"\x0a\x02\x10\x05" * 3,  # pieces whose text field is a number
    b"\x0a\x04\x0a\x02\xff\xfe" * 3,  # piece text that is not UTF-8
    b"\x12\x03\xc0\x02\x05" + b"\x0a\x03\x0a\x01a" * 3,  # TrainerSpec unk_id (field 40) = 5, of 3 pieces
])
def test_malformed_tokenizer_protobufs_are_named_not_raw_errors(crafted):
    with pytest.raises(ModelLoadError, match="damaged"):
        tokenizer_from_sentencepiece(crafted, "umt5_bad.safetensors")


def test_a_header_claiming_more_than_the_cap_is_refused_unread(tmp_path):
    path = tmp_path / "huge_header.safetensors"
    claimed = MAX_HEADER_BYTES + 1
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", claimed))
        handle.truncate(8 + claimed + 16)  # sparse: the file is as big as the claim, the disk holds nothing
    message = _refused(safetensors_header, path, match="far more than any model")
    assert "huge_header.safetensors" in message


def test_a_deeply_nested_header_is_a_model_error_not_a_recursion_error(tmp_path):
    body = b"[" * 200_000 + b"]" * 200_000
    path = tmp_path / "nested.safetensors"
    path.write_bytes(struct.pack("<Q", len(body)) + body)
    _refused(safetensors_header, path, match="header is not readable")


@pytest.mark.parametrize("key,shape", [("model.diffusion_model.patch_embedding.weight", (0, 16, 1, 2, 2)),
                                       ("model.diffusion_model.head.head.weight", (0, 128))])
def test_zero_size_transformer_weights_are_named(wan_files, tmp_path, key, shape):
    hostile = _with_tensor(wan_files["root"] / "wan_tiny_fp16.safetensors", tmp_path / "wan_empty.safetensors",
                           key, torch.zeros(shape, dtype=torch.float16))
    assert "is empty" in _refused(load_transformer_file, hostile)


def test_a_zero_size_vae_conv_is_named(wan_files, tmp_path):
    hostile = _with_tensor(wan_files["root"] / "wan_tiny_vae.safetensors", tmp_path / "vae_empty.safetensors",
                           "encoder.conv1.weight", torch.zeros((0, 3, 3, 3, 3)))
    assert "is empty" in _refused(load_vae_file, hostile)


def test_a_zero_size_relative_attention_table_is_named(wan_files, tmp_path):
    source = wan_files["root"] / "umt5_tiny_fp16.safetensors"
    key = next(k for k in load_file(str(source)) if k.endswith("relative_attention_bias.weight"))
    hostile = _with_tensor(source, tmp_path / "umt5_empty.safetensors", key, torch.zeros((32, 0), dtype=torch.float16))
    assert "is empty" in _refused(load_text_encoder_file, hostile)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_integer_and_bool_transformer_weights_are_refused_not_cast(wan_files, tmp_path, dtype):
    source = wan_files["root"] / "wan_tiny_fp16.safetensors"
    state = load_file(str(source))
    key = "model.diffusion_model.blocks.0.norm3.weight"
    state[key] = torch.ones_like(state[key], dtype=dtype)
    save_file(state, str(tmp_path / "wan_int.safetensors"))
    message = _refused(load_transformer_file, tmp_path / "wan_int.safetensors")
    assert "blocks.0.norm3.weight" in message and str(dtype).removeprefix("torch.") in message


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("true",))


def test_a_pickled_text_encoder_bin_in_a_wan_folder_is_refused_without_torch_advice(tmp_path):
    folder = save_tiny_wan_diffusers_folder(tmp_path / "wan_pickled")
    text_encoder = folder / "text_encoder"
    for weights in text_encoder.glob("*.safetensors"):
        weights.unlink()
    for index in text_encoder.glob("*.index.json"):
        index.unlink()
    torch.save({"shared.weight": _RunsCode()}, text_encoder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError) as caught:
        load_backbone(folder)
    message = str(caught.value)
    assert "weights_only" not in message and "pickled" in message and "safetensors" in message


def test_a_wan_folder_config_asking_for_endless_blocks_is_refused(tmp_path):
    folder = save_tiny_wan_diffusers_folder(tmp_path / "wan_endless")
    config_path = folder / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "num_layers": 100_000_000}))
    _refused(load_backbone, folder, match="asks for 100000000 transformer blocks")
