"""A LoRA's DeT temporal kernel on a native Wan MODEL (Apply Motion LoRA calls ``apply_native_kernels``): one object
patch per block's self-attention forward, a diffusion-model wrapper that tells them the frame grid, and an
outer-sample wrapper that turns each kernel's step range into sigmas with the model's own sampling for the run.
motion_core/native/temporal_kernel_patch.py holds the torch side and says why it is built this way.
"""

from __future__ import annotations

import comfy.patcher_extension

from ..motion_core.native.temporal_kernel_patch import (FRAMES_KEY, SIGMAS_KEY, NativeKernel, SiteKernels,
                                                        check_native_kernel_fits, tokens_per_frame)

WRAPPER_KEY = "motion_customization.temporal_kernel"
SITE = "diffusion_model.blocks.{}.self_attn"


def _tell_frames(executor, x, *args, **kwargs):
    """DIFFUSION_MODEL wrapper: the tokens per frame of this call, for every self-attention's kernels."""
    options = args[4] if len(args) > 4 else kwargs.get("transformer_options")
    if options is not None:
        options[FRAMES_KEY] = tokens_per_frame(x.shape, executor.class_obj.patch_size)
    return executor(x, *args, **kwargs)


def _kernel_sigmas(executor, *args, **kwargs):
    """OUTER_SAMPLE wrapper: each ranged kernel's (start sigma, end sigma) under the sampling in force now."""
    guider = executor.class_obj
    sampling = guider.model_patcher.get_model_object("model_sampling")
    kernels = guider.model_patcher.get_attachment(WRAPPER_KEY) or []
    options = guider.model_options.setdefault("transformer_options", {})
    options[SIGMAS_KEY] = {id(k): (float(sampling.percent_to_sigma(k.start_percent)),
                                   float(sampling.percent_to_sigma(k.end_percent))) for k in kernels}
    try:
        return executor(*args, **kwargs)
    finally:
        options.pop(SIGMAS_KEY, None)


def apply_native_kernels(model, kernels: list[NativeKernel]) -> None:
    """Put ``kernels`` on ``model`` (a clone): every block's self-attention runs them; chained nodes add up."""
    if not kernels:
        return
    blocks = model.get_model_object("diffusion_model.blocks")
    for kernel in kernels:
        check_native_kernel_fits(kernel, [f"blocks.{i}" for i in range(len(blocks))], int(blocks[0].dim))
    for i in range(len(blocks)):
        key = SITE.format(i) + ".forward"
        current = model.object_patches.get(key)
        if isinstance(current, SiteKernels):
            patch = current.with_more(kernels)
        else:
            patch = SiteKernels(model.get_model_object(SITE.format(i)), f"blocks.{i}", kernels)
        model.add_object_patch(key, patch)
    model.set_attachments(WRAPPER_KEY, [*(model.get_attachment(WRAPPER_KEY) or []), *kernels])
    if not model.get_wrappers(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY):
        model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY, _tell_frames)
        model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, _kernel_sigmas)
