"""``--image`` on the command line: the start picture is read safely and checked before any model is loaded, and a
text-to-video model refuses it with the fix named."""

import numpy as np
import pytest
import torch
from PIL import Image

from motion_core.__main__ import main
from motion_core.backbones import save_tiny_diffusers_folder
from motion_core.errors import InvalidInputError, VideoReadError
from motion_core.video.still import load_still_image

SMALL = ["--steps", "2", "--frames", "4", "--width", "16", "--height", "16", "--cfg", "1"]


def _png(path, size=(20, 12)):
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def test_a_picture_is_read_as_a_comfy_image(tmp_path):
    pixels = _png(tmp_path / "start.png")
    image = load_still_image(tmp_path / "start.png")
    assert image.shape == (1, 12, 20, 3) and image.dtype == torch.float32
    torch.testing.assert_close(image[0], torch.from_numpy(pixels).float() / 255.0)


def test_a_missing_or_damaged_picture_is_named(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_still_image(tmp_path / "nope.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(VideoReadError, match="not a readable image"):
        load_still_image(tmp_path / "broken.png")


def test_an_oversized_picture_is_refused_before_decoding(tmp_path):
    _png(tmp_path / "big.png", size=(64, 64))
    with pytest.raises(InvalidInputError, match="64x64 pixels, more than"):
        load_still_image(tmp_path / "big.png", max_pixels=1000)


def test_a_bad_image_stops_the_command_before_the_model_loads(tmp_path, capsys):
    code = main(["sample", "--model", str(tmp_path / "no-model"), "--prompt", "x", *SMALL, "--image",
                 str(tmp_path / "nope.png"), "--out", str(tmp_path / "out.gif")])
    assert code != 0 and "Start image" in capsys.readouterr().err


def test_a_text_to_video_model_refuses_the_image(tmp_path, capsys):
    model = save_tiny_diffusers_folder(tmp_path / "tiny", "unet3d", seed=0)
    _png(tmp_path / "start.png")
    code = main(["sample", "--model", str(model), "--prompt", "x", *SMALL, "--image", str(tmp_path / "start.png"),
                 "--out", str(tmp_path / "out.gif")])
    assert code != 0 and "text-to-video and takes no start image" in capsys.readouterr().err
    assert not (tmp_path / "out.gif").exists()


def test_train_and_sample_an_image_to_video_model_on_the_command_line(tmp_path, capsys):
    """A tiny WanImageToVideoPipeline folder: train conditions on the clip's first frame (and two recoloured
    copies, one shifted copy, steps with no start image), sample starts from --image, and the LoRA changes that
    video."""
    from motion_core.backbones.wan.tiny import save_tiny_wan_i2v_diffusers_folder
    from motion_core.video import load_reference_video
    from video_samples import sample_frames, write_animated_image

    model = save_tiny_wan_i2v_diffusers_folder(tmp_path / "i2v", 0, kind="concat")
    clip = write_animated_image(tmp_path / "ref.webp", sample_frames(5, 16, 16), 8.0)
    lora = tmp_path / "motion.safetensors"
    size = ["--frames", "5", "--width", "16", "--height", "16"]
    assert main(["train", "--model", str(model), "--video", str(clip), "--caption", "a square", "--recipe", "naive",
                 "--steps", "2", "--rank", "2", "--recolour", "2", "--shift-copies", "1", "--start-image-dropout",
                 "0.5", *size, "--out", str(lora)]) == 0
    _png(tmp_path / "start.png", size=(16, 16))
    common = ["sample", "--model", str(model), "--prompt", "a square", "--steps", "2", "--cfg", "1", *size,
              "--image", str(tmp_path / "start.png")]
    assert main([*common, "--out", str(tmp_path / "plain.gif")]) == 0
    assert main([*common, "--lora", f"{lora}:1.0", "--out", str(tmp_path / "tuned.gif")]) == 0
    plain = load_reference_video(tmp_path / "plain.gif").frames
    tuned = load_reference_video(tmp_path / "tuned.gif").frames
    assert plain.shape == (5, 16, 16, 3) and not torch.equal(plain, tuned)
    missing = main(["sample", "--model", str(model), "--prompt", "x", "--steps", "1", "--cfg", "1", *size,
                    "--out", str(tmp_path / "none.gif")])
    assert missing != 0 and "needs a start image" in capsys.readouterr().err
