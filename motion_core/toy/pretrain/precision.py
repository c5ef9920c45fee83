"""Mixed precision for the text-to-video stage: bfloat16 autocast where the processor computes it natively.

Why: the stage is starved of compute (a GPU sweep reached 85% shapes with ~7x the clips of the shipped CPU run), and
on the 2-core reference machine (AVX512-BF16) the UNet's forward and backward at batch 16 run about twice as fast
under bfloat16 autocast. The weights, the optimiser state, the EMA and the loss stay in float32; only the matmuls
and convolutions run in bfloat16, so a step's arithmetic, not what is learned or saved, changes.
The LoRA trainer's `training.precision.Precision` keeps CPU training in float32 on purpose (bit-reproducible runs
on users' machines); pretraining is one seeded offline run on a known CPU, where the speed is worth more.
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(mode: str, device) -> str:
    """"fp32" or "bf16" for the pretraining CLI's ``--precision``: auto picks bf16 only where it is native (a CPU
    with AVX512-BF16/AMX through oneDNN, or a CUDA GPU that supports it); emulated bf16 would be slower, not faster."""
    if mode not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, not {mode!r}")
    if mode != "auto":
        return mode
    kind = torch.device(device).type
    if kind == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    if kind == "cpu":
        native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        return "bf16" if native else "fp32"
    return "fp32"


def autocast(precision: str, device):
    """The forward's context: bfloat16 autocast for "bf16", nothing for "fp32"."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise ValueError(f"precision must be fp32 or bf16 here, not {precision!r}")
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
