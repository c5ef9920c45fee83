"""``python -m motion_core train``: the training node's options on the command line, printing progress.

Ctrl-C asks the trainer to cancel: it finishes the current step, writes a checkpoint and says where, so the run can
be resumed with --resume.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from ..errors import InvalidInputError


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..recipes import RECIPES

    p = subparsers.add_parser("train", help="train a motion LoRA from reference videos",
                              description="Train a motion LoRA in-process and save it as a canonical .safetensors.")
    p.add_argument("--model", required=True, help="diffusers model folder (ZeroScope/ModelScope, AnimateDiff)")
    p.add_argument("--video", action="append", required=True,
                   help="reference video (mp4, webm, gif, frames folder); repeat for several clips")
    p.add_argument("--caption", action="append", default=[],
                   help="caption of each --video in order (one caption is used for all)")
    p.add_argument("--training-caption", default=None,
                   help="prompt used instead of the captions (VMC's appearance-invariant caption)")
    p.add_argument("--regularisation-video", action="append", default=[], help="NewMove regularisation clip")
    p.add_argument("--regularisation-caption", action="append", default=[], help="caption of each regularisation clip")
    p.add_argument("--recipe", default="motion_director", choices=list(RECIPES))
    p.add_argument("--steps", type=int, default=None, help="default: the recipe's")
    p.add_argument("--lr", type=float, default=None, help="default: the recipe's")
    p.add_argument("--rank", type=int, default=None, help="default: the recipe's")
    p.add_argument("--alpha", type=float, default=None, help="default: rank")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default=None)
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=0, help="0 = only on cancel and at the end")
    p.add_argument("--checkpoint-dir", default=None)
    p.add_argument("--resume", default=None, help="checkpoint file to continue from")
    p.add_argument("--mixed-precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    p.add_argument("--no-gradient-checkpointing", action="store_true")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--out", required=True, help="output .safetensors (appearance LoRAs go next to it)")
    p.set_defaults(run=run)
    return p


def _clips(videos, captions, label):
    from ..clips import ClipSet
    from ..video import load_reference_video

    if captions and len(captions) not in (1, len(videos)):
        raise InvalidInputError(f"Give one {label} caption, or one per {label} video ({len(videos)}); got "
                                f"{len(captions)}.")
    clips = ClipSet()
    for i, video in enumerate(videos):
        caption = captions[i] if len(captions) == len(videos) else (captions[0] if captions else "")
        clips = clips.add(load_reference_video(video, caption=caption))
    return clips


def run(args) -> int:
    import torch

    from ..backbones import load_backbone
    from ..lora import save_lora
    from ..training import TrainingCallbacks, TrainingConfig, train_motion_lora

    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise InvalidInputError(f"--out must end in .safetensors; got {out.name}.")
    config = TrainingConfig(
        steps=args.steps, lr=args.lr, rank=args.rank, alpha=args.alpha, width=args.width, height=args.height,
        frames=args.frames, seed=args.seed, lr_schedule=args.lr_schedule, warmup_steps=args.warmup_steps,
        checkpoint_every=args.checkpoint_every, checkpoint_dir=args.checkpoint_dir,
        mixed_precision=args.mixed_precision, gradient_checkpointing=not args.no_gradient_checkpointing,
        device=args.device, name=out.stem)
    clips = _clips(args.video, args.caption, "reference")
    regularisation = _clips(args.regularisation_video, args.regularisation_caption, "regularisation")
    backbone = load_backbone(args.model, device=args.device, dtype=torch.float32)
    cancelled = []
    previous = signal.signal(signal.SIGINT, lambda *_: cancelled.append(True))
    callbacks = TrainingCallbacks(on_progress=lambda info: print(info.format(), flush=True),
                                  should_cancel=lambda: bool(cancelled),
                                  on_checkpoint=lambda path: print(f"checkpoint: {path}", flush=True))
    try:
        result = train_motion_lora(backbone, clips, args.recipe, config, callbacks,
                                   regularisation_clips=regularisation if len(regularisation) else None,
                                   training_caption=args.training_caption, resume_from=args.resume)
    finally:
        signal.signal(signal.SIGINT, previous)
    print(f"motion LoRA: {save_lora(result.motion_lora, out)}")
    for lora in result.appearance_loras:
        path = out.with_name(f"{out.stem}{lora.name[len(out.stem):]}.safetensors")
        print(f"appearance LoRA: {save_lora(lora, path)}")
    return 0
