"""Partially decodable videos say how many frames were read and why, in every container; kept frames, kept pixels
and decoded frames are bounded; messages carry no raw library text (issue #21)."""

import numpy as np
import pytest
from PIL import Image
from video_samples import write_sample_video

from motion_core.errors import InvalidInputError, VideoReadError
from motion_core.video import load_reference_video


def _cut(path, fraction=3):
    data = path.read_bytes()
    cut = path.with_name("cut" + path.suffix)
    cut.write_bytes(data[: len(data) // fraction])
    return cut


@pytest.mark.parametrize("ext", [".webm", ".mkv", ".gif"])
def test_a_truncated_video_warns_with_the_frame_count_and_the_reason(tmp_path, ext):
    cut = _cut(write_sample_video(tmp_path / f"clip{ext}", frames=30))
    warnings = []
    clip = load_reference_video(cut, on_warning=warnings.append)
    assert 0 < clip.num_frames < 30
    assert len(warnings) == 1
    assert f"read {clip.num_frames} frames" in warnings[0] and "truncated" in warnings[0] and cut.name in warnings[0]
    assert "unpack_from" not in warnings[0] and "Pillow:" not in warnings[0]


@pytest.mark.parametrize("ext", [".webm", ".mp4", ".gif"])
def test_a_whole_video_gives_no_warning(tmp_path, ext):
    warnings = []
    load_reference_video(write_sample_video(tmp_path / f"clip{ext}", frames=12), on_warning=warnings.append)
    assert warnings == []


def _many_frame_gif(path, frames):
    images = [Image.fromarray(np.full((4, 4, 3), i % 250, np.uint8)) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=40, loop=0)
    return path


def test_a_gif_with_more_frames_than_the_limit_is_refused_before_decoding_them_all(tmp_path):
    gif = _many_frame_gif(tmp_path / "many.gif", 300)
    with pytest.raises(InvalidInputError, match=r"more than 100 frames \(max_frames\).*frame_cap"):
        load_reference_video(gif, max_frames=100)
    assert load_reference_video(gif, max_frames=100, frame_cap=16).num_frames == 16


def test_total_kept_pixels_are_bounded(tmp_path):
    video = write_sample_video(tmp_path / "clip.gif", frames=12, width=64, height=48)
    with pytest.raises(InvalidInputError, match="max_total_pixels"):
        load_reference_video(video, max_total_pixels=64 * 48 * 5)


def test_decoded_source_frames_are_bounded_even_when_skipped(tmp_path):
    gif = _many_frame_gif(tmp_path / "many.gif", 200)
    with pytest.raises(InvalidInputError, match="max_decoded_frames"):
        load_reference_video(gif, start_frame=150, max_decoded_frames=50)


def test_the_default_frame_limit_refuses_a_5000_frame_gif(tmp_path):
    gif = _many_frame_gif(tmp_path / "huge.gif", 5000)
    with pytest.raises(InvalidInputError, match="max_frames"):
        load_reference_video(gif)


@pytest.mark.parametrize("ext", [".mp4", ".webm", ".gif", ".webp"])
def test_garbage_named_as_a_video_is_a_clear_error_without_library_text(tmp_path, ext):
    path = tmp_path / f"garbage{ext}"
    path.write_bytes(b"\x00\x01not a video at all" * 50)
    with pytest.raises(VideoReadError) as err:
        load_reference_video(path)
    message = str(err.value)
    assert path.name in message and "re-export" in message.lower() or "re-encode" in message
    assert "Errno" not in message and "cannot identify image file" not in message
