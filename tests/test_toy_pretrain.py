"""The ShapesT2V pretraining command produces a ZeroScope-layout folder that the ordinary loader opens."""

import json

import torch

from motion_core.backbones import detect_family, load_backbone
from motion_core.toy.pretrain.__main__ import main as pretrain


def test_pretraining_writes_a_loadable_unet3d_folder(tmp_path):
    out = tmp_path / "shapes_t2v"
    assert pretrain(["--out", str(out), "--clips", "6", "--vae-steps", "2", "--decoder-steps", "2", "--t2v-steps", "2",
                     "--batch", "2", "--threads", "1"]) == 0
    index = json.loads((out / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet3DConditionModel"] and index["vae"] == ["diffusers", "AutoencoderKL"]
    assert detect_family(out) == "unet3d"
    backbone = load_backbone(out)
    assert backbone.prediction_type == "v_prediction"
    states = backbone.encode_prompt(["a red circle moves left"])
    latents = torch.zeros(1, 4, 8, 16, 16)
    assert backbone.denoise(latents, 500, states).shape == latents.shape
    tokens = backbone.tokenizer.tokenize("a purple triangle moves down and left next to a white circle")
    assert "circle</w>" in tokens and len(tokens) == 12
    card = (out / "README.md").read_text()
    assert "Text-to-video steps: 2" in card and "on object pixels" in card


def test_continuing_a_run_reuses_its_vae_and_keeps_the_earlier_card(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--clips", "6", "--decoder-steps", "0", "--t2v-steps", "2", "--batch", "2", "--threads", "1"]
    assert pretrain(["--out", str(first), "--vae-steps", "2", *common]) == 0
    assert pretrain(["--out", str(second), "--continue-from", str(first), "--short-fraction", "0", *common]) == 0
    from safetensors.torch import load_file

    vae_a = load_file(first / "vae" / "diffusion_pytorch_model.safetensors")
    vae_b = load_file(second / "vae" / "diffusion_pytorch_model.safetensors")
    assert vae_a.keys() == vae_b.keys() and all(torch.equal(vae_a[k], vae_b[k]) for k in vae_a)
    card = (second / "README.md").read_text()
    assert "## Continued from this earlier run" in card and str(first) in card


def test_refining_a_finished_model_changes_only_its_decoder_and_keeps_its_measurements(tmp_path):
    from safetensors.torch import load_file

    folder = tmp_path / "model"
    assert pretrain(["--out", str(folder), "--clips", "6", "--vae-steps", "2", "--decoder-steps", "0", "--t2v-steps",
                     "1", "--batch", "2", "--threads", "1"]) == 0
    (folder / "README.md").write_text((folder / "README.md").read_text() + "\n## Measured base quality\n\nshape 50%\n")

    def weights(part):
        return {k: v.clone() for k, v in load_file(folder / part / "diffusion_pytorch_model.safetensors").items()}

    old_vae, old_unet = weights("vae"), weights("unet")
    assert pretrain(["--refine-decoder", str(folder), "--clips", "6", "--decoder-steps", "2", "--threads", "1"]) == 0
    new_vae, new_unet = weights("vae"), weights("unet")
    changed = {k for k in old_vae if not torch.equal(old_vae[k], new_vae[k])}
    assert changed and all(k.startswith(("decoder.", "post_quant_conv.")) for k in changed), changed
    assert all(torch.equal(old_unet[k], new_unet[k]) for k in old_unet)
    card = (folder / "README.md").read_text()
    assert card.index("--refine-decoder FOLDER --decoder-steps 2") < card.index("## Measured base quality")
    assert "shape 50%" in card and load_backbone(folder).prediction_type == "v_prediction"


def test_refining_refuses_a_folder_that_is_not_a_shapes_t2v_model(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="not a ShapesT2V folder"):
        pretrain(["--refine-decoder", str(tmp_path), "--decoder-steps", "1", "--threads", "1"])


def test_short_windows_are_consecutive_frames_of_one_clip():
    from motion_core.toy.pretrain.t2v_stage import _batch

    latents = torch.arange(5 * 8, dtype=torch.float32).reshape(5, 1, 8, 1, 1).expand(5, 2, 8, 2, 2).contiguous()
    masks = latents[:, 0] * 10  # frame k of clip n holds 10 * (8n + k): must travel with its latent frame
    idx, windows, mask_windows = _batch(latents, 12, 4, torch.Generator().manual_seed(0), masks)
    assert windows.shape == (12, 2, 4, 2, 2) and mask_windows.shape == (12, 4, 2, 2)
    assert torch.equal(mask_windows, windows[:, 0] * 10)
    for clip, window in zip(idx, windows[:, 0, :, 0, 0]):
        assert torch.equal(window - window[0], torch.arange(4.0))  # consecutive, not subsampled
        assert int(window[0]) // 8 == int(clip) and int(window[-1]) // 8 == int(clip)  # inside the sampled clip


def test_learning_rate_warms_up_then_decays_to_a_tenth():
    from motion_core.toy.pretrain.t2v_stage import lr_factor

    assert lr_factor(0, 1001, 100) == 0.01 and lr_factor(99, 1001, 100) == 1.0
    assert abs(lr_factor(550, 1001, 100) - 0.55) < 1e-9 and abs(lr_factor(1000, 1001, 100) - 0.1) < 1e-9


def test_base_quality_result_is_recorded_in_the_model_card(tmp_path):
    from types import SimpleNamespace

    from motion_core.toy.base_quality import write_to_card

    (tmp_path / "README.md").write_text("# ShapesT2V\n\nweights\n")
    summary = {"samples": 9, "colour": 1.0, "shape": 0.5, "motion": 0.25, "all": 0.125,
               "per_motion": {"left": 1.0, "still": 0.0}}
    args = SimpleNamespace(samples=1, steps=20, cfg=5.0, seed=0)
    write_to_card(tmp_path, summary, args)
    write_to_card(tmp_path, dict(summary, colour=0.75), args)  # a second measurement replaces the first
    card = (tmp_path / "README.md").read_text()
    assert card.startswith("# ShapesT2V\n\nweights") and card.count("## Measured base quality") == 1
    assert "Colour follows the prompt: 75%" in card and "left 100%, still 0%" in card
    assert "--seed 0`" in card  # the default sampler is not spelled out
    write_to_card(tmp_path, summary, SimpleNamespace(samples=1, steps=20, cfg=5.0, seed=0, scheduler="euler_ancestral"))
    assert "--seed 0 --scheduler euler_ancestral`" in (tmp_path / "README.md").read_text()
    write_to_card(tmp_path, summary, SimpleNamespace(model="shapes_t2v", samples=1, steps=20, cfg=5.0, seed=0))
    card = (tmp_path / "README.md").read_text()
    assert "`python -m motion_core.toy.base_quality --model shapes_t2v --samples 1" in card


def test_rgb_anchor_is_zero_exactly_when_the_colour_channels_hold_the_pooled_frame():
    from motion_core.toy.pretrain.vae_stage import ANCHOR_CHANNELS, rgb_anchor_loss

    x = torch.rand(2, 3, 64, 64) * 2 - 1
    pooled = torch.nn.functional.avg_pool2d(x, 4)
    free = torch.randn(2, 4 - ANCHOR_CHANNELS, 16, 16)  # the free channels are not constrained
    assert rgb_anchor_loss(torch.cat([pooled, free], 1), x).item() < 1e-12
    assert rgb_anchor_loss(torch.cat([pooled.flip(1), free], 1), x).item() > 0.01  # channels swapped: penalised


def test_anchored_vae_training_puts_the_pooled_frame_in_the_first_latent_channels():
    """train_vae wires the anchor in: with it the colour channels come to hold the pooled frame, without it not."""
    from motion_core.toy.pretrain.vae_stage import rgb_anchor_loss, train_vae
    from motion_core.toy.render import ClipSpec, render_frames

    torch.set_num_threads(1)
    frames = torch.stack([render_frames(ClipSpec(c, "square", "still", background="black", size=64, frames=2, seed=i))
                          for i, c in enumerate(["red", "blue", "green", "yellow"] * 2)])
    x = frames[:, 0].float().permute(0, 3, 1, 2) * 2 - 1
    misfit = {}
    for weight in (1.0, 0.0):
        vae, _ = train_vae(frames, steps=30, batch=8, seed=0, anchor_weight=weight, log=lambda m: None)
        with torch.no_grad():
            misfit[weight] = rgb_anchor_loss(vae.encode(x).latent_dist.mean, x).item()
    assert misfit[1.0] < 0.05 and misfit[1.0] < misfit[0.0] / 4, misfit


def test_luma_anchor_is_zero_exactly_when_four_channels_hold_the_folded_luminance():
    from motion_core.toy.pretrain.vae_stage import ANCHOR_CHANNELS, luma_anchor_loss

    x = torch.rand(2, 3, 64, 64) * 2 - 1
    folded = torch.nn.functional.pixel_unshuffle(torch.nn.functional.avg_pool2d(x.mean(1, keepdim=True), 2), 2)
    colour, free = torch.randn(2, ANCHOR_CHANNELS, 16, 16), torch.randn(2, 1, 16, 16)
    assert luma_anchor_loss(torch.cat([colour, folded, free], 1), x).item() < 1e-12
    assert luma_anchor_loss(torch.cat([colour, folded.flip(1), free], 1), x).item() > 0.01  # quarters swapped


def test_luma_anchor_and_min_snr_options_give_an_8_channel_model_that_loads(tmp_path):
    out = tmp_path / "luma"
    assert pretrain(["--out", str(out), "--clips", "6", "--vae-steps", "2", "--decoder-steps", "2", "--t2v-steps", "2",
                     "--batch", "2",
                     "--threads", "1", "--luma-anchor", "--min-snr-gamma", "5", "--ema-decay", "0.99"]) == 0
    backbone = load_backbone(out)
    assert backbone.latent_channels == 8 and backbone.denoiser.config.in_channels == 8
    latents = torch.zeros(1, 8, 8, 16, 16)
    assert backbone.denoise(latents, 500, backbone.encode_prompt(["a red circle"])).shape == latents.shape
    card = (out / "README.md").read_text()
    assert "latents 8x16x16" in card and "\"latent_channels\": 8" in card and "\"in_channels\": 8" in card
    assert "2-core reference machine" in card


def _first_logged_loss(tmp_path, **options) -> float:
    """The loss logged at step 1 of a one-step run on fixed random latents (same seed, so the same draws)."""
    from motion_core.toy.pretrain.__main__ import build_tokenizer
    from motion_core.toy.pretrain.t2v_stage import train_t2v

    torch.set_num_threads(1)
    latents = torch.randn(4, 4, 8, 16, 16, generator=torch.Generator().manual_seed(0))
    lines = []
    train_t2v(latents, ["a red circle moves left"] * 4, build_tokenizer(tmp_path), steps=1, max_minutes=5, batch=2,
              short_fraction=0.0, log=lines.append, **options)
    first_step = next(line for line in lines if line.startswith("t2v step 1/"))
    return float(first_step.split("loss ")[1].split()[0])


def test_min_snr_weighting_changes_the_loss_but_not_the_draws(tmp_path):
    """Same seed: the same batches and noise (the first logged loss differs only by the weighting)."""
    logs = {gamma: _first_logged_loss(tmp_path, min_snr_gamma=gamma) for gamma in (0.0, 5.0)}
    assert logs[0.0] != logs[5.0] and 0 < logs[5.0] < logs[0.0] * 5


def test_frame_difference_loss_ignores_errors_shared_by_every_frame_and_counts_moving_ones():
    from motion_core.toy.pretrain.t2v_stage import frame_difference_loss

    target = torch.randn(2, 4, 8, 6, 6, generator=torch.Generator().manual_seed(0))
    static_error = torch.randn(2, 4, 1, 6, 6).expand(-1, -1, 8, -1, -1)
    assert frame_difference_loss(target + static_error, target).item() < 1e-10
    moving = target.clone()
    moving[:, :, 4:] += 1.0  # the prediction jumps halfway through the clip: one frame pair differs by 1
    assert abs(frame_difference_loss(moving, target).item() - 1.0 / 7.0) < 1e-6


def test_frame_difference_option_adds_to_the_logged_loss(tmp_path):
    logs = {weight: _first_logged_loss(tmp_path, frame_diff_weight=weight) for weight in (0.0, 2.0)}
    assert logs[2.0] > logs[0.0] * 1.5


def test_object_masks_mark_the_cells_an_object_covers_and_their_border_only():
    from motion_core.toy.motions import MotionParams
    from motion_core.toy.pretrain.data import object_masks, object_pixels
    from motion_core.toy.render import ClipSpec, render_frames

    # A still 16-px square centred at (24, 24) px on the textured background: latent cells 4-7 (4 px each), + border.
    spec = ClipSpec("red", "square", "still", MotionParams(x0=0.375, y0=0.375), background="texture", frames=2,
                    object_size=0.25, seed=3)
    masks = object_masks(object_pixels([spec], render_frames(spec)[None].half()), 16)
    assert masks.shape == (1, 2, 16, 16) and masks.dtype == torch.float16
    expected = torch.zeros(16, 16)
    expected[3:9, 3:9] = 1.0
    assert torch.equal(masks[0, 0].float(), expected) and torch.equal(masks[0, 1].float(), expected)


def test_object_weighted_error_is_plain_mse_without_objects_and_stresses_them_exactly_by_the_weight():
    from motion_core.toy.pretrain.t2v_stage import object_weighted_error

    target = torch.zeros(2, 4, 8, 4, 4)
    masks = torch.zeros(2, 8, 4, 4)
    masks[:, :, :2, :2] = 1.0  # a quarter of every frame is object
    on_object = target.clone()
    on_object[:, :, :, :2, :2] = 1.0  # unit error on the object cells only: plain MSE 0.25
    assert torch.allclose(object_weighted_error(on_object, target, None, 4.0), torch.full((2,), 0.25))
    assert torch.allclose(object_weighted_error(on_object, target, masks, 0.0), torch.full((2,), 0.25))
    # Weight 1 + 4 on a quarter of the cells: (5 * 0.25) / (0.75 + 5 * 0.25) = 0.625.
    assert torch.allclose(object_weighted_error(on_object, target, masks, 4.0), torch.full((2,), 0.625))
    # The same error everywhere keeps its value: the weights are normalised.
    everywhere = target + 1.0
    assert torch.allclose(object_weighted_error(everywhere, target, masks, 4.0), torch.ones(2))


def test_object_weight_option_needs_masks_and_changes_the_logged_loss(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="object masks"):
        _first_logged_loss(tmp_path, object_weight=4.0)
    masks = torch.zeros(4, 8, 16, 16)
    masks[:, :, 4:8, 4:8] = 1.0
    logs = {weight: _first_logged_loss(tmp_path, masks=masks, object_weight=weight) for weight in (0.0, 4.0)}
    assert logs[0.0] != logs[4.0] and 0.5 * logs[0.0] < logs[4.0] < 2.0 * logs[0.0]


def test_decoder_stage_trains_only_the_decoder_and_learns_the_objects():
    from motion_core.toy.motions import MotionParams
    from motion_core.toy.pretrain.architecture import build_vae
    from motion_core.toy.pretrain.data import object_pixels
    from motion_core.toy.pretrain.decoder_stage import object_error, refine_decoder
    from motion_core.toy.pretrain.vae_stage import encode_clips
    from motion_core.toy.render import ClipSpec, render_frames

    torch.set_num_threads(1)
    torch.manual_seed(0)
    specs = [ClipSpec(c, "square", "still", MotionParams(0.5, 0.5), frames=2, object_size=0.25) for c in ("red", "blue")]
    frames = torch.stack([render_frames(s) for s in specs]).half()
    objects = object_pixels(specs, frames)
    vae = build_vae().eval().requires_grad_(False)
    encoder_before = {k: v.clone() for k, v in vae.encoder.state_dict().items()}
    latents = encode_clips(vae, frames, 1.0)
    before = object_error(vae, frames, objects)
    lines = []
    vae = refine_decoder(vae, frames, latents, objects, 60, scaling=1.0, batch=4, lr=2e-3, log=lines.append)
    after = object_error(vae, frames, objects)
    assert after[0] < 0.6 * before[0], (before, after)
    assert all(torch.equal(v, vae.encoder.state_dict()[k]) for k, v in encoder_before.items())
    assert not vae.training and not any(p.requires_grad for p in vae.parameters())
    assert lines[0].startswith("decoder step 1/60") and lines[-1].startswith("decoder step 60/60")


def test_decoder_stage_stops_when_asked_and_refuses_a_nan_loss():
    import pytest

    from motion_core.toy.pretrain.architecture import build_vae
    from motion_core.toy.pretrain.decoder_stage import refine_decoder

    frames = torch.rand(1, 2, 64, 64, 3).half()
    latents = torch.zeros(1, 4, 2, 16, 16)
    objects = torch.zeros(1, 2, 64, 64, dtype=torch.bool)
    lines = []
    refine_decoder(build_vae(), frames, latents, objects, 50, scaling=1.0, batch=2, should_stop=lambda: True,
                   log=lines.append)
    assert lines == ["decoder: stopped after 0 steps"]
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        refine_decoder(build_vae(), frames, latents * float("nan"), objects, 5, scaling=1.0, batch=2, log=lambda m: None)


def test_a_frozen_text_encoder_keeps_its_seeded_weights_while_the_unet_trains(tmp_path):
    """--freeze-text-encoder: the saved text encoder is the seeded fresh one, untouched; the UNet still learns; without
    the flag the same run changes the text encoder."""
    from motion_core.toy.pretrain.__main__ import build_tokenizer
    from motion_core.toy.pretrain.architecture import build_text_encoder, build_unet
    from motion_core.toy.pretrain.t2v_stage import train_t2v

    torch.set_num_threads(1)
    latents = torch.randn(4, 4, 8, 16, 16, generator=torch.Generator().manual_seed(0))
    tokenizer = build_tokenizer(tmp_path)
    torch.manual_seed(0)
    fresh_unet, fresh_text = build_unet(4), build_text_encoder(tokenizer)
    captions = ["a red circle moves left", "a blue square moves right"] * 2
    runs = {}
    for frozen in (True, False):
        unet, text, _, steps = train_t2v(latents, captions, tokenizer, steps=3, max_minutes=5, batch=2, warmup=1,
                                         short_fraction=0.0, ema_decay=0.0, freeze_text_encoder=frozen,
                                         log=lambda _: None)
        assert steps == 3
        runs[frozen] = (unet, text)

    def same(a, b):
        return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))

    assert same(runs[True][1], fresh_text) and not same(runs[False][1], fresh_text)
    assert not same(runs[True][0], fresh_unet)
