"""What Wan-AI's reference code says about each released Wan model that its weight files do not: the sampling shift
of its noise schedule, where a Wan 2.2 A14B model hands over from the high-noise to the low-noise expert, and whether
the model takes a start image as its clean first latent frame.

ComfyUI's files carry none of this (a diffusers folder carries it in model_index.json and scheduler/), so single
files get it from the architecture the loader recognised (single_file.KNOWN_TRANSFORMERS) and, where one
architecture serves two settings, from the file's name.
"""

from __future__ import annotations

from pathlib import Path

T2V_BOUNDARY = 0.875
"""Wan 2.2 T2V A14B: Wan-AI's wan/configs/wan_t2v_A14B.py (``t2v_A14B.boundary``); diffusers' converter writes the
same ``boundary_ratio`` into WanPipeline folders."""
I2V_BOUNDARY = 0.900
"""Wan 2.2 I2V A14B: Wan-AI's wan/configs/wan_i2v_A14B.py (``i2v_A14B.boundary = 0.900``); diffusers'
scripts/convert_wan_to_diffusers.py builds WanImageToVideoPipeline(boundary_ratio=0.9). The image already fixes the
layout, so the high-noise expert hands over earlier than in T2V."""

SINGLE_FILE_SCHEDULERS = {  # arch -> configs/wan_scheduler/<name>
    "wan2.2_ti2v_5b": "wan2.2_ti2v_5b",  # ti2v_5B.sample_shift 5.0
    "wan2.2_t2v_a14b_expert": "wan2.2_t2v_a14b",  # t2v_A14B.sample_shift 12.0
    "wan2.2_i2v_a14b_expert": "wan2.2_i2v_a14b",  # i2v_A14B.sample_shift 5.0
    "wan2.1_i2v_14b": "wan2.1_i2v_480p",  # Wan 2.1 generate.py: shift 3.0 for i2v at 832x480, 5.0 otherwise
}
DEFAULT_SCHEDULER = "wan2.1_t2v"
"""Wan 2.1 T2V at 480p (shift 3.0), also for sizes Wan-AI did not release."""


def is_image_to_video(config) -> bool:
    """Whether a Wan transformer takes the start image as extra input channels (Wan 2.1 I2V, Wan 2.2 I2V A14B)."""
    return int(config["in_channels"]) > int(config["out_channels"])


def boundary_ratio(config) -> float:
    """The A14B expert boundary of a model with this transformer config, when its folder or file does not say."""
    return I2V_BOUNDARY if is_image_to_video(config) else T2V_BOUNDARY


def single_file_scheduler(arch: str | None, file_name: str) -> str:
    """The shipped scheduler config for a single file: Wan 2.1 I2V's 480p and 720p models share one architecture,
    and only the file's name (wan2.1_i2v_720p_14B_*.safetensors) says which resolution, hence which shift, it has."""
    name = SINGLE_FILE_SCHEDULERS.get(str(arch), DEFAULT_SCHEDULER)
    if name == "wan2.1_i2v_480p" and "720p" in Path(file_name).name.lower():
        return "wan2.1_i2v_720p"
    return name


def first_frame_conditioning(arch: str | None) -> bool | None:
    """True for Wan 2.2 TI2V 5B (its image is the clean first latent frame), False for the other released models,
    None for sizes Wan-AI did not release (the backbone then decides by latent width)."""
    if arch is None or arch == "derived":
        return None
    return arch == "wan2.2_ti2v_5b"
