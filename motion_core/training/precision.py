"""Mixed precision: autocast on CUDA (bf16 where the GPU has it, else fp16 with a grad scaler), fp32 on CPU.

CPU autocast to bf16 exists but is slower than fp32 on most CPUs and changes results between machines, so CPU
training always runs in fp32; that is also what makes CPU runs bit-reproducible.
"""

from __future__ import annotations

import contextlib

import torch

from ..errors import InvalidInputError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class Precision:
    def __init__(self, choice: str, device: torch.device):
        if choice not in PRECISIONS:
            raise InvalidInputError(f"mixed_precision must be one of {PRECISIONS}; got {choice!r}.")
        self.device = torch.device(device)
        if self.device.type != "cuda":
            self.dtype = None
        elif choice == "auto":
            self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            self.dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[choice]
        # fp16 gradients of small LoRA updates underflow without loss scaling; bf16 has fp32's range.
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
