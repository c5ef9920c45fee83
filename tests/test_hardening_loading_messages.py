"""Model-loading errors in the user's words (issue #21, the rest of it): a broken Wan folder text encoder or tokenizer,
a broken diffusers MotionAdapter folder and a motion module that does not fit the UNet each name the file or folder,
the problem and the fix; the library's own text goes to the log only. Weights a folder lacks are an error, not
random values filled in by the library.
"""

import json
import logging
import shutil

import pytest
import torch
from safetensors.torch import save_file

from motion_core.backbones import load_backbone, save_tiny_diffusers_folder
from motion_core.backbones.animatediff.motion_module import combine_unet_and_motion_adapter
from motion_core.backbones.animatediff.tiny import tiny_animatediff_parts
from motion_core.backbones.wan.tiny import save_tiny_wan_diffusers_folder
from motion_core.errors import ModelLoadError

# Phrases of transformers, diffusers and json that must not reach a user.
LIBRARY_WORDS = ("Error no file named", "Expecting value", "Expecting property name", "Couldn't instantiate",
                 "is not a valid JSON file", "expected shape torch.Size", "low_cpu_mem_usage", "Tensor.item()",
                 "Incompatible Motion Adapter", "size mismatch", "Traceback")


def _user_words_only(message: str) -> None:
    assert not [w for w in LIBRARY_WORDS if w in message], message
    assert "re-download" in message.lower() or "pick" in message.lower(), message


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    save_tiny_wan_diffusers_folder(root / "wan")
    save_tiny_diffusers_folder(root / "animatediff", family="animatediff")
    save_tiny_diffusers_folder(root / "sd15", family="animatediff", with_motion_adapter=False)
    return root


def _broken_copy(models, tmp_path, name, change):
    folder = shutil.copytree(models / name, tmp_path / f"{name}_broken")
    change(folder)
    return folder


def _rewrite_json(path, **changes):
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


# ---- Wan folder: text encoder and tokenizer ------------------------------------------------------------------------
WAN_BREAKS = {
    "text_encoder_without_weights": lambda f: (f / "text_encoder" / "model.safetensors").unlink(),
    "text_encoder_config_not_json": lambda f: (f / "text_encoder" / "config.json").write_text("{not json"),
    "tokenizer_json_garbage": lambda f: (f / "tokenizer" / "tokenizer.json").write_text("garbage"),
    "tokenizer_config_not_json": lambda f: (f / "tokenizer" / "tokenizer_config.json").write_text("{oops"),
    "tokenizer_folder_empty": lambda f: [p.unlink() for p in (f / "tokenizer").iterdir()],
}


@pytest.mark.parametrize("break_it", WAN_BREAKS, ids=list(WAN_BREAKS))
def test_a_broken_wan_text_encoder_or_tokenizer_names_the_folder_and_the_fix(models, tmp_path, caplog, break_it):
    folder = _broken_copy(models, tmp_path, "wan", WAN_BREAKS[break_it])
    part = "tokenizer" if break_it.startswith("tokenizer") else "text_encoder"
    with caplog.at_level(logging.WARNING), pytest.raises(ModelLoadError) as err:
        load_backbone(folder)
    message = str(err.value)
    assert str(folder / part) in message
    assert ("UMT5 tokenizer" if part == "tokenizer" else "UMT5 text encoder") in message
    _user_words_only(message)
    assert str(folder / part) in caplog.text  # the library's own words are in the log for whoever debugs it


def test_a_wan_text_encoder_without_config_says_the_folder_is_incomplete(models, tmp_path):
    folder = _broken_copy(models, tmp_path, "wan", lambda f: (f / "text_encoder" / "config.json").unlink())
    with pytest.raises(ModelLoadError, match=r"text_encoder has no config.json.*incomplete.*Re-download"):
        load_backbone(folder)


def test_wan_text_encoder_weights_of_another_model_are_refused_not_filled_with_noise(models, tmp_path):
    def foreign_weights(folder):
        save_file({"encoder.some_other_layer.weight": torch.zeros(2, 2)},
                  str(folder / "text_encoder" / "model.safetensors"))

    folder = _broken_copy(models, tmp_path, "wan", foreign_weights)
    with pytest.raises(ModelLoadError, match=r"text_encoder does not hold the UMT5 text encoder .* weights are "
                                             r"missing .*Re-download") as err:
        load_backbone(folder)
    _user_words_only(str(err.value))


# ---- diffusers MotionAdapter folder --------------------------------------------------------------------------------
ADAPTER_BREAKS = {
    "without_weights": lambda f: [p.unlink() for p in (f / "motion_adapter").glob("*.safetensors")],
    "config_not_json": lambda f: (f / "motion_adapter" / "config.json").write_text("{nope"),
    "config_of_a_wider_adapter": lambda f: _rewrite_json(f / "motion_adapter" / "config.json",
                                                         block_out_channels=[32, 64, 64]),
}


@pytest.mark.parametrize("break_it", ADAPTER_BREAKS, ids=list(ADAPTER_BREAKS))
def test_a_broken_motion_adapter_folder_names_the_folder_and_the_fix(models, tmp_path, break_it):
    folder = _broken_copy(models, tmp_path, "animatediff", ADAPTER_BREAKS[break_it])
    with pytest.raises(ModelLoadError) as err:
        load_backbone(folder)
    message = str(err.value)
    assert f"{folder / 'motion_adapter'} could not be loaded as a diffusers MotionAdapter folder" in message
    assert "models/animatediff_models" in message
    _user_words_only(message)


def test_a_motion_adapter_folder_missing_weights_its_config_asks_for_is_refused(models, tmp_path):
    folder = _broken_copy(models, tmp_path, "animatediff",
                          lambda f: _rewrite_json(f / "motion_adapter" / "config.json", motion_layers_per_block=2))
    with pytest.raises(ModelLoadError, match=r"motion_adapter does not hold the motion module its config.json "
                                             r"describes: \d+ weights are missing") as err:
        load_backbone(folder)
    _user_words_only(str(err.value))


# ---- a motion module that does not fit the UNet ---------------------------------------------------------------------
def _motion_module_file(path, **adapter_config):
    from diffusers import MotionAdapter

    config = dict(block_out_channels=(32, 64), motion_layers_per_block=1, motion_num_attention_heads=8,
                  motion_norm_num_groups=32, motion_max_seq_length=32, use_motion_mid_block=False)
    save_file({k: v.contiguous() for k, v in MotionAdapter(**{**config, **adapter_config}).state_dict().items()},
              str(path))
    return path


def test_a_motion_module_of_other_layer_widths_names_the_file_and_the_first_weight_that_differs(models, tmp_path):
    wide = _motion_module_file(tmp_path / "mm_wide.safetensors", block_out_channels=(64, 128),
                               motion_norm_num_groups=32)
    with pytest.raises(ModelLoadError) as err:
        load_backbone(models / "sd15", motion_module=wide)
    message = str(err.value)
    assert message.startswith("mm_wide.safetensors does not fit this model: weight 'down_blocks.0.motion_modules")
    assert "in the motion module but" in message and "SD1.5 motion module" in message
    _user_words_only(message)


def test_a_motion_module_with_more_layers_per_block_names_the_file_and_both_layouts(models, tmp_path):
    deep = _motion_module_file(tmp_path / "mm_deep.safetensors", motion_layers_per_block=2)
    with pytest.raises(ModelLoadError) as err:
        load_backbone(models / "sd15", motion_module=deep)
    message = str(err.value)
    assert message.startswith("mm_deep.safetensors does not fit this UNet: it has 2 blocks of 2 motion layers, the "
                              "UNet 2 blocks of 1 layers.")
    _user_words_only(message)


def test_combining_a_mismatched_adapter_in_memory_still_reads_as_a_fix():
    from diffusers import MotionAdapter

    unet2d, _ = tiny_animatediff_parts()
    adapter = MotionAdapter(block_out_channels=(32, 64, 64), motion_layers_per_block=1, motion_num_attention_heads=8,
                            motion_norm_num_groups=32, motion_max_seq_length=32, use_motion_mid_block=False)
    with pytest.raises(ModelLoadError, match=r"^The motion module does not fit this UNet: it has 3 blocks") as err:
        combine_unet_and_motion_adapter(unet2d, adapter)
    _user_words_only(str(err.value))
