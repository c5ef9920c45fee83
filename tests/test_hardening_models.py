"""Model files, samples and training steps that are broken in ways a user meets (issue #21, models side):
FIFOs and devices named like weights never block, cut-off or corrupt files name the file and the fix without the
library's own words, NaN/inf weights and scale factors are refused at load naming file and tensor, and a sample or a
training step that turns non-finite is a clear error instead of a black video or a NaN LoRA.
"""

import os
import threading

import pytest
import torch
from safetensors.torch import save_file
from test_recipe_support import clipset
from test_sampling_support import assert_same_state, denoiser_state, random_lora, request

from motion_core.backbones import (
    load_backbone,
    save_tiny_diffusers_folder,
    save_tiny_motion_module_file,
    tiny_unet3d_backbone,
)
from motion_core.backbones.files import all_finite, read_state_dict
from motion_core.backbones.wan.files import file_keys, read_weights
from motion_core.backbones.wan.single_file import load_vae_file
from motion_core.errors import ModelLoadError, MotionCoreError, TrainingError
from motion_core.sampling import LoraStack, sample_video
from motion_core.training import TrainingConfig, train_motion_lora

# Phrases of safetensors, struct, pickle, torch.load and zipfile that must never reach a user unexplained.
LIBRARY_WORDS = ("unpack requires", "HeaderTooLarge", "Error while deserializing", "invalid load key",
                 "PytorchStreamReader", "Ran out of input", "MetadataIncompleteBuffer", "Traceback", "Errno",
                 "failed finding central directory", "expected value at line")


def _no_library_text(message: str) -> None:
    assert not [w for w in LIBRARY_WORDS if w in message], message


def _within(seconds, fn, *args, **kwargs):
    """fn's exception (or result) within ``seconds``; a hang fails the test instead of the suite."""
    outcome = {}

    def target():
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - inspected by the caller
            outcome["error"] = error

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"{fn.__name__} blocked for {seconds} s"
    return outcome.get("error", outcome.get("value"))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    save_tiny_motion_module_file(root / "mm_tiny.safetensors")
    torch.save(read_state_dict(root / "mm_tiny.safetensors"), root / "mm_tiny.ckpt")
    save_tiny_diffusers_folder(root / "sd15_tiny", family="animatediff", with_motion_adapter=False)
    return root


# ---- FIFOs, devices and folders named like weights -------------------------------------------------------------
@pytest.mark.parametrize("reader", ["load_backbone", "motion_module", "read_state_dict", "file_keys", "wan_vae"])
def test_a_fifo_named_like_weights_is_refused_without_opening_it(tmp_path, files, reader):
    fifo = tmp_path / "stuck.safetensors"
    os.mkfifo(fifo)
    calls = {
        "load_backbone": lambda: load_backbone(fifo),
        "motion_module": lambda: load_backbone(files / "sd15_tiny", motion_module=fifo),
        "read_state_dict": lambda: read_state_dict(fifo),
        "file_keys": lambda: file_keys(fifo),
        "wan_vae": lambda: load_vae_file(fifo),
    }
    error = _within(20, calls[reader])
    assert isinstance(error, ModelLoadError) and "stuck.safetensors" in str(error), error
    assert "regular file" in str(error)


def test_a_character_device_named_like_a_checkpoint_is_refused(tmp_path):
    device = tmp_path / "zero.ckpt"
    os.symlink("/dev/zero", device)  # reading /dev/zero never ends
    error = _within(20, load_backbone, device)
    assert isinstance(error, ModelLoadError) and "zero.ckpt" in str(error) and "regular file" in str(error)


def test_a_fifo_inside_a_diffusers_folder_is_refused_before_the_library_opens_it(tmp_path, files):
    import shutil

    folder = shutil.copytree(files / "sd15_tiny", tmp_path / "sd15_fifo")
    weights = next((folder / "vae").glob("*.safetensors"))
    weights.unlink()
    os.mkfifo(weights)
    error = _within(20, load_backbone, folder, motion_module=files / "mm_tiny.safetensors")
    assert isinstance(error, ModelLoadError) and weights.name in str(error) and "regular file" in str(error), error


def test_a_nul_byte_in_a_model_path_is_a_model_error():
    error = _within(20, load_backbone, "/tmp/evil\x00model.safetensors")
    assert isinstance(error, ModelLoadError)


# ---- cut-off and corrupt files ----------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
@pytest.mark.parametrize("cut", [0, 4, 8, 9, 64, "half", "last_byte"])
def test_a_cut_off_motion_module_names_the_file_and_the_fix_without_library_text(tmp_path, files, suffix, cut):
    data = (files / f"mm_tiny{suffix}").read_bytes()
    size = {"half": len(data) // 2, "last_byte": len(data) - 1}.get(cut, cut)
    path = tmp_path / f"mm_cut{suffix}"
    path.write_bytes(data[:size])
    with pytest.raises(ModelLoadError) as err:
        load_backbone(files / "sd15_tiny", motion_module=path)
    message = str(err.value)
    assert "mm_cut" in message and "re-download" in message.lower()
    _no_library_text(message)


@pytest.mark.parametrize("content", [b"\xff" * 8 + b"{}", (2).to_bytes(8, "little") + b"[]",
                                     (30).to_bytes(8, "little") + b'{"w": {"data_offsets": "x"}}' + b" " * 3,
                                     (10).to_bytes(8, "little") + b"\xc3\x28garbage!"],
                         ids=["huge_length", "header_not_a_table", "offsets_not_numbers", "not_utf8"])
def test_hostile_safetensors_headers_are_named_not_crashed_on(tmp_path, content):
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(content)
    for reader in (read_state_dict, file_keys, lambda p: read_weights(p, torch.float32)):
        with pytest.raises(ModelLoadError, match="hostile.safetensors") as err:
            reader(path)
        _no_library_text(str(err.value))


def test_a_cut_off_weights_file_in_a_diffusers_folder_names_that_file(tmp_path, files):
    import shutil

    folder = shutil.copytree(files / "sd15_tiny", tmp_path / "sd15_cut")
    weights = next((folder / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelLoadError, match=rf"{weights.name} is not a complete .*re-download") as err:
        load_backbone(folder, motion_module=files / "mm_tiny.safetensors")
    _no_library_text(str(err.value))


# ---- NaN / inf weights and scale factors ------------------------------------------------------------------------
def _poisoned(state: dict, key: str, value: float) -> dict:
    out = {k: v.clone() for k, v in state.items()}
    out[key].view(-1)[0] = value
    return out


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_motion_module_weights_are_refused_naming_file_and_tensor(tmp_path, files, value):
    state = read_state_dict(files / "mm_tiny.safetensors")
    key = sorted(k for k in state if k.endswith("to_q.weight"))[0]
    path = tmp_path / "mm_nan.safetensors"
    save_file(_poisoned(state, key, value), str(path))
    with pytest.raises(ModelLoadError, match=r"mm_nan\.safetensors: tensor .*NaN or infinite") as err:
        load_backbone(files / "sd15_tiny", motion_module=path)
    assert key in str(err.value)


def test_non_finite_weights_in_a_diffusers_folder_name_the_file_and_tensor(tmp_path, files):
    import shutil

    from safetensors.torch import load_file

    folder = shutil.copytree(files / "sd15_tiny", tmp_path / "sd15_nan")
    weights = next((folder / "vae").glob("*.safetensors"))
    state = load_file(str(weights))
    key = sorted(k for k in state if k.endswith("conv_in.weight"))[0]
    save_file(_poisoned(state, key, float("nan")), str(weights))
    with pytest.raises(ModelLoadError, match=rf"{weights.name}: tensor '{key}' holds NaN"):
        load_backbone(folder, motion_module=files / "mm_tiny.safetensors")


def test_a_non_finite_fp8_scale_factor_is_named(tmp_path):
    weight = torch.ones(4, 4).to(torch.float8_e4m3fn)
    path = tmp_path / "wan_scaled.safetensors"
    save_file({"blocks.0.ffn.0.weight": weight, "blocks.0.ffn.0.scale_weight": torch.tensor(float("inf")),
               "scaled_fp8": torch.zeros(0, dtype=torch.float8_e4m3fn)}, str(path))
    with pytest.raises(ModelLoadError, match=r"wan_scaled\.safetensors: tensor 'blocks\.0\.ffn\.0\.scale_weight'"):
        read_weights(path, torch.bfloat16)


def test_a_nan_in_fp8_weights_is_found_without_an_isfinite_kernel_for_fp8(tmp_path):
    weight = torch.tensor([[1.0, float("nan")]]).to(torch.float8_e4m3fn)
    assert not all_finite(weight) and all_finite(torch.ones(3).to(torch.float8_e4m3fn))
    path = tmp_path / "wan_fp8.safetensors"
    save_file({"blocks.0.ffn.0.weight": weight}, str(path))
    with pytest.raises(ModelLoadError, match=r"blocks\.0\.ffn\.0\.weight' holds NaN"):
        read_weights(path, torch.float32)


def test_weights_that_overflow_fp16_say_to_load_in_bf16_or_fp32(tmp_path):
    path = tmp_path / "wan_big.safetensors"
    save_file({"head.head.weight": torch.full((2, 2), 1e6)}, str(path))
    with pytest.raises(ModelLoadError, match=r"'head\.head\.weight' does not fit float16 .*bf16 or fp32"):
        read_weights(path, torch.float16)
    assert read_weights(path, torch.bfloat16)["head.head.weight"].dtype == torch.bfloat16


def test_the_finite_check_works_in_chunks_on_big_tensors(monkeypatch):
    from motion_core.backbones import files

    monkeypatch.setattr(files, "_FINITE_CHUNK", 7)
    tensor = torch.zeros(10, 10)
    assert all_finite(tensor)
    tensor[9, 9] = float("inf")
    assert not all_finite(tensor)


# ---- a sample that turns non-finite -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def backbone():
    return tiny_unet3d_backbone(0)


def test_a_denoiser_that_turns_nan_is_an_error_naming_the_step_not_a_black_video(backbone, monkeypatch):
    real = backbone.denoise
    calls = []

    def nan_at_second_step(latents, t, text_states, **kwargs):
        calls.append(t)
        out = real(latents, t, text_states, **kwargs)
        return out * float("nan") if len(calls) == 2 else out

    monkeypatch.setattr(backbone, "denoise", nan_at_second_step)
    with pytest.raises(MotionCoreError, match=r"NaN or infinite at step 2 of 3.*lower cfg \(now 4\).*model file"):
        sample_video(backbone, request())


def test_a_lora_at_an_absurd_strength_is_named_and_the_model_comes_back_untouched(backbone):
    before = denoiser_state(backbone)
    huge = random_lora(backbone, ["temporal_attn", "spatial_self_attn"], seed=3, std=1e20, name="wild_dance")
    stack = LoraStack().add(huge, 5.0, 0.0, 1.0)
    with pytest.raises(MotionCoreError, match=r"at step 1 of 3.*strength of the LoRAs acting then \(wild_dance x5\)"):
        sample_video(backbone, request(lora_stack=stack))
    assert_same_state(backbone, before)
    assert torch.isfinite(sample_video(backbone, request()).latents).all()


def test_a_vae_that_decodes_nan_is_an_error(backbone, monkeypatch):
    monkeypatch.setattr(backbone, "decode_latents", lambda latents: torch.full((1, 8, 16, 16, 3), float("nan")))
    with pytest.raises(MotionCoreError, match="at the VAE decode"):
        sample_video(backbone, request())


# ---- a training step that turns non-finite ----------------------------------------------------------------------
def test_lora_weights_that_turn_nan_without_grad_clipping_stop_training(monkeypatch, tmp_path):
    """With grad_clip 0 no gradient norm is computed; an update that makes the adapters NaN must still stop the run
    (before, the loss was finite on the last step and the NaN LoRA was saved)."""
    from motion_core.training import precision

    real_step = precision.Precision.step

    def poisoning_step(self, optimizer):
        real_step(self, optimizer)
        with torch.no_grad():
            optimizer.param_groups[0]["params"][0].view(-1)[0] = float("nan")

    monkeypatch.setattr(precision.Precision, "step", poisoning_step)
    config = TrainingConfig(steps=1, lr=1e-3, grad_clip=0.0, rank=2, width=16, height=16, frames=4,
                            gradient_checkpointing=False, checkpoint_dir=str(tmp_path))
    with pytest.raises(TrainingError, match=r"step 1: the LoRA weights became infinite or NaN"):
        train_motion_lora(tiny_unet3d_backbone(1), clipset(), "naive", config)
