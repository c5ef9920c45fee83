"""Anchor-frame pretraining: one frame of a clip shown less noisy and left out of the loss."""

import torch
from test_toy_pretrain_support import train_with_and_without

from motion_core.toy.pretrain.anchor_frames import anchor_frames, mask_anchors
from motion_core.toy.pretrain.architecture import build_scheduler


def _inputs(batch=6):
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(batch, 4, 8, 5, 5, generator=g)
    noise = torch.randn(z0.shape, generator=g)
    t = torch.full((batch,), 900, dtype=torch.long)
    return build_scheduler(), z0, noise, t


def test_share_zero_is_plain_noising_and_draws_nothing():
    scheduler, z0, noise, t = _inputs()
    g = torch.Generator().manual_seed(3)
    zt, keep = anchor_frames(scheduler, z0, noise, t, 0.0, g)
    assert keep is None and torch.equal(zt, scheduler.add_noise(z0, noise, t))
    assert torch.equal(torch.rand(4, generator=g), torch.rand(4, generator=torch.Generator().manual_seed(3)))


def test_every_clip_gets_one_less_noisy_frame_that_the_loss_skips():
    scheduler, z0, noise, t = _inputs()
    plain = scheduler.add_noise(z0, noise, t)
    zt, keep = anchor_frames(scheduler, z0, noise, t, 1.0, torch.Generator().manual_seed(1))
    assert keep.shape == (6, 1, 8, 1, 1) and (~keep).flatten(1).sum(1).tolist() == [1] * 6
    changed = (zt != plain).flatten(3).any(3).any(1)  # [B, F]
    assert torch.equal(changed, ~keep[:, 0, :, 0, 0])
    anchor = ~keep.expand_as(zt)
    # at t = 900 the input is mostly noise; the anchor frame is drawn below t = 450, so it is closer to the clean clip
    assert (zt[anchor] - z0[anchor]).pow(2).mean() < 0.5 * (plain[anchor] - z0[anchor]).pow(2).mean()


def test_anchor_frames_add_no_error_and_no_gradient():
    scheduler, z0, noise, t = _inputs()
    _, keep = anchor_frames(scheduler, z0, noise, t, 1.0, torch.Generator().manual_seed(1))
    pred = torch.zeros_like(z0, requires_grad=True)
    target = torch.randn(z0.shape)
    loss = (mask_anchors(pred, target, keep) - target).pow(2).sum()
    loss.backward()
    assert torch.equal(pred.grad == 0, (~keep).expand_as(pred))
    assert mask_anchors(pred, target, None) is pred


def test_pretraining_with_anchor_frames_trains_differs_and_records_the_option(tmp_path):
    card = train_with_and_without(tmp_path, "--anchor-frames", "1")
    assert '"anchor_frames": "1.0"' in card
