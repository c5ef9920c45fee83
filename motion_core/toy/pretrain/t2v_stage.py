"""Stage 2: text-to-video on cached VAE latents: UNet3DConditionModel and the tiny CLIP text encoder, trained
together with v-prediction, caption dropout (so classifier-free guidance works) and an EMA of the weights."""

from __future__ import annotations

import copy
import time

import torch

from .architecture import MAX_TOKENS, build_scheduler, build_text_encoder, build_unet

CAPTION_DROPOUT = 0.1


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


def train_t2v(latents, captions, tokenizer, *, steps: int, max_minutes: float, batch: int = 8, lr: float = 3e-4,
              warmup: int = 200, ema_decay: float = 0.999, seed: int = 0, log=print):
    """Returns (unet, text_encoder, scheduler, steps_done), the EMA weights, in eval mode."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    unet, text_encoder, scheduler = build_unet(), build_text_encoder(tokenizer), build_scheduler()
    unet.train(), text_encoder.train()
    ids = tokenize(tokenizer, captions)
    empty = tokenize(tokenizer, [""])
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
    ema = EMA([unet, text_encoder], ema_decay)
    started, running, done = time.monotonic(), None, 0
    for step in range(steps):
        if time.monotonic() - started > max_minutes * 60:
            log(f"t2v: time budget of {max_minutes} min reached after {step} steps")
            break
        idx = torch.randint(0, latents.shape[0], (batch,), generator=g)
        z0 = latents[idx]
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=g)
        zt = scheduler.add_noise(z0, noise, t)
        target = scheduler.get_velocity(z0, noise, t)
        tok = ids[idx].clone()
        drop = torch.rand(batch, generator=g) < CAPTION_DROPOUT
        tok[drop] = empty
        states = text_encoder(tok)[0]
        pred = unet(zt, t, encoder_hidden_states=states).sample
        loss = torch.nn.functional.mse_loss(pred, target)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"t2v loss became {loss.item()} at step {step}; lower the learning rate.")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        warm.step()
        ema.update(step)
        done = step + 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 50 == 0 or step == steps - 1:
            elapsed = time.monotonic() - started
            log(f"t2v step {done}/{steps} loss {running:.4f} ({elapsed:.0f}s, {elapsed / done:.2f}s/step)")
    unet_ema, text_ema = ema.shadow
    return unet_ema.eval(), text_ema.eval(), scheduler, done
