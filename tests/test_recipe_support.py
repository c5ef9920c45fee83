"""Shared helpers for the recipe and training tests (no tests here): tiny clips and a one-step gradient probe."""

import dataclasses

import torch

from motion_core.clips import Clip, ClipSet
from motion_core.lora import add_adapter, adapter_parameters
from motion_core.lora.inject import lora_layers
from motion_core.training.context import StepContext
from motion_core.training.data import cache_samples
from motion_core.training.optim import build_optimizer
from motion_core.training.precision import Precision


def wave_clip(frames=4, size=16, caption="a wave moves right", phase=0.5):
    """A smooth moving pattern (learnable, unlike noise)."""
    x = torch.linspace(0, 1, size)
    video = torch.stack([(torch.sin(6 * x[None, :] + phase * f) * 0.5 + 0.5)[..., None].expand(size, size, 3)
                         for f in range(frames)])
    return Clip((video * 255).round().to(torch.uint8).contiguous(), 8.0, caption)


def clipset(*clips):
    return ClipSet(tuple(clips) or (wave_clip(),))


def lora_snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if ".lora_" in n}


def base_snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if ".lora_" not in n}


def probe_step(backbone, recipe, clips, *, stage="main", clip_index=0, seed=0, frames=4, size=16):
    """Inject the recipe's adapters (B made non-zero so A gets gradients too), run one recipe step, record after
    each backward which adapters got new gradients, then take one optimiser step.

    Returns (per-backward sets of adapter names, adapters whose weights changed, base weights unchanged?)."""
    torch.manual_seed(seed)
    model = backbone.denoiser
    specs = recipe.adapters(backbone, len(clips), rank=2, alpha=2.0, dropout=0.0)
    names = {s.name: "probe_" + s.name for s in specs}
    for s in specs:
        add_adapter(model, dataclasses.replace(s, name=names[s.name]), enabled=False, trainable=False)
    try:
        with torch.no_grad():
            for _, layer in lora_layers(model):
                for name in layer.lora_B:
                    layer.lora_B[name].weight.normal_(0, 0.05)
        samples = cache_samples(backbone, recipe, clips, frames=frames, width=size, height=size)
        params = {n: adapter_parameters(model, p) for n, p in names.items()}
        optimizer, _ = build_optimizer([p for ps in params.values() for p in ps], lr=1e-2, weight_decay=1e-2,
                                       choice="adamw", device=torch.device("cpu"))
        per_backward = []

        def grads():
            return {n: [None if p.grad is None else p.grad.clone() for p in ps] for n, ps in params.items()}

        class Probe(StepContext):
            def backward(self, loss):
                before = grads()
                super().backward(loss)
                after = grads()
                per_backward.append({n for n in names if any(
                    a is not None and (b is None or not torch.equal(a, b)) and a.abs().sum() > 0
                    for a, b in zip(after[n], before[n]))})

        ctx = Probe(backbone, recipe, torch.Generator().manual_seed(seed), samples[clip_index], stage=stage, step=0,
                    loss_scale=1.0, precision=Precision("fp32", torch.device("cpu")), adapter_names=names)
        lora_before, base_before = lora_snapshot(model), base_snapshot(model)
        terms = recipe.step(ctx)
        optimizer.step()
        lora_after, base_after = lora_snapshot(model), base_snapshot(model)
        changed = {n for n, full in names.items()
                   if any(not torch.equal(lora_before[k], lora_after[k]) for k in lora_after if f".{full}." in k)}
        unchanged_ok = all(torch.equal(base_before[k], base_after[k]) for k in base_before)
        return per_backward, changed, unchanged_ok, terms
    finally:
        for full in names.values():
            from motion_core.lora import remove_adapter

            remove_adapter(model, full)
