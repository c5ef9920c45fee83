"""Image-to-video on the Wan family: the start image's condition is diffusers' WanImageToVideoPipeline's, sampling
from an image matches that pipeline, training conditions on each clip's first frame, and the wrong inputs are refused
with the fix named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from motion_core.backbones.wan.tiny import tiny_wan_backbone, tiny_wan_i2v_backbone
from motion_core.errors import InvalidInputError
from motion_core.sampling import SampleRequest, sample_video
from motion_core.sampling.callbacks import SamplingCallbacks

FRAMES, SIZE = 5, 16


@pytest.fixture(scope="module")
def concat():
    return tiny_wan_i2v_backbone(0, kind="concat")


@pytest.fixture(scope="module")
def clip_model():
    return tiny_wan_i2v_backbone(0, kind="clip")


def _image(seed=0, size=SIZE):
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return pixels, torch.from_numpy(pixels).float().div(255.0)[None]


def _pipeline(backbone, **config):
    from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline

    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    return WanImageToVideoPipeline(tokenizer=backbone.tokenizer, text_encoder=backbone.text_encoder, vae=backbone.vae,
                                   scheduler=scheduler, transformer=backbone.denoiser,
                                   image_encoder=backbone.image_encoder, image_processor=None, **config)


@pytest.mark.parametrize("kind", ["concat", "first_frame"])
def test_condition_is_the_pipelines(kind, concat):
    backbone = concat if kind == "concat" else tiny_wan_i2v_backbone(0, kind="first_frame")
    pixels, image = _image()
    pipe = _pipeline(backbone, expand_timesteps=kind == "first_frame")
    processed = pipe.video_processor.preprocess(Image.fromarray(pixels), height=SIZE, width=SIZE)
    latents = torch.zeros(1, 16, 2, SIZE // 4, SIZE // 4)
    expected = pipe.prepare_latents(processed, 1, 16, SIZE, SIZE, FRAMES, torch.float32, "cpu", latents=latents)[1]
    ours = backbone.encode_start_image(image, FRAMES, SIZE, SIZE)
    assert ours.mode == kind
    torch.testing.assert_close(ours.latents, expected, atol=1e-5, rtol=1e-5)


def test_clip_states_are_the_penultimate_layer_of_the_encoder(clip_model):
    pixels, image = _image(1, size=224)
    from transformers import CLIPImageProcessor

    processor = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    inputs = processor(images=Image.fromarray(pixels), return_tensors="pt")
    expected = clip_model.image_encoder(**inputs, output_hidden_states=True).hidden_states[-2]
    ours = clip_model.encode_start_image(image, FRAMES, SIZE, SIZE).image_embeds
    assert ours.shape == (1, 257, 1280)
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ["concat", "clip"])
def test_sampling_from_an_image_matches_the_diffusers_pipeline(kind, concat, clip_model):
    """Same noise, same text states, Euler on the same flow sigmas: the latents agree (for the CLIP model the pipeline
    gets our CLIP states, checked against the encoder above)."""
    backbone = concat if kind == "concat" else clip_model
    pixels, image = _image(2)
    request = SampleRequest(prompt="a red square", seed=3, steps=4, cfg=1.0, frames=FRAMES, width=SIZE, height=SIZE,
                            scheduler="euler", start_image=image)
    ours = sample_video(backbone, request, SamplingCallbacks(preview="none")).latents
    noise = torch.randn((1, 16, 2, SIZE // 4, SIZE // 4), generator=torch.Generator().manual_seed(3))
    text = backbone.encode_prompt(["a red square"])
    if kind == "clip":  # real Wan text states are 512 tokens long, which the pipeline's attention assumes
        text = torch.nn.functional.pad(text, (0, 0, 0, 512 - text.shape[1]))
    embeds = backbone.encode_start_image(image, FRAMES, SIZE, SIZE).image_embeds
    pipe = _pipeline(backbone)
    pipe.encode_image = lambda image, device=None: embeds  # (the pipeline refuses image and image_embeds together)
    with torch.no_grad():
        theirs = pipe(image=Image.fromarray(pixels), prompt_embeds=text,
                                     height=SIZE, width=SIZE, num_frames=FRAMES, num_inference_steps=4,
                                     guidance_scale=1.0, latents=noise, output_type="latent").frames
    torch.testing.assert_close(ours, theirs.float(), atol=1e-4, rtol=1e-4)


def test_an_image_to_video_model_needs_a_start_image_and_says_where(concat):
    request = SampleRequest(prompt="x", steps=2, cfg=1.0, frames=FRAMES, width=SIZE, height=SIZE)
    with pytest.raises(InvalidInputError, match="needs a start image.*start_image"):
        sample_video(concat, request)


def test_a_text_to_video_model_refuses_a_start_image():
    request = SampleRequest(prompt="x", steps=2, cfg=1.0, frames=FRAMES, width=SIZE, height=SIZE,
                            start_image=_image()[1])
    with pytest.raises(InvalidInputError, match="text-to-video and takes no start image"):
        sample_video(tiny_wan_backbone(0), request)


@pytest.mark.parametrize("bad", [torch.zeros(3, 3), torch.full((1, 8, 8, 3), float("nan")),
                                 torch.zeros(1, 8, 8, 3, dtype=torch.uint8)])
def test_a_broken_start_image_is_named(concat, bad):
    request = SampleRequest(prompt="x", steps=2, cfg=1.0, frames=FRAMES, width=SIZE, height=SIZE, start_image=bad)
    with pytest.raises(InvalidInputError, match="start image"):
        sample_video(concat, request)


def test_the_start_image_sets_the_first_frame_and_changes_the_clip(concat):
    base = dict(prompt="x", seed=1, steps=3, cfg=1.0, frames=FRAMES, width=SIZE, height=SIZE)
    a = sample_video(concat, SampleRequest(**base, start_image=_image(4)[1])).latents
    b = sample_video(concat, SampleRequest(**base, start_image=_image(5)[1])).latents
    assert not torch.allclose(a, b)


def test_first_frame_mode_keeps_the_images_latent_and_learns_nothing_from_it():
    backbone = tiny_wan_i2v_backbone(0, kind="first_frame")
    image = _image(6)[1]
    request = SampleRequest(prompt="x", seed=1, steps=3, cfg=1.0, frames=FRAMES, width=SIZE, height=SIZE,
                            start_image=image)
    latents = sample_video(backbone, request).latents
    condition = backbone.encode_start_image(image, FRAMES, SIZE, SIZE)
    torch.testing.assert_close(latents[:, :, :1], condition.latents)
    noisy = torch.randn(1, 16, 2, SIZE // 4, SIZE // 4, requires_grad=True)
    with backbone.conditioned(condition):
        out = backbone.denoise(noisy, 500.0, backbone.encode_prompt(["x"]))
    out[:, :, :1].sum().backward()
    assert noisy.grad is None or float(noisy.grad.abs().sum()) == 0.0
    # without an image the 5B-style model is text-to-video
    assert backbone.start_image == "optional"
    sample_video(backbone, SampleRequest(prompt="x", steps=2, cfg=1.0, frames=FRAMES, width=SIZE, height=SIZE))


def test_training_conditions_on_the_clips_first_frame_and_the_lora_changes_the_sample(concat):
    from motion_core.clips import Clip, ClipSet
    from motion_core.training import TrainingConfig, train_motion_lora

    frames = (np.random.default_rng(7).random((FRAMES, SIZE, SIZE, 3)) * 255).astype(np.uint8)
    clips = ClipSet([Clip(torch.from_numpy(frames), fps=8.0, caption="a square moving")])
    config = TrainingConfig(steps=3, width=SIZE, height=SIZE, frames=FRAMES, rank=4, lr=1e-3, recolour=2)
    result = train_motion_lora(concat, clips, "motion_director", config)
    assert all(np.isfinite(h["total"]) for h in result.history)
    from motion_core.lora.stack import LoraStack

    base = dict(prompt="a square moving", seed=1, steps=3, cfg=1.0, frames=FRAMES, width=SIZE, height=SIZE,
                start_image=_image(8)[1])
    plain = sample_video(concat, SampleRequest(**base)).latents
    tuned = sample_video(concat, SampleRequest(**base, lora_stack=LoraStack().add(result.motion_lora, 1.0))).latents
    assert not torch.allclose(plain, tuned)


def test_text_to_video_training_is_refused_on_an_image_to_video_model(concat):
    from motion_core.clips import Clip, ClipSet
    from motion_core.training import TrainingConfig, train_motion_lora

    clips = ClipSet([Clip(torch.zeros(FRAMES, SIZE, SIZE, 3, dtype=torch.uint8), fps=8.0, caption="x")])
    config = TrainingConfig(steps=1, width=SIZE, height=SIZE, frames=FRAMES, start_image="none")
    with pytest.raises(InvalidInputError, match="cannot train without a start image"):
        train_motion_lora(concat, clips, "naive", config)


@pytest.mark.parametrize("kind,mode", [("clip", "auto"), ("first_frame", "first_frame")])
def test_every_image_mode_trains_with_the_memory_plan(kind, mode, clip_model):
    """The plan traces the step with a blank condition; the CLIP model's image states and TI2V's clean first frame
    reach training; a TI2V model trains text-to-video unless asked."""
    from motion_core.clips import Clip, ClipSet
    from motion_core.training import TrainingConfig, train_motion_lora
    from motion_core.training.data import uses_start_image

    backbone = clip_model if kind == "clip" else tiny_wan_i2v_backbone(0, kind=kind)
    assert uses_start_image(backbone, "auto") == (kind == "clip")
    frames = (np.random.default_rng(9).random((FRAMES, SIZE, SIZE, 3)) * 255).astype(np.uint8)
    clips = ClipSet([Clip(torch.from_numpy(frames), fps=8.0, caption="a square")])
    config = TrainingConfig(steps=2, width=SIZE, height=SIZE, frames=FRAMES, rank=2, start_image=mode)
    result = train_motion_lora(backbone, clips, "naive", config)
    assert result.memory_plan is not None and all(np.isfinite(h["total"]) for h in result.history)
