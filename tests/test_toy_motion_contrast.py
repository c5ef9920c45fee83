"""The motion-word contrast of ShapesT2V pretraining: swapped captions, the hinge, and the CLI switch."""

import pytest
import torch
from test_toy_pretrain_support import train_with_and_without

from motion_core.toy.motions import BASIC_MOTIONS, MOTIONS
from motion_core.toy.pretrain.data import pretraining_specs
from motion_core.toy.pretrain.motion_contrast import (
    CONTRAST_MARGIN,
    frame_change_error,
    motion_contrast_loss,
    motion_swapped_captions,
)
from motion_core.toy.pretrain.t2v_stage import train_t2v


def test_swapped_captions_change_only_the_motion_phrase_to_another_basic_motion():
    specs = pretraining_specs(40, seed=3)
    swapped = motion_swapped_captions(specs, seed=0)
    assert swapped == motion_swapped_captions(specs, seed=0)  # seeded
    phrases = {m: MOTIONS[m].phrase for m in BASIC_MOTIONS}
    for spec, text in zip(specs, swapped):
        true = spec.text()
        assert text != true
        others = [m for m, ph in phrases.items() if m != spec.motion and text == true.replace(phrases[spec.motion], ph)]
        assert others, (true, text)


def _clips(seed, shape=(3, 4, 8, 6, 6)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_frame_change_error_ignores_an_error_that_is_the_same_in_every_frame():
    target = _clips(0)
    assert torch.allclose(frame_change_error(target + 0.7, target), torch.zeros(3), atol=1e-10)
    moved = target.clone()
    moved[:, :, 4:] += 0.5
    assert (frame_change_error(moved, target) > 0).all()


def test_hinge_is_zero_once_the_wrong_word_fits_worse_by_the_margin_and_pushes_only_the_swapped_prediction():
    target, active = _clips(0), torch.ones(3, dtype=torch.bool)
    pred = (target + 0.1 * _clips(1)).requires_grad_(True)
    same = pred.detach().clone().requires_grad_(True)
    loss = motion_contrast_loss(pred, same, target, active)
    expected = CONTRAST_MARGIN * frame_change_error(pred.detach(), target).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert pred.grad is None or not pred.grad.any()  # the true prediction is detached
    assert same.grad is not None and same.grad.abs().sum() > 0

    far = (target + 3.0 * _clips(2)).requires_grad_(True)
    assert motion_contrast_loss(pred, far, target, active).item() == 0.0
    assert motion_contrast_loss(pred, same, target, torch.zeros(3, dtype=torch.bool)).item() == 0.0


def test_train_t2v_refuses_the_contrast_without_one_swapped_caption_per_clip():
    latents = torch.zeros(2, 4, 8, 4, 4)
    with pytest.raises(ValueError, match="motion-swapped caption per clip"):
        train_t2v(latents, ["a red square moves left"] * 2, tokenizer=None, steps=1, max_minutes=1,
                  motion_contrast=1.0, swapped_captions=["a red square moves up"])


def test_pretraining_with_the_contrast_trains_and_differs_from_without(tmp_path):
    card = train_with_and_without(tmp_path, "--motion-contrast", "50")
    assert '"motion_contrast": "50.0"' in card
