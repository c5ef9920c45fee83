"""Terminal-noise targets: a share of each pretraining batch learns its caption's mean clip at the last timestep."""

import pytest
import torch

from motion_core.toy.pretrain.terminal_means import caption_means, share_now, to_terminal


def _latents(n):
    return torch.randn(n, 4, 8, 4, 4, generator=torch.Generator().manual_seed(0))


def test_caption_means_average_each_captions_clips_and_skip_rare_captions():
    latents = _latents(7)
    captions = ["a red circle moves left"] * 4 + ["a blue square moves up"] * 2 + ["a red circle moves left"]
    means, group = caption_means(latents, captions, min_clips=3)
    assert means.shape == (1, 4, 8, 4, 4)
    assert group.tolist() == [0, 0, 0, 0, -1, -1, 0]
    assert torch.allclose(means[0], latents[[0, 1, 2, 3, 6]].mean(0))
    with pytest.raises(ValueError, match="one caption per clip"):
        caption_means(latents, captions[:3])


def test_to_terminal_moves_only_clips_with_a_mean_to_the_last_timestep():
    latents = _latents(6)
    captions = ["a"] * 4 + ["b", "c"]
    means, group = caption_means(latents, captions, min_clips=2)
    idx = torch.tensor([0, 4, 1, 5, 2, 3])
    t = torch.tensor([10, 20, 30, 40, 50, 60])
    z0, t2, moved = to_terminal(latents[idx], t, idx, means, group, 1.0, 999, torch.Generator().manual_seed(0))
    assert moved.tolist() == [True, False, True, False, True, True]  # clips 4 and 5 have rare captions
    assert (t2[moved] == 999).all() and t2[~moved].tolist() == [20, 40]
    assert torch.equal(z0[~moved], latents[idx][~moved]) and torch.allclose(z0[0], latents[:4].mean(0))
    assert t.tolist() == [10, 20, 30, 40, 50, 60]  # the caller's tensors are not changed in place


def test_a_share_of_zero_draws_nothing_and_changes_nothing():
    latents, g = _latents(4), torch.Generator().manual_seed(3)
    means, group = caption_means(latents, ["a"] * 4)
    state = g.get_state()
    z0, t, moved = to_terminal(latents, torch.arange(4), torch.arange(4), means, group, 0.0, 999, g)
    assert torch.equal(g.get_state(), state) and not moved.any() and z0 is latents


def test_pretraining_with_terminal_means_trains_and_refuses_short_windows(tmp_path):
    from motion_core.toy.pretrain.__main__ import build_tokenizer
    from motion_core.toy.pretrain.t2v_stage import train_t2v

    torch.set_num_threads(1)
    latents, tokenizer = _latents(4), build_tokenizer(tmp_path)
    captions = ["a red circle moves left"] * 4
    with pytest.raises(ValueError, match="whole clips"):
        train_t2v(latents, captions, tokenizer, steps=1, max_minutes=5, batch=2, short_fraction=0.5,
                  terminal_mean_share=0.5, log=lambda _: None)
    logs = {}
    for share in (0.0, 1.0):
        lines = []
        train_t2v(latents, captions, tokenizer, steps=1, max_minutes=5, batch=2, short_fraction=0.0,
                  terminal_mean_share=share, log=lines.append)
        logs[share] = lines
    assert any("at the last timestep against the mean of 1 captions' clips (4 of 4" in line for line in logs[1.0])
    first = {s: next(line for line in lines if line.startswith("t2v step 1/")) for s, lines in logs.items()}
    assert first[0.0] != first[1.0]  # the whole batch trained on the caption mean at t = 999: another loss


def test_wan_pretraining_with_terminal_means_trains_at_sigma_one():
    from motion_core.toy.pretrain.wan_architecture import WAN_NUM_FRAMES, build_wan_tokenizer
    from motion_core.toy.pretrain.wan_t2v_stage import train_wan_t2v

    torch.set_num_threads(1)
    latents = torch.randn(4, 4, WAN_NUM_FRAMES, 4, 4, generator=torch.Generator().manual_seed(0))
    captions, tokenizer = ["a red circle moves left"] * 4, build_wan_tokenizer()
    logs = {}
    for share in (0.0, 1.0):
        lines = []
        train_wan_t2v(latents, captions, tokenizer, steps=1, max_minutes=5, batch=2, terminal_mean_share=share,
                      log=lines.append)
        logs[share] = lines
    assert any("at σ = 1 against the mean of 1 captions' clips (4 of 4" in line for line in logs[1.0])
    assert not any("σ = 1" in line for line in logs[0.0])
    first = {s: next(line for line in lines if line.startswith("wan t2v step 1/")) for s, lines in logs.items()}
    assert first[0.0] != first[1.0]  # the whole batch trained on the caption mean at σ = 1: another loss


def test_the_command_refuses_short_windows_with_its_default_terminal_share(capsys):
    from motion_core.toy.pretrain.__main__ import main as pretrain

    with pytest.raises(SystemExit):
        pretrain(["--out", "/nonexistent/never-written", "--short-fraction", "0.5"])
    assert "--terminal-mean-share 0" in capsys.readouterr().err


def test_the_terminal_share_stops_when_steps_or_time_pass_the_cut():
    assert share_now(0.5, 0.8, step=10, steps=100, elapsed=60, max_seconds=600) == 0.5
    assert share_now(0.5, 0.8, step=80, steps=100, elapsed=60, max_seconds=600) == 0.0  # steps
    assert share_now(0.5, 0.8, step=10, steps=100, elapsed=481, max_seconds=600) == 0.0  # the time cap
    assert share_now(0.5, 1.0, step=99, steps=100, elapsed=599, max_seconds=600) == 0.5  # default: the whole run


def test_the_command_refuses_a_cut_outside_the_run(capsys):
    from motion_core.toy.pretrain.__main__ import main as pretrain

    with pytest.raises(SystemExit):
        pretrain(["--terminal-mean-until", "1.5"])
    assert "--terminal-mean-until is a fraction" in capsys.readouterr().err
