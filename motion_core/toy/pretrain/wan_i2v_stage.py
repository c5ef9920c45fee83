"""ShapesWan-I2V's one stage: ShapesWan's text-to-video transformer fine-tuned to read a start image.

The transformer is ShapesWan's own with its patch embedding widened to the image-to-video input (noisy latents, mask,
image latents: `i2v_condition`); the new input channels start at zero weight, so the first step predicts exactly
what ShapesWan predicts and training only has to learn what the image adds. The loss is ShapesWan's (rectified
flow through the scheduler's shift, plus the frame-difference term) on every latent frame, frame 0 included: the
pipeline denoises all of them, the first too.

The new channels learn slowly. Our reading, not proven: besides frame 0's image they see the same grey-frame latent
on every later frame, whose gradient acts like a bias's (its sign changes from batch to batch), and Adam's
normalisation lets that noise set the step size. In the first full run (lr 5e-4) their weights ended ~20x smaller than the latent channels' and samples
often ignored the image; the patch embedding therefore trains at a multiple of the learning rate (`patch_lr_scale`).

The text encoder stays ShapesWan's, frozen (the folder shares it unchanged), so its states are computed once per
clip. Captions are dropped more often than in the text-to-video stage: the image now carries the look, and a model
that has seen steps without words still draws the image's object when the prompt says nothing of it.
"""

from __future__ import annotations

import time

import torch

from ...backbones.objectives import FlowMatchObjective
from ..i2v_condition import model_input
from .motion_contrast import frame_change_error
from .precision import autocast
from .t2v_stage import EMA, lr_factor, optimizer_step
from .wan_t2v_stage import text_states, wan_tokenize

I2V_CAPTION_DROPOUT = 0.2


def widen_patch_embedding(transformer, in_channels: int):
    """A new WanTransformer3DModel like `transformer` that reads `in_channels` input channels: the old channels keep
    their patch-embedding weights, the new ones get zero weights, every other weight is copied; out_channels stays."""
    from diffusers import WanTransformer3DModel

    old = transformer.config.in_channels
    if in_channels < old:
        raise ValueError(f"cannot narrow a patch embedding from {old} to {in_channels} channels")
    wide = WanTransformer3DModel.from_config(transformer.config, in_channels=in_channels,
                                             out_channels=transformer.config.out_channels or old)
    state = dict(transformer.state_dict())
    weight = state["patch_embedding.weight"]
    extra = weight.new_zeros(weight.shape[0], in_channels - old, *weight.shape[2:])
    state["patch_embedding.weight"] = torch.cat([weight, extra], dim=1)
    wide.load_state_dict(state)
    return wide


@torch.no_grad()
def caption_states(text_encoder, tokenizer, captions, batch: int = 64) -> torch.Tensor:
    """[N, tokens, width] text states of every caption, computed once (the text encoder is frozen)."""
    ids, mask = wan_tokenize(tokenizer, captions)
    return torch.cat([text_states(text_encoder, i, m) for i, m in zip(ids.split(batch), mask.split(batch))])


def train_wan_i2v(transformer, latents, conditions, states, empty_state, *, steps: int, max_minutes: float,
                  batch: int = 16, lr: float = 5e-4, warmup: int = 50, ema_decay: float = 0.999,
                  frame_diff_weight: float = 2.0, caption_dropout: float = I2V_CAPTION_DROPOUT, shift: float = 2.0,
                  precision: str = "fp32", patch_lr_scale: float = 1.0, seed: int = 0, device="cpu", log=print):
    """transformer: already widened (`widen_patch_embedding`); latents [N, C, F, h, w] and conditions
    [N, T + C, F, h, w] normalised, states [N, L, D] and empty_state [1, L, D] from `caption_states`. Returns
    (EMA transformer in eval mode, steps done, final running loss). Every random draw comes from a CPU generator
    seeded with `seed`, so a seed picks the same batches, noise, σ and dropped captions on any device.
    `precision`: "bf16" runs the forward under bfloat16 autocast (`precision.py`: 1.85 -> 1.35 s a step of 16 clips
    at one thread on the reference CPU); weights, optimiser, EMA and loss stay float32.
    `patch_lr_scale`: the patch embedding (where the new, zero-started condition channels are) trains at this
    multiple of `lr`."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    transformer = transformer.float().to(device).train().requires_grad_(True)
    objective = FlowMatchObjective(shift=shift)
    params = list(transformer.parameters())
    log(f"wan i2v: transformer {sum(p.numel() for p in params) / 1e6:.2f}M parameters, "
        f"in_channels {transformer.config.in_channels}, batch {batch}, lr {lr}, caption dropout {caption_dropout}, "
        f"{precision} arithmetic")
    patch = [transformer.patch_embedding.weight]
    rest = [q for q in params if q is not patch[0]]
    opt = torch.optim.AdamW([{"params": rest}, {"params": patch, "lr": lr * patch_lr_scale}], lr=lr,
                            weight_decay=1e-2)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, warmup))
    ema = EMA([transformer], ema_decay)
    started, running, done = time.monotonic(), None, 0
    for step in range(steps):
        if time.monotonic() - started > max_minutes * 60:
            log(f"wan i2v: time budget of {max_minutes} min reached after {step} steps")
            break
        idx = torch.randint(0, latents.shape[0], (batch,), generator=g)
        z0, condition = latents[idx].to(device), conditions[idx].to(device)
        noise = torch.randn(z0.shape, generator=g).to(device)
        t = objective.model_timesteps(torch.randint(0, objective.num_train_timesteps, (batch,), generator=g))
        t = t.to(device)
        zt, target = objective.add_noise(z0, noise, t), objective.target(z0, noise, t)
        dropped = torch.rand(batch, generator=g) < caption_dropout
        text = torch.where(dropped[:, None, None], empty_state, states[idx]).to(device)
        with autocast(precision, device):
            pred = transformer(hidden_states=model_input(zt, condition), timestep=t, encoder_hidden_states=text,
                               return_dict=False)[0].float()
        loss = (pred - target).pow(2).mean()
        if frame_diff_weight > 0:
            loss = loss + frame_diff_weight * frame_change_error(pred, target).mean()
        optimizer_step(loss, opt, params, schedule, stage="wan i2v", step=step)
        ema.update(step)
        done = step + 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 50 == 0 or step == steps - 1:
            elapsed = time.monotonic() - started
            log(f"wan i2v step {done}/{steps} loss {running:.4f} ({elapsed:.0f}s, {elapsed / done:.2f}s/step)")
    return ema.shadow[0].eval(), done, running
