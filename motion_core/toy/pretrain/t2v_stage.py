"""Stage 2: text-to-video on cached VAE latents: UNet3DConditionModel and the tiny CLIP text encoder, trained
together with v-prediction, caption dropout (so classifier-free guidance works) and an EMA of the weights.

`short_fraction` of the run can train on short windows of `SHORT_FRAMES` consecutive frames at a doubled batch:
the same cost per step, twice the captions seen. A GPU sweep found no gain from them over whole clips (FINDINGS.md), so
the pretraining command now defaults to whole clips, which also keeps one input shape for `torch.compile`.
The learning rate warms up, then decays on a cosine to a tenth.
"""

from __future__ import annotations

import copy
import math
import time

import torch

from .anchor_frames import anchor_frames, mask_anchors
from .architecture import MAX_TOKENS, build_scheduler, build_text_encoder, build_unet
from .compiled_forward import TrainingForward
from .motion_contrast import CONTRAST_MIN_T, frame_change_error, motion_contrast_loss
from .precision import autocast
from .terminal_means import caption_means, share_now, to_terminal

CAPTION_DROPOUT = 0.1
SHORT_FRAMES = 4


def tokenize(tokenizer, captions) -> torch.Tensor:
    return tokenizer(list(captions), padding="max_length", max_length=MAX_TOKENS, truncation=True,
                     return_tensors="pt").input_ids


class EMA:
    """Exponential moving average of parameters, with the usual warm-up so early steps are not frozen in."""

    def __init__(self, modules, decay: float):
        self.decay = decay
        self.shadow = [copy.deepcopy(m).requires_grad_(False) for m in modules]
        self.modules = modules

    @torch.no_grad()
    def update(self, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for live, avg in zip(self.modules, self.shadow):
            for p, q in zip(live.parameters(), avg.parameters()):
                q.lerp_(p.detach(), 1.0 - d)


def lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up, then a cosine from 1 down to 0.1 at the last step."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - 1 - warmup))
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))


def _batch(latents, batch: int, window: int, g: torch.Generator, masks=None):
    """Random clips, cut to random windows of `window` consecutive latent frames when shorter than the clip; the
    same windows of `masks` ([N, F, h, w]) when given, else None."""
    idx = torch.randint(0, latents.shape[0], (batch,), generator=g)
    z0 = latents[idx.to(latents.device)]
    m = None if masks is None else masks[idx.to(masks.device)]
    frames = latents.shape[2]
    if window < frames:
        start = torch.randint(0, frames - window + 1, (batch,), generator=g)
        offsets = start[:, None] + torch.arange(window)[None, :]
        z0 = torch.stack([clip[:, off] for clip, off in zip(z0, offsets)])
        if m is not None:
            m = torch.stack([clip[off] for clip, off in zip(m, offsets)])
    return idx, z0, m


def frame_difference_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between consecutive-frame differences of prediction and target ([B, C, F, H, W]): an error that is the
    same in every frame (a wrong background) cancels, one that moves (an object in the wrong place) does not."""
    return frame_change_error(pred, target).mean()


def object_weighted_error(pred: torch.Tensor, target: torch.Tensor, masks, weight: float) -> torch.Tensor:
    """Per-sample squared error ([B]), with every latent cell on an object (masks [B, F, h, w], 1 = object)
    weighted 1 + `weight` against 1 elsewhere, normalised by the mean weight so the loss keeps its scale. The
    objects and their borders cover ~18% of a pretraining clip's latent cells (measured), so under plain MSE the
    background dominates the gradient; weighted, colour, shape and place (what the caption names) get most of it."""
    err = (pred - target).pow(2)
    if masks is None or weight <= 0:
        return err.flatten(1).mean(1)
    w = (1.0 + weight * masks.to(err.dtype)[:, None]).expand_as(err)
    return (w * err).flatten(1).mean(1) / w.flatten(1).mean(1)


def draw_timesteps(size: int, num_train_timesteps: int, high_noise_share: float, g: torch.Generator) -> torch.Tensor:
    """Uniform timesteps, except that a `high_noise_share` of them is redrawn from the noisier half of the schedule.
    Layout and motion are decided at high noise, where the object is barely visible in the input and only the caption
    says where it goes; at low noise the input already shows it. 0 draws exactly as before (same random stream)."""
    t = torch.randint(0, num_train_timesteps, (size,), generator=g)
    if high_noise_share > 0:
        high = torch.randint(num_train_timesteps // 2, num_train_timesteps, (size,), generator=g)
        t = torch.where(torch.rand(size, generator=g) < high_noise_share, high, t)
    return t


def mixed_noise(shape, max_share: float, g: torch.Generator) -> torch.Tensor:
    """Gaussian noise [B, C, F, H, W] whose frames share a random part: a share a ~ U(0, max_share) per clip of
    one noise image common to all frames, sqrt(a) * common + sqrt(1 - a) * own, so each frame is still N(0, I).
    Why: every ShapesT2V model measured copies its motion from the frame-to-frame differences of the starting noise
    (FINDINGS.md, "Where the motion comes from"); with part of the noise static, that copy is unreliable, so the motion
    words and the frame order have to say where the object goes. 0 draws exactly as `torch.randn` does."""
    noise = torch.randn(shape, generator=g)
    if max_share <= 0:
        return noise
    a = (torch.rand(shape[0], generator=g) * max_share).view(-1, 1, 1, 1, 1)
    common = torch.randn(shape[0], shape[1], 1, *shape[3:], generator=g)
    return a.sqrt() * common + (1 - a).sqrt() * noise


def optimizer_step(loss: torch.Tensor, opt, params, schedule, *, stage: str, step: int) -> None:
    """One clipped (norm 1) AdamW step with its learning-rate schedule; a NaN or inf loss stops the stage with a
    message instead of corrupting the weights."""
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{stage} loss became {loss.item()} at step {step}; lower the learning rate.")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    schedule.step()


def _snr(scheduler, t: torch.Tensor) -> torch.Tensor:
    alpha_bar = scheduler.alphas_cumprod.to(t.device)[t]
    return alpha_bar / (1 - alpha_bar)


def train_t2v(latents, captions, tokenizer, *, steps: int, max_minutes: float, batch: int = 16, lr: float = 1e-3,
              warmup: int = 100, ema_decay: float = 0.999, short_fraction: float = 0.5, keep_dropout: bool = False,
              min_snr_gamma: float = 0.0, high_noise_share: float = 0.0, frame_diff_weight: float = 0.0, masks=None,
              object_weight: float = 0.0, motion_contrast: float = 0.0, swapped_captions=None, shared_noise: float = 0.0,
              anchor_share: float = 0.0, freeze_text_encoder: bool = False, terminal_mean_share: float = 0.0,
              terminal_mean_until: float = 1.0,
              init=None, seed: int = 0, device="cpu", compile: bool = False, precision: str = "fp32", log=print):
    """Returns (unet, text_encoder, scheduler, steps_done), the EMA weights, in eval mode.

    The UNet trains in eval mode unless `keep_dropout`: UNet3D's temporal convolutions carry a fixed dropout of
    0.1 that only slows a short run (and costs ~7% of a step); there are no batch statistics to switch.
    `init`: (unet, text_encoder) to continue from, e.g. an earlier run's saved weights, instead of a fresh start.
    `min_snr_gamma`: > 0 weights each sample's loss by min(SNR, gamma) / (SNR + 1) (Min-SNR weighting for
    v-prediction, Hang et al. 2023), so the many low-noise steps stop dominating the gradient; 0 = plain MSE.
    `high_noise_share`: share of the timesteps redrawn from the noisier half (`draw_timesteps`); 0 = uniform.
    `frame_diff_weight`: > 0 adds that weight times `frame_difference_loss`, so the motion words matter to the loss
    (without it the shipped model ignores them: FINDINGS.md, "Which words it follows").
    `masks`, `object_weight`: object masks per latent frame ([N, F, h, w], `data.object_masks`) and the extra weight
    of their cells in the loss (`object_weighted_error`); 0 = plain MSE.
    `motion_contrast`, `swapped_captions`: > 0 adds that weight times `motion_contrast_loss`, with one caption per
    clip whose motion phrase is swapped (`motion_contrast.motion_swapped_captions`); each step then denoises twice.
    `shared_noise`: > 0 draws the noise with up to that share common to all frames (`mixed_noise`); 0 = i.i.d.
    `anchor_share`: share of the clips with one frame shown less noisy and left out of the loss (`anchor_frames`).
    `freeze_text_encoder`: keep the text encoder at its (seeded, random or `init`) weights, as real models keep a
    pretrained CLIP frozen. Trained jointly, the tiny CLIP folded the motion words together (the shipped model's
    states for "moves left/right/up/down" differ by 0.05%, a fresh encoder's by 1.7%); frozen, they stay apart, but a
    47-minute CPU run did not make the samples follow them (FINDINGS.md, "The text encoder folded the motion words").
    `terminal_mean_share`: share of each batch trained at the last timestep against its caption's mean latent
    (`terminal_means`); needs whole clips (`short_fraction` 0). 0 = off, the same random draws as before.
    `terminal_mean_until`: the share applies until the run is this far through (steps or time), then plain steps.
    `compile`: train through `torch.compile` (`compiled_forward`: 1.65x faster steps on the CPU after ~5 min).
    `precision`: "bf16" runs the text encoder and UNet under bfloat16 autocast (`precision.py`); the weights, the
    EMA and the loss stay float32.
    `device`: where the models train; every random draw still comes from CPU generators, so a seed picks the same
    batches, noise and timesteps on any device."""
    if terminal_mean_share > 0 and short_fraction > 0:
        raise ValueError("terminal_mean_share needs whole clips: set short_fraction to 0.")
    if motion_contrast > 0 and (swapped_captions is None or len(swapped_captions) != len(captions)):
        raise ValueError("motion_contrast > 0 needs one motion-swapped caption per clip (motion_swapped_captions).")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    if init is None:
        unet, text_encoder = build_unet(latents.shape[1]), build_text_encoder(tokenizer)
    else:
        unet, text_encoder = (m.float().requires_grad_(True) for m in init)
    unet, text_encoder = unet.to(device), text_encoder.to(device)
    latents = latents.to(device)
    if object_weight > 0 and masks is None:
        raise ValueError("object_weight > 0 needs the object masks of the latents (data.object_masks).")
    masks = masks.to(device) if object_weight > 0 else None
    scheduler = build_scheduler()
    unet.train(keep_dropout), text_encoder.train(not freeze_text_encoder)
    text_encoder.requires_grad_(not freeze_text_encoder)
    forward = TrainingForward(unet, compile=compile, device=str(device), log=log)
    log(f"t2v: {precision} arithmetic, {'compiled' if compile else 'eager'} UNet, batch {batch}, text encoder "
        f"{'frozen' if freeze_text_encoder else 'trained'}")
    ids = tokenize(tokenizer, captions)
    empty = tokenize(tokenizer, [""])
    means, group = caption_means(latents.cpu(), captions) if terminal_mean_share > 0 else (None, None)
    if means is not None:
        log(f"t2v: {terminal_mean_share:.0%} of each batch at the last timestep against the mean of {len(means)} "
            f"captions' clips ({int((group >= 0).sum())} of {len(captions)} clips have one)")
    swapped_ids = tokenize(tokenizer, swapped_captions) if motion_contrast > 0 else None
    params = list(unet.parameters()) + ([] if freeze_text_encoder else list(text_encoder.parameters()))
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, warmup))
    ema = EMA([unet, text_encoder], ema_decay)
    short_steps = int(steps * short_fraction)
    started, running, done = time.monotonic(), None, 0
    for step in range(steps):
        if time.monotonic() - started > max_minutes * 60:
            log(f"t2v: time budget of {max_minutes} min reached after {step} steps")
            break
        short = step < short_steps and SHORT_FRAMES < latents.shape[2]
        size = batch * latents.shape[2] // SHORT_FRAMES if short else batch
        idx, z0, m = _batch(latents, size, SHORT_FRAMES if short else latents.shape[2], g, masks)
        noise = mixed_noise(z0.shape, shared_noise, g).to(device)
        t = draw_timesteps(size, scheduler.config.num_train_timesteps, high_noise_share, g).to(device)
        share = share_now(terminal_mean_share, terminal_mean_until, step, steps, time.monotonic() - started,
                          max_minutes * 60)
        z0, t, terminal = to_terminal(z0, t, idx, means, group, share,
                                      scheduler.config.num_train_timesteps - 1, g)
        zt, keep = anchor_frames(scheduler, z0, noise, t, anchor_share, g)
        target = scheduler.get_velocity(z0, noise, t)
        tok = ids[idx].clone()
        dropped = (torch.rand(size, generator=g) < CAPTION_DROPOUT) & ~terminal  # a caption mean needs its caption
        tok[dropped] = empty
        with autocast(precision, device):
            if motion_contrast > 0:  # one batch of twice the size: the same noisy clips under the swapped captions
                states = text_encoder(torch.cat([tok, swapped_ids[idx]]).to(device))[0]
                pred, pred_swapped = forward(torch.cat([zt, zt]), torch.cat([t, t]), states).float().chunk(2)
                pred_swapped = mask_anchors(pred_swapped, target, keep)
            else:
                states = text_encoder(tok.to(device))[0]
                pred = forward(zt, t, states).float()
        pred = mask_anchors(pred, target, keep)
        per_sample = object_weighted_error(pred, target, m, object_weight)
        if min_snr_gamma > 0:
            snr = _snr(scheduler, t)
            per_sample = per_sample * snr.clamp(max=min_snr_gamma) / (snr + 1)
        loss = per_sample.mean()
        if frame_diff_weight > 0:
            loss = loss + frame_diff_weight * frame_difference_loss(pred, target)
        if motion_contrast > 0:
            active = (~dropped).to(device) & (t >= CONTRAST_MIN_T)
            loss = loss + motion_contrast * motion_contrast_loss(pred, pred_swapped, target, active)
        optimizer_step(loss, opt, params, schedule, stage="t2v", step=step)
        ema.update(step)
        done = step + 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 50 == 0 or step == steps - 1:
            elapsed = time.monotonic() - started
            log(f"t2v step {done}/{steps} loss {running:.4f} ({elapsed:.0f}s, {elapsed / done:.2f}s/step, "
                f"{'short windows' if short else 'whole clips'})")
    unet_ema, text_ema = ema.shadow
    return unet_ema.eval(), text_ema.eval(), scheduler, done
