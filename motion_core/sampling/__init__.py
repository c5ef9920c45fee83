"""Sampling: text-to-video with a LoRA stack merged per step range, a choice of solvers, CFG and a noise prior.

Typical use::

    stack = LoraStack().add(dance, 1.0, 0.0, 0.6).add(watercolour, 0.8, 0.3, 1.0)
    result = sample_video(backbone, SampleRequest("a bear dancing", steps=25, cfg=7.5, frames=16, width=256,
                                                  height=256, scheduler="dpmpp_2m", lora_stack=stack),
                          SamplingCallbacks(progress=on_step, should_cancel=interrupted))
    result.frames  # float32 [F, H, W, 3] in 0..1, ComfyUI IMAGE
"""

from ..lora.merge import StackMerger, lora_delta
from ..lora.stack import LoraStack, LoraStackEntry, StackSegment
from .callbacks import PREVIEW_KINDS, SamplingCallbacks
from .noise_prior import (NOISE_PRIOR_MODES, blend_motion_noise, blend_noise, blend_prior, ddim_invert, flow_invert,
                          invert, prepare_reference)
from .preview import latent_preview, latent_rgb_projection
from .request import SampleRequest, SampleResult, validate_request, validate_stack
from .sampler import sample_video
from .schedulers import FLOW_SCHEDULERS, SCHEDULER_NAMES, SCHEDULERS, make_scheduler, scheduler_names

__all__ = [
    "sample_video", "SampleRequest", "SampleResult", "SamplingCallbacks", "PREVIEW_KINDS",
    "LoraStack", "LoraStackEntry", "StackSegment", "StackMerger", "lora_delta",
    "make_scheduler", "scheduler_names", "SCHEDULER_NAMES", "SCHEDULERS", "FLOW_SCHEDULERS",
    "ddim_invert", "flow_invert", "invert", "blend_noise", "blend_motion_noise", "blend_prior", "NOISE_PRIOR_MODES",
    "prepare_reference",
    "latent_preview", "latent_rgb_projection",
    "validate_request", "validate_stack",
]
