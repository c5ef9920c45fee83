"""Issue 38, unit tier: a resume path must not tell "missing" from "there but unreadable" (an oracle for probing the
disk), and typed paths stay inside ComfyUI's folders unless the server's owner opens them."""

import errno
import os
from pathlib import Path

import pytest

from motion_core.errors import InvalidInputError, UnsafePathError
from motion_core.training import load_checkpoint
from motion_core.typed_paths import ALLOW_ANY_PATH_ENV, any_path_allowed, confine_typed_path


# ---- 11: a resume path cannot tell "missing" from "there but unreadable" ---------------------------------------
def _refusal(path) -> str:
    with pytest.raises(InvalidInputError) as err:
        load_checkpoint(path)
    return str(err.value).replace(str(path), "PATH")


def test_missing_unreadable_and_not_a_file_read_the_same(tmp_path, monkeypatch):
    import builtins

    from motion_core.training import checkpoint

    locked = tmp_path / "locked.pt"
    locked.write_bytes(b"PK\x03\x04 not really")
    real_open = builtins.open

    def no_permission(path, *args, **kwargs):  # the test may run as root, which chmod cannot lock out
        if Path(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "open", no_permission, raising=False)
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)
    messages = {_refusal(p) for p in (tmp_path / "missing.pt", locked, tmp_path, fifo, tmp_path / "a\x00b.pt")}
    assert len(messages) == 1, messages
    (message,) = messages
    assert "not found or not readable" in message and "checkpoint-step" in message


def test_a_readable_file_that_is_no_checkpoint_still_says_so(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidInputError, match="is not a readable training checkpoint"):
        load_checkpoint(bad)


# ---- 12: typed paths stay inside ComfyUI's folders unless the owner opens them --------------------------------
@pytest.fixture
def world(tmp_path):
    comfy = tmp_path / "comfy"
    for sub in ("input", "output", "temp", "models"):
        (comfy / sub).mkdir(parents=True)
    (comfy / "input" / "clip.mp4").write_bytes(b"x")
    outside = tmp_path / "outside"
    (outside / "frames").mkdir(parents=True)
    (outside / "secret.mp4").write_bytes(b"x")
    os.symlink(outside, comfy / "input" / "up")
    return comfy, outside


def _confine(comfy, text, allow_any=False):
    roots = [comfy / sub for sub in ("input", "output", "temp", "models")]
    return confine_typed_path(text, [comfy / "input"], roots, allow_any=allow_any, what="Reference video",
                              where="ComfyUI's folders", fix="Put it in input.")


def _closed_message(comfy, text) -> str:
    with pytest.raises(UnsafePathError) as err:
        _confine(comfy, text)
    return str(err.value).replace(repr(text), "NAME")


def test_paths_outside_are_refused_alike_whether_or_not_they_exist(world):
    comfy, outside = world
    pairs = [(str(outside / "secret.mp4"), str(outside / "absent.mp4")),
             (str(outside / "frames"), str(outside / "nothing")),
             ("up/secret.mp4", "up/absent.mp4"),
             ("../../outside/secret.mp4", "../../outside/absent.mp4")]
    for there, absent in pairs:
        assert _closed_message(comfy, there) == _closed_message(comfy, absent)
    message = _closed_message(comfy, "/etc/passwd")
    assert f"{ALLOW_ANY_PATH_ENV}=1" in message and "not found in ComfyUI's folders" in message
    assert "Put it in input." in message


def test_a_climb_through_a_folder_outside_cannot_test_whether_it_exists(world):
    comfy, outside = world
    inside = comfy / "input" / "clip.mp4"
    via_existing = f"{outside}/frames/../../comfy/input/clip.mp4"
    via_missing = f"{outside}/nothing/../../comfy/input/clip.mp4"
    # Both are handed back as the real location, which the readers open without walking the missing folder.
    assert _confine(comfy, via_existing) == _confine(comfy, via_missing) == os.path.realpath(inside)


def test_paths_inside_comfyuis_folders_are_allowed(world):
    comfy, _ = world
    assert _confine(comfy, "clip.mp4") == os.path.realpath(comfy / "input" / "clip.mp4")
    assert _confine(comfy, str(comfy / "output" / "new.mp4")) == os.path.realpath(comfy / "output" / "new.mp4")
    # Missing inside: handed on, so the reader says "not found" about the place the user sees.
    assert _confine(comfy, "absent.mp4") == os.path.realpath(comfy / "input" / "absent.mp4")


def test_an_opened_server_hands_the_text_on_unchanged(world):
    comfy, outside = world
    text = str(outside / "secret.mp4")
    assert _confine(comfy, text, allow_any=True) == text
    assert _confine(comfy, "a\x00b") == "a\x00b"  # the readers refuse NUL bytes with their own message


@pytest.mark.parametrize("value, opened", [("1", True), ("true", True), (" YES ", True), ("0", False), ("", False),
                                           ("no", False)])
def test_the_environment_switch(value, opened):
    assert any_path_allowed({ALLOW_ANY_PATH_ENV: value}) is opened
    assert any_path_allowed({}) is False
