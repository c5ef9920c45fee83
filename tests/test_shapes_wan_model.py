"""The committed ShapesWan folder: small, safe to load, the real Wan classes, opened by the pack's Wan loader."""

import json
import warnings

import pytest
import torch

from motion_core.backbones import load_backbone
from motion_core.toy.builtin import SHAPES_WAN_DIR, clip_frames

MAX_BYTES = 25 * 1024 * 1024


def test_the_folder_is_small_and_holds_no_pickles():
    files = [p for p in SHAPES_WAN_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= MAX_BYTES
    weights = [p for p in files if p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt")]
    assert weights and all(p.suffix == ".safetensors" for p in weights), weights


def test_the_card_records_the_seeded_command_and_its_wall_time():
    card = (SHAPES_WAN_DIR / "README.md").read_text()
    assert "python -m motion_core.toy.pretrain.wan" in card and '"seed": "0"' in card
    minutes = float(card.split("wall time ")[1].split(" min")[0])
    assert minutes <= 60.0, "the pretraining command must fit the 60-minute budget on the 2-core machine"


@pytest.fixture(scope="module")
def shapes_wan():
    torch.set_num_threads(1)
    return load_backbone(SHAPES_WAN_DIR)


def test_the_pack_opens_it_as_a_wan_model_of_the_real_classes(shapes_wan):
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5EncoderModel

    assert shapes_wan.family == "wan" and shapes_wan.prediction_type == "flow"
    assert isinstance(shapes_wan.denoiser, WanTransformer3DModel)
    assert isinstance(shapes_wan.vae, AutoencoderKLWan)
    assert isinstance(shapes_wan.text_encoder, UMT5EncoderModel)
    assert clip_frames(shapes_wan) == 9
    index = json.loads((SHAPES_WAN_DIR / "model_index.json").read_text())
    assert index["_class_name"] == "WanPipeline"


def test_trigger_words_and_captions_reach_the_model_whole_and_without_a_warning(shapes_wan):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        states = shapes_wan.encode_prompt(["a purple triangle moves down and left next to a white circle",
                                           "a blue circle moves like V*"])
    assert states.shape[0] == 2
    assert shapes_wan.tokenizer.tokenize("a blue circle moves like V*")[-1] == "▁V*"
    with pytest.warns(UserWarning, match="cut"):
        shapes_wan.encode_prompt(["a red square " * 10])
