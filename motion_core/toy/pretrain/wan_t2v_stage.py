"""ShapesWan stage 2: text-to-video on cached, normalised VAE latents: the WanTransformer3DModel and the tiny UMT5
trained together under rectified flow, exactly as the pack trains and samples Wan (`FlowMatchObjective`: σ from a
uniform index through the scheduler's shift; the model predicts noise − clean; its timestep input is 1000·σ).

Text states are fed as WanBackbone.encode_prompt feeds them (padded to the tokenizer's length, zero past each
prompt's own tokens), so what pretraining sees is what sampling and LoRA training see. Caption dropout (the empty
prompt) makes classifier-free guidance work; the frame-difference loss of ShapesT2V's default run is kept (it made
the motion words matter to the loss: FINDINGS.md, "Which words it follows"); the saved weights are an EMA.
"""

from __future__ import annotations

import time

import torch

from ...backbones.objectives import FlowMatchObjective
from .motion_contrast import frame_change_error
from .t2v_stage import CAPTION_DROPOUT, EMA, lr_factor, optimizer_step
from .terminal_means import caption_means, to_terminal
from .wan_architecture import WAN_FLOW_SHIFT, WAN_MAX_TOKENS, build_wan_text_encoder, build_wan_transformer


def wan_tokenize(tokenizer, captions) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = tokenizer(list(captions), padding="max_length", max_length=WAN_MAX_TOKENS, truncation=True,
                       return_attention_mask=True, return_tensors="pt")
    return tokens.input_ids, tokens.attention_mask


def text_states(text_encoder, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """UMT5's last hidden state, zero past each prompt (WanBackbone.encode_prompt's layout)."""
    states = text_encoder(ids, attention_mask=mask).last_hidden_state
    return states * mask[..., None].to(states.dtype)


def train_wan_t2v(latents, captions, tokenizer, *, steps: int, max_minutes: float, batch: int = 16, lr: float = 1e-3,
                  warmup: int = 100, ema_decay: float = 0.999, frame_diff_weight: float = 2.0,
                  terminal_mean_share: float = 0.0, train_shift: float | None = None, seed: int = 0, device="cpu",
                  init=None, log=print):
    """latents: normalised [N, C, F, h, w]. Returns (transformer, text_encoder, steps_done): the EMA weights, in eval
    mode. Every random draw comes from CPU generators, so a seed picks the same batches, noise and σ on any device.

    `terminal_mean_share`: share of each batch trained at σ = 1 (timestep 1000, pure noise) against its caption's
    mean latent (`terminal_means`; there the flow target noise − clean has the same minimiser, noise − the caption's
    mean). 0 = off, the same random draws as before. `init`: (transformer, text_encoder) of an earlier run to keep
    training (`--continue-from`) instead of fresh ones; the random draws are the same either way. `train_shift`: the
    shift of the law σ is drawn from (None = the model's own, WAN_FLOW_SHIFT); a larger one trains more at high noise,
    where the samples' layout is decided, while the model and its scheduler keep their shift."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    transformer, text_encoder = init if init is not None else (build_wan_transformer(),
                                                                build_wan_text_encoder(tokenizer))
    transformer, text_encoder = transformer.float().to(device), text_encoder.float().to(device)
    transformer.train(), text_encoder.train()
    objective = FlowMatchObjective(shift=WAN_FLOW_SHIFT)
    draws = objective if train_shift is None else FlowMatchObjective(shift=train_shift)
    ids, mask = wan_tokenize(tokenizer, captions)
    empty_ids, empty_mask = wan_tokenize(tokenizer, [""])
    means, group = caption_means(latents.cpu(), captions) if terminal_mean_share > 0 else (None, None)
    if means is not None:
        log(f"wan t2v: {terminal_mean_share:.0%} of each batch at σ = 1 against the mean of {len(means)} captions' "
            f"clips ({int((group >= 0).sum())} of {len(captions)} clips have one)")
    last_t = float(objective.model_timesteps(torch.tensor([objective.num_train_timesteps - 1]))[0])
    params = list(transformer.parameters()) + list(text_encoder.parameters())
    log(f"wan t2v: transformer {sum(p.numel() for p in transformer.parameters()) / 1e6:.2f}M, text encoder "
        f"{sum(p.numel() for p in text_encoder.parameters()) / 1e6:.2f}M parameters, batch {batch}")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, warmup))
    ema = EMA([transformer, text_encoder], ema_decay)
    started, running, done = time.monotonic(), None, 0
    for step in range(steps):
        if time.monotonic() - started > max_minutes * 60:
            log(f"wan t2v: time budget of {max_minutes} min reached after {step} steps")
            break
        idx = torch.randint(0, latents.shape[0], (batch,), generator=g)
        z0 = latents[idx].to(device)
        noise = torch.randn(z0.shape, generator=g).to(device)
        t = draws.model_timesteps(torch.randint(0, objective.num_train_timesteps, (batch,), generator=g))
        z0, t, terminal = to_terminal(z0, t.to(device), idx, means, group, terminal_mean_share, last_t, g)
        zt, target = objective.add_noise(z0, noise, t), objective.target(z0, noise, t)
        tok, tok_mask = ids[idx].clone(), mask[idx].clone()
        dropped = (torch.rand(batch, generator=g) < CAPTION_DROPOUT) & ~terminal  # a caption mean needs its caption
        tok[dropped], tok_mask[dropped] = empty_ids, empty_mask
        states = text_states(text_encoder, tok.to(device), tok_mask.to(device))
        pred = transformer(hidden_states=zt, timestep=t, encoder_hidden_states=states, return_dict=False)[0].float()
        loss = (pred - target).pow(2).mean()
        if frame_diff_weight > 0:
            loss = loss + frame_diff_weight * frame_change_error(pred, target).mean()
        optimizer_step(loss, opt, params, schedule, stage="wan t2v", step=step)
        ema.update(step)
        done = step + 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 50 == 0 or step == steps - 1:
            elapsed = time.monotonic() - started
            log(f"wan t2v step {done}/{steps} loss {running:.4f} ({elapsed:.0f}s, {elapsed / done:.2f}s/step)")
    transformer_ema, text_ema = ema.shadow
    return transformer_ema.eval(), text_ema.eval(), done
