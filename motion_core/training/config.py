"""TrainingConfig: the run's knobs as data, shared by the node, the CLI and the tests.

Optimiser knobs left as None take the recipe's METHODS.md defaults (``resolve``), so "MotionDirector with defaults"
means the paper's lr, rank and steps without the caller knowing them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from ..backbones.memory import BASE_STORAGES, MemoryOptions
from ..devices import resolve_device
from ..errors import InvalidInputError
from .precision import PRECISIONS

LR_SCHEDULES = ("constant", "cosine")
_finite = math.isfinite  # inf passes "> 0", and NaN slips through any check written as "not (x < 0)"
MEMORY_MODES = ("auto", "manual")
START_IMAGE_TRAINING = ("auto", "first_frame", "none")
MANUAL_DEFAULTS = {"gradient_checkpointing": True, "base_storage": "native", "block_offload": False}
"""What the memory options mean when left unset in manual mode (the defaults before the memory plan existed)."""
OPTIMIZERS = ("auto", "adamw", "adamw8bit")


@dataclass(frozen=True)
class TrainingConfig:
    """One training run. steps/lr/rank/alpha/weight_decay/dropout/grad_clip/lr_schedule: None = recipe default.

    width/height: training resolution in pixels (multiples of 8; clips are resized and center-cropped to it).
    frames: frames per clip (taken with an even integer stride from the start of the clip). checkpoint_every /
    validate_every: 0 = never (a checkpoint is still written on cancel). checkpoint_dir: None = a folder under
    the system temp dir. mixed_precision: auto (bf16/fp16 autocast on CUDA, fp32 on CPU), fp32, bf16, fp16.
    optimizer: auto (8-bit AdamW when bitsandbytes is importable and the device is CUDA, else AdamW). device:
    None = where the backbone is; another device moves the backbone there.

    memory: "auto" (the default) plans the run's memory before it starts (training/memory_plan.py) and picks the
    cheapest of gradient_checkpointing, base_storage and block_offload that fits the device's free memory with a
    margin (training/auto_memory.py), or refuses, saying what would fit; any of the three set explicitly is kept as
    set and only the others are chosen. "manual": the three apply as set, unset ones as MANUAL_DEFAULTS (checkpointing
    on, native storage, no offload); the plan is still made and reported, never enforced.
    offload_blocks: with block offload, how many blocks to keep on the host (None: all; auto picks the fewest).

    Memory (backbones/memory.py; both undone after the run so the loaded model samples the same afterwards):
    base_storage "fp8" stores the frozen base's Linear weights as float8_e4m3fn, upcast per layer at compute (half
    of bf16; any device; weights rounded to 3 mantissa bits, LoRAs stay full precision).
    block_offload keeps the transformer blocks (Wan) on the CPU and copies each to the GPU as it runs; it needs
    gradient_checkpointing and trades speed (two copies per block per step) for memory. With bf16 and checkpointing,
    both are what the 14B Wan models need to train on a 24 GB card. For the node author: expose them as a
    "base_storage" combo (native, fp8) and a "block_offload" toggle with that advice in the tooltips.
    """

    steps: int | None = None
    lr: float | None = None
    rank: int | None = None
    alpha: float | None = None
    weight_decay: float | None = None
    dropout: float | None = None
    grad_clip: float | None = None
    lr_schedule: str | None = None
    warmup_steps: int = 0
    width: int = 256
    height: int = 256
    frames: int = 16
    seed: int = 0
    batch_size: int = 1
    checkpoint_every: int = 0
    checkpoint_dir: str | None = None
    validate_every: int = 0
    mixed_precision: str = "auto"
    gradient_checkpointing: bool | None = None
    optimizer: str = "auto"
    device: str | None = None
    name: str = ""
    base_storage: str | None = None
    block_offload: bool | None = None
    timestep_skew: float | None = None
    """None = the recipe's own law of training noise levels (uniform; NewMove 2). k > 1 favours high noise, where
    a clip's motion is decided: on ShapesT2V a one-shot MotionDirector LoRA carries the reference's path at k = 3
    and not at k = 1 (docs/benchmarks.md)."""

    memory: str = "auto"
    offload_blocks: int | None = None
    start_image: str = "auto"
    """Image-to-video training (data.py): "auto" gives models that need a start image (Wan I2V) each clip's own
    first frame as it; "first_frame" does so for models where it is optional too (Wan 2.2 TI2V 5B's I2V mode);
    "none" trains text-to-video (refused for models that need an image)."""
    recolour: int = 0
    """Image-to-video: this many hue-rotated copies of each reference clip train beside it (the whole clip turned,
    so its first frame and its motion still agree): the motion is seen from several start images and binds less to
    the reference's own look. 0: the clips as given."""
    shift_copies: int = 0
    """Image-to-video: this many copies of each reference clip moved as a whole (every frame by the same offset,
    video/shift.py) train beside it, so the start image's subject sits at other places while the motion is the same.
    Combines with recolour (each shifted copy is recoloured too). 0: none."""
    start_image_dropout: float = 0.0
    """Image-to-video: on this share of training steps the clip is trained with the model's "no start image"
    condition (concat models: mask 0 and gray image latents; TI2V: no clean first frame), so the LoRA must carry the
    motion without leaning on the reference's picture. Drawn from the run's seeded generator. 0: never."""

    def __post_init__(self):
        if self.memory == "manual":  # unset options mean what they meant before the plan: fixed defaults
            for name, value in MANUAL_DEFAULTS.items():
                if getattr(self, name) is None:
                    object.__setattr__(self, name, value)

    @property
    def memory_options(self) -> MemoryOptions:
        """The options as set, unset ones as in manual mode (what auto starts from; see auto_memory)."""
        return MemoryOptions(base_storage=self.base_storage or "native", block_offload=bool(self.block_offload),
                             offload_count=self.offload_blocks)

    @property
    def fixed_memory_options(self) -> dict:
        """The memory options the user set (auto keeps these and chooses the rest)."""
        return {name: getattr(self, name) for name in MANUAL_DEFAULTS if getattr(self, name) is not None}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainingConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def resolve(self, recipe_config) -> "ResolvedSettings":
        """The optimiser settings of this run: ours where set, the recipe's otherwise; validated."""
        pick = {name: getattr(self, name) if getattr(self, name) is not None else getattr(recipe_config, name)
                for name in ("steps", "lr", "rank", "weight_decay", "dropout", "grad_clip", "lr_schedule")}
        alpha = self.alpha if self.alpha is not None else recipe_config.alpha
        settings = ResolvedSettings(**pick, alpha=float(alpha if alpha is not None else pick["rank"]))
        self.validate(settings)
        return settings

    def validate(self, s: "ResolvedSettings") -> None:
        checks = [
            (s.steps >= 1, f"steps must be at least 1; got {s.steps}. Set steps to e.g. 150."),
            (_finite(s.lr) and s.lr > 0, f"lr must be positive and finite; got {s.lr}. Try 1e-4 to 5e-4."),
            (s.rank >= 1, f"rank must be at least 1; got {s.rank}. Try 16 or 32."),
            (_finite(s.alpha) and s.alpha > 0,
             f"alpha must be positive and finite; got {s.alpha}. Leave it unset to use alpha = rank."),
            (_finite(s.weight_decay) and s.weight_decay >= 0,
             f"weight_decay must be a finite number >= 0; got {s.weight_decay}. Try 1e-2."),
            (0 <= s.dropout < 1, f"dropout must be in [0, 1); got {s.dropout}."),
            (_finite(s.grad_clip) and s.grad_clip >= 0,
             f"grad_clip must be a finite number >= 0 (0 disables clipping); got {s.grad_clip}."),
            (s.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {LR_SCHEDULES}; got {s.lr_schedule!r}."),
            (self.start_image in START_IMAGE_TRAINING,
             f"start_image must be one of {START_IMAGE_TRAINING}; got {self.start_image!r}."),
            (isinstance(self.recolour, int) and 0 <= self.recolour <= 8,
             f"recolour must be a whole number from 0 to 8; got {self.recolour!r}. Try 2."),
            (isinstance(self.shift_copies, int) and not isinstance(self.shift_copies, bool)
             and 0 <= self.shift_copies <= 8,
             f"shift_copies must be a whole number from 0 to 8; got {self.shift_copies!r}. Try 4."),
            (isinstance(self.start_image_dropout, (int, float)) and not isinstance(self.start_image_dropout, bool)
             and 0 <= self.start_image_dropout < 1,
             f"start_image_dropout must be a share of steps in [0, 1); got {self.start_image_dropout!r}. Try 0.3."),
            (0 <= self.warmup_steps < s.steps,
             f"warmup_steps must be in [0, steps); got {self.warmup_steps} for {s.steps} steps."),
            (self.frames >= 1, f"frames must be at least 1; got {self.frames}."),
            (self.batch_size >= 1, f"batch_size must be at least 1; got {self.batch_size}."),
            (self.checkpoint_every >= 0, f"checkpoint_every must be >= 0 (0 = never); got {self.checkpoint_every}."),
            (self.validate_every >= 0, f"validate_every must be >= 0 (0 = never); got {self.validate_every}."),
            (self.mixed_precision in PRECISIONS,
             f"mixed_precision must be one of {PRECISIONS}; got {self.mixed_precision!r}."),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}; got {self.optimizer!r}."),
            (self.timestep_skew is None or (math.isfinite(self.timestep_skew) and self.timestep_skew > 0),
             f"timestep_skew must be a positive number (1 = uniform, 3 = favour high noise); got "
             f"{self.timestep_skew}."),
            (self.memory in MEMORY_MODES, f"memory must be one of {MEMORY_MODES}; got {self.memory!r}."),
            (self.base_storage is None or self.base_storage in BASE_STORAGES,
             f"base_storage must be one of {BASE_STORAGES}; got {self.base_storage!r}."),
            (self.offload_blocks is None or self.offload_blocks >= 1,
             f"offload_blocks must be at least 1 (or unset for all blocks); got {self.offload_blocks}."),
            (not self.block_offload or self.gradient_checkpointing is not False,
             "block_offload needs gradient_checkpointing: without it the backward pass keeps every block's weights "
             "on the GPU and nothing is saved. Turn gradient checkpointing on, or block offload off."),
        ]
        for name in ("width", "height"):
            value = getattr(self, name)
            checks.append((value >= 8 and value % 8 == 0,
                           f"{name}={value} must be a positive multiple of 8 (video models work on 8x smaller "
                           f"latents); use {max(8, value // 8 * 8)}."))
        for ok, message in checks:
            if not ok:
                raise InvalidInputError(message)
        if self.device is not None:
            resolve_device(self.device, "device")


@dataclass(frozen=True)
class ResolvedSettings:
    steps: int
    lr: float
    rank: int
    alpha: float
    weight_decay: float
    dropout: float
    grad_clip: float
    lr_schedule: str
