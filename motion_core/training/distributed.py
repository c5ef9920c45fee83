"""Training in several processes: ``accelerate launch --multi_gpu --num_processes N -m motion_core train ...``.

A run launched that way (WORLD_SIZE > 1 in the environment) is data parallel: every process holds the whole frozen
base and the same LoRA, each global batch of ``batch_size`` samples is dealt out by position (process r runs
samples r, r + N, r + 2N, ...), and before the optimiser step the LoRA gradients are summed over the processes.
Each sample's loss is already scaled by 1 / batch_size, so the sum is the mean gradient of the whole batch, the
one a single process computes; every process then takes the same optimiser step and the adapters stay equal
without ever being sent. Only the LoRA gradients travel (the frozen base needs no synchronisation), in one
flattened all-reduce per step.

What a sample draws (which clip, its noise, its timesteps, dropout) comes from that sample's own seed, and the
seeds of a step are drawn first from the run's generator by every process alike; so the samples of a global batch
are the same whichever process runs them, and N processes train the LoRA a single process trains with the same
batch_size, up to the order of the float sums.

Process 0 writes checkpoints and reports progress and previews; the caller writes the LoRA there only. A cancel
asked of any process stops all of them before the same step (one flag is all-reduced per step), process 0 writes
the checkpoint and every process raises CancelledError naming it; a resume reads that checkpoint in every process.

Nothing here is imported, and accelerate is not needed, when the run is a single process (the ComfyUI node).
"""

from __future__ import annotations

import os

import torch

from ..errors import InvalidInputError, MotionCoreError


def launched_processes() -> int:
    """How many processes the launcher started (1 when not launched by accelerate launch / torchrun)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1") or 1))
    except ValueError:
        return 1


def is_main_process() -> bool:
    """True in the process that prints and writes (rank 0, or the only process)."""
    return os.environ.get("RANK", "0") in ("", "0")


class SingleProcess:
    """The ordinary run: one process, nothing to synchronise."""

    world_size, rank, is_main, active, shards_base = 1, 0, True, False, False

    def shard_base(self, denoiser, adapter_params, device) -> None:
        return None

    def device(self, requested):
        return requested

    def any(self, flag: bool) -> bool:
        return bool(flag)

    def my_samples(self, batch: int) -> range:
        return range(batch)

    def sum_terms(self, sums: dict) -> dict:
        return sums

    def sum_gradients(self, params, sums) -> None:
        for p, total in zip(params, sums):
            if total is not None:
                p.grad = total.to(p.dtype)

    def on_main(self, fn):
        return fn()


class Processes(SingleProcess):
    """N processes started by a launcher, joined through accelerate (gloo on the CPU, NCCL on CUDA)."""

    active = True

    def __init__(self, state, shard_base: bool = False):
        self.state, self.shards_base = state, bool(shard_base)
        self.world_size, self.rank = int(state.num_processes), int(state.process_index)
        self.is_main = self.rank == 0
        self._device = state.device

    def describe(self, batch: int) -> str:
        backend = "gloo, CPU" if torch.device(self._device).type == "cpu" else f"{self.state.backend}, {self._device}"
        share = ", ".join(str(len(range(r, batch, self.world_size))) for r in range(self.world_size))
        return (f"training in {self.world_size} processes ({backend}): a global batch of {batch} samples per step, "
                f"{share} per process")

    def device(self, requested):
        """This process's accelerator: "cuda" (any index) means the GPU the launcher gave this process."""
        if requested is not None and str(requested).startswith("cuda"):
            return str(self._device)
        return requested

    def _reduce_device(self) -> torch.device:
        return torch.device(self._device) if torch.device(self._device).type == "cuda" else torch.device("cpu")

    def any(self, flag: bool) -> bool:
        value = torch.tensor([1.0 if flag else 0.0], device=self._reduce_device())
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        return bool(value.item() > 0)

    def my_samples(self, batch: int) -> range:
        return range(self.rank, batch, self.world_size)

    def sum_terms(self, sums: dict) -> dict:
        """The loss terms of the whole batch (each process holds its samples' share)."""
        gathered: list = [None] * self.world_size
        torch.distributed.all_gather_object(gathered, sums)
        total: dict = {}
        for part in gathered:
            for key, value in part.items():
                total[key] = total.get(key, 0.0) + float(value)
        return total

    def sum_gradients(self, params, sums) -> None:
        """Sum this process's per-parameter gradient sums (float64, GradientSum) over the processes in one
        flattened all-reduce and set them as the gradients. A parameter no process reached keeps None (AdamW then
        leaves it alone, as in a single process); one that only some processes reached gets zeros from the others."""
        params = list(params)
        if not params:
            return
        where = self._reduce_device()
        reached = torch.tensor([0.0 if s is None else 1.0 for s in sums], device=where)
        torch.distributed.all_reduce(reached)
        chosen = [(p, s) for p, s, r in zip(params, sums, reached.tolist()) if r > 0]
        if not chosen:
            return
        flat = torch.cat([(s if s is not None else torch.zeros_like(p, dtype=torch.float64)).reshape(-1).to(where)
                          for p, s in chosen])
        torch.distributed.all_reduce(flat)
        offset = 0
        for p, _ in chosen:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).to(p.device, p.dtype)
            offset += n

    def shard_base(self, denoiser, adapter_params, device) -> None:
        """With shards_base: split the frozen base over the processes (FSDP2, torch's fully_shard), one unit per
        block of each of the denoiser's block lists (down/mid/up blocks, Wan's blocks) and the rest as one more, so
        each process keeps 1/N of the base on ``device`` and gathers one block's weights while it runs. The LoRA
        weights are left out (ignored_params): they stay whole in every process and their gradients are summed
        like an unsharded run's, so a sharded run trains what an unsharded one trains. The base stays sharded after
        the run (the command ends there)."""
        if not self.shards_base:
            return
        from torch import nn
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        device = torch.device(device)
        mesh = init_device_mesh(device.type, (self.world_size,))
        ignored = set(adapter_params)
        units = [block for child in denoiser.children() if isinstance(child, nn.ModuleList) for block in child]
        units += [m for m in (getattr(denoiser, "mid_block", None),) if isinstance(m, nn.Module)]
        for unit in units:
            fully_shard(unit, mesh=mesh, ignored_params=ignored)
        fully_shard(denoiser, mesh=mesh, ignored_params=ignored)
        for p in ignored:  # fully_shard moves what it manages; the adapters follow by hand
            if p.device != device:
                p.data = p.data.to(device)

    def on_main(self, fn):
        """Run ``fn`` in process 0 only and return its result everywhere; its MotionCoreError is raised in every
        process, so all of them stop or go on together."""
        outcome = [None]
        if self.is_main:
            try:
                outcome[0] = ("ok", fn())
            except MotionCoreError as error:
                outcome[0] = ("error", error)
        torch.distributed.broadcast_object_list(outcome, src=0)
        kind, value = outcome[0]
        if kind == "error":
            raise value
        return value


class GradientSum:
    """The gradients of a batch summed sample by sample in float64, then rounded once.

    Float32 sums depend on their order, and Adam turns the last bit of a gradient that nearly cancels into a whole
    step of lr; a float64 sum of a few float32 gradients is exact (or off in a bit far below float32's), so the
    batch's gradient is the same bits whichever process added which sample. Used whenever a step has several
    samples or processes; a one-sample step keeps autograd's own gradient."""

    def __init__(self, params):
        self.params = list(params)
        self.sums: list = [None] * len(self.params)

    def add(self) -> None:
        """Move the gradients of the sample just run into the sums (and clear them for the next sample)."""
        for i, p in enumerate(self.params):
            if p.grad is not None:
                grad = p.grad.to(torch.float64)
                self.sums[i] = grad if self.sums[i] is None else self.sums[i].add_(grad)
                p.grad = None

    def finish(self, processes: SingleProcess) -> None:
        """Set every parameter's gradient to the batch's sum over all processes."""
        processes.sum_gradients(self.params, self.sums)


_current: SingleProcess | None = None


def current(device=None, *, shard_base: bool = False) -> SingleProcess:
    """The run's processes, joined on first use: SingleProcess unless launched with several processes.

    ``device``: what the run trains on; "cpu" (or no CUDA) joins the processes over gloo, "cuda" over NCCL with one
    GPU per process. Choosing the CPU explicitly matters: accelerate's default on a machine without CUDA would
    leave each process believing it is alone, and N separate trainings would race to write the same files.
    ``shard_base``: split the frozen base over the processes (Processes.shard_base); refused in a single process."""
    global _current
    world = launched_processes()
    if shard_base and world == 1:
        raise InvalidInputError("--shard-base splits the base model over several processes; start them with "
                                "accelerate launch --multi_gpu --num_processes N -m motion_core train ..., or "
                                "leave --shard-base out.")
    if _current is not None:
        return _current
    if world == 1:
        _current = SingleProcess()
        return _current
    try:
        from accelerate import PartialState
    except ImportError as error:  # pragma: no cover - accelerate is a dependency
        raise InvalidInputError("Training in several processes needs the accelerate package: pip install "
                                "accelerate.") from error
    cuda = str(device or "").startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise InvalidInputError(f"--device {device} was asked for, but this machine has no CUDA device; launch "
                                "with --device cpu to train the processes on the CPU.")
    state = PartialState(cpu=not cuda)
    if int(state.num_processes) != world:
        raise InvalidInputError(f"The launcher started {world} processes but accelerate joined "
                                f"{state.num_processes}; launch with accelerate launch --multi_gpu --num_processes "
                                f"{world} (or torchrun --nproc_per_node {world}).")
    _current = Processes(state, shard_base)
    return _current
