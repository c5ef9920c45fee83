"""``python -m motion_core.bench gpu``: what a user's GPU needs for each recipe at the real models' real sizes.

Builds ZeroScope v2 576w (UNet3D 1.4B, SD VAE, 1024-wide 23-layer CLIP text encoder) and AnimateDiff (SD1.5 UNet +
motion module v3) from the configs the loader ships, with random weights (no download is possible here, and time
and memory do not depend on the weights' values), then runs the real trainer for a few steps of every recipe and
the real sampler once. Reports the median seconds per training step, the peak GPU memory of the run (weights,
cached latents, activations and optimiser state: what has to fit on the card), and the sampling time and memory.
``--family tiny --device cpu`` runs the same code on the tiny test models, so the bench itself is tested without a
GPU; its figures then mean nothing.

Wan: ``wan_1.3b`` is Wan 2.1 T2V 1.3B (transformer, Wan 2.1 VAE and UMT5-XXL from the shipped configs, random
weights; _real_wan.py) trained with MotionDirector at 480x832 for 33 and 81 frames, gradient checkpointing on, then
sampled at 480x832x81. ``wan_14b`` (Wan 2.1 14B, the architecture of each Wan 2.2 A14B expert: 28.6 GB of bf16
weights) is run the way a 24 GB card has to run it (``MEMORY_OPTIONS``): gradient checkpointing, bf16, the frozen
base's Linear weights stored in fp8 and the 40 blocks offloaded to the CPU, each copied to the GPU as it runs; its
transformer is built on the CPU so the peak is what the options leave on the card, and sampling runs with the same
options. It needs CUDA (building a random 14B on a CPU and training it there would measure nothing a user runs), so
elsewhere it is reported as not run, with the reason. ``tiny_wan`` runs the Wan path on the CPU for tests.

Image-to-video: ``wan_i2v_14b`` is Wan 2.1 I2V 14B (36 input channels, CLIP ViT-H image features) with the same
fp8 + offload options at 480x832x33, conditioned on a start image in training (each clip's first frame) and in
sampling; ``wan_ti2v_5b_i2v`` is Wan 2.2 TI2V 5B in its image-to-video mode (clean first latent frame) at 480p;
``tiny_wan_i2v`` runs that path on the CPU.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import time

import torch

from ..backbones.animatediff import CONFIGS_DIR
from ..backbones.base import ready
from ..backbones.unet3d import CONFIGS_DIR as UNET3D_CONFIGS
from ..clips import Clip, ClipSet
from ..errors import InvalidInputError
from ..recipes import get_recipe, recipe_names
from ..sampling import SampleRequest, sample_video
from ..training import TrainingCallbacks, TrainingConfig, train_motion_lora

# ((train width, height, frames), ...), (sample width, height, frames): the sizes the papers and model cards use.
SIZES = {
    "zeroscope": (((384, 384, 16),), (576, 320, 24)),
    "animatediff": (((512, 512, 16),), (512, 512, 16)),
    "wan_1.3b": (((832, 480, 33), (832, 480, 81)), (832, 480, 81)),
    "wan_14b": (((832, 480, 81),), (832, 480, 81)),
    "tiny": (((32, 32, 8),), (32, 32, 8)),
    "tiny_animatediff": (((32, 32, 8),), (32, 32, 8)),
    "tiny_wan": (((32, 32, 5), (32, 32, 9)), (32, 32, 9)),
    "wan_i2v_14b": (((832, 480, 33),), (832, 480, 33)),
    "wan_ti2v_5b_i2v": (((832, 480, 33),), (832, 480, 33)),
    "tiny_wan_i2v": (((32, 32, 5),), (32, 32, 5)),
}
WAN_FAMILIES = {"wan_1.3b": "wan2.1_t2v_1.3b", "wan_14b": "wan2.1_t2v_14b", "wan_i2v_14b": "wan2.1_i2v_14b",
                "wan_ti2v_5b_i2v": "wan2.2_ti2v_5b"}
I2V_FAMILIES = ("wan_i2v_14b", "wan_ti2v_5b_i2v", "tiny_wan_i2v")
"""Families run image-to-video: training conditions on each clip's first frame, sampling on a start image."""
FAMILY_RECIPES = {name: ("motion_director",) for name in ("wan_1.3b", "wan_14b", "tiny_wan", *I2V_FAMILIES)}
"""Recipes a family runs when --recipes is not given (others: every recipe). The Wan cases are the issue's:
MotionDirector, the recipe the Wan path was built for."""
MEMORY_OPTIONS = {"wan_14b": {"base_storage": "fp8", "block_offload": True},
                  "wan_i2v_14b": {"base_storage": "fp8", "block_offload": True}}
"""TrainingConfig memory options per family (others: none): what the family needs to fit a 24 GB card."""
CUDA_ONLY = {name: "needs a CUDA GPU (fp8 storage + block offload are measured on the card they are for)"
             for name in ("wan_14b", "wan_i2v_14b")}
"""Families not run off CUDA, with the reason printed instead of figures."""
DEFAULT_FAMILIES = "zeroscope,animatediff,wan_1.3b,wan_14b"


def build_backbone(family: str, device: str, dtype: torch.dtype):
    """A ready Backbone of the real architecture with random weights, built directly on ``device``."""
    if family in MEMORY_OPTIONS and MEMORY_OPTIONS[family].get("block_offload"):
        backbone = _offloaded_wan_backbone(WAN_FAMILIES[family], device, dtype)
    elif family in WAN_FAMILIES:
        from ._real_wan import full_backbone

        backbone = full_backbone(WAN_FAMILIES[family], device, dtype)
    elif family in ("tiny_wan", "tiny_wan_i2v"):
        from ..backbones.wan.tiny import tiny_wan_backbone, tiny_wan_i2v_backbone

        if family == "tiny_wan_i2v":
            return tiny_wan_i2v_backbone(0, kind="clip", dtype=dtype, device=device)
        return tiny_wan_backbone(0, dtype=dtype, device=device)
    else:
        return _unet_backbone(family, device, dtype)
    if family == "wan_ti2v_5b_i2v":
        backbone.first_frame_conditioning = True
    if backbone.denoiser.config.get("image_dim"):
        from ._real_wan import clip_vision_h

        backbone.image_encoder = clip_vision_h(device, dtype)
    return backbone


def _unet_backbone(family: str, device: str, dtype: torch.dtype):
    """ZeroScope, AnimateDiff and their tiny forms, random weights, on ``device``."""
    from ..backbones.animatediff.tiny import tiny_animatediff_backbone
    from ..backbones.tiny_clip import tiny_tokenizer
    from ..backbones.unet3d.tiny import tiny_unet3d_backbone

    if family == "tiny":
        return tiny_unet3d_backbone(0, dtype=dtype, device=device)
    if family == "tiny_animatediff":
        return tiny_animatediff_backbone(0, dtype=dtype, device=device)
    from diffusers import AutoencoderKL, DDIMScheduler
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    with torch.device(device):
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(CONFIGS_DIR / "sd15" / "vae")))
        if family == "zeroscope":
            from diffusers import UNet3DConditionModel

            from ..backbones.unet3d.backbone import UNet3DBackbone

            cls = UNet3DBackbone
            unet = UNet3DConditionModel.from_config(
                UNet3DConditionModel.load_config(str(UNET3D_CONFIGS / "zeroscope_v2_576w_unet")))
            text_config = CLIPTextConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                                         num_attention_heads=16, hidden_act="gelu", projection_dim=1024)
            scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
        elif family == "animatediff":
            from diffusers import MotionAdapter, UNet2DConditionModel

            from ..backbones.animatediff.backbone import AnimateDiffBackbone
            from ..backbones.animatediff.motion_module import combine_unet_and_motion_adapter

            cls = AnimateDiffBackbone
            unet2d = UNet2DConditionModel.from_config(
                UNet2DConditionModel.load_config(str(CONFIGS_DIR / "sd15" / "unet")))
            adapter = MotionAdapter.from_config(
                MotionAdapter.load_config(str(CONFIGS_DIR / "animatediff_motion_adapter_v3")))
            unet = combine_unet_and_motion_adapter(unet2d, adapter)
            text_config = CLIPTextConfig.from_pretrained(str(CONFIGS_DIR / "sd15" / "text_encoder"))
            scheduler = DDIMScheduler.from_pretrained(str(CONFIGS_DIR / "animatediff" / "scheduler"))
        else:
            raise InvalidInputError(f"Unknown family {family!r}; use one of {sorted(SIZES)}.")
        text_encoder = CLIPTextModel(text_config)
    return ready(cls, unet, vae, text_encoder, tiny_tokenizer(77), scheduler, dtype, torch.device(device),
                 f"random-{family}")


def _offloaded_wan_backbone(variant: str, device: str, dtype: torch.dtype):
    """The transformer's blocks on the CPU and everything else (its embeddings and head, the VAE, UMT5) on
    ``device``: where block offload keeps them, without the whole model ever being on the card."""
    from ..backbones.memory import move_outside_blocks
    from ..backbones.wan.backbone import WanBackbone
    from ._real_wan import full_backbone, wan_transformer

    # Every Wan 2.1 size shares the VAE and UMT5-XXL: take them from the 1.3B build and drop its transformer.
    shared = full_backbone("wan2.1_t2v_1.3b", device, dtype)
    denoiser = wan_transformer(variant, device="cpu", dtype=dtype)
    move_outside_blocks(denoiser, denoiser.blocks, device)
    backbone = WanBackbone(denoiser=denoiser, vae=shared.vae, text_encoder=shared.text_encoder,
                           tokenizer=shared.tokenizer, scheduler=shared.scheduler, device=torch.device(device),
                           dtype=dtype, source=f"random-{variant}")
    del shared
    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()
    return backbone


def training_config(family: str, size, steps: int, checkpointing: bool) -> TrainingConfig:
    """The TrainingConfig of one bench run: the size, the step count, checkpointing and the family's memory
    options (MEMORY_OPTIONS). Block offload needs checkpointing, so it is off in a run without."""
    width, height, frames = size
    options = dict(MEMORY_OPTIONS.get(family, {}))
    if not checkpointing:
        options.pop("block_offload", None)
    if family in I2V_FAMILIES:
        options["start_image"] = "first_frame"
    return TrainingConfig(steps=steps, width=width, height=height, frames=frames, seed=0, memory="manual",
                          gradient_checkpointing=checkpointing, **options)


def _clip(width: int, height: int, frames: int, seed: int) -> Clip:
    g = torch.Generator().manual_seed(seed)
    return Clip(torch.randint(0, 256, (frames, height, width, 3), dtype=torch.uint8, generator=g), 8.0,
                "a ball rolls across a table")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    """Start a new peak-memory window on a CUDA device (no-op elsewhere)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    """Peak GPU memory allocated since reset_peak, in GiB; None off CUDA (there is no such counter)."""
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def fmt_or_dash(value, spec: str) -> str:
    """A table cell: the figure, or "-" where it was not measured (None or NaN)."""
    return "-" if value is None or math.isnan(value) else format(value, spec)


def _rounded(figures: dict) -> dict:
    return {k: None if v is None else round(v, 3) for k, v in figures.items()}


def measure_training(backbone, recipe: str, size, steps: int, checkpointing: bool, family: str = "") -> dict:
    """Median step seconds (first step excluded: compilation and allocator warm-up) and peak GiB of a short run.
    For a recipe with stages (Customize-A-Video) also each stage's median, since their steps cost differently; a
    stage's first step is excluded too (it switches adapters)."""
    width, height, frames = size
    device = backbone.device
    clips = ClipSet((_clip(width, height, frames, 0),))
    regularisation = ClipSet((_clip(width, height, frames, 1),)) if get_recipe(recipe).uses_regularisation_clips \
        else None
    stamps = []

    def on_progress(info):
        _sync(device)
        stamps.append((info.stage, time.perf_counter()))

    reset_peak(device)
    config = training_config(family, size, steps, checkpointing)
    began = time.perf_counter()
    train_motion_lora(backbone, clips, recipe, config, TrainingCallbacks(on_progress=on_progress),
                      regularisation_clips=regularisation)
    durations = [(stage, b - a) for (_, a), (stage, b) in itertools.pairwise(stamps)]
    result = {"step_s": statistics.median(d for _, d in durations), "peak_gib": peak_gib(device),
              "total_s": time.perf_counter() - began}
    steps_by_stage: dict[str, list[float]] = {}
    for stage, d in durations:
        steps_by_stage.setdefault(stage, []).append(d)
    if len(steps_by_stage) > 1:
        for stage, times in steps_by_stage.items():
            timed = times[1:] or times
            result[f"{stage}_step_s"] = statistics.median(timed)
    return result


def measure_sampling(backbone, size, steps: int, family: str = "") -> dict:
    """Sampling time and peak; with the family's memory options on (the sampler itself knows none of them)."""
    from ..backbones.memory import MemoryOptions, MemoryPlan

    width, height, frames = size
    device = backbone.device
    reset_peak(device)
    image = None
    if family in I2V_FAMILIES:  # a start image the size of the video (random pixels: time and memory do not care)
        image = torch.rand((1, height, width, 3), generator=torch.Generator().manual_seed(0))
    request = SampleRequest(prompt="a dog runs on the beach", steps=steps, cfg=7.5, frames=frames, width=width,
                            height=height, start_image=image)
    _sync(device)
    began = time.perf_counter()
    plan = MemoryPlan(backbone, MemoryOptions(**MEMORY_OPTIONS.get(family, {})), device)
    try:
        video = sample_video(backbone, request)
    finally:
        plan.restore()
    _sync(device)
    if video.frames.shape[0] != frames:
        raise RuntimeError(f"sampler returned {video.frames.shape[0]} frames, asked for {frames}")
    return {"sample_s": time.perf_counter() - began, "peak_gib": peak_gib(device)}


def planned_runs(family: str, recipes: str, train_size: str, no_checkpointing_too: bool) -> list[tuple]:
    """(recipe, (w, h, f), checkpointing, label) of every training run of ``family``. The label is the recipe, with
    the frame count where the family trains at several sizes and "(no ckpt)" for the run without checkpointing."""
    sizes = SIZES[family][0]
    if train_size:
        sizes = (tuple(int(v) for v in train_size.lower().split("x")),)
    names = recipes.split(",") if recipes else list(FAMILY_RECIPES.get(family, recipe_names()))
    runs = [(recipe, size, True) for size in sizes for recipe in names]
    if no_checkpointing_too:
        runs += [("motion_director", size, False) for size in sizes]
    return [(recipe, size, ckpt, recipe + (f" {size[2]}f" if len(sizes) > 1 else "") + ("" if ckpt else " (no ckpt)"))
            for recipe, size, ckpt in runs]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m motion_core.bench gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--family", default=DEFAULT_FAMILIES, help=f"comma-separated, from {', '.join(SIZES)}")
    p.add_argument("--recipes", default="", help="comma-separated (default: every recipe; MotionDirector for Wan)")
    p.add_argument("--steps", type=int, default=6, help="training steps per recipe (the first is not timed)")
    p.add_argument("--sample-steps", type=int, default=25)
    p.add_argument("--train-size", default="", help="WxHxF instead of the family's usual training size(s)")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"], help="base weights")
    p.add_argument("--device", default="cuda")
    p.add_argument("--no-checkpointing-too", action="store_true",
                   help="also run MotionDirector without gradient checkpointing")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInputError("This benchmark measures a GPU and none is visible to torch; run it on a machine "
                                "with CUDA, or pass --family tiny --device cpu to check that it runs.")
    if args.steps < 2:
        raise InvalidInputError("--steps must be at least 2: the first step is a warm-up and is not timed.")
    unknown = set(args.family.split(",")) - set(SIZES)
    if unknown:
        raise InvalidInputError(f"Unknown --family {', '.join(sorted(unknown))}; use one of {', '.join(SIZES)}.")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    rows, figures = [], {}
    for family in args.family.split(","):
        sample_size = SIZES[family][1]
        runs = planned_runs(family, args.recipes, args.train_size, args.no_checkpointing_too)
        if family in CUDA_ONLY and not args.device.startswith("cuda"):
            for _, size, _, label in runs:
                figures[f"{family}/{label}"] = {"not_run": CUDA_ONLY[family]}
                rows.append((family, label, "x".join(map(str, size)), "not run", "-"))
            print(f"{family}: not run: {CUDA_ONLY[family]}", flush=True)
            continue
        backbone = build_backbone(family, args.device, dtype)
        for recipe, train_size, checkpointing, label in runs:
            try:
                m = measure_training(backbone, recipe, train_size, args.steps, checkpointing, family)
            # One recipe failing (e.g. out of memory) must not hide the others' figures.
            except Exception as error:  # noqa: BLE001
                figures[f"{family}/{label}"] = {"error": f"{type(error).__name__}: {error}"[:300]}
                rows.append((family, label, "x".join(map(str, train_size)), "FAILED", type(error).__name__))
                print(f"{family} {label}: FAILED {type(error).__name__}: {error}", flush=True)
                continue
            figures[f"{family}/{label}"] = _rounded(m)
            rows.append((family, label, "x".join(map(str, train_size)), f"{m['step_s']:.3f}",
                         fmt_or_dash(m["peak_gib"], ".1f")))
            stages = "".join(f", {k[:-7]} {v:.3f} s/step" for k, v in m.items() if k.endswith("_step_s"))
            print(f"{family} {label}: {m['step_s']:.3f} s/step{stages}, peak {fmt_or_dash(m['peak_gib'], '.1f')} GiB",
                  flush=True)
        s = measure_sampling(backbone, sample_size, args.sample_steps, family)
        figures[f"{family}/sampling"] = _rounded(s)
        rows.append((family, f"sampling {args.sample_steps} steps cfg", "x".join(map(str, sample_size)),
                     f"{s['sample_s']:.1f} (total)", fmt_or_dash(s["peak_gib"], ".1f")))
        del backbone
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    print(f"\n{'family':16s} {'run':32s} {'WxHxF':12s} {'s/step':>14s} {'peak GiB':>9s}")
    for family, label, size, secs, peak in rows:
        print(f"{family:16s} {label:32s} {size:12s} {secs:>14s} {peak:>9s}")
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
    print(json.dumps({"device": device_name, "dtype": args.dtype, **figures}))
    return 0
