"""Resume continues only the same run and names what differs; the CLI never overwrites unasked; a failed final
save keeps the trained result recoverable and says where (issue #21)."""

import errno

import pytest
from test_recipe_support import clipset, wave_clip

from motion_core.__main__ import main
from motion_core.backbones import tiny_unet3d_backbone
from motion_core.cli.train import save_or_recover
from motion_core.errors import CancelledError, InvalidInputError
from motion_core.lora import LoraFileError, MotionLora, load_lora
from motion_core.training import TrainingCallbacks, TrainingConfig, train_motion_lora
from motion_core.training import checkpoint as ckpt

FAST = dict(rank=2, width=16, height=16, frames=4, gradient_checkpointing=False, lr=1e-2, seed=3)


@pytest.fixture(scope="module")
def backbone():
    return tiny_unet3d_backbone(1)


@pytest.fixture(scope="module")
def stopped_run(backbone, tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    config = TrainingConfig(steps=4, checkpoint_dir=str(folder), **FAST)
    calls = []
    with pytest.raises(CancelledError):
        train_motion_lora(backbone, clipset(), "motion_director", config,
                          TrainingCallbacks(should_cancel=lambda: len(calls) == 2, on_progress=calls.append))
    return folder / "checkpoint-step000002.pt"


@pytest.mark.parametrize("change, clips, named", [
    ({"rank": 4}, None, "rank"),
    ({"steps": 1}, None, "steps"),
    ({"lr": 5e-3}, None, "lr: checkpoint 0.01, this run 0.005"),
    ({"frames": 3}, None, "frames"),
    ({}, (wave_clip(phase=1.5),), "reference clips: clip 1 differs"),
    ({}, (wave_clip(), wave_clip(phase=2.0)), "reference clips: checkpoint has 1, this run 2"),
    ({}, (wave_clip(caption="another caption"),), "clip 1 differs"),
])
def test_resume_refuses_another_run_and_names_exactly_what_differs(backbone, stopped_run, change, clips, named):
    config = TrainingConfig(**{**FAST, "steps": 4, **change})
    with pytest.raises(InvalidInputError) as err:
        train_motion_lora(backbone, clipset(*(clips or ())), "motion_director", config, resume_from=stopped_run)
    message = str(err.value)
    assert named in message and "base model" not in message
    assert str(stopped_run) in message


def test_resume_with_another_rank_does_not_blame_the_base_model(backbone, stopped_run):
    with pytest.raises(InvalidInputError, match=r"rank: checkpoint 2, this run 8") as err:
        train_motion_lora(backbone, clipset(), "motion_director", TrainingConfig(**{**FAST, "rank": 8, "steps": 4}),
                          resume_from=stopped_run)
    assert "base model" not in str(err.value)


def test_the_same_run_still_resumes(backbone, stopped_run):
    result = train_motion_lora(backbone, clipset(), "motion_director", TrainingConfig(steps=4, **FAST),
                               resume_from=stopped_run)
    assert result.steps_done == 4 and len(result.history) == 4


def test_a_failed_final_checkpoint_returns_the_lora_and_keeps_the_older_checkpoint(backbone, tmp_path, monkeypatch):
    real = ckpt.save_checkpoint

    def full_at_the_end(path, **kw):
        if kw["step"] == 4:
            raise LoraFileError(f"Could not write {path}: No space left on device.")
        return real(path, **kw)

    monkeypatch.setattr(ckpt, "save_checkpoint", full_at_the_end)
    config = TrainingConfig(steps=4, checkpoint_every=2, checkpoint_dir=str(tmp_path), **FAST)
    result = train_motion_lora(backbone, clipset(), "motion_director", config)
    assert isinstance(result.motion_lora, MotionLora)
    assert result.warnings and "checkpoint-step000002.pt" in result.warnings[0]
    assert (tmp_path / "checkpoint-step000002.pt").exists()


def _train_args(tmp_path, out, *extra):
    return ["train", "--model", str(tmp_path / "no_model_needed"), "--video", str(tmp_path / "no_video.gif"),
            "--out", str(out), *extra]


def test_the_cli_refuses_an_existing_out_before_training_and_keeps_it(tmp_path, capsys):
    out = tmp_path / "dance.safetensors"
    out.write_bytes(b"precious")
    assert main(_train_args(tmp_path, out)) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err and "nothing was trained" in err
    assert out.read_bytes() == b"precious"


def test_the_cli_refuses_existing_appearance_loras_next_to_out(tmp_path, capsys):
    out = tmp_path / "dance.safetensors"
    (tmp_path / "dance_appearance.safetensors").write_bytes(b"precious")
    assert main(_train_args(tmp_path, out)) == 2
    assert "dance_appearance.safetensors" in capsys.readouterr().err
    assert not out.exists()


def test_overwrite_lets_the_cli_go_on(tmp_path, capsys):
    out = tmp_path / "dance.safetensors"
    out.write_bytes(b"old")
    assert main(_train_args(tmp_path, out, "--overwrite")) == 2  # fails later, on the missing video
    assert "already exist" not in capsys.readouterr().err


def test_a_failed_final_save_puts_the_lora_in_a_fallback_folder_and_says_where(tmp_path, monkeypatch):
    from motion_core.lora import files

    lora = MotionLora({"unet.m.lora_A.weight": __import__("torch").ones(2, 3),
                       "unet.m.lora_B.weight": __import__("torch").ones(3, 2)}, {"name": "x"})
    target = tmp_path / "full_disk" / "dance.safetensors"
    real = files.atomic_write

    def disk_full_there(path, data, **kw):
        if "full_disk" in str(path):
            raise LoraFileError(f"Could not write {path}: {errno.errorcode[errno.ENOSPC]}.")
        return real(path, data, **kw)

    monkeypatch.setattr(files, "atomic_write", disk_full_there)
    with pytest.raises(LoraFileError, match="saved instead to") as err:
        save_or_recover(lora, target, overwrite=False, fallbacks=[tmp_path / "full_disk", tmp_path / "rescue"])
    rescued = list((tmp_path / "rescue").glob("dance-recovered-*.safetensors"))
    assert len(rescued) == 1 and str(rescued[0]) in str(err.value)
    assert load_lora(rescued[0]).tensors.keys() == lora.tensors.keys()
