"""The trainer shared by all recipes: caching, optimiser and schedule, callbacks, checkpoints and resume.

    result = train_motion_lora(backbone, clips, "motion_director", TrainingConfig(frames=16, width=256, height=256),
                               TrainingCallbacks(on_progress=print))
    save_lora(result.motion_lora, "dance.safetensors")
"""

from .auto_memory import MemoryPlanError, plan_run
from .callbacks import ProgressInfo, TrainingCallbacks
from .checkpoint import load_checkpoint
from .config import LR_SCHEDULES, MEMORY_MODES, OPTIMIZERS, TrainingConfig
from .context import StepContext, TrainingSample
from .plot import plot_loss
from .precision import PRECISIONS
from .trainer import TrainingResult, train_motion_lora

__all__ = [
    "train_motion_lora", "TrainingConfig", "TrainingCallbacks", "TrainingResult", "ProgressInfo", "StepContext",
    "TrainingSample", "plot_loss", "load_checkpoint", "LR_SCHEDULES", "OPTIMIZERS", "PRECISIONS", "MEMORY_MODES",
    "MemoryPlanError", "plan_run",
]
