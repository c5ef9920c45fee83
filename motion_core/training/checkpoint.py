"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint holds the adapters' weights (canonical keys), the optimiser, LR-scheduler and grad-scaler states, the
RNG states (global torch, CUDA, the trainer's own generator), the step, the loss history and both configs. It is
one file written atomically (a crash never leaves half a checkpoint) and read back with ``weights_only=True``, so
loading a checkpoint can never run code.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch

from ..errors import InvalidInputError
from ..lora.files import atomic_write

CHECKPOINT_FORMAT = "motion_core.training_checkpoint"
CHECKPOINT_VERSION = 1


def checkpoint_path(folder: Path, step: int) -> Path:
    return Path(folder) / f"checkpoint-step{step:06d}.pt"


def capture_rng(generator: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, *, step: int, recipe: str, recipe_config: dict, training_config: dict,
                    adapters: dict[str, dict[str, torch.Tensor]], optimizer: dict, scheduler: dict, scaler: dict,
                    rng: dict, history: list[dict], fingerprint: str) -> Path:
    state = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "step": int(step), "recipe": recipe,
        # Configs and history as JSON text: weights_only loading accepts it and a person can read it.
        "recipe_config": json.dumps(recipe_config), "training_config": json.dumps(training_config),
        "history": json.dumps(history), "fingerprint": fingerprint,
        "adapters": adapters, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler, "rng": rng,
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, buffer.getvalue())
    return Path(path)


def load_checkpoint(path) -> dict:
    """The checkpoint's contents with configs and history decoded; InvalidInputError when it is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"Checkpoint {path} not found. Pick a checkpoint-step*.pt file from the run's "
                                "checkpoint folder.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types; all mean "not a usable checkpoint"
        raise InvalidInputError(f"{path} is not a readable training checkpoint ({err}).") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InvalidInputError(f"{path} is not a motion_core training checkpoint (a LoRA file cannot be resumed).")
    if state.get("version") != CHECKPOINT_VERSION:
        raise InvalidInputError(f"{path} is a version {state.get('version')} checkpoint; this version reads "
                                f"{CHECKPOINT_VERSION}.")
    for key in ("recipe_config", "training_config", "history"):
        state[key] = json.loads(state[key])
    return state
