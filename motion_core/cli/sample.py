"""``python -m motion_core sample``: the Sample Video node on the command line, for every family.

LoRAs stack in the order given, each as PATH[:STRENGTH[:START:END]] (step range as fractions of the run, like the
stack node's start/end percent). Ctrl-C cancels between steps without writing anything. If the video cannot be
written where --out says (full disk), it is saved to a recovery folder and the error names the file.
"""

from __future__ import annotations

import argparse
import signal

from ..errors import InvalidInputError
from .train import add_model_file_options, model_file_options


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..sampling import NOISE_PRIOR_MODES, SCHEDULER_NAMES

    p = subparsers.add_parser("sample", help="sample a video with stacked motion/appearance LoRAs",
                              description="Text-to-video with a LoRA stack, written as .mp4, .gif or .webp.")
    p.add_argument("--model", required=True, help="diffusers folder or single-file model (as for train)")
    add_model_file_options(p)
    p.add_argument("--second-expert", default=None, metavar="FILE|folder",
                   help="Wan 2.2 A14B: the other expert's file, or 'folder' for a diffusers folder's other "
                   "transformer; sampling then switches experts at the boundary")
    p.add_argument("--cfg-low-noise", type=float, default=0.0,
                   help="Wan 2.2 A14B: guidance for the low-noise expert's steps (0 = same as --cfg)")
    p.add_argument("--prompt", required=True)
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--lora", action="append", default=[], metavar="PATH[:STRENGTH[:START:END]]",
                   help="a motion or appearance LoRA; repeat to stack")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--cfg", type=float, default=7.5)
    p.add_argument("--frames", type=int, default=16, help="video frames (Wan: 1 + 4k, e.g. 17, 33, 81)")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scheduler", default="auto", choices=SCHEDULER_NAMES, help="auto: the family's usual solver")
    p.add_argument("--noise-prior-video", default=None, help="reference clip for the noise prior")
    p.add_argument("--noise-prior-p", type=float, default=0.0, help="share of the reference's inversion (0 = off)")
    p.add_argument("--noise-prior-mode", choices=NOISE_PRIOR_MODES, default="full")
    p.add_argument("--image", default=None, metavar="PICTURE",
                   help="image-to-video: the start image (Wan I2V models need one; Wan 2.2 TI2V 5B takes one)")
    p.add_argument("--fps", type=float, default=8.0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--out", required=True, help="output video (.mp4, .gif or .webp)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(run=run)
    return p


def parse_lora(spec: str) -> tuple[str, float, float, float]:
    """PATH[:STRENGTH[:START:END]] -> (path, strength, start, end). A Windows drive letter stays in the path."""
    head, sep, rest = spec.partition(":") if len(spec) > 2 and spec[1] == ":" else ("", "", spec)
    path, *numbers = rest.split(":")
    path = head + sep + path
    if len(numbers) not in (0, 1, 3):
        raise InvalidInputError(f"--lora {spec!r}: write PATH, PATH:STRENGTH or PATH:STRENGTH:START:END.")
    try:
        values = [float(n) for n in numbers]
    except ValueError:
        raise InvalidInputError(f"--lora {spec!r}: strength, start and end must be numbers.") from None
    strength = values[0] if values else 1.0
    start, end = (values[1], values[2]) if len(values) == 3 else (0.0, 1.0)
    return path, strength, start, end


def run(args) -> int:
    from ..backbones import load_backbone
    from ..devices import resolve_device
    from ..lora import load_lora
    from ..sampling import LoraStack, SampleRequest, SamplingCallbacks, sample_video
    from ..video import load_reference_video
    from ..video.still import load_still_image
    from .recovery import fallback_dirs
    from .video_out import check_fps, check_output_path, write_or_recover

    # Everything the writer will need is checked before the model is loaded: a bad --fps or --device must not
    # cost a sampling run.
    out = check_output_path(args.out, overwrite=args.overwrite)
    fps = check_fps(args.fps)
    device = resolve_device(args.device, "--device")
    stack = LoraStack()
    for spec in args.lora:
        path, strength, start, end = parse_lora(spec)
        stack = stack.add(load_lora(path), strength, start, end)
    prior = load_reference_video(args.noise_prior_video) if args.noise_prior_video else None
    image = load_still_image(args.image) if args.image else None
    backbone = load_backbone(args.model, device=device, **model_file_options(args))
    if args.second_expert:
        from ..backbones.wan.experts import load_other_expert

        load_other_expert(backbone, None if args.second_expert == "folder" else args.second_expert)
    request = SampleRequest(
        prompt=args.prompt, negative_prompt=args.negative_prompt, seed=args.seed, steps=args.steps, cfg=args.cfg,
        frames=args.frames, width=args.width, height=args.height, scheduler=args.scheduler, lora_stack=stack,
        noise_prior_clip=prior, noise_prior_p=args.noise_prior_p if prior is not None else 0.0,
        noise_prior_mode=args.noise_prior_mode, fps=fps, cfg_low_noise=args.cfg_low_noise or None, start_image=image)
    cancelled = []
    previous = signal.signal(signal.SIGINT, lambda *_: cancelled.append(True))

    def report(step, total, _preview=None):
        print(f"step {step}/{total}", flush=True)

    try:
        callbacks = SamplingCallbacks(progress=report, should_cancel=lambda: bool(cancelled), preview="none")
        result = sample_video(backbone, request, callbacks)
    finally:
        signal.signal(signal.SIGINT, previous)
    for note in result.not_applied:  # e.g. a text-to-video LoRA's layers this image-to-video model lacks
        print(f"note: {note}")
    written = write_or_recover(result.frames, out, result.fps, overwrite=args.overwrite, fallbacks=fallback_dirs())
    print(f"video: {written}")
    return 0
