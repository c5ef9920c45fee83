"""The streaming safetensors reader (backbones/stream_read.py): the same tensors as safetensors' own reader on every
dtype, and damaged or crafted tables refused with a ModelLoadError before any tensor data is read."""

import json
import struct

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from motion_core.backbones import stream_read
from motion_core.backbones.stream_read import DTYPES, SafetensorsStream
from motion_core.errors import ModelLoadError


def _every_dtype() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {}
    for name, dtype in DTYPES.items():
        if dtype.is_floating_point:
            values = torch.randn(3, 5, generator=g) * 10
        elif dtype == torch.bool:
            values = torch.rand(3, 5, generator=g) > 0.5
        else:
            values = torch.randint(0, 100, (3, 5), generator=g)
        out[name] = values.to(dtype)
    out["scalar"] = torch.tensor(3.5)
    out["empty"] = torch.zeros(0, 4, dtype=torch.float16)
    out["wide"] = torch.randn(2, 3, 4, generator=g).to(torch.bfloat16)
    return out


def test_every_tensor_equals_what_safetensors_reads_bit_for_bit(tmp_path):
    path = tmp_path / "all.safetensors"
    save_file(_every_dtype(), str(path))
    with safe_open(str(path), framework="pt") as reference, SafetensorsStream(path) as stream:
        keys = stream.keys()
        assert sorted(keys) == sorted(reference.keys())
        for key in keys:
            ours, theirs = stream.read(key), reference.get_tensor(key)
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, key
            assert torch.equal(ours.reshape(-1).view(torch.uint8), theirs.reshape(-1).view(torch.uint8)), key


def test_each_tensor_owns_its_memory_and_keys_come_in_file_order(tmp_path):
    path = tmp_path / "two.safetensors"
    save_file({"b": torch.ones(4), "a": torch.zeros(4)}, str(path))
    with SafetensorsStream(path) as stream:
        order = stream.keys()
        first, again = stream.read(order[0]), stream.read(order[0])
    first.add_(1)
    assert not torch.equal(first, again)  # no shared buffer, no view of a map
    assert [stream.entries[k].begin for k in order] == sorted(stream.entries[k].begin for k in order)


def _crafted(tmp_path, header: dict, data: bytes, name="crafted.safetensors"):
    table = json.dumps(header).encode()
    path = tmp_path / name
    path.write_bytes(struct.pack("<Q", len(table)) + table + data)
    return path


GOOD = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize("entry, says", [
    ({"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}, "not a complete"),  # files.safetensors_header's check
    ({"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}, "outside the file"),
    ({"dtype": "F32", "shape": [3], "data_offsets": [8, 16]}, "spans 8 bytes"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}, "claim the same bytes"),
    ({"dtype": "Q4_K", "shape": [2], "data_offsets": [8, 16]}, "unknown type"),
    ({"dtype": "F32", "shape": [-2], "data_offsets": [8, 16]}, "no valid shape"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [8]}, "tensor table is damaged"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [8.0, 16.0]}, "no valid position"),
], ids=["past_the_end", "negative", "wrong_span", "overlapping", "unknown_dtype", "negative_shape", "one_offset",
        "float_offsets"])
def test_damaged_entries_are_refused_before_any_tensor_is_read(tmp_path, monkeypatch, entry, says):
    read = []
    monkeypatch.setattr(SafetensorsStream, "read", lambda self, key: read.append(key))
    # the bad entry after a good one, 16 bytes of data (12 where it must reach past the end)
    path = _crafted(tmp_path, {"good": GOOD, "bad": entry}, bytes(12 if says == "not a complete" else 16))
    with pytest.raises(ModelLoadError, match=says) as caught, SafetensorsStream(path) as stream:
        [stream.read(k) for k in stream.keys()]  # noqa: SIM118 - a stream, not a dict
    assert "crafted.safetensors" in str(caught.value) and "re-download" in str(caught.value)
    assert read == []


def test_a_huge_claimed_tensor_is_refused_without_allocating_it(tmp_path, monkeypatch):
    allocations = []
    original = torch.empty
    monkeypatch.setattr(stream_read.torch, "empty", lambda *a, **k: allocations.append(a) or original(*a, **k))
    path = _crafted(tmp_path, {"big": {"dtype": "F64", "shape": [2**40], "data_offsets": [0, 2**43]}}, bytes(8))
    with pytest.raises(ModelLoadError):
        SafetensorsStream(path)
    assert allocations == []


def test_a_file_cut_inside_a_tensor_is_named_as_cut_off(tmp_path):
    path = tmp_path / "cut.safetensors"
    save_file({"w": torch.ones(64)}, str(path))
    with SafetensorsStream(path) as stream:
        path.write_bytes(path.read_bytes()[:-100])  # cut after the table was checked (a file being replaced)
        with pytest.raises(ModelLoadError, match="cut off"):
            stream.read("w")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float16])
def test_read_as_converts_piece_by_piece_to_what_a_whole_cast_gives(tmp_path, monkeypatch, dtype):
    monkeypatch.setattr(stream_read, "CHUNK_BYTES", 24)  # pieces of 24 bytes: many per tensor, a ragged last one
    path = tmp_path / "all.safetensors"
    tensors = {k: v for k, v in _every_dtype().items() if v.is_floating_point()}
    save_file(tensors, str(path))
    with SafetensorsStream(path) as stream:
        for key, tensor in tensors.items():
            converted = stream.read_as(key, dtype)
            assert converted.dtype == dtype and converted.shape == tensor.shape, key
            assert torch.equal(converted, tensor.to(dtype)), key
