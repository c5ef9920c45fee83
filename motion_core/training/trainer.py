"""train_motion_lora: the one training loop all recipes share.

Per run: prepare and cache the clips (latents and text states, once), inject the recipe's adapters under a
private prefix, then step: the recipe computes its loss terms and backward passes, the loop clips gradients,
steps AdamW and the LR schedule, reports progress, checkpoints, validates and honours cancel. The caller's global
RNG is left untouched and the model gets back exactly the adapters it had before, whatever happens.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import time
from pathlib import Path

import torch

from ..backbones.base import move
from ..backbones.memory import MemoryOptions, MemoryPlan, move_outside_blocks
from ..clips import Clip, ClipSet
from ..errors import CancelledError, InvalidInputError, MotionCoreError, TrainingError
from ..lora import adapter_parameters, add_adapter, remove_adapter
from ..lora.control import sync_adapters
from ..lora.registry import registry
from ..lora.state import adapter_state_dict, load_adapter_state
from ..recipes import Recipe, get_recipe
from . import checkpoint as ckpt
from .auto_memory import plan_run
from .callbacks import ProgressInfo, TrainingCallbacks
from .config import TrainingConfig
from .context import StepContext
from .data import add_clip_extras, cache_samples, drop_start_image
from .distributed import GradientSum
from .distributed import current as current_processes
from .optim import build_optimizer, build_scheduler, stage_at
from .outputs import TrainingResult, build_loras
from .precision import Precision
from .weight_checks import all_finite

ADAPTER_PREFIX = "train_"


def train_motion_lora(backbone, clips: ClipSet, recipe: "str | Recipe", config: TrainingConfig | None = None,
                      callbacks: TrainingCallbacks | None = None, *, regularisation_clips: ClipSet | None = None,
                      training_caption: str | None = None, resume_from=None) -> TrainingResult:
    """Train ``recipe`` on ``clips`` and return the motion LoRA (plus appearance by-products) as values.

    recipe: a name from ``motion_core.recipes.RECIPES`` (METHODS.md defaults) or a configured Recipe.
    training_caption: the prompt used instead of each clip's caption (VMC's appearance-invariant caption);
    regularisation_clips: NewMove's related-motion clips, trained with their own captions. resume_from: a
    checkpoint of an earlier run with the same clips, recipe and config; the result equals an uninterrupted run's.
    Raises InvalidInputError (bad config or data), TrainingError (NaN/inf loss), CancelledError (after a checkpoint).
    """
    recipe = get_recipe(recipe)
    config = config or TrainingConfig()
    clips = ClipSet(tuple(clips)) if not isinstance(clips, ClipSet) else clips
    if len(clips) == 0 or not all(isinstance(c, Clip) for c in clips):
        raise InvalidInputError("Training needs at least one reference clip; connect a video loader.")
    if regularisation_clips is not None and len(regularisation_clips) and not recipe.uses_regularisation_clips:
        raise InvalidInputError(f"Recipe {recipe.name!r} does not use regularisation clips; use 'newmove' or "
                                "disconnect them.")
    settings = config.resolve(recipe.config.for_clip_count(len(clips)))
    if config.timestep_skew is not None and config.timestep_skew != recipe.config.timestep_skew:
        recipe = type(recipe)(recipe.config, timestep_skew=float(config.timestep_skew))
    run = _Run(backbone, clips, recipe, config, settings, callbacks or TrainingCallbacks(),
               regularisation_clips or ClipSet(), training_caption)
    return run.execute(resume_from)


class _Run:
    def __init__(self, backbone, clips, recipe, config, settings, callbacks, regularisation_clips, caption):
        self.backbone, self.clips, self.recipe = backbone, clips, recipe
        self.config, self.settings, self.callbacks = config, settings, callbacks
        self.regularisation_clips, self.training_caption = regularisation_clips, caption
        self.stages, self.history, self.written = recipe.stages(settings.steps), [], []
        self.last_checkpoint: Path | None = None
        self.checkpoint_step = -1

    # ---- set-up and tear-down ---------------------------------------------------------------------------------
    def execute(self, resume_from) -> TrainingResult:
        self.dist = current_processes(self.config.device or str(self.backbone.device))
        if self.config.batch_size < self.dist.world_size:
            raise InvalidInputError(
                f"batch_size is the global batch, dealt out over the {self.dist.world_size} processes; it is "
                f"{self.config.batch_size}, so some processes would have nothing to train. Set it to at least "
                f"{self.dist.world_size} (--batch-size {self.dist.world_size}), or launch fewer processes.")
        requested = self.dist.device(self.config.device)
        device = torch.device(requested) if requested else self.backbone.device
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.config.seed)
            self.generator = torch.Generator().manual_seed(self.config.seed)
            options = self._plan_memory(device)
            # Before any move: with block offload a 14B model's blocks must never be sent to the GPU whole.
            self.memory = MemoryPlan(self.backbone, options, device)
            home = self.backbone.device
            try:
                return self._execute(device, resume_from)
            finally:
                self.memory.restore()
                if self.memory.options.active:
                    # The options put back what they changed (offloaded blocks, fp8 originals); the rest follows.
                    self._use_device(home)
                if device.type == "cuda" and self.memory.options.active:
                    torch.cuda.empty_cache()  # the fp8 copies and onloaded blocks just freed

    def _plan_memory(self, device: torch.device) -> MemoryOptions:
        """The run's memory plan (training/memory_plan.py) and the options it implies: auto's choice, or the
        config's own in manual mode. A plan that cannot be made (an architecture the meta trace cannot run) is a
        warning, and the run goes on with the config's options as manual mode reads them."""
        self.plan, self.plan_warnings = None, []
        self.checkpointing = self.config.gradient_checkpointing is not False
        try:
            self.plan = plan_run(self.backbone, self.recipe, self.config, self.settings, device,
                                 clips=len(self.clips) + len(self.regularisation_clips))
        except MotionCoreError:
            raise
        except Exception as error:  # noqa: BLE001 - the plan is advice; training must not depend on it
            self.plan_warnings.append(f"The memory plan could not be made ({type(error).__name__}: {error}); "
                                      "training with the memory options as set (checkpointing on unless off).")
            return self.config.memory_options
        if self.config.memory == "manual":
            return self.config.memory_options
        chosen, fixed_offload = self.plan.settings, self.config.block_offload is True
        self.checkpointing = chosen.gradient_checkpointing
        return MemoryOptions(base_storage=chosen.base_storage, block_offload=chosen.block_offload or fixed_offload,
                             offload_count=chosen.offloaded_blocks or None)

    def _execute(self, device: torch.device, resume_from) -> TrainingResult:
        """Everything between the memory options going on and coming off (execute's finally undoes them)."""
        self._use_device(device)
        self.precision = Precision(self.config.mixed_precision, device)
        c = self.config
        cache = dict(frames=c.frames, width=c.width, height=c.height, start_image=c.start_image,
                     recolour=c.recolour, shift_copies=c.shift_copies)
        self.samples = cache_samples(self.backbone, self.recipe, self.clips,
                                     training_caption=self.training_caption, **cache)
        self.regularisation = cache_samples(self.backbone, self.recipe, self.regularisation_clips,
                                            regularisation=True, **cache)
        add_clip_extras(self.backbone, self.recipe, self.clips, self.samples, frames=self.config.frames,
                        width=self.config.width, height=self.config.height)
        self._offload_encoders(True)
        denoiser = self.backbone.denoiser
        had_checkpointing = bool(getattr(self.backbone, "gradient_checkpointing", False))
        was_training = denoiser.training
        self.names: dict[str, str] = {}
        try:
            self._add_adapters()
            if self.checkpointing:
                self.backbone.enable_gradient_checkpointing()
            self.dist.shard_base(denoiser, self.params, device)
            denoiser.train()
            # Every switch in the loop starts from this state (lora/control.py switch_adapters): the memory options,
            # checkpointing and sharding above are in place, the base frozen, our adapters off until a step asks.
            sync_adapters(denoiser)
            start = self._restore(resume_from) if resume_from else 0
            self._loop(start)
            steps_done = self.settings.steps
            warnings = self._final_save(steps_done)
            motion, appearance = build_loras(
                self.backbone, self.recipe, adapter_names=self.names, captions=list({s.clip_index: s.caption for s in self.samples}.values()),
                config=self.config, settings=self.settings, steps_done=steps_done, name=self.config.name)
            return TrainingResult(motion, appearance, list(self.history), self.last_checkpoint, steps_done,
                                  [*self.plan_warnings, *warnings], self.plan)
        finally:
            for name in self.names.values():
                if name in registry(denoiser):
                    remove_adapter(denoiser, name)
            if self.checkpointing and not had_checkpointing:
                self.backbone.disable_gradient_checkpointing()
            denoiser.train(was_training)
            self._offload_encoders(False)
            if device.type == "cuda":
                torch.cuda.empty_cache()

    def _use_device(self, device: torch.device) -> None:
        if device != self.backbone.device:
            for part in self.backbone.encoders():
                move(part, device)
            if self.dist.shards_base:
                pass  # each process moves its share of the denoiser when it is sharded (distributed.py)
            elif self.memory.offloads_blocks:
                move_outside_blocks(self.backbone.denoiser, self.memory.offloaded, device)
            else:
                move(self.backbone.denoiser, device)
            self.backbone.device = device

    def _offload_encoders(self, offload: bool) -> None:
        """On CUDA the encoders wait on the CPU while the denoiser trains (their outputs are cached)."""
        if self.backbone.device.type != "cuda":
            return
        target = torch.device("cpu") if offload else self.backbone.device
        for part in self.backbone.encoders():
            move(part, target)
        if offload:
            torch.cuda.empty_cache()

    def _add_adapters(self) -> None:
        s = self.settings
        specs = self.recipe.adapters(self.backbone, len(self.clips), rank=s.rank, alpha=s.alpha, dropout=s.dropout)
        denoiser = self.backbone.denoiser
        taken = set(registry(denoiser))
        for spec in specs:
            name = ADAPTER_PREFIX + spec.name
            if name in taken:
                raise InvalidInputError(f"The model already carries an adapter named {name!r} from another run; "
                                        "reload the model.")
            add_adapter(denoiser, dataclasses.replace(spec, name=name), enabled=False, trainable=False)
            self.names[spec.name] = name
        self.memory.adapters_added()
        self.params = [p for name in self.names.values() for p in adapter_parameters(denoiser, name)]
        self.optimizer, self.optimizer_name = build_optimizer(
            self.params, lr=s.lr, weight_decay=s.weight_decay, choice=self.config.optimizer,
            device=self.backbone.device)
        self.scheduler = build_scheduler(self.optimizer, self.stages, s.lr_schedule, self.config.warmup_steps)

    # ---- checkpoints ------------------------------------------------------------------------------------------
    def _checkpoint_dir(self) -> Path:
        if self.config.checkpoint_dir:
            return Path(self.config.checkpoint_dir)
        if not hasattr(self, "_default_dir"):
            self._default_dir = Path(tempfile.mkdtemp(prefix=f"{self.recipe.name}-", dir=ckpt.temp_checkpoint_root()))
        return self._default_dir

    def _save(self, steps_done: int) -> Path:
        # Several processes hold the same state: process 0 writes, the others learn where (or its error).
        path = self.dist.on_main(lambda: self._write_checkpoint(steps_done))
        self.last_checkpoint, self.checkpoint_step = path, steps_done
        return path

    def _write_checkpoint(self, steps_done: int) -> Path:
        path = ckpt.save_checkpoint(
            ckpt.checkpoint_path(self._checkpoint_dir(), steps_done), step=steps_done, recipe=self.recipe.name,
            recipe_config=self.recipe.config.to_dict(), training_config=self.config.to_dict(),
            adapters={n: adapter_state_dict(self.backbone.denoiser, p) for n, p in self.names.items()},
            optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
            scaler=self.precision.state_dict(), rng=ckpt.capture_rng(self.generator), history=self.history,
            fingerprint=self.backbone.fingerprint(), signature=self._signature())
        # Keep only the newest checkpoint of this run (each is complete); never delete one we resumed from.
        for old in self.written:
            if old != path and old.exists():
                old.unlink()
        self.written = [path]
        if self.callbacks.on_checkpoint:
            self.callbacks.on_checkpoint(path)
        return path

    def _final_save(self, steps_done: int) -> list[str]:
        """A failed last checkpoint (disk full) must not throw the trained adapters away: they are returned anyway,
        and the older checkpoint, never deleted before a newer one is written, stays resumable."""
        if not self.config.checkpoint_every or self.checkpoint_step == steps_done:
            return []
        try:
            self._save(steps_done)
        except MotionCoreError as error:
            kept = (f"the checkpoint of step {self.checkpoint_step} is kept at {self.last_checkpoint}"
                    if self.last_checkpoint else "no earlier checkpoint exists")
            return [f"The final checkpoint could not be written ({error}); the trained LoRA is returned anyway "
                    f"and {kept}."]
        return []

    def _signature(self) -> dict:
        layout = ckpt.adapter_layout({n: adapter_state_dict(self.backbone.denoiser, p) for n, p in self.names.items()})
        return ckpt.run_signature(
            recipe=self.recipe.name, recipe_config=self.recipe.config.to_dict(), settings=self.settings,
            config=self.config, clips=self.clips, regularisation_clips=self.regularisation_clips,
            training_caption=self.training_caption, adapter_layout=layout)

    def _restore(self, resume_from) -> int:
        state = ckpt.load_checkpoint(resume_from)
        total, done = self.settings.steps, int(state["step"])
        current = json.loads(json.dumps(self._signature()))  # tuples become lists, as in the saved copy
        saved = state["signature"] or {
            "recipe": state["recipe"], "recipe_config": state["recipe_config"],
            "config": state["training_config"], "adapters": ckpt.adapter_layout(state["adapters"])}
        differences = ckpt.signature_differences(saved, current)
        if done > total and not any(d.startswith("steps:") for d in differences):
            differences.insert(0, f"steps: checkpoint already holds {done}, this run has {total} in all")
        if differences:
            raise InvalidInputError(
                f"{resume_from} is not this run, so resuming would mix two trainings:\n  - "
                + "\n  - ".join(differences)
                + f"\nResume with the checkpoint's settings and clips (it holds step {done} of a "
                f"{saved.get('settings', {}).get('steps', '?')}-step {state['recipe']!r} run), or start a new run "
                "without --resume / resume_from.")
        if state["fingerprint"] != self.backbone.fingerprint():
            raise InvalidInputError(f"{resume_from} was trained on another base model; load that model to resume.")
        for name, tensors in state["adapters"].items():
            load_adapter_state(self.backbone.denoiser, self.names[name], tensors)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.precision.load_state_dict(state["scaler"])
        ckpt.restore_rng(state["rng"], self.generator)
        self.history = list(state["history"])
        self.last_checkpoint, self.checkpoint_step = Path(resume_from), done
        if self.config.checkpoint_dir is None:
            self._default_dir = Path(resume_from).parent
        return done

    # ---- the loop -----------------------------------------------------------------------------------------------
    def _loop(self, start: int) -> None:
        total, began = self.settings.steps, time.perf_counter()
        for step in range(start, total):
            if self.dist.any(bool(self.callbacks.should_cancel and self.callbacks.should_cancel())):
                path = self._save(step)
                raise CancelledError(f"Training cancelled after {step} of {total} steps; checkpoint saved to {path}. "
                                     "Resume from it to continue.")
            stage, _ = stage_at(self.stages, step)
            values = self._one_step(step, stage.name)
            lr = self.scheduler.get_last_lr()[0]
            self.scheduler.step()
            self.history.append({"step": step + 1, "stage": stage.name, "lr": lr, **values})
            done = step + 1
            if self.callbacks.on_progress and self.dist.is_main:
                elapsed = time.perf_counter() - began
                rate = (done - start) / elapsed if elapsed > 0 else 0.0
                eta = (total - done) / rate if rate > 0 else 0.0
                self.callbacks.on_progress(ProgressInfo(done, total, stage.name, values, lr, rate, eta, elapsed))
            # The last step's checkpoint is the final save's, which survives a full disk (_final_save).
            if self.config.checkpoint_every and done % self.config.checkpoint_every == 0 and done < total:
                self._save(done)
            if (self.config.validate_every and done % self.config.validate_every == 0 and self.callbacks.on_validation
                    and self.dist.is_main):
                self._validate(done)

    def _one_step(self, step: int, stage: str) -> dict[str, float]:
        self.optimizer.zero_grad(set_to_none=True)
        batch, sums = self.config.batch_size, {}
        gradients = GradientSum(self.params) if batch > 1 or self.dist.active else None
        for generator in self._sample_generators(batch):
            ctx = StepContext(self.backbone, self.recipe, generator, self._pick_sample(generator), stage=stage,
                              step=step, loss_scale=1.0 / batch, precision=self.precision, adapter_names=self.names)
            for key, value in self.recipe.step(ctx).items():
                sums[key] = sums.get(key, 0.0) + float(value) / batch
            if gradients is not None:
                gradients.add()
        if gradients is not None:
            sums = self.dist.sum_terms(sums)
            gradients.finish(self.dist)
        if not all(math.isfinite(v) for v in sums.values()):
            self._fail(step, f"the loss became {sums.get('total')}", sums)
        self.precision.unscale(self.optimizer)
        with_grad = [p for p in self.params if p.grad is not None]
        if self.settings.grad_clip > 0 and with_grad:
            norm = torch.nn.utils.clip_grad_norm_(with_grad, self.settings.grad_clip)
            if self.precision.scaler is None and not math.isfinite(float(norm)):
                self._fail(step, "the gradients became infinite or NaN", sums)
        self.precision.step(self.optimizer)
        # With grad_clip 0 nothing above looks at the gradients: an infinite one would leave NaN adapter weights that
        # the final save would write. The adapters are small, so this reduction costs little next to the step.
        if self.params and not all_finite(self.params):
            self._fail(step, "the LoRA weights became infinite or NaN", sums)
        return sums

    def _fail(self, step: int, what: str, terms: dict) -> None:
        kept = (f"The last good checkpoint is kept: {self.last_checkpoint}." if self.last_checkpoint
                else "No checkpoint was written yet (set checkpoint_every to keep one).")
        detail = ", ".join(f"{k}={v}" for k, v in terms.items())
        raise TrainingError(f"Training stopped at step {step + 1}: {what} ({detail}). Lower the learning rate "
                            f"(now {self.settings.lr:g}, try {self.settings.lr / 10:g}) or the resolution and train "
                            f"again. {kept}")

    def _sample_generators(self, batch: int):
        """Each sample's generator: one sample a step, the run's own; several, a seed each drawn from it (the global RNG
        too, for LoRA dropout), so a batch split over processes (distributed.py) trains what one process trains."""
        if batch == 1 and not self.dist.active:
            yield self.generator
            return
        seeds = torch.randint(0, 2**62, (batch,), generator=self.generator).tolist()
        for index in self.dist.my_samples(batch):
            torch.manual_seed(seeds[index])
            yield torch.Generator().manual_seed(seeds[index])

    def _pick_sample(self, generator: torch.Generator):
        """This step's clip (a regularisation clip at the recipe's ratio), its start image dropped at the set share."""
        ratio = self.recipe.regularisation_ratio
        if self.regularisation and ratio > 0 and float(torch.rand((1,), generator=generator)) < ratio:
            pool = self.regularisation
        else:
            pool = self.samples
        sample = pool[int(torch.randint(0, len(pool), (1,), generator=generator))] if len(pool) > 1 else pool[0]
        return drop_start_image(sample, self.config.start_image_dropout, generator)

    def _validate(self, step: int) -> None:
        denoiser = self.backbone.denoiser
        motion = self.names[self.recipe.motion_adapter]
        devices = [self.backbone.device.index or 0] if self.backbone.device.type == "cuda" else []
        for name, state in registry(denoiser).items():
            state.enabled, state.trainable = name == motion, False
        sync_adapters(denoiser)
        self._offload_encoders(False)
        try:
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                denoiser.eval()
                self.callbacks.on_validation(step, self.backbone)
        finally:
            denoiser.train()
            self._offload_encoders(True)
