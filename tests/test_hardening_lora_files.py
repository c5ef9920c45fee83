"""LoRA files: non-finite weights and absurd alphas are refused at load naming file and tensor; broken files give
a clear message with no raw library text; writes follow the umask and never replace a file unasked (issue #21)."""

import errno
import os
import stat

import pytest
import torch
from safetensors.torch import save_file

from motion_core.errors import MotionCoreError
from motion_core.lora import LoraFileError, MotionLora, atomic_write, load_lora, save_lora
from motion_core.lora.files import FileExistsRefusedError, clean_library_text

MODULE = "down_blocks.0.attn1.to_q"
RAW_LIBRARY_WORDS = ("SafetensorError", "HeaderTooLarge", "InvalidHeader", "Error while deserializing", "\x1b[",
                     "unpack_from", "PytorchStreamReader", "Traceback")


def small_lora(alpha=4.0, **extra):
    a, b = torch.randn(4, 8) * 0.1, torch.randn(8, 4) * 0.1
    return MotionLora({f"unet.{MODULE}.lora_A.weight": a, f"unet.{MODULE}.lora_B.weight": b},
                      {"name": "n", "rank": 4, "alpha": alpha, **extra})


def _assert_clean(message: str, path):
    assert str(path.name) in message
    for word in RAW_LIBRARY_WORDS:
        assert word not in message, (word, message)


@pytest.mark.parametrize("poison", [float("nan"), float("inf"), float("-inf")])
def test_a_canonical_lora_with_non_finite_weights_is_refused_naming_file_and_tensor(tmp_path, poison):
    lora = small_lora()
    path = save_lora(lora, tmp_path / "poisoned.safetensors")
    tensors = {k: v.clone() for k, v in lora.tensors.items()}
    tensors[f"unet.{MODULE}.lora_B.weight"][3, 1] = poison
    save_file(tensors, str(path))
    with pytest.raises(LoraFileError, match=r"poisoned\.safetensors.*lora_B\.weight.*NaN or infinite"):
        load_lora(path)


@pytest.mark.parametrize("alpha", ["nan", "inf", "-inf", "1e30"])
def test_a_nan_inf_or_huge_alpha_in_the_header_is_refused(tmp_path, alpha):
    path = save_lora(small_lora(), tmp_path / "alpha.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        header = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    header["alpha"] = alpha
    save_file(tensors, str(path), metadata=header)
    with pytest.raises(LoraFileError, match=r"alpha\.safetensors: .*alpha.*finite"):
        load_lora(path)


def test_a_kohya_style_alpha_tensor_that_is_nan_is_refused(tmp_path):
    path = tmp_path / "peft_alpha.safetensors"
    save_file({f"{MODULE}.lora_A.weight": torch.randn(4, 8), f"{MODULE}.lora_B.weight": torch.randn(8, 4),
               f"{MODULE}.alpha": torch.tensor(float("nan"))}, str(path))
    with pytest.raises(LoraFileError, match=rf"{MODULE}\.alpha"):
        load_lora(path)


def test_integer_or_scalar_weights_are_refused_as_not_a_lora(tmp_path):
    path = tmp_path / "ints.safetensors"
    save_file({f"{MODULE}.lora_A.weight": torch.ones(4, 8, dtype=torch.int32),
               f"{MODULE}.lora_B.weight": torch.randn(8, 4)}, str(path))
    with pytest.raises(LoraFileError, match="int32"):
        load_lora(path)
    save_file({f"{MODULE}.lora_A.weight": torch.tensor(1.0), f"{MODULE}.lora_B.weight": torch.randn(8, 4)}, str(path))
    with pytest.raises(LoraFileError, match="matrices"):
        load_lora(path)


@pytest.mark.parametrize("cut", [0, 4, 7, 20, 200, -10])
def test_truncated_safetensors_name_the_file_and_no_library_text(tmp_path, cut):
    good = save_lora(small_lora(), tmp_path / "good.safetensors").read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(good[:cut] if cut >= 0 else good[:cut])
    with pytest.raises(LoraFileError) as err:
        load_lora(path)
    _assert_clean(str(err.value), path)
    assert "Re-download or re-export" in str(err.value)


def test_a_truncated_pt_file_names_the_file_and_no_library_text(tmp_path):
    whole = tmp_path / "whole.pt"
    torch.save({f"{MODULE}.lora_A.weight": torch.randn(4, 8)}, whole)
    path = tmp_path / "cut.pt"
    path.write_bytes(whole.read_bytes()[:100])
    with pytest.raises(LoraFileError) as err:
        load_lora(path)
    _assert_clean(str(err.value), path)


def test_library_text_loses_colour_codes():
    assert clean_library_text("\x1b[31merror\x1b[0m:   bad\nline") == "error: bad line"


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_saved_files_get_the_users_umask_not_0600(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = save_lora(small_lora(), tmp_path / "shared.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_overwrite_false_keeps_the_existing_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "taken.safetensors"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsRefusedError, match="already exists") as err:
        save_lora(small_lora(), path, overwrite=False)
    assert isinstance(err.value, MotionCoreError)
    assert path.read_bytes() == b"precious" and sorted(p.name for p in tmp_path.iterdir()) == ["taken.safetensors"]


def test_a_full_disk_leaves_the_target_untouched_and_says_so(tmp_path, monkeypatch):
    path = tmp_path / "old.safetensors"
    path.write_bytes(b"old")

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(LoraFileError, match="No space left"):
        atomic_write(path, b"new")
    assert path.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1
