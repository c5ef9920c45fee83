"""The sampling loop: text-to-video on any Backbone with a LoRA stack, a chosen solver, CFG and an optional noise prior.

Cost: the stack is merged into the weights once per step-range segment (StackMerger), so a step costs what the base
model's step costs however many LoRAs are stacked; ``python -m motion_core.bench sampling`` measures it.
Safety: every check runs before the model is touched, and the merged weights are restored exactly in a ``finally``,
so an error or a cancel leaves the cached base model bit-identical to before the run.
Wan 2.2 A14B: a backbone holding both experts runs each step on the expert that owns its timestep, each with its own
LoRAs and its own CFG (``cfg_low_noise``, WanPipeline's guidance_scale_2); see routing.py.
Reproducibility: all random draws come from one CPU generator seeded with ``request.seed``, so a seed gives the same
video on any device (up to the device's arithmetic).
"""

from __future__ import annotations

import inspect
import time

import torch

from ..backbones.wan.experts import expert_denoisers
from ..errors import MotionCoreError
from ..lora.report import stack_left_out
from .callbacks import SamplingCallbacks
from .noise_prior import blend_prior, invert, prepare_reference
from .preview import latent_preview
from .request import SampleRequest, SampleResult, fitted_stack, validate_request
from .routing import DenoiserRouting
from .schedulers import make_scheduler


def sample_video(backbone, request: SampleRequest, callbacks: SamplingCallbacks | None = None) -> SampleResult:
    """Sample one clip. The denoiser runs as it is plus the merged stack: adapters a caller attached with peft (a
    trainer's validation preview) keep acting, and an empty stack runs the model untouched."""
    validate_request(backbone, request)
    callbacks = callbacks or SamplingCallbacks()
    denoisers = list(expert_denoisers(backbone).values())
    was_training = [denoiser.training for denoiser in denoisers]
    for denoiser in denoisers:
        denoiser.eval()  # LoRA/attention dropout off: sampling must be deterministic
    try:
        with torch.no_grad():
            condition = None
            if request.start_image is not None:  # image-to-video: every denoise of this run reads it
                condition = backbone.encode_start_image(request.start_image, request.frames, request.width,
                                                        request.height)
            with backbone.conditioned(condition):
                return _run(backbone, request, callbacks)
    finally:
        for denoiser, mode in zip(denoisers, was_training):
            denoiser.train(mode)


def _run(backbone, request: SampleRequest, callbacks: SamplingCallbacks) -> SampleResult:
    clock = time.perf_counter()
    scheduler = make_scheduler(request.scheduler, backbone.scheduler.config, backbone.objective)
    scheduler.set_timesteps(request.steps, device=backbone.device)
    timesteps = scheduler.timesteps
    use_prior = request.noise_prior_p > 0 and request.noise_prior_clip is not None
    total = len(timesteps) * (2 if use_prior else 1)

    generator = torch.Generator(device="cpu").manual_seed(int(request.seed))
    scale = int(getattr(backbone, "vae_scale_factor", 8))
    channels = int(getattr(backbone, "latent_channels", backbone.denoiser.config.in_channels))
    shape = (1, channels, backbone.latent_frames(request.frames), request.height // scale, request.width // scale)
    noise = torch.randn(shape, generator=generator, dtype=torch.float32).to(backbone.device)

    cfg_high = float(request.cfg)
    cfg_low = cfg_high if request.cfg_low_noise is None else float(request.cfg_low_noise)
    guided = cfg_high != 1.0 or cfg_low != 1.0
    prompts = [request.negative_prompt, request.prompt] if guided else [request.prompt]
    text_states = backbone.encode_prompt(prompts)
    start = noise
    # a related base's LoRA (text-to-video on image-to-video) is cut to the layers this model shares
    stack, fitted = fitted_stack(backbone, request.lora_stack, strict_base=request.strict_base)
    routing = DenoiserRouting(backbone, stack)
    if use_prior:
        reference = prepare_reference(request.noise_prior_clip, request.frames, request.height, request.width)
        clean = backbone.encode_video(reference).float()
        empty = text_states[:1] if guided and request.negative_prompt == "" else backbone.encode_prompt([""])
        with routing:
            inverted = invert(backbone, clean, timesteps, text_states=empty, callbacks=callbacks,
                              progress_total=total, denoise=routing.denoise)
        start = blend_prior(inverted, float(request.noise_prior_p), noise, request.noise_prior_mode)
        if not bool(torch.isfinite(start).all()):
            raise _nonfinite(backbone, request, "the noise prior (the inverted reference clip)")
    # Flow-matching solvers start at unit scale and have no init_noise_sigma (nor a scale_model_input).
    latents = start * float(getattr(scheduler, "init_noise_sigma", 1.0))
    done = total - len(timesteps)
    prepare_seconds = time.perf_counter() - clock

    clock = time.perf_counter()
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    with routing:
        for i, t in enumerate(timesteps):
            callbacks.check_cancel(done + i, total)
            owner = routing.enter_step(t, stack.active_at(i, len(timesteps)))
            cfg = cfg_low if owner == "low_noise" else cfg_high
            scaled = hasattr(scheduler, "scale_model_input")
            model_input = scheduler.scale_model_input(latents, t) if scaled else latents
            if cfg != 1.0:
                pred = backbone.denoise(torch.cat([model_input, model_input]), t, text_states).float()
                uncond, cond = pred.chunk(2)
                pred = uncond + cfg * (cond - uncond)
            else:  # this expert runs unguided: the prompt branch alone, half the cost
                pred = backbone.denoise(model_input, t, text_states[-1:]).float()
            latents = scheduler.step(pred, t, latents, **step_kwargs).prev_sample
            step = done + i + 1
            # One reduction over the (small) latents per step: a NaN would otherwise decode to a black video.
            if not bool(torch.isfinite(latents).all()):
                raise _nonfinite(backbone, request, f"step {i + 1} of {len(timesteps)}",
                                 stack.active_at(i, len(timesteps)))
            preview = None
            if callbacks.wants_preview(step, total):
                estimate = backbone.objective.clean_estimate(model_input, pred, t)
                preview = estimate[0] if callbacks.preview == "latents" else latent_preview(backbone, estimate)
            callbacks.report(step, total, preview)
        merge_count = routing.merge_count
    denoise_seconds = time.perf_counter() - clock

    clock = time.perf_counter()
    latents = backbone.finish_latents(latents)
    frames = backbone.decode_latents(latents.to(backbone.dtype))[0]
    if not bool(torch.isfinite(frames).all()):
        raise _nonfinite(backbone, request, "the VAE decode", ())
    return SampleResult(frames=frames, latents=latents.float().cpu(), fps=float(request.fps), merge_count=merge_count,
                        seconds={"prepare": prepare_seconds, "denoise": denoise_seconds,
                                 "decode": time.perf_counter() - clock},
                        not_applied=(*fitted, *stack_left_out(stack)))


def _nonfinite(backbone, request: SampleRequest, where: str, active: tuple[int, ...] = ()) -> MotionCoreError:
    """The error for a sample that turned NaN/inf: where it happened and the three usual causes, most likely first."""
    stack = request.lora_stack
    loras = ", ".join(f"{stack[i].lora.name or '(unnamed)'} x{stack[i].strength:g}" for i in active)
    causes = [f"lower cfg (now {float(request.cfg):g})"]
    if loras:
        causes.append(f"lower the strength of the LoRAs acting then ({loras})")
    if where == "the VAE decode" and backbone.dtype == torch.float16:
        causes.insert(0, "load the model in bf16 or fp32 (the VAE overflows in fp16)")
    causes.append(f"check the model file ({backbone.source}): broken weights give NaN too")
    return MotionCoreError(f"The sample became NaN or infinite at {where}, so the video would be black. "
                           f"To fix: {'; '.join(causes)}.")
