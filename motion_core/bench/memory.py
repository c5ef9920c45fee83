"""``python -m motion_core.bench memory``: the memory plan's predicted peak against the measured one, per case.

Each case is a real architecture with random bf16 weights (time and memory depend on shapes, not values), trained
for one step of a recipe on the CPU at a reduced size: the trainer's own pieces (the recipe's adapters, its step,
the trainer's optimiser and its step). Measured: in a fresh subprocess (nothing cached from another case), with
glibc's MALLOC_MMAP_THRESHOLD_ at 64 KiB so freed tensors go back to the OS at once, the peak RSS (a thread samples
it every millisecond, psutil) minus the RSS after the imports and before the model is built: weights, adapters,
optimiser state, cached sample and the step's activations, as on a device. Predicted: ``memory_plan.Predictor`` on
the same architecture built on the meta device in the parent process (no weights), for the same settings. The error
is (predicted - measured) / measured; the goal is within 15% on every case.

Wan models are cut to a few blocks (``--blocks``; the real width, heads, text and patch layout are kept) and ZeroScope
runs whole, so that every case takes seconds to a minute on two shared CPU cores; the output says so per case.

``--loading``: host memory while a scaled-fp8 Wan file of a real architecture loads, kept in fp8 as stored and
widened to bf16, as a ratio to the file's size (_load_memory.py); the goal is <= 1.2x kept in fp8.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

from ..errors import InvalidInputError
from ._load_memory import VARIANTS as LOAD_VARIANTS
from ._load_memory import describe as describe_load
from ._load_memory import run_case as load_case
from ._real_wan import random_init
from .peak_rss import SampledPeakRss

CASES = {
    # name: (model, frames, width, height)
    "wan2.1_1.3b": ("wan2.1_t2v_1.3b", 9, 256, 256),
    "wan2.2_ti2v_5b": ("wan2.2_ti2v_5b", 9, 256, 256),
    "zeroscope": ("zeroscope", 8, 128, 128),
}
DEFAULT_BLOCKS = {"wan2.1_t2v_1.3b": 4, "wan2.2_ti2v_5b": 2}
"""Wan blocks kept per model (of 30); None in --blocks 0 means all."""
GOAL = 0.15
LOAD_GOAL = 1.2


# ---- the architectures ------------------------------------------------------------------------------------------


def build_backbone(model: str, *, blocks: int | None, device: str = "cpu", dtype=torch.bfloat16):
    """A denoiser-only backbone of ``model`` (the scheduler too), weights random on ``device`` or empty on meta."""
    if model == "zeroscope":
        from diffusers import DDIMScheduler, UNet3DConditionModel

        from ..backbones.base import move
        from ..backbones.unet3d import CONFIGS_DIR
        from ..backbones.unet3d.backbone import UNet3DBackbone

        config = UNet3DConditionModel.load_config(str(CONFIGS_DIR / "zeroscope_v2_576w_unet"))
        with torch.device("meta"):
            unet = UNet3DConditionModel.from_config(config)
        unet = move(unet, dtype=dtype)
        if device != "meta":
            unet = unet.to_empty(device=device)
            random_init(unet)
        unet.requires_grad_(False).train()
        scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
        return UNet3DBackbone(denoiser=unet, vae=None, text_encoder=None, tokenizer=None, scheduler=scheduler,
                              device="cpu", dtype=dtype, source="random-zeroscope")
    from diffusers import WanTransformer3DModel
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

    from ..backbones.base import move
    from ..backbones.wan import CONFIGS_DIR
    from ..backbones.wan.backbone import WanBackbone
    from ._real_wan import wan_scheduler

    config = dict(WanTransformer3DModel.load_config(str(CONFIGS_DIR / "wan_transformer" / model)))
    if blocks:
        config["num_layers"] = int(blocks)
    with torch.device("meta"):
        transformer = WanTransformer3DModel.from_config(config)
    transformer = move(transformer, dtype=dtype)
    if device != "meta":
        transformer = transformer.to_empty(device=device)
        random_init(transformer)
        c = transformer.config
        transformer.rope = WanRotaryPosEmbed(c.attention_head_dim, c.patch_size, c.rope_max_seq_len)
        transformer = move(transformer, device, dtype)
    transformer.requires_grad_(False).train()
    return WanBackbone(denoiser=transformer, vae=None, text_encoder=None, tokenizer=None, scheduler=wan_scheduler(),
                       device="cpu", dtype=dtype, source=f"random-{model}")


# ---- prediction (parent) and measurement (child) ------------------------------------------------------------------
def predictor(model: str, frames: int, width: int, height: int, *, blocks: int | None, recipe: str, rank: int):
    from ..recipes import get_recipe
    from ..training.memory_plan import Predictor

    backbone = build_backbone(model, blocks=blocks, device="meta")
    return Predictor(backbone, get_recipe(recipe), frames=frames, width=width, height=height, rank=rank,
                     alpha=float(rank), dropout=0.0, device=torch.device("cpu"))


def measure(model: str, frames: int, width: int, height: int, *, blocks: int | None, recipe: str, rank: int,
            checkpointing: bool, threads: int = 1) -> dict:
    """{"bytes": peak RSS growth, "step_s": seconds of the step} from a fresh subprocess."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS=str(threads))
    args = (model, frames, width, height, blocks, recipe, rank, checkpointing)
    code = f"from {__package__}.memory import _child; _child{args!r}"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"memory measurement failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _child(model, frames, width, height, blocks, recipe_name, rank, checkpointing) -> None:
    from ..lora import adapter_parameters, add_adapter
    from ..recipes import get_recipe
    from ..training.context import StepContext, TrainingSample
    from ..training.optim import build_optimizer
    from ..training.precision import Precision

    torch.set_num_threads(1)
    recipe = get_recipe(recipe_name)
    build_backbone(model, blocks=1 if model in DEFAULT_BLOCKS else None, device="meta")  # imports, before baseline
    with SampledPeakRss() as watcher:
        backbone = build_backbone(model, blocks=blocks)
        shapes = backbone.planning_shapes(frames, height, width)
        g = torch.Generator().manual_seed(0)
        latents = torch.randn(shapes.latents, generator=g)
        sample = TrainingSample(latents=latents, image_latents=latents,
                                text_states=torch.randn(shapes.text_states, generator=g).to(backbone.dtype),
                                clip_index=0, caption="")
        names, params = {}, []
        for spec in recipe.adapters(backbone, 1, rank=rank, alpha=float(rank), dropout=0.0):
            add_adapter(backbone.denoiser, spec, enabled=False, trainable=False)
            names[spec.name] = spec.name
            params += adapter_parameters(backbone.denoiser, spec.name)
        if checkpointing:
            backbone.enable_gradient_checkpointing()
        optimizer, _ = build_optimizer(params, lr=1e-4, weight_decay=0.0, choice="auto", device=torch.device("cpu"))
        ctx = StepContext(backbone, recipe, g, sample, stage="main", step=0, loss_scale=1.0,
                          precision=Precision("fp32", torch.device("cpu")), adapter_names=names)
        began = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        recipe.step(ctx)
        optimizer.step()
        step_s = time.perf_counter() - began
    print(json.dumps({"bytes": watcher.bytes, "step_s": step_s}))


# ---- the report ---------------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m motion_core.bench memory", description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--blocks", type=int, default=None,
                        help="Wan blocks to keep (default: 4 for 1.3B, 2 for 5B; 0 = all 30)")
    parser.add_argument("--recipe", default="naive")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--checkpointing", default="off,on", help="off, on or off,on")
    parser.add_argument("--loading", default="wan2.1_t2v_1.3b",
                        help="host memory while loading a scaled-fp8 file of these Wan architectures (comma-separated, "
                             f"of {', '.join(LOAD_VARIANTS)}; none to skip): kept in fp8 and widened to bf16")
    parser.add_argument("--loading-blocks", type=int, default=0,
                        help="blocks of the loading case's model (0: all; e.g. 8 of the 14B's 40 where RAM is short)")
    parser.add_argument("--loading-dir", default=None, help="where the file is written (default: the temp folder)")
    parser.add_argument("--loading-modes", default="fp8,bf16", help="fp8 (kept as stored), bf16 (widened) or both; "
                        "the full 14B widened needs about 30 GiB of RAM")
    args = parser.parse_args(argv)
    unknown = [c for c in args.cases.split(",") if c not in CASES and c != "none"]
    unknown += [v for v in args.loading.split(",") if v not in LOAD_VARIANTS and v != "none"]
    unknown += [m for m in args.loading_modes.split(",") if m not in ("fp8", "bf16")]
    if unknown:
        raise InvalidInputError(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)} (--cases) "
                                f"and {', '.join(LOAD_VARIANTS)} (--loading), or none; loading modes: fp8, bf16.")
    return args


def run_case(name: str, checkpointing: bool, args) -> dict:
    from ..training.memory_plan import MemorySettings

    model, frames, width, height = CASES[name]
    blocks = None
    if model in DEFAULT_BLOCKS:
        blocks = DEFAULT_BLOCKS[model] if args.blocks is None else (args.blocks or None)
    plan = predictor(model, frames, width, height, blocks=blocks, recipe=args.recipe, rank=args.rank).plan(
        MemorySettings(gradient_checkpointing=checkpointing))
    measured = measure(model, frames, width, height, blocks=blocks, recipe=args.recipe, rank=args.rank,
                       checkpointing=checkpointing)
    error = (plan.device_peak - measured["bytes"]) / measured["bytes"]
    return {"case": name, "model": model, "blocks": blocks or "all", "frames": frames, "size": f"{width}x{height}",
            "tokens": plan.tokens, "checkpointing": checkpointing, "predicted_mib": round(plan.device_peak / 2**20),
            "measured_mib": round(measured["bytes"] / 2**20), "error": round(error, 3),
            "activations_mib": round(plan.parts["activations"] / 2**20), "step_s": round(measured["step_s"], 2)}


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = []
    modes = [m == "on" for m in args.checkpointing.split(",")]
    for name in [c for c in args.cases.split(",") if c != "none"]:
        for checkpointing in modes:
            rows.append(run_case(name, checkpointing, args))
            r = rows[-1]
            print(f"{r['case']:<15} blocks {str(r['blocks']):>3}  {r['frames']}f {r['size']:>7} {r['tokens']:>5} tok  "
                  f"ckpt {'on ' if checkpointing else 'off'}  predicted {r['predicted_mib']:>6} MiB  measured "
                  f"{r['measured_mib']:>6} MiB  error {r['error']:+.1%}  (activations {r['activations_mib']} MiB, "
                  f"step {r['step_s']} s)", flush=True)
    worst = max((abs(r["error"]) for r in rows), default=None)
    if worst is not None:
        print(f"worst |error| {worst:.1%} (goal <= {GOAL:.0%}); Wan cut to the blocks shown, real width; CPU, bf16, "
              f"recipe {args.recipe}, rank {args.rank}, one thread")
    loading = []
    modes = tuple({"fp8": True, "bf16": False}[m] for m in args.loading_modes.split(","))
    for variant in [v for v in args.loading.split(",") if v != "none"]:
        with tempfile.TemporaryDirectory(dir=args.loading_dir) as folder:
            for row in load_case(variant, args.loading_blocks or None, folder, modes):
                loading.append(row)
                print(describe_load(row), flush=True)
    if loading:
        print(f"loading: peak growth of resident memory over the file's size (goal <= {LOAD_GOAL}x kept in fp8); "
              "fresh subprocess, one thread, sampled every ms")
    print(json.dumps({"cases": rows, "worst_error": None if worst is None else round(worst, 3), "loading": loading}))
    return 0
