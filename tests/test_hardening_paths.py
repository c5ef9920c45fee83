"""Folder listings always finish (link loops, huge trees, slow mounts) and dropdown values stay in their folders,
with one refusal that does not tell whether a file exists elsewhere (issue #21)."""

import os

import pytest

from motion_core.errors import MotionCoreError, UnsafePathError
from motion_core.safe_paths import folders_containing, is_plain_relative, resolve_in_folders, walk_bounded


def test_a_link_loop_in_a_models_folder_is_listed_once_and_the_walk_ends(tmp_path):
    model = tmp_path / "models" / "zeroscope"
    model.mkdir(parents=True)
    (model / "model_index.json").write_text("{}")
    os.symlink(tmp_path / "models", model / "loop")  # models/zeroscope/loop -> models
    os.symlink(".", tmp_path / "models" / "self")
    walk = folders_containing(str(tmp_path / "models"), "model_index.json", time_budget=5.0)
    assert walk.dirs == ["zeroscope"]


def test_a_linked_in_model_folder_outside_the_root_is_still_listed(tmp_path):
    elsewhere = tmp_path / "big_drive" / "wan"
    elsewhere.mkdir(parents=True)
    (elsewhere / "model_index.json").write_text("{}")
    root = tmp_path / "diffusers"
    root.mkdir()
    os.symlink(elsewhere, root / "wan")
    assert folders_containing(str(root), "model_index.json").dirs == ["wan"]


def test_walks_stop_at_the_entry_cap_and_say_so(tmp_path):
    for i in range(50):
        (tmp_path / f"f{i}.safetensors").write_bytes(b"")
    walk = walk_bounded(str(tmp_path), max_entries=10)
    assert len(walk.files) == 10 and "10 entries" in walk.stopped


def test_walks_stop_at_the_depth_cap(tmp_path):
    deep = tmp_path
    for i in range(30):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    (deep / "model_index.json").write_text("{}")
    walk = walk_bounded(str(tmp_path), max_depth=5)
    assert not walk.files and "deeper than 5" in walk.stopped


def test_walks_stop_at_the_time_budget(tmp_path):
    for i in range(600):
        (tmp_path / f"f{i}").write_bytes(b"")
    ticks = iter(range(10**6))
    walk = walk_bounded(str(tmp_path), time_budget=1.0, clock=lambda: next(ticks))
    assert "1 s" in walk.stopped and len(walk.files) < 600


def test_a_missing_root_lists_nothing(tmp_path):
    assert walk_bounded(str(tmp_path / "nope")).files == []


@pytest.mark.parametrize("name", ["", "   ", "../secret.safetensors", "a/../../secret.safetensors", "/etc/passwd",
                                  "~root/x", "C:\\\\x.safetensors", "..\\\\x", "a\x00b.safetensors", ".."])
def test_dropdown_values_that_leave_the_folder_are_not_plain(name):
    assert not is_plain_relative(name)


@pytest.mark.parametrize("name", ["clip.mp4", "sub/clip.mp4", "dé/ünï cödé.safetensors", "a..b.safetensors"])
def test_ordinary_names_are_plain(name):
    assert is_plain_relative(name)


def _tree(tmp_path):
    root = tmp_path / "loras"
    root.mkdir()
    (root / "ok.safetensors").write_bytes(b"x")
    secret = tmp_path / "secret.safetensors"
    secret.write_bytes(b"x")
    os.symlink(secret, root / "escape.safetensors")
    return root, secret


def test_a_file_in_the_folder_resolves(tmp_path):
    root, _ = _tree(tmp_path)
    assert resolve_in_folders("ok.safetensors", [str(root)], label="models/loras", fix="fix") == str(
        root / "ok.safetensors")


def test_refusals_read_the_same_whether_or_not_the_file_exists_elsewhere(tmp_path):
    root, secret = _tree(tmp_path)
    messages = []
    for name in ["../secret.safetensors", "../missing.safetensors", str(secret), str(tmp_path / "missing"),
                 "escape.safetensors", "missing.safetensors"]:
        with pytest.raises(UnsafePathError) as err:
            resolve_in_folders(name, [str(root)], label="models/loras", fix="Pick one from the list.")
        messages.append(str(err.value).replace(repr(name), "NAME"))
        assert isinstance(err.value, MotionCoreError)
    assert len(set(messages)) == 1 and "Pick one from the list." in messages[0]


def test_a_link_out_of_the_folder_is_allowed_only_when_the_listing_offers_it(tmp_path):
    root, secret = _tree(tmp_path)
    path = resolve_in_folders("escape.safetensors", [str(root)], label="l", fix="f",
                              listed=lambda: ["ok.safetensors", "escape.safetensors"])
    assert os.path.realpath(path) == str(secret)
    with pytest.raises(UnsafePathError):
        resolve_in_folders("escape.safetensors", [str(root)], label="l", fix="f", listed=lambda: ["ok.safetensors"])


def test_a_linked_sub_folder_cannot_carry_a_name_outside(tmp_path):
    root, _ = _tree(tmp_path)
    os.symlink(tmp_path, root / "up")
    with pytest.raises(UnsafePathError):
        resolve_in_folders("up/secret.safetensors", [str(root)], label="l", fix="f", listed=lambda: [])


def test_a_nul_byte_is_refused_not_crashed_on(tmp_path):
    with pytest.raises(UnsafePathError, match="x00"):
        resolve_in_folders("a\x00.safetensors", [str(tmp_path)], label="l", fix="f")
