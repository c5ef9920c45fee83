"""Every way a reference video can be wrong ends in a clean error that names the problem and the fix."""

import pytest
from PIL import Image

import video_samples as vs
from motion_core.errors import InvalidInputError, MotionCoreError, VideoReadError
from motion_core.video import load_reference_video

FRAMES, WIDTH, HEIGHT, FPS = 12, 32, 24, 8


def truncated_copy(source, target, fraction=0.5):
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def test_missing_file_names_the_path_and_where_it_looked(tmp_path):
    with pytest.raises(VideoReadError, match="not found") as error:
        load_reference_video("nowhere.mp4", search_dirs=[tmp_path])
    assert str(tmp_path / "nowhere.mp4") in str(error.value)
    assert "absolute path" in str(error.value)


def test_empty_path_asks_for_a_file(tmp_path):
    with pytest.raises(VideoReadError, match="No reference video given"):
        load_reference_video("  ")


def test_text_file_renamed_mp4_is_not_a_video(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 20)
    with pytest.raises(VideoReadError, match="is not a readable video.*re-encode"):
        load_reference_video(fake)


def test_text_file_renamed_gif_is_not_an_image(tmp_path):
    fake = tmp_path / "notes.gif"
    fake.write_text("GIF? no")
    with pytest.raises(VideoReadError, match="is not a readable gif image"):
        load_reference_video(fake)


def test_unsupported_extension_lists_the_supported_ones(tmp_path):
    other = tmp_path / "clip.flv"
    other.write_bytes(b"FLV")
    with pytest.raises(VideoReadError, match=r"Unsupported file type '\.flv'.*\.mp4.*ffmpeg"):
        load_reference_video(other)


def test_truncated_mp4_raises_clear_error(tmp_path):
    # PyAV writes the index (moov) at the end, so half a file has no index at all.
    whole = vs.write_sample_video(tmp_path / "whole.mp4", FRAMES, WIDTH, HEIGHT, FPS)
    with pytest.raises(VideoReadError, match="truncated"):
        load_reference_video(truncated_copy(whole, tmp_path / "half.mp4"))


def test_truncated_faststart_mp4_with_no_decodable_frame_raises(tmp_path):
    whole = vs.write_container(tmp_path / "whole.mp4", vs.sample_frames(FRAMES, WIDTH, HEIGHT), FPS, faststart=True)
    with pytest.raises(VideoReadError, match="corrupt or truncated: no frame could be decoded"):
        load_reference_video(truncated_copy(whole, tmp_path / "half.mp4"))


def test_truncated_webm_keeps_the_frames_before_the_cut(tmp_path):
    whole = vs.write_sample_video(tmp_path / "whole.webm", FRAMES, WIDTH, HEIGHT, FPS)
    clip = load_reference_video(truncated_copy(whole, tmp_path / "half.webm", 0.6))
    assert 0 < clip.num_frames < FRAMES


def test_truncated_gif_asked_for_more_frames_says_it_is_truncated(tmp_path):
    whole = vs.write_sample_video(tmp_path / "whole.gif", FRAMES, WIDTH, HEIGHT, FPS)
    with pytest.raises(VideoReadError, match=r"has \d+ frames after .*truncated or corrupt.*asked for 12"):
        load_reference_video(truncated_copy(whole, tmp_path / "half.gif"), min_frames=FRAMES)


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.7, 0.9])
def test_any_truncation_gives_frames_or_a_clean_error(tmp_path, fraction):
    for ext in (".mp4", ".webm", ".mov", ".gif", ".webp"):
        whole = vs.write_sample_video(tmp_path / f"whole{ext}", FRAMES, WIDTH, HEIGHT, FPS)
        try:
            clip = load_reference_video(truncated_copy(whole, tmp_path / f"cut{ext}", fraction))
        except MotionCoreError:
            continue
        assert 0 < clip.num_frames <= FRAMES


def test_container_without_video_stream_is_refused(tmp_path):
    empty = vs.write_empty_container(tmp_path / "empty.mp4")
    with pytest.raises(VideoReadError, match="has no video stream"):
        load_reference_video(empty)


def test_start_beyond_the_end_leaves_zero_frames_and_says_so(tmp_path):
    clip = vs.write_sample_video(tmp_path / "clip.mp4", FRAMES, WIDTH, HEIGHT, FPS)
    with pytest.raises(VideoReadError, match="has 0 frames after start_frame=50"):
        load_reference_video(clip, start_frame=50)


def test_fewer_frames_than_asked_names_both_counts(tmp_path):
    clip = vs.write_sample_video(tmp_path / "clip.webp", FRAMES, WIDTH, HEIGHT, FPS)
    with pytest.raises(VideoReadError, match=r"has 6 frames after start_frame=0, every_nth=2; asked for 8\. Lower"):
        load_reference_video(clip, every_nth=2, min_frames=8)


def test_frames_larger_than_max_pixels_are_refused_before_decoding(tmp_path):
    clip = vs.write_sample_video(tmp_path / "clip.mp4", FRAMES, WIDTH, HEIGHT, FPS)
    with pytest.raises(InvalidInputError, match=r"768 pixels per frame, above the limit of 500 .*Lower the resolution"):
        load_reference_video(clip, max_pixels=500)


def test_output_size_above_max_pixels_is_refused(tmp_path):
    clip = vs.write_sample_video(tmp_path / "clip.gif", FRAMES, WIDTH, HEIGHT, FPS)
    with pytest.raises(InvalidInputError, match="output size 64x64"):
        load_reference_video(clip, width=64, height=64, max_pixels=1000)


def test_empty_folder_asks_for_numbered_frames(tmp_path):
    with pytest.raises(VideoReadError, match="has no png/jpg/jpeg images.*frame_0001.png"):
        load_reference_video(tmp_path)


def test_a_folder_with_more_entries_than_the_loader_scans_is_a_clear_error(tmp_path, monkeypatch):
    from motion_core.video import frames_folder

    folder = vs.write_frames_folder(tmp_path / "frames", vs.sample_frames(4, WIDTH, HEIGHT))
    monkeypatch.setattr(frames_folder, "MAX_FOLDER_ENTRIES", 5)
    assert load_reference_video(folder).frames.shape[0] == 4  # within the cap: read as before
    for n in range(2):
        (folder / f"notes_{n}.txt").write_text("not a frame")  # every entry counts, images or not
    with pytest.raises(VideoReadError, match="more than 5 entries.*folder of their own"):
        load_reference_video(folder)


def test_folder_with_gaps_names_the_missing_numbers(tmp_path):
    folder = vs.write_frames_folder(tmp_path / "frames", vs.sample_frames(10, WIDTH, HEIGHT))
    for n in (3, 4, 5, 8):
        (folder / f"frame_{n:04d}.png").unlink()
    with pytest.raises(VideoReadError, match="missing 3-5, 8"):
        load_reference_video(folder)


def test_folder_with_mixed_frame_sizes_names_the_odd_file(tmp_path):
    folder = vs.write_frames_folder(tmp_path / "frames", vs.sample_frames(4, WIDTH, HEIGHT))
    Image.new("RGB", (40, 24)).save(folder / "frame_0003.png")
    with pytest.raises(VideoReadError, match="'frame_0003.png' is 40x24 but 'frame_0001.png' is 32x24"):
        load_reference_video(folder)


def test_folder_image_without_number_is_named(tmp_path):
    folder = vs.write_frames_folder(tmp_path / "frames", vs.sample_frames(3, WIDTH, HEIGHT))
    Image.new("RGB", (WIDTH, HEIGHT)).save(folder / "cover.png")
    with pytest.raises(VideoReadError, match="'cover.png' .* has no number"):
        load_reference_video(folder)


def test_folder_with_two_frames_of_one_number_names_both(tmp_path):
    folder = vs.write_frames_folder(tmp_path / "frames", vs.sample_frames(3, WIDTH, HEIGHT))
    Image.new("RGB", (WIDTH, HEIGHT)).save(folder / "other_2.jpg")
    with pytest.raises(VideoReadError, match="'frame_0002.png' and 'other_2.jpg' in .* both have number 2"):
        load_reference_video(folder)


def test_corrupt_frame_in_folder_is_named(tmp_path):
    folder = vs.write_frames_folder(tmp_path / "frames", vs.sample_frames(3, WIDTH, HEIGHT))
    (folder / "frame_0002.png").write_bytes(b"not a png")
    with pytest.raises(VideoReadError, match="frame_0002.png' is not a readable image"):
        load_reference_video(folder)


@pytest.mark.parametrize("ext", [".mp4", ".webm", ".gif", ".webp"])
def test_garbage_in_the_middle_gives_frames_or_a_clean_error(tmp_path, ext):
    whole = vs.write_sample_video(tmp_path / f"whole{ext}", FRAMES, WIDTH, HEIGHT, FPS)
    data = bytearray(whole.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(range(64))
    broken = tmp_path / f"broken{ext}"
    broken.write_bytes(bytes(data))
    try:
        clip = load_reference_video(broken)
    except MotionCoreError as error:
        assert str(broken) in str(error)
    else:
        assert 0 < clip.num_frames <= FRAMES
