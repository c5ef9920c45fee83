"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint holds the adapters' weights (canonical keys), the optimiser, LR-scheduler and grad-scaler states, the
RNG states (global torch, CUDA, the trainer's own generator), the step, the loss history and both configs. It is
one file written atomically (a crash never leaves half a checkpoint) and read back with ``weights_only=True``, so
loading a checkpoint can never run code.

It also holds the run's signature (clips, recipe, optimiser settings, adapter layout, total steps), so a resume
can tell "the same run, continued" from "another run that happens to share a recipe" and name what differs.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import tempfile
from pathlib import Path

import torch

from ..errors import InvalidInputError
from ..lora.files import _empty_or_cut, atomic_write

# Resolved optimiser settings and training-config fields that change what a run learns. device, precision,
# checkpoint and validation cadence and the output name may change between the halves of a resumed run.
SIGNATURE_SETTINGS = ("steps", "lr", "rank", "alpha", "weight_decay", "dropout", "grad_clip", "lr_schedule")
SIGNATURE_CONFIG = ("frames", "width", "height", "seed", "batch_size", "warmup_steps")

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
                    rng: dict, history: list[dict], fingerprint: str, signature: dict | None = None) -> Path:
    state = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "step": int(step), "recipe": recipe,
        # Configs and history as JSON text: weights_only loading accepts it and a person can read it.
        "recipe_config": json.dumps(recipe_config), "training_config": json.dumps(training_config),
        "history": json.dumps(history), "fingerprint": fingerprint, "signature": json.dumps(signature or {}),
        "adapters": adapters, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler, "rng": rng,
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, buffer.getvalue())
    return Path(path)


def _shown(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 200 else text[:120] + "…"


def not_found_or_unreadable(path) -> InvalidInputError:
    """The one message for a checkpoint that cannot be opened: missing, not a plain file, or not readable (no
    permission, a name the OS refuses). One text for all, so resume_from cannot tell which paths exist."""
    return InvalidInputError(
        f"Checkpoint {_shown(Path(path))} not found or not readable. Pick a checkpoint-step*.pt file from the run's "
        "checkpoint folder, one the user running this can read.")


def _open_regular(path: Path):
    """The opened file, or None when it is missing, not a plain file or cannot be opened (all alike)."""
    try:
        if not path.is_file():
            return None
        return open(path, "rb")
    except (OSError, ValueError):  # ValueError: a NUL byte in the name
        return None


def load_checkpoint(path) -> dict:
    """The checkpoint's contents with configs and history decoded; InvalidInputError when it is not one of ours."""
    path = Path(path)
    handle = _open_regular(path)
    if handle is None:
        raise not_found_or_unreadable(path)
    try:
        with handle:
            state = torch.load(handle, map_location="cpu", weights_only=True)
    except OSError:  # the file went away or failed mid-read: the same answer as one that is not there
        raise not_found_or_unreadable(path) from None
    except Exception as err:  # unpickling errors come in many types; all mean "not a usable checkpoint"
        raise InvalidInputError(
            f"{path} is not a readable training checkpoint ({_empty_or_cut(path)}, or it holds code-carrying "
            "pickles). Pick another checkpoint-step*.pt file of the run, or start the run again.") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InvalidInputError(f"{path} is not a motion_core training checkpoint (a LoRA file cannot be resumed).")
    if state.get("version") != CHECKPOINT_VERSION:
        raise InvalidInputError(f"{path} is a version {state.get('version')} checkpoint; this version reads "
                                f"{CHECKPOINT_VERSION}.")
    try:
        for key in ("recipe_config", "training_config", "history"):
            state[key] = json.loads(state[key])
        state["signature"] = json.loads(state.get("signature") or "{}")
        adapters = state["adapters"]
        bad = [f"{name}.{key}" for name, tensors in adapters.items() for key, t in tensors.items()
               if not isinstance(t, torch.Tensor) or not bool(torch.isfinite(t.float()).all())]
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise InvalidInputError(f"{path} is damaged: a required part ({err.__class__.__name__}) is missing or "
                                "unreadable. Pick another checkpoint of the run.") from None
    if bad:
        raise InvalidInputError(f"{path}: adapter tensor {bad[0]!r} holds NaN or infinite values, so resuming would "
                                "only repeat a diverged run. Resume from an earlier checkpoint with a lower lr.")
    return state


def clip_fingerprint(clip) -> str:
    """Frames, fps and caption of a clip, hashed: the same video read with the same options gives the same value."""
    digest = hashlib.sha256()
    frames = clip.frames.contiguous()
    digest.update(str(tuple(frames.shape)).encode())
    digest.update(frames.numpy().tobytes())
    digest.update(f"{float(clip.fps):.6g}|{clip.caption}".encode())
    return digest.hexdigest()[:16]


def run_signature(*, recipe: str, recipe_config: dict, settings, config, clips, regularisation_clips,
                  training_caption, adapter_layout: dict) -> dict:
    """JSON-ready description of what a run learns from; equal signatures mean a resume continues the same run."""
    return {
        "recipe": recipe,
        "recipe_config": recipe_config,
        "settings": {k: getattr(settings, k) for k in SIGNATURE_SETTINGS},
        "config": {k: getattr(config, k) for k in SIGNATURE_CONFIG},
        "clips": [clip_fingerprint(c) for c in clips],
        "regularisation_clips": [clip_fingerprint(c) for c in regularisation_clips],
        "training_caption": training_caption,
        "adapters": adapter_layout,
    }


def adapter_layout(adapters: dict[str, dict[str, torch.Tensor]]) -> dict:
    """{adapter: {module: rank}}: which modules each adapter targets and at what rank."""
    layout = {}
    for name, tensors in adapters.items():
        layout[name] = {k[: -len(".lora_A.weight")]: int(t.shape[0]) for k, t in tensors.items()
                        if k.endswith(".lora_A.weight")}
    return layout


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def signature_differences(saved: dict, current: dict) -> list[str]:
    """Human lines, one per difference ("rank: checkpoint 4, this run 8"); empty when the runs match."""
    lines = []
    if saved.get("recipe", current["recipe"]) != current["recipe"]:
        lines.append(f"recipe: checkpoint {saved['recipe']!r}, this run {current['recipe']!r}")
    for group in ("settings", "config", "recipe_config"):
        old, new = saved.get(group) or {}, current[group]
        for key in sorted(set(old) & set(new)):
            if not _same(old[key], new[key]):
                lines.append(f"{key}: checkpoint {old[key]!r}, this run {new[key]!r}")
    for group, label in (("clips", "reference clips"), ("regularisation_clips", "regularisation clips")):
        if group not in saved:
            continue
        old, new = saved[group], current[group]
        if len(old) != len(new):
            lines.append(f"{label}: checkpoint has {len(old)}, this run {len(new)}")
        else:
            changed = [str(i + 1) for i, (a, b) in enumerate(zip(old, new)) if a != b]
            if changed:
                lines.append(f"{label}: clip {', '.join(changed)} differs (other frames, frame count, fps or caption)")
    if "training_caption" in saved and saved["training_caption"] != current["training_caption"]:
        lines.append(f"training_caption: checkpoint {saved['training_caption']!r}, this run "
                     f"{current['training_caption']!r}")
    lines += _layout_differences(saved.get("adapters"), current["adapters"])
    return lines


def _layout_differences(old: dict | None, new: dict) -> list[str]:
    if not old:
        return []
    lines = []
    if set(old) != set(new):
        lines.append(f"adapters: checkpoint {sorted(old)}, this run {sorted(new)}")
    for name in sorted(set(old) & set(new)):
        missing, extra = sorted(set(old[name]) - set(new[name])), sorted(set(new[name]) - set(old[name]))
        if missing or extra:
            lines.append(f"target modules of {name}: {len(missing)} only in the checkpoint, {len(extra)} only in this "
                         f"run (e.g. {(missing or extra)[0]})")
        ranks = {(old[name][m], new[name][m]) for m in set(old[name]) & set(new[name]) if old[name][m] != new[name][m]}
        for a, b in sorted(ranks)[:1]:
            lines.append(f"rank of {name}: checkpoint {a}, this run {b}")
    return lines


def temp_checkpoint_root() -> str:
    """Where checkpoints go when the run names no folder: one folder under the system's temp dir."""
    root = Path(tempfile.gettempdir()) / "motion_core_checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    return str(root)
