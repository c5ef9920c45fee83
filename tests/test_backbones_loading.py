"""Local-only loading: family detection, diffusers folders, motion modules, and the errors a user sees."""

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

from motion_core.backbones import (
    detect_family,
    load_backbone,
    save_tiny_diffusers_folder,
    save_tiny_motion_module_file,
    tiny_animatediff_backbone,
    tiny_unet3d_backbone,
)
from motion_core.backbones.animatediff.motion_module import (
    CONFIGS_DIR,
    derive_motion_adapter_config,
    to_diffusers_layout,
    to_original_layout,
)
from motion_core.backbones.files import read_state_dict
from motion_core.backbones.tiny_clip import tiny_tokenizer
from motion_core.errors import ModelLoadError


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    save_tiny_diffusers_folder(root / "zeroscope_tiny", "unet3d")
    save_tiny_diffusers_folder(root / "animatediff_tiny", "animatediff")
    save_tiny_diffusers_folder(root / "sd15_tiny", "animatediff", with_motion_adapter=False)
    save_tiny_motion_module_file(root / "mm_tiny.safetensors")
    return root


def _same_predictions(loaded, reference):
    latents = torch.randn(1, 4, 3, 8, 8)
    text = reference.encode_prompt(["a dog dancing"])
    torch.testing.assert_close(loaded.encode_prompt(["a dog dancing"]), text)
    with torch.no_grad():
        torch.testing.assert_close(loaded.denoise(latents, 20, text), reference.denoise(latents, 20, text))
    frames = torch.rand(1, 2, 16, 16, 3)
    torch.testing.assert_close(loaded.encode_video(frames), reference.encode_video(frames))
    assert loaded.fingerprint() == reference.fingerprint()


def test_family_is_detected_from_the_unet_config(models):
    assert detect_family(models / "zeroscope_tiny") == "unet3d"
    assert detect_family(models / "animatediff_tiny") == "animatediff"
    assert detect_family(models / "sd15_tiny") == "animatediff"


def test_unet3d_folder_loads_the_same_model_that_was_saved(models):
    loaded = load_backbone(models / "zeroscope_tiny")
    assert loaded.family == "unet3d" and loaded.source.endswith("zeroscope_tiny")
    assert not any(p.requires_grad for p in loaded.denoiser.parameters())
    _same_predictions(loaded, tiny_unet3d_backbone())


def test_animatediff_folder_loads_unet_plus_its_motion_adapter(models):
    loaded = load_backbone(models / "animatediff_tiny")
    assert loaded.family == "animatediff"
    assert loaded.scheduler.config.beta_schedule == "linear"
    _same_predictions(loaded, tiny_animatediff_backbone())


def test_animatediff_folder_whose_unet_already_holds_the_motion_modules(models, tmp_path):
    folder = tmp_path / "animatediff_merged"
    shutil.copytree(models / "animatediff_tiny", folder, ignore=shutil.ignore_patterns("unet", "motion_adapter"))
    reference = tiny_animatediff_backbone()
    reference.denoiser.save_pretrained(folder / "unet")
    assert detect_family(folder) == "animatediff"
    _same_predictions(load_backbone(folder), reference)
    with pytest.raises(ModelLoadError, match="already contains a motion module"):
        load_backbone(folder, motion_module=models / "mm_tiny.safetensors")


@pytest.mark.parametrize("module_name", ["mm_tiny.safetensors", "animatediff_tiny/motion_adapter", "mm_tiny.ckpt"])
def test_sd15_folder_plus_motion_module_in_any_layout(models, module_name):
    if module_name.endswith(".ckpt"):
        torch.save(read_state_dict(models / "mm_tiny.safetensors"), models / module_name)
    loaded = load_backbone(models / "sd15_tiny", motion_module=models / module_name)
    # The SD folder's own scheduler is an image model's; motion modules get AnimateDiff's linear betas.
    assert loaded.scheduler.config.beta_schedule == "linear"
    _same_predictions(loaded, tiny_animatediff_backbone())


def test_loads_in_the_requested_dtype(models):
    loaded = load_backbone(models / "zeroscope_tiny", dtype=torch.float64)
    assert loaded.dtype == torch.float64
    assert all(p.dtype == torch.float64 for p in loaded.denoiser.parameters())
    assert loaded.encode_prompt(["a"]).dtype == torch.float64


def test_tokenizer_comes_from_tokenizer_dir_when_the_model_has_none(models, tmp_path):
    folder = tmp_path / "no_tokenizer"
    shutil.copytree(models / "zeroscope_tiny", folder)
    shutil.rmtree(folder / "tokenizer")
    with pytest.raises(ModelLoadError, match="sd1_tokenizer"):
        load_backbone(folder)
    comfy_style = tmp_path / "sd1_tokenizer"  # ComfyUI ships vocab.json + merges.txt
    comfy_style.mkdir()
    (comfy_style / "vocab.json").write_text(json.dumps(tiny_tokenizer().get_vocab()))
    (comfy_style / "merges.txt").write_text("#version: 0.2\n")
    loaded = load_backbone(folder, tokenizer_dir=comfy_style)
    _same_predictions(loaded, tiny_unet3d_backbone())


def test_missing_or_empty_paths_say_what_to_pick(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_backbone(tmp_path / "nowhere")
    with pytest.raises(ModelLoadError, match="model_index.json not found in .*zeroscope_v2_576w"):
        load_backbone(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelLoadError, match="not a model file"):
        load_backbone(tmp_path / "notes.txt")


def test_incomplete_folder_names_the_missing_part(models, tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(models / "zeroscope_tiny", folder)
    shutil.rmtree(folder / "vae")
    with pytest.raises(ModelLoadError, match="vae"):
        load_backbone(folder)
    shutil.rmtree(folder / "unet")
    with pytest.raises(ModelLoadError, match="unet/config.json"):
        load_backbone(folder)


@pytest.mark.parametrize("config_patch, message", [
    ({"_class_name": "FluxTransformer2DModel"}, "supported are"),
    ({"cross_attention_dim": 2048, "addition_embed_type": "text_time"}, "SDXL"),
])
def test_unsupported_denoisers_are_refused(models, tmp_path, config_patch, message):
    folder = tmp_path / "other"
    shutil.copytree(models / "sd15_tiny", folder)
    config = json.loads((folder / "unet" / "config.json").read_text())
    (folder / "unet" / "config.json").write_text(json.dumps({**config, **config_patch}))
    with pytest.raises(ModelLoadError, match=message):
        load_backbone(folder, motion_module=models / "mm_tiny.safetensors")


def test_sd15_without_motion_module_asks_for_one(models):
    with pytest.raises(ModelLoadError, match="without a motion module: choose an AnimateDiff motion module"):
        load_backbone(models / "sd15_tiny")


def test_wrong_files_as_motion_module_are_refused(models, tmp_path):
    lora = tmp_path / "motion_lora.safetensors"
    save_file({"unet.down_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(2, 2)}, str(lora))
    with pytest.raises(ModelLoadError, match="looks like a LoRA"):
        load_backbone(models / "sd15_tiny", motion_module=lora)
    with pytest.raises(ModelLoadError, match="not found"):
        load_backbone(models / "sd15_tiny", motion_module=tmp_path / "missing.ckpt")


class _NotATensor:
    pass


def test_pickles_that_need_code_are_refused(models, tmp_path):
    evil = tmp_path / "evil.ckpt"
    torch.save({"payload": _NotATensor()}, evil)
    with pytest.raises(ModelLoadError, match="plain tensors"):
        load_backbone(models / "sd15_tiny", motion_module=evil)


def test_single_files_that_are_not_sd15_checkpoints_are_refused(models, tmp_path):
    with pytest.raises(ModelLoadError, match="is an AnimateDiff motion module, not a base model"):
        load_backbone(models / "mm_tiny.safetensors", motion_module=models / "mm_tiny.safetensors")
    random_file = tmp_path / "random.safetensors"
    save_file({"weight": torch.zeros(2)}, str(random_file))
    with pytest.raises(ModelLoadError, match="not a Stable Diffusion checkpoint"):
        load_backbone(random_file)
    sdxl_like = tmp_path / "sdxl.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1),
               "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(2, 2048)},
              str(sdxl_like))
    with pytest.raises(ModelLoadError, match="not a Stable Diffusion 1.5"):
        load_backbone(sdxl_like)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not really")
    with pytest.raises(ModelLoadError, match="not a valid .safetensors"):
        load_backbone(corrupt)


def test_motion_module_layout_conversion_round_trips(models):
    original = read_state_dict(models / "mm_tiny.safetensors")
    assert any(".temporal_transformer.attention" not in k and ".temporal_transformer." in k for k in original)
    assert to_original_layout(to_diffusers_layout(original)).keys() == original.keys()


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_motion_adapter_config_read_off_weights_equals_the_shipped_config(version):
    from diffusers import MotionAdapter

    shipped = json.loads((CONFIGS_DIR / f"animatediff_motion_adapter_{version}" / "config.json").read_text())
    with torch.device("meta"):
        adapter = MotionAdapter.from_config(shipped)
    original_keys = to_original_layout(adapter.state_dict())
    sd15_unet = json.loads((CONFIGS_DIR / "sd15" / "unet" / "config.json").read_text())
    derived = derive_motion_adapter_config(to_diffusers_layout(original_keys), sd15_unet)
    assert derived == {k: v for k, v in shipped.items() if not k.startswith("_")}
