"""The benchmarks' Wan cases run end to end on the tiny Wan and report their figures under the expected keys.

Only shapes of the output are checked: timings on a shared CPU are benchmarks, not tests.
"""

import json

import pytest
import torch

from motion_core.bench import __main__ as bench_cli
from motion_core.bench import gpu, sampling, train
from motion_core.bench._train_memory import wan_tokens


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_train_options_parse_and_reject_wan_clip_lengths_the_vae_cannot_encode():
    args = train.parse_args(["--family", "wan", "--wan-frames", "5,9", "--wan-memory-pixels", "256"])
    assert (args.family, args.wan_frames, args.wan_memory_pixels, args.frames) == ("wan", (5, 9), 256, (8, 16))
    assert train.parse_args([]).family == "all"
    for bad in (["--wan-frames", "8"], ["--wan-memory-frames", "10"], ["--wan-memory-pixels", "120"],
                ["--family", "sd15"]):
        with pytest.raises(SystemExit):
            train.parse_args(bad)


def test_wan_memory_clip_token_count():
    # 9 frames at 128 px: latents [1, 16, 3, 16, 16], 2x2 patches -> 3 x 8 x 8 tokens
    assert wan_tokens(9, 128) == 192
    assert wan_tokens(81, 832) == 21 * 52 * 52


def test_bench_train_wan_reports_the_motion_director_ratio_of_the_tiny_wan(capsys):
    assert train.main(["--family", "wan", "--skip-memory", "--wan-frames", "5", "--rounds", "1", "--steps", "1",
                       "--size", "16"]) == 0
    figures = _last_json(capsys)
    assert set(figures) == {"wan_md_step_ratio_f5"}, figures
    assert figures["wan_md_step_ratio_f5"] > 0


def test_bench_sampling_wan_reports_the_stack_ratios_of_the_tiny_wan(capsys):
    report = sampling.run(["--family", "wan", "--repeats", "1", "--steps", "2", "--wan-frames", "5", "--size", "16"])
    assert _last_json(capsys) == report
    for key in ("wan_stack4_ratio", "wan_stack4_ranges_ratio", "wan_diffusers_runtime_ratio"):
        assert report[key] > 0, report
    assert report["wan_stack4_merges"] == 1 and report["wan_stack4_ranges_merges"] > 1
    assert report["wan_frames"] == 5 and report["wan_lora_modules"] > 0
    assert "stack4_ratio" not in report  # the UNet figures only with --family unet3d or all
    with pytest.raises(SystemExit):
        sampling.parse_args(["--wan-frames", "8"])


def test_bench_gpu_plans_wan_13b_motion_director_at_33_and_81_frames_with_checkpointing():
    runs = gpu.planned_runs("wan_1.3b", "", "", False)
    assert [(r, size, ckpt) for r, size, ckpt, _ in runs] == [
        ("motion_director", (832, 480, 33), True), ("motion_director", (832, 480, 81), True)]
    assert [label for *_, label in runs] == ["motion_director 33f", "motion_director 81f"]
    # single-size families keep their old labels (and JSON keys)
    assert [label for *_, label in gpu.planned_runs("zeroscope", "naive", "", True)] == ["naive",
                                                                                      "motion_director (no ckpt)"]
    assert "wan_1.3b" in gpu.DEFAULT_FAMILIES and "wan_14b" in gpu.DEFAULT_FAMILIES


def test_bench_gpu_runs_the_tiny_wan_and_says_the_14b_needs_cuda(capsys):
    assert gpu.main(["--family", "tiny_wan,wan_14b", "--device", "cpu", "--dtype", "fp32", "--steps", "2",
                     "--sample-steps", "1", "--train-size", "16x16x5"]) == 0
    out = capsys.readouterr().out
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["tiny_wan/motion_director"]["step_s"] > 0
    assert figures["tiny_wan/sampling"]["sample_s"] > 0
    assert figures["wan_14b/motion_director"] == {"not_run": gpu.CUDA_ONLY["wan_14b"]}
    assert f"wan_14b: not run: {gpu.CUDA_ONLY['wan_14b']}" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the exit when no GPU is visible")
def test_bench_gpu_command_without_a_gpu_exits_with_the_hint_not_a_traceback(capsys):
    assert bench_cli.main(["gpu"]) == 2
    assert "--family tiny --device cpu" in capsys.readouterr().err
