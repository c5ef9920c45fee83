"""A folder of numbered frames is ordered by the trailing number in each name and plays at folder_fps."""

import numpy as np
import pytest
from PIL import Image

import video_samples as vs
from motion_core.video import load_reference_video

WIDTH, HEIGHT = 32, 24


def test_frames_sort_by_trailing_number_not_by_name(tmp_path):
    video = vs.sample_frames(12, WIDTH, HEIGHT)
    names = ["frame_0001.png", "0002.png", "img-3.png", "x9y_4.png", "5.png", "frame_6.png"]
    names += [f"z_{n}.png" for n in range(7, 13)]  # z_10 sorts before z_7 as text
    for frame, name in zip(video, names):
        Image.fromarray(frame).save(tmp_path / name)
    clip = load_reference_video(tmp_path)
    assert np.array_equal(clip.frames.numpy(), video)


def test_jpg_frames_and_numbering_from_zero_are_read(tmp_path):
    folder = vs.write_frames_folder(tmp_path / "jpgs", vs.sample_frames(6, WIDTH, HEIGHT), ext="jpg", first=0)
    clip = load_reference_video(folder)
    assert clip.num_frames == 6
    centroids = [vs.square_centroid_x(f.numpy()) for f in clip.frames]
    assert centroids == sorted(centroids)


def test_folder_fps_sets_the_clip_rate(tmp_path):
    folder = vs.write_sample_video(tmp_path / "frames", 6, WIDTH, HEIGHT)
    assert load_reference_video(folder, folder_fps=12).fps == 12
    assert load_reference_video(folder).fps == 8


def test_other_files_in_the_folder_are_ignored(tmp_path):
    folder = vs.write_sample_video(tmp_path / "frames", 4, WIDTH, HEIGHT)
    (folder / "notes.txt").write_text("shot on a phone")
    (folder / "Thumbs.db").write_bytes(b"\0")
    assert load_reference_video(folder).num_frames == 4


def test_folder_options_apply_like_for_videos(tmp_path):
    folder = vs.write_sample_video(tmp_path / "frames", 10, WIDTH, HEIGHT)
    clip = load_reference_video(folder, start_frame=1, every_nth=2, frame_cap=3, width=16, height=16)
    assert clip.num_frames == 3 and clip.size == (16, 16)
    assert clip.fps == pytest.approx(4)
