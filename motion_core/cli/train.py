"""``python -m motion_core train``: the training node's options on the command line, printing progress.

Ctrl-C asks the trainer to cancel: it finishes the current step, writes a checkpoint and says where, so the run can
be resumed with --resume.

Existing outputs are checked before any training starts and never replaced without --overwrite: an hour of training
should neither clobber a LoRA nor end in "file exists". If the final save fails (full disk), the trained LoRA is
written to the first fallback folder that takes it, and the error names it.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from ..errors import InvalidInputError, MotionCoreError
from .recovery import fallback_dirs, recovery_name


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..recipes import RECIPES

    p = subparsers.add_parser("train", help="train a motion LoRA from reference videos",
                              description="Train a motion LoRA in-process and save it as a canonical .safetensors.")
    p.add_argument("--model", required=True,
                   help="diffusers model folder (ZeroScope/ModelScope, AnimateDiff, Wan) or a Wan diffusion-model file")
    add_model_file_options(p)
    p.add_argument("--video", action="append", required=True,
                   help="reference video (mp4, webm, gif, frames folder); repeat for several clips")
    p.add_argument("--caption", action="append", default=[],
                   help="caption of each --video in order (one caption is used for all)")
    p.add_argument("--training-caption", default=None,
                   help="prompt used instead of the captions (VMC's appearance-invariant caption)")
    p.add_argument("--regularisation-video", action="append", default=[], help="NewMove regularisation clip")
    p.add_argument("--regularisation-caption", action="append", default=[], help="caption of each regularisation clip")
    p.add_argument("--recipe", default="motion_director", choices=list(RECIPES))
    p.add_argument("--recipe-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a recipe knob, e.g. temporal_kernel=true (MotionDirector with DeT's temporal kernel on Wan) "
                   "or tracking_weight=0.2 (DeT); repeat for several")
    p.add_argument("--steps", type=int, default=None, help="default: the recipe's")
    p.add_argument("--lr", type=float, default=None, help="default: the recipe's")
    p.add_argument("--rank", type=int, default=None, help="default: the recipe's")
    p.add_argument("--alpha", type=float, default=None, help="default: rank")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=1,
                   help="samples per optimiser step (the global batch: under accelerate launch it is dealt out over "
                        "the processes, so give at least one per process)")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default=None)
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=0, help="0 = only on cancel and at the end")
    p.add_argument("--checkpoint-dir", default=None)
    p.add_argument("--resume", default=None, help="checkpoint file to continue from")
    p.add_argument("--mixed-precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    p.add_argument("--memory", choices=("auto", "manual"), default="auto",
                   help="auto (default): predict the run's peak memory and pick the cheapest of checkpointing, fp8 "
                        "storage and block offload that fits the device's free memory, or stop before training "
                        "saying what would fit; the options below, when given, are kept as given. manual: the "
                        "options below apply as given (unset: checkpointing on, native, no offload)")
    p.add_argument("--plan", action="store_true",
                   help="print the memory plan (predicted peak device and host memory, chosen settings) and exit "
                        "without training")
    p.add_argument("--no-gradient-checkpointing", action="store_const", const=False, default=None,
                   dest="gradient_checkpointing", help="turn gradient checkpointing off (auto chooses when unset)")
    p.add_argument("--gradient-checkpointing", action="store_const", const=True, dest="gradient_checkpointing",
                   help="keep gradient checkpointing on (auto chooses when unset)")
    p.add_argument("--base-storage", choices=("native", "fp8"), default=None,
                   help="fp8: keep the frozen base's Linear weights in float8 (half of bf16), upcast per layer; "
                        "any device (auto chooses when unset)")
    p.add_argument("--block-offload", action="store_const", const=True, default=None,
                   help="Wan: keep the transformer blocks on the CPU and copy each to the GPU as it runs (slower, "
                        "far less GPU memory; needs gradient checkpointing). With --base-storage fp8 and bf16 this "
                        "is how the 14B models train on a 24 GB card")
    p.add_argument("--shard-base", action="store_true",
                   help="under accelerate launch: split the frozen base over the processes (FSDP) for a model too "
                        "large for one card; the LoRA and the batch are handled as without it")
    p.add_argument("--timestep-skew", type=float, default=None,
                   help="favour high noise levels in training: k of t = T·u^(1/k); 1 = uniform, the recipe's own "
                        "law when unset (NewMove 2). 3 lets a one-shot MotionDirector LoRA carry the reference's "
                        "path on the built-in model")
    p.add_argument("--image", "--start-image", dest="start_image", choices=("auto", "first_frame", "none"),
                   default="auto", help="image-to-video: auto trains Wan I2V models with each clip's first frame as "
                   "the start image; first_frame does so for Wan 2.2 TI2V 5B too; none trains text-to-video")
    p.add_argument("--recolour", type=int, default=0,
                   help="image-to-video: also train on this many hue-turned copies of each clip (e.g. 2)")
    p.add_argument("--shift-copies", type=int, default=0,
                   help="image-to-video: also train on this many copies of each clip moved as a whole (e.g. 4)")
    p.add_argument("--start-image-dropout", type=float, default=0.0,
                   help="image-to-video: share of steps trained with no start image shown (e.g. 0.3)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--out", required=True, help="output .safetensors (appearance LoRAs go next to it)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out (and its appearance LoRAs) if they exist; without it existing files are kept "
                        "and the command stops before training")
    p.set_defaults(run=run)
    return p


def add_model_file_options(p: argparse.ArgumentParser) -> None:
    """The options that complete a single-file model (Wan) and choose the weights' precision; train and sample."""
    p.add_argument("--vae", default=None, help="Wan files: the VAE file (models/vae)")
    p.add_argument("--text-encoder", default=None, help="Wan files: the UMT5 text encoder file (models/text_encoders)")
    p.add_argument("--clip-vision", default=None,
                   help="Wan 2.1 I2V files: the CLIP vision file (models/clip_vision, clip_vision_h.safetensors)")
    p.add_argument("--expert", choices=("high_noise", "low_noise"), default="high_noise",
                   help="Wan 2.2 A14B: which expert to load (motion forms at high noise)")
    p.add_argument("--dtype", choices=("auto", "fp32", "bf16", "fp16", "fp8-stored"), default="auto",
                   help="weight precision; auto: bf16 on CUDA (a Wan file stored in fp8 keeps its fp8 weights there, "
                        "as ComfyUI does), fp32 on the CPU. fp32/bf16/fp16: every weight in that precision (an fp8 "
                        "file widened: twice its size in bf16). fp8-stored: on any device, the Linear weights a Wan "
                        "diffusion-model file stores in fp8 stay fp8 with their scales, each layer computing in "
                        "auto's precision (memory about the file's size; norms, embeddings and head widened)")


def model_file_options(args) -> dict:
    """load_backbone keyword arguments from the options of ``add_model_file_options``."""
    import torch

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    on_cuda = str(args.device).startswith("cuda")
    dtype = dtypes.get(args.dtype) or (torch.bfloat16 if on_cuda else torch.float32)
    # Decided here from --device: train loads onto the CPU first when memory options may apply.
    sharded = getattr(args, "shard_base", False)  # FSDP shards one dtype per unit: widened, as before
    keep_fp8 = args.dtype == "fp8-stored" or (args.dtype == "auto" and on_cuda and not sharded)
    given = (("vae", args.vae), ("text_encoder", args.text_encoder), ("clip_vision", getattr(args, "clip_vision", None)))
    files = {k: v for k, v in given if v}
    return {"dtype": dtype, "expert": args.expert, "keep_fp8": keep_fp8, **files}


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


def appearance_path(out: Path, lora_name: str) -> Path:
    return out.with_name(f"{out.stem}{lora_name[len(out.stem):]}.safetensors")


def _refuse_existing(out: Path, overwrite: bool) -> None:
    """Fail before training, not after it, when an output name is taken."""
    if overwrite:
        return
    taken = [out] if out.exists() else []
    taken += sorted(out.parent.glob(f"{out.stem}_appearance*.safetensors")) if out.parent.is_dir() else []
    if taken:
        raise InvalidInputError(
            f"{', '.join(str(t) for t in taken)} already exist{'s' if len(taken) == 1 else ''}; nothing was trained "
            "or written. Choose another --out, or add --overwrite to replace them."
        )


def save_or_recover(lora, target: Path, *, overwrite: bool, fallbacks: list[Path]) -> Path:
    """Save ``lora`` to ``target``; if that fails, to the first fallback folder that works, and say so."""
    from ..lora import LoraFileError, save_lora
    from ..lora.files import FileExistsRefusedError

    try:
        return save_lora(lora, target, overwrite=overwrite)
    except FileExistsRefusedError:
        raise
    except LoraFileError as error:
        failed = error
    for folder in fallbacks:
        rescue = folder / recovery_name(target, ".safetensors")
        try:
            save_lora(lora, rescue, overwrite=False)
        except LoraFileError:
            continue
        raise LoraFileError(f"{failed} The trained LoRA was saved instead to {rescue}; move it where you want it "
                            "(nothing is lost).") from None
    raise LoraFileError(f"{failed} No fallback folder ({', '.join(map(str, fallbacks))}) could take it either; the "
                        "last training checkpoint, if any was written, can be resumed to save again.") from None


def _memory_plan(backbone, args, config, clips, regularisation) -> None:
    """Print the run's memory plan (auto: the settings it picked); a run that cannot fit stops here, with what
    would fit (MemoryPlanError)."""
    from ..training import plan_run

    recipe = _recipe(args)
    settings = config.resolve(recipe.config.for_clip_count(len(clips)))
    plan = plan_run(backbone, recipe, config, settings, config.device, clips=len(clips) + len(regularisation))
    print(plan.summary(), flush=True)


def _memory_plan_before_loading(args, config, clips, regularisation, *, quiet: bool) -> bool:
    """Print the run's memory plan made from the model's configs or file headers, before loading it (MemoryPlanError
    when it cannot fit: nothing is loaded). False, having said why, where the model can only be planned once
    loaded."""
    from ..backbones.preload import NoPlanBeforeLoading
    from ..training.preload_plan import plan_before_loading

    recipe = _recipe(args)
    settings = config.resolve(recipe.config.for_clip_count(len(clips)))
    try:
        plan = plan_before_loading(args.model, model_file_options(args), recipe, config, settings, config.device,
                                   clips=len(clips) + len(regularisation))
    except NoPlanBeforeLoading as reason:
        if not quiet:
            print(f"The memory plan is made after loading: {reason}.", flush=True)
        return False
    if not quiet:
        print(plan.summary(), flush=True)
    return True


def _recipe(args):
    from ..recipes import get_recipe, parse_options

    return get_recipe(args.recipe, **parse_options(getattr(args, "recipe_option", None) or []))


def run(args) -> int:
    from ..backbones import load_backbone
    from ..devices import resolve_device
    from ..training import TrainingCallbacks, TrainingConfig, train_motion_lora
    from ..training.distributed import current as current_processes

    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise InvalidInputError(f"--out must end in .safetensors; got {out.name}.")
    overwrite = bool(getattr(args, "overwrite", False))
    only_plan = bool(getattr(args, "plan", False))
    if not only_plan:
        _refuse_existing(out, overwrite)
    resolve_device(args.device, "--device")  # before the clips and the model are read
    # Under accelerate launch: join the processes; each trains on its own device, process 0 prints and writes.
    if args.shard_base and (args.block_offload or args.base_storage == "fp8" or args.dtype == "fp8-stored"):
        raise InvalidInputError("--shard-base already splits the base over the processes; use it without "
                                "--block-offload, --base-storage fp8 and --dtype fp8-stored.")
    processes = current_processes(args.device, shard_base=args.shard_base)
    device = processes.device(args.device)
    config = TrainingConfig(
        steps=args.steps, lr=args.lr, rank=args.rank, alpha=args.alpha, width=args.width, height=args.height,
        frames=args.frames, seed=args.seed, lr_schedule=args.lr_schedule, warmup_steps=args.warmup_steps,
        batch_size=args.batch_size,
        checkpoint_every=args.checkpoint_every, checkpoint_dir=args.checkpoint_dir,
        mixed_precision=args.mixed_precision, gradient_checkpointing=args.gradient_checkpointing,
        device=device, name=out.stem, base_storage=args.base_storage, block_offload=args.block_offload,
        timestep_skew=args.timestep_skew, start_image=args.start_image, recolour=args.recolour,
        shift_copies=args.shift_copies, start_image_dropout=args.start_image_dropout,
        # A sharded base is split over the processes; the plan reads one whole model on one device, so it is off.
        memory="manual" if args.shard_base else getattr(args, "memory", "auto"))
    clips = _clips(args.video, args.caption, "reference")
    regularisation = _clips(args.regularisation_video, args.regularisation_caption, "regularisation")
    # With a memory option, or auto choosing them, the model is loaded on the CPU and the trainer moves what fits: a
    # 14B model loaded straight onto a 24 GB card would not get as far as the options.
    memory_saving = (bool(args.block_offload) or args.base_storage == "fp8" or config.memory == "auto"
                     or args.shard_base)
    if processes.active and processes.is_main:
        print(processes.describe(args.batch_size), flush=True)
    # Planned before loading where the family allows it: a run that cannot fit stops here, before a weight is read.
    planned = _memory_plan_before_loading(args, config, clips, regularisation, quiet=not processes.is_main)
    if only_plan and planned:
        return 0
    backbone = load_backbone(args.model, device="cpu" if memory_saving else device, **model_file_options(args))
    if processes.is_main and not planned:  # every process plans again in the trainer; one prints
        _memory_plan(backbone, args, config, clips, regularisation)
    if only_plan:
        return 0
    cancelled = []
    previous = signal.signal(signal.SIGINT, lambda *_: cancelled.append(True))
    callbacks = TrainingCallbacks(on_progress=lambda info: print(info.format(), flush=True),
                                  should_cancel=lambda: bool(cancelled),
                                  on_checkpoint=lambda path: print(f"checkpoint: {path}", flush=True))
    try:
        result = train_motion_lora(backbone, clips, _recipe(args), config, callbacks,
                                   regularisation_clips=regularisation if len(regularisation) else None,
                                   training_caption=args.training_caption, resume_from=args.resume)
    finally:
        signal.signal(signal.SIGINT, previous)
    if not processes.is_main:
        return 0  # the same LoRA is written once, by process 0
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    fallbacks = fallback_dirs(args.checkpoint_dir)
    failures: list[MotionCoreError] = []
    for lora, path, label in [(result.motion_lora, out, "motion"),
                              *[(a, appearance_path(out, a.name), "appearance") for a in result.appearance_loras]]:
        try:
            print(f"{label} LoRA: {save_or_recover(lora, path, overwrite=overwrite, fallbacks=fallbacks)}")
        except MotionCoreError as error:  # keep saving the others: each file is a separate result
            failures.append(error)
    if failures:
        raise type(failures[0])(" ".join(str(f) for f in failures))
    return 0
