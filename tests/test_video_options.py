"""Options pick, resample and resize frames as specified, and a cap stops decoding early."""

import pytest
import torch

import video_samples as vs
from motion_core.errors import InvalidInputError
from motion_core.video import load_reference_video
from motion_core.video.selection import select_frames
from motion_core.video.source import SourceFrame

FRAMES, WIDTH, HEIGHT, FPS = 16, 32, 24, 8


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    return vs.write_sample_video(tmp_path_factory.mktemp("opts") / "clip.mp4", FRAMES, WIDTH, HEIGHT, FPS)


@pytest.fixture(scope="module")
def reference(mp4):
    """The full decoded clip: options are checked against its frames, so codec loss does not matter."""
    return load_reference_video(mp4).frames


def test_start_frame_skips_leading_frames(mp4, reference):
    clip = load_reference_video(mp4, start_frame=5)
    assert torch.equal(clip.frames, reference[5:])


def test_frame_cap_limits_the_count(mp4, reference):
    clip = load_reference_video(mp4, start_frame=2, frame_cap=4)
    assert torch.equal(clip.frames, reference[2:6])


def test_every_nth_thins_frames_and_divides_fps(mp4, reference):
    clip = load_reference_video(mp4, every_nth=3)
    assert torch.equal(clip.frames, reference[::3])
    assert clip.fps == pytest.approx(FPS / 3)


def test_target_fps_downsamples_to_nearest_frames_in_time(mp4, reference):
    clip = load_reference_video(mp4, target_fps=4)
    assert clip.fps == 4
    assert torch.equal(clip.frames, reference[::2])


def test_target_fps_upsamples_by_repeating_nearest_frames(mp4, reference):
    clip = load_reference_video(mp4, target_fps=16, frame_cap=6)
    assert clip.fps == 16
    # Output times 0, 1/16, 2/16 ... land on source frames 0, 0|1 (tie goes later), 1, 1|2, 2, ...
    assert torch.equal(clip.frames, reference[[0, 1, 1, 2, 2, 3]])


def test_target_fps_applies_after_every_nth(mp4, reference):
    clip = load_reference_video(mp4, every_nth=2, target_fps=2)
    assert torch.equal(clip.frames, reference[::4])


def test_crop_fills_the_target_size(mp4):
    clip = load_reference_video(mp4, width=16, height=16, resize_mode="crop")
    assert clip.size == (16, 16)
    assert clip.frames[0, :, 0].float().mean() > 0  # no black bars: the background reaches every edge


def test_pad_letterboxes_with_black(mp4):
    clip = load_reference_video(mp4, width=32, height=32, resize_mode="pad")
    assert clip.size == (32, 32)
    # 32x24 fits unscaled, centred with 4 black rows above and below.
    assert int(clip.frames[:, :4].max()) == 0 and int(clip.frames[:, -4:].max()) == 0
    assert int(clip.frames[:, 4:28].float().mean()) > 0


def test_crop_keeps_the_square_where_it_was_relative_to_the_centre(mp4):
    wide = load_reference_video(mp4, width=16, height=24, resize_mode="crop")
    full = load_reference_video(mp4)
    assert vs.square_centroid_x(wide.frames[8].numpy()) == pytest.approx(
        vs.square_centroid_x(full.frames[8].numpy()) - 8, abs=1.0
    )


def test_one_zero_dimension_follows_the_aspect_in_multiples_of_8(mp4):
    assert load_reference_video(mp4, width=64).size == (64, 48)
    assert load_reference_video(mp4, height=8).size == (8, 8)  # 10.67 rounds to 8


@pytest.mark.parametrize("option", [{"width": 30, "height": 24}, {"width": 32, "height": 20}])
def test_size_not_multiple_of_8_is_refused_with_the_nearest_fixes(mp4, option):
    with pytest.raises(InvalidInputError, match="not a multiple of 8.*Use (24 or 32|16 or 24)"):
        load_reference_video(mp4, **option)


@pytest.mark.parametrize(
    "option, phrase",
    [
        ({"every_nth": 0}, "every_nth must be 1"),
        ({"start_frame": -1}, "start_frame must be 0 or more"),
        ({"resize_mode": "stretch"}, "resize_mode must be one of crop, pad"),
        ({"target_fps": -2}, "target_fps must be 0"),
        ({"frame_cap": 4, "min_frames": 8}, "raise frame_cap or lower min_frames"),
    ],
)
def test_bad_options_are_refused_before_reading(mp4, option, phrase):
    with pytest.raises(InvalidInputError, match=phrase):
        load_reference_video(mp4, **option)


def test_frame_cap_stops_pulling_frames_from_the_decoder():
    pulled = []

    def frames():
        for i in range(1000):
            pulled.append(i)
            yield SourceFrame(i, i / 8, lambda: None)

    chosen = list(select_frames(frames(), start_frame=10, every_nth=2, frame_cap=3, source_fps=8))
    assert [f.index for f in chosen] == [10, 12, 14]
    assert len(pulled) <= 16


def test_resampling_follows_timestamps_of_variable_rate_sources():
    # Frames bunched at the start then sparse: nearest-in-time picks by timestamp, not by index.
    times = [0.0, 0.05, 0.1, 0.15, 0.5, 1.1]
    source = (SourceFrame(i, t, lambda: None) for i, t in enumerate(times))
    chosen = select_frames(source, target_fps=4, source_fps=8)
    assert [f.index for f in chosen] == [0, 3, 4, 4, 5]
