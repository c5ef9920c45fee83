"""DeT on an image-to-video model (issue #35): the temporal kernel finds its sites in the concat-conditioned Wan
I2V transformer, the tracking loss acts on the clean estimate of the video latents (not the start-image channels),
also on steps trained with no start image (start_image_dropout), and the LoRA with its kernel samples from a start
image, the kernel changing the video."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from motion_core.backbones.wan.tiny import tiny_wan_i2v_backbone
from motion_core.clips import Clip, ClipSet
from motion_core.lora.stack import LoraStack
from motion_core.recipes import get_recipe
from motion_core.sampling import SampleRequest, sample_video
from motion_core.training import TrainingConfig, train_motion_lora

torch.set_num_threads(1)
FRAMES, SIZE = 5, 16


@pytest.fixture(scope="module")
def concat():
    return tiny_wan_i2v_backbone(0, kind="concat")


def _clips():
    frames = np.zeros((FRAMES, SIZE, SIZE, 3), np.uint8)
    for f in range(FRAMES):
        frames[f, 4:9, 2 + 2 * f:7 + 2 * f, 0] = 255  # a red square moving right
    return ClipSet([Clip(torch.from_numpy(frames), fps=8.0, caption="a red square moving right")])


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_det_trains_its_kernel_and_tracking_loss_on_an_i2v_model_and_samples_from_a_start_image(concat, dropout):
    recipe = get_recipe("det", tracking_share=1.0)  # the tracking loss at every noise level, so every step shows it
    config = TrainingConfig(steps=3, width=SIZE, height=SIZE, frames=FRAMES, rank=2, lr=1e-2, seed=1,
                            start_image="auto", start_image_dropout=dropout)
    result = train_motion_lora(concat, _clips(), recipe, config)
    assert all("tracking" in h and torch.isfinite(torch.as_tensor(float(h["tracking"]))) for h in result.history)
    lora = result.motion_lora
    assert lora.kernel and any(float(t.abs().sum()) > 0 for t in lora.kernel.values())
    start = _clips().clips[0].frames[:1].float() / 255

    def sample(stack):
        request = SampleRequest(prompt="a red square moving right", seed=0, steps=2, cfg=1.0, frames=FRAMES,
                                width=SIZE, height=SIZE, lora_stack=stack, fps=8.0, start_image=start)
        return torch.as_tensor(sample_video(concat, request).frames)

    with_kernel = sample(LoraStack().add(lora, 1.0))
    assert with_kernel.shape[0] == FRAMES and torch.isfinite(with_kernel).all()
    assert not torch.equal(with_kernel, sample(LoraStack().add(lora.without_kernel(), 1.0)))
