"""Every supported format round-trips the synthetic clip: frame count, size, fps and where the square is."""

import math

import numpy as np
import pytest
import torch

import video_samples as vs
from motion_core.clips import Clip
from motion_core.video import load_reference_video, probe_video

FRAMES, WIDTH, HEIGHT, FPS = 12, 32, 24, 8
FORMATS = [".mp4", ".mov", ".webm", ".gif", ".webp", ""]  # "" = numbered PNG frames folder


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    folder = tmp_path_factory.mktemp("samples")
    return {ext: vs.write_sample_video(folder / f"clip{ext}", FRAMES, WIDTH, HEIGHT, FPS) for ext in FORMATS}


def expected_centroids():
    return [vs.square_centroid_x(f) for f in vs.sample_frames(FRAMES, WIDTH, HEIGHT)]


@pytest.mark.parametrize("ext", FORMATS, ids=lambda e: e or "folder")
def test_each_format_round_trips_count_size_and_motion(samples, ext):
    clip = load_reference_video(samples[ext], caption="a red square slides right")

    assert isinstance(clip, Clip)
    assert clip.frames.dtype == torch.uint8
    assert tuple(clip.frames.shape) == (FRAMES, HEIGHT, WIDTH, 3)
    assert clip.caption == "a red square slides right"
    assert clip.source == str(samples[ext])
    centroids = [vs.square_centroid_x(f.numpy()) for f in clip.frames]
    assert centroids == pytest.approx(expected_centroids(), abs=1.0)


@pytest.mark.parametrize("ext", FORMATS, ids=lambda e: e or "folder")
def test_each_format_reports_its_source_fps(samples, ext):
    # GIF stores delays in centiseconds, so 125 ms becomes 120 ms (8.33 fps).
    assert load_reference_video(samples[ext]).fps == pytest.approx(FPS, abs=0.4)


@pytest.mark.parametrize("ext", [".png", ".webp", ".gif"])
def test_lossless_formats_decode_exact_pixels(samples, ext):
    key = "" if ext == ".png" else ext
    clip = load_reference_video(samples[key])
    assert np.array_equal(clip.frames.numpy(), vs.sample_frames(FRAMES, WIDTH, HEIGHT))


@pytest.mark.parametrize("ext", [".mp4", ".webm", ".mov"])
def test_lossy_codecs_stay_close_to_the_source_pixels(samples, ext):
    clip = load_reference_video(samples[ext])
    error = (clip.frames.float() - torch.from_numpy(vs.sample_frames(FRAMES, WIDTH, HEIGHT)).float()).abs().mean()
    assert error < 8.0


def test_probe_reports_size_fps_and_count_without_reading_frames(samples):
    info = probe_video(samples[".mp4"])
    assert (info.width, info.height, info.fps, info.frame_count) == (WIDTH, HEIGHT, FPS, FRAMES)
    assert info.kind == "container"


def test_probe_leaves_count_unknown_where_the_format_does_not_state_it(samples):
    assert probe_video(samples[".gif"]).frame_count is None
    assert probe_video(samples[""]).frame_count == FRAMES


def test_relative_path_is_found_in_search_dirs(samples):
    clip = load_reference_video("clip.mp4", search_dirs=[samples[".mp4"].parent])
    assert clip.num_frames == FRAMES


def test_progress_callback_sees_every_kept_frame(samples):
    seen = []
    load_reference_video(samples[".mp4"], frame_cap=5, progress=seen.append)
    assert seen == [1, 2, 3, 4, 5]


def test_clip_converts_to_comfy_image_and_back(samples):
    clip = load_reference_video(samples[".webp"])
    again = Clip.from_image(clip.as_image(), fps=clip.fps)
    assert torch.equal(again.frames, clip.frames)
    assert not math.isnan(vs.square_centroid_x(again.frames[0].numpy()))
