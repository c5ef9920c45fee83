"""The committed ShapesWan v2 folder: the real Wan classes, opened by the pack's loader, samples a whole clip."""

import pytest
import torch

from motion_core.backbones import load_backbone
from motion_core.sampling import SampleRequest, sample_video
from motion_core.toy.builtin import BUILTIN_MODELS, clip_frames, resolve_builtin

MAX_BYTES = 25 * 1024 * 1024


@pytest.fixture(scope="module")
def folder():
    assert "shapes_wan_v2" in BUILTIN_MODELS, "ShapesWan v2 is registered as a built-in model"
    return resolve_builtin("shapes_wan_v2")


def test_the_folder_is_small_holds_no_pickles_and_its_card_names_the_command(folder):
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= MAX_BYTES
    weights = [p for p in files if p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt")]
    assert weights and all(p.suffix == ".safetensors" for p in weights), weights
    card = (folder / "README.md").read_text()
    assert "--continue-from motion_core/toy/shapes_wan" in card and '"seed": "0"' in card


def test_it_loads_through_the_pack_and_samples_a_nine_frame_clip(folder):
    from diffusers import WanTransformer3DModel

    torch.set_num_threads(1)
    backbone = load_backbone(folder)
    assert backbone.family == "wan" and isinstance(backbone.denoiser, WanTransformer3DModel)
    assert clip_frames(backbone) == 9
    request = SampleRequest(prompt="a red square moves left", seed=0, steps=2, cfg=5.0, frames=9, width=64,
                            height=64)
    frames = sample_video(backbone, request).frames
    assert tuple(frames.shape) == (9, 64, 64, 3)
    assert torch.isfinite(torch.as_tensor(frames)).all()
