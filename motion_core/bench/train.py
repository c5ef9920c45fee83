"""``python -m motion_core.bench train``: what MotionDirector's dual path and gradient checkpointing cost.

1. md_step_ratio_f8 / _f16: median time of a MotionDirector training step (spatial path on one frame, skipped on
   20% of steps, plus the temporal path on the full clip) over a plain LoRA step (one forward+backward of the full
   clip with the same adapters), both through the real trainer (same optimiser, clipping, checkpointing), taken
   alternately step by step in one run (so a shared machine's load hits both alike), on a UNet3D with ZeroScope's
   block layout at reduced width. Goal <= 1.25.
2. ckpt_memory_ratio: extra memory of one MotionDirector training step with gradient checkpointing over without,
   on the real ZeroScope architecture (random init, 8 frames, 128x128 px latents 16x16). Goal <= 0.6. Method in
   _train_memory.py (RSS of a fresh subprocess per measurement; the model weights are subtracted as baseline).
3. wan_md_step_ratio_f<F>: the same ratio as 1 on the tiny Wan (tiny_wan_backbone: the real Wan classes, two
   blocks) at 32x32 px. A Wan clip of F frames is 1 + (F - 1)/4 latent frames while the spatial path still runs one
   whole latent frame, so short clips pay relatively more for it than on a UNet.
4. wan_ckpt_memory_ratio: as 2 on the real Wan 2.1 T2V 1.3B architecture (bf16, random init; 9 frames at 128x128
   px by default, 192 transformer tokens; --wan-memory-frames / --wan-memory-pixels for more).
5. trainer_overhead: median time of our trainer's plain LoRA step (the naive recipe, with the memory settings
   ``memory: auto`` picks) over a minimal bare loop written here (the same denoiser, peft LoRA injected on the same
   targets with the same rank, AdamW, the same noise / timestep / loss computation and gradient clipping, no
   callbacks, no adapter registry), on the built-in ShapesT2V at 64 px, 8 frames, rank 16. Goal <= 1.05. The two
   alternate step by step (the bare loop runs on a copy of the denoiser from the trainer's progress callback).

``--family unet3d`` or ``wan`` runs one family's figures only (default: all); ``--family overhead`` the trainer's
overhead only. ``--wan-width`` widens the tiny Wan's transformer (heads of 128 channels, feed-forward 4x) so that
per-call overheads are not the whole step."""

from __future__ import annotations

import argparse
import itertools
import json
import re
import statistics
import time

import torch

from ..recipes import MotionDirector, losses


class PlainLoraStep(MotionDirector):
    """The reference: MotionDirector's adapters, one plain forward+backward of the full clip per step."""

    name = "plain_lora_step"

    def step(self, ctx):
        latents = ctx.sample.latents
        noise, t = ctx.noise_like(latents), ctx.timesteps(1)
        names = [self.spatial_adapter(ctx.sample.clip_index), "temporal"]
        ctx.use_adapters(enabled=names, trainable=names)
        loss = losses.mse(ctx.predict(ctx.noisy(latents, noise, t), t), ctx.target(latents, noise, t))
        ctx.backward(loss)
        return {"mse": loss.detach(), "total": loss.detach()}


def real_shaped_backbone(seed: int = 0):
    """ZeroScope's UNet3D layout (4 levels, 2 layers per block, the same block types, transformer_in) at 1/10 of
    its width, with the tiny VAE and text encoder: step-time ratios depend on the layout, not the width."""
    from diffusers import UNet3DConditionModel

    from ..backbones import tiny_unet3d_backbone
    from ..backbones.tiny_clip import TINY_TEXT_DIM

    backbone = tiny_unet3d_backbone(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet3DConditionModel(
            block_out_channels=(32, 64, 128, 128), layers_per_block=2, norm_num_groups=32, attention_head_dim=8,
            cross_attention_dim=TINY_TEXT_DIM,
            down_block_types=("CrossAttnDownBlock3D",) * 3 + ("DownBlock3D",),
            up_block_types=("UpBlock3D",) + ("CrossAttnUpBlock3D",) * 3,
        )
    backbone.denoiser = unet.requires_grad_(False).train()
    return backbone


def wide_wan_backbone(width: int, seed: int = 0):
    """The tiny Wan with a transformer ``width`` channels wide (width / 128 heads of 128, feed-forward 4x width, two
    blocks); its VAE and text encoder stay the tiny ones. 0 or 128 with ffn 256 is the tiny Wan itself."""
    from diffusers import WanTransformer3DModel

    from ..backbones import tiny_wan_backbone
    from ..backbones.wan.tiny import TINY_WAN_TEXT_DIM, TINY_WAN_Z_DIM

    backbone = tiny_wan_backbone(seed)
    if not width:
        return backbone
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        denoiser = WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=width // 128, attention_head_dim=128,
            in_channels=TINY_WAN_Z_DIM, out_channels=TINY_WAN_Z_DIM, text_dim=TINY_WAN_TEXT_DIM, freq_dim=256,
            ffn_dim=4 * width, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
            rope_max_seq_len=64)
    backbone.denoiser = denoiser.requires_grad_(False).train()
    return backbone


def _clip(frames: int, size: int):
    from ..clips import Clip

    g = torch.Generator().manual_seed(0)
    return Clip(torch.randint(0, 256, (frames, size, size, 3), dtype=torch.uint8, generator=g), 8.0, "a ball moves")


def step_seconds(backbone, recipe, frames: int, size: int, steps: int, memory: str = "manual") -> list[float]:
    """Seconds of each trainer step, the first (warm-up) step excluded. ``memory`` "manual" keeps checkpointing on
    (the step-ratio figures were taken that way, the old default); "auto" is what a run picks by default."""
    from ..clips import ClipSet
    from ..training import TrainingCallbacks, TrainingConfig, train_motion_lora

    stamps = []
    callbacks = TrainingCallbacks(on_progress=lambda info: stamps.append(time.perf_counter()))
    config = TrainingConfig(steps=steps + 1, width=size, height=size, frames=frames, rank=16, seed=0, memory=memory)
    train_motion_lora(backbone, ClipSet((_clip(frames, size),)), recipe, config, callbacks)
    return [b - a for a, b in itertools.pairwise(stamps)]


class BareLoop:
    """The minimal training loop the trainer's overhead is measured against: the naive recipe's adapter (same target
    modules, rank, alpha, dropout) injected with peft's own ``inject_adapter_in_model``, AdamW with the naive
    recipe's lr / weight decay (foreach off, as the trainer), its gradient clipping, and per step the trainer's draws
    (noise, timestep), forward process, target and MSE. The sample is cached the trainer's way (``cache_samples``);
    no registry, no StepContext, no callbacks, no checks. ``remove()`` takes the adapter out again."""

    NAME = "bare_loop"

    def __init__(self, backbone, frames: int, size: int, rank: int = 16, seed: int = 0):
        from peft import LoraConfig, inject_adapter_in_model

        from ..recipes import get_recipe
        from ..training.data import cache_samples

        self.backbone, self.recipe = backbone, get_recipe("naive")
        self.sample = cache_samples(backbone, self.recipe, [_clip(frames, size)], frames=frames, width=size,
                                    height=size)[0]
        (spec,) = self.recipe.adapters(backbone, 1, rank=rank, alpha=float(rank), dropout=self.recipe.config.dropout)
        self.targets = list(spec.target_modules)
        pattern = "|".join(re.escape(m) for m in self.targets)  # full names, matched whole (as lora/inject.py)
        config = LoraConfig(r=rank, lora_alpha=float(rank), lora_dropout=spec.dropout, target_modules=f"(?:{pattern})")
        torch.manual_seed(seed)
        self.model = inject_adapter_in_model(config, backbone.denoiser, adapter_name=self.NAME)
        self.params = [p for n, p in self.model.named_parameters() if f".{self.NAME}." in n]
        for p in self.params:
            p.requires_grad_(True)
        c = self.recipe.config
        self.optimizer = torch.optim.AdamW(self.params, lr=c.lr, weight_decay=c.weight_decay, foreach=False)
        self.generator = torch.Generator().manual_seed(seed)

    def step(self) -> float:
        objective, latents = self.backbone.objective, self.sample.latents
        self.optimizer.zero_grad(set_to_none=True)
        noise = torch.randn(latents.shape, generator=self.generator, dtype=torch.float32)
        index = self.recipe.sample_timesteps(self.generator, objective.num_train_timesteps, 1)
        t = objective.model_timesteps(index)
        prediction = self.backbone.denoise(objective.add_noise(latents, noise, t), t, self.sample.text_states)
        loss = torch.nn.functional.mse_loss(prediction.float(), objective.target(latents, noise, t))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.recipe.config.grad_clip)
        self.optimizer.step()
        return loss.detach()

    def seconds(self, steps: int, warm_up: bool = True) -> list[float]:
        """Seconds of each of ``steps`` steps (after a warm-up step unless ``warm_up`` is False), the denoiser in
        train mode (as any training loop runs it: the base model's own dropout layers act, as in the trainer)."""
        was_training = self.model.training
        self.model.train()
        try:
            if warm_up:
                self.step()  # as the trainer's first step
            stamps = [time.perf_counter()]
            for _ in range(steps):
                self.step()
                stamps.append(time.perf_counter())
        finally:
            self.model.train(was_training)
        return [b - a for a, b in itertools.pairwise(stamps)]

    def layers(self) -> dict:
        """{module name: peft LoRA layer} of the bare loop's adapter."""
        return {n: m for n, m in self.model.named_modules() if self.NAME in getattr(m, "lora_A", {})}

    def remove(self) -> None:
        for name, layer in self.layers().items():
            layer.delete_adapter(self.NAME)
            if not layer.lora_A:
                parent_name, _, child = name.rpartition(".")
                setattr(self.model.get_submodule(parent_name) if parent_name else self.model, child,
                        layer.get_base_layer())
        configs = getattr(self.model, "peft_config", None)
        if isinstance(configs, dict):
            configs.pop(self.NAME, None)
            if not configs:
                del self.model.peft_config


def overhead_medians(backbone, frames: int, size: int, steps: int, rounds: int) -> tuple[float, float]:
    """Median step time of the trainer's naive step (memory: auto) and of the bare loop, interleaved step by step:
    one trainer run of ``steps * rounds`` steps whose progress callback runs one bare step on a copy of the denoiser
    (so the two adapters never meet) and times it. A trainer step is the time from the end of one callback to the
    start of the next (everything the trainer does per step: draws, switches, forward, backward, clipping, checks,
    optimiser and schedule, history, progress). On a shared machine, load then hits both sides alike."""
    import copy

    from ..clips import ClipSet
    from ..training import TrainingCallbacks, TrainingConfig, train_motion_lora

    twin = copy.copy(backbone)
    twin.denoiser = copy.deepcopy(backbone.denoiser)
    loop = BareLoop(twin, frames, size)
    ours, bare, last_end = [], [], [None]

    def on_progress(info):
        began = time.perf_counter()
        if last_end[0] is not None:
            ours.append(began - last_end[0])
        with torch.random.fork_rng(devices=[]):  # the bare loop's dropout draws leave the run's alone
            if info.step == 1:  # the trainer's first step is its warm-up, and this the loop's
                loop.seconds(0)
            else:
                bare.extend(loop.seconds(1, warm_up=False))
        last_end[0] = time.perf_counter()

    config = TrainingConfig(steps=steps * rounds + 1, width=size, height=size, frames=frames, rank=16, seed=0,
                            memory="auto")
    try:
        train_motion_lora(backbone, ClipSet((_clip(frames, size),)), "naive", config,
                          TrainingCallbacks(on_progress=on_progress))
    finally:
        loop.remove()
    return statistics.median(ours), statistics.median(bare)


class AlternatingSteps(MotionDirector):
    """MotionDirector's steps and the plain steps in turn within one run (even steps MotionDirector, odd plain):
    the same adapters, optimiser and clipping, so the two kinds of step differ only in what the recipe does."""

    name = "md_plain_alternating"

    def step(self, ctx):
        return (MotionDirector.step if ctx.step % 2 == 0 else PlainLoraStep.step)(self, ctx)


def interleaved_medians(backbone, frames: int, size: int, steps: int, rounds: int) -> tuple[float, float]:
    """Median step time of MotionDirector and of the plain step, alternating step by step in one trainer run
    (``steps * rounds`` of each after a warm-up pair): on a shared machine, load from other processes then hits
    both alike instead of skewing one of them."""
    seconds = step_seconds(backbone, AlternatingSteps(), frames, size, 2 * steps * rounds + 1)
    # seconds[i] is step i + 1 (0-based), the warm-up step 0 excluded: odd i are MotionDirector's even steps.
    md, plain = seconds[1::2], seconds[0::2][1:]  # the first plain step is still warming up
    return statistics.median(md), statistics.median(plain)


FAMILIES = ("unet3d", "wan")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m motion_core.bench train", description=__doc__.split("\n")[0])
    parser.add_argument("--family", default="all", choices=[*FAMILIES, "overhead", "all"],
                        help="which figures: one family's step ratios (and memory), the trainer's overhead, or all")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round (after one warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of MotionDirector / plain steps")
    parser.add_argument("--size", type=int, default=32, help="training size in pixels for the step-time ratios")
    parser.add_argument("--frames", default="8,16", type=_ints, help="UNet clip lengths for the step-time ratio")
    parser.add_argument("--wan-frames", default="5,9", type=_ints,
                        help="tiny Wan clip lengths for the step-time ratio (1 + 4k)")
    parser.add_argument("--wan-width", type=int, default=0,
                        help="tiny Wan transformer width for the step-time ratio (a multiple of 128; 0: the tiny "
                             "Wan's own 128 with a 256-wide feed-forward)")
    parser.add_argument("--overhead-steps", type=int, default=20,
                        help="timed trainer / bare-loop step pairs of the trainer_overhead figure")
    parser.add_argument("--wan-memory-frames", type=int, default=9, help="Wan 1.3B memory clip length (1 + 4k)")
    parser.add_argument("--wan-memory-pixels", type=int, default=128,
                        help="Wan 1.3B memory clip width = height in pixels (a multiple of 16)")
    parser.add_argument("--skip-memory", action="store_true", help="skip the real-architecture memory measurements")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads here and in the memory subprocesses (one: a shared machine's load then "
                             "slows both sides of a ratio alike)")
    args = parser.parse_args(argv)
    if any((f - 1) % 4 for f in (*args.wan_frames, args.wan_memory_frames)):
        parser.error("Wan clip lengths must be 1 + 4k frames (5, 9, 13, ...): its VAE compresses time by 4")
    if args.wan_width % 128 or args.wan_width < 0:
        parser.error("--wan-width must be a multiple of 128 (heads of 128 channels), or 0")
    if args.wan_memory_pixels % 16 or args.size % 8:
        parser.error("--wan-memory-pixels must be a multiple of 16 and --size of 8 (VAE factor x 2x2 patches)")
    return args


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def step_ratio_rows(label: str, key: str, backbone, frame_counts, args) -> tuple[dict, list]:
    """``key``_f<F> figures and table rows of the MotionDirector / plain step ratio, one per clip length."""
    figures, rows = {}, []
    for frames in frame_counts:
        md, plain = interleaved_medians(backbone, frames, args.size, args.steps, args.rounds)
        figures[f"{key}_f{frames}"] = round(md / plain, 3)
        rows.append((f"{label}: MotionDirector step / plain LoRA step, {frames} frames",
                     f"{md:.3f}s / {plain:.3f}s", f"{md / plain:.3f}", "<= 1.25"))
    return figures, rows


def memory_rows(label: str, key: str, **where) -> tuple[dict, list]:
    """``key`` (with / without checkpointing) and its table row; ``where`` goes to _train_memory.measure."""
    from ._train_memory import measure

    with_ckpt, without = measure(True, **where), measure(False, **where)
    row = (f"step memory with / without checkpointing, {label}",
           f"{with_ckpt / 2**20:.0f} MiB / {without / 2**20:.0f} MiB", f"{with_ckpt / without:.3f}", "<= 0.6")
    return {key: round(with_ckpt / without, 3)}, [row]


def unet_figures(args) -> tuple[dict, list]:
    figures, rows = step_ratio_rows("UNet3D", "md_step_ratio", real_shaped_backbone(), args.frames, args)
    if not args.skip_memory:
        more = memory_rows("ZeroScope 8f", "ckpt_memory_ratio", threads=args.threads)
        figures.update(more[0])
        rows += more[1]
    return figures, rows


def overhead_figures(args) -> tuple[dict, list]:
    """trainer_overhead on the built-in ShapesT2V: 64 px, 8 frames, rank 16 (the issue's settings)."""
    from ..backbones import load_backbone
    from ..toy.builtin import SHAPES_T2V_DIR

    backbone = load_backbone(SHAPES_T2V_DIR)
    ours, bare = overhead_medians(backbone, 8, 64, args.overhead_steps, 1)
    row = ("trainer's naive step (memory: auto) / bare loop, ShapesT2V 64 px 8f r16", f"{ours:.3f}s / {bare:.3f}s",
           f"{ours / bare:.3f}", "<= 1.05")
    return {"trainer_overhead": round(ours / bare, 3)}, [row]


def wan_figures(args) -> tuple[dict, list]:
    label = f"tiny Wan (width {args.wan_width})" if args.wan_width else "tiny Wan"
    figures, rows = step_ratio_rows(label, "wan_md_step_ratio", wide_wan_backbone(args.wan_width), args.wan_frames,
                                    args)
    if not args.skip_memory:
        from ._train_memory import wan_tokens

        frames, pixels = args.wan_memory_frames, args.wan_memory_pixels
        tokens = wan_tokens(frames, pixels)
        more = memory_rows(f"Wan 1.3B {frames}f {pixels}px ({tokens} tokens)", "wan_ckpt_memory_ratio",
                           model="wan2.1_t2v_1.3b", frames=frames, pixels=pixels, threads=args.threads)
        figures.update(more[0], wan_ckpt_memory_tokens=tokens)
        rows += more[1]
    return figures, rows


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    figures, rows = {}, []
    for family, measure in (("unet3d", unet_figures), ("wan", wan_figures), ("overhead", overhead_figures)):
        if args.family in (family, "all"):
            more = measure(args)
            figures.update(more[0])
            rows += more[1]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'values':<24} {'ratio':>7}  goal")
    for name, values, ratio, goal in rows:
        print(f"{name:<{width}}  {values:<24} {ratio:>7}  {goal}")
    print(json.dumps(figures))
    return 0
