"""The GPU benchmark's code runs end to end on the tiny models on the CPU (its figures need a GPU to mean anything)."""

import json

import pytest
import torch

from motion_core.bench.gpu import main as gpu_bench
from motion_core.errors import InvalidInputError


def test_gpu_bench_runs_the_real_trainer_and_sampler_on_tiny_models(capsys):
    torch.set_num_threads(1)
    assert gpu_bench(["--family", "tiny", "--device", "cpu", "--dtype", "fp32", "--steps", "4", "--sample-steps", "2",
                      "--recipes", "customize_a_video,naive", "--train-size", "16x16x4"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["device"] == "cpu"
    for run in ("tiny/customize_a_video", "tiny/naive"):
        assert figures[run]["step_s"] > 0 and figures[run]["peak_gib"] is None, figures
    assert figures["tiny/sampling"]["sample_s"] > 0
    # Customize-A-Video's two stages cost differently, so each gets its own median
    assert figures["tiny/customize_a_video"]["absorber_step_s"] > 0
    assert figures["tiny/customize_a_video"]["motion_step_s"] > 0 and "absorber_step_s" not in figures["tiny/naive"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when no GPU is visible")
def test_gpu_bench_without_a_gpu_says_how_to_run_it():
    with pytest.raises(InvalidInputError, match="--family tiny --device cpu"):
        gpu_bench([])


def test_gpu_bench_runs_image_to_video_on_the_tiny_i2v_model_and_skips_14b_off_cuda(capsys):
    """The I2V cases (training on each clip's first frame, sampling from a start image) run on the tiny I2V Wan;
    Wan 2.1 I2V 14B is reported as not run without CUDA, with the reason."""
    torch.set_num_threads(1)
    assert gpu_bench(["--family", "tiny_wan_i2v,wan_i2v_14b", "--device", "cpu", "--dtype", "fp32", "--steps", "3",
                      "--sample-steps", "2"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["tiny_wan_i2v/motion_director"]["step_s"] > 0
    assert figures["tiny_wan_i2v/sampling"]["sample_s"] > 0
    assert "CUDA" in figures["wan_i2v_14b/motion_director"]["not_run"]
