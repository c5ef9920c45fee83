"""Terminal-noise targets: teach the first sampling step what each caption's clips look like on average.

Why: from pure noise the best clean estimate is the mean of the training clips under the prompt, and for a motion
word that mean changes from frame to frame (the object sits right early and left late for "moves left"). Every model
measured ignored it there, and the sampled path followed the starting noise (FINDINGS.md, "What a model can say from
pure noise"). Trained only at the last timestep against the mean of a caption's clips, a model with a frozen text
encoder learned that frame-varying mean within ~100 steps, and the motion words then set the sampled path (prompt
share 0.85 on the trained prompts, from 0.16; FINDINGS.md, "The first step steers the samples").

A share of each batch is therefore moved to the last timestep, with the clip replaced by the mean latent of all
pretraining clips under the same caption. The minimiser is the same as plain denoising there (the conditional mean);
the target is just far less noisy than one clip, so the word's part of it is not drowned by the clip's own detail.
Captions with fewer than `MIN_CLIPS` clips (most captions with a second object) keep their plain target.
"""

from __future__ import annotations

import torch

MIN_CLIPS = 4


def caption_means(latents: torch.Tensor, captions, min_clips: int = MIN_CLIPS) -> tuple[torch.Tensor, torch.Tensor]:
    """(means [G, C, F, h, w], group [N] long): the mean latent of every caption with at least `min_clips` clips, and
    each clip's caption group (-1 where its caption has too few clips)."""
    if len(captions) != latents.shape[0]:
        raise ValueError(f"{len(captions)} captions for {latents.shape[0]} latent clips; need one caption per clip.")
    members: dict[str, list[int]] = {}
    for i, text in enumerate(captions):
        members.setdefault(text, []).append(i)
    group = torch.full((len(captions),), -1, dtype=torch.long)
    means = []
    for text, rows in members.items():
        if len(rows) >= min_clips:
            group[rows] = len(means)
            means.append(latents[rows].float().mean(0))
    if not means:
        return latents.new_zeros((0, *latents.shape[1:]), dtype=torch.float32), group
    return torch.stack(means), group


def to_terminal(z0: torch.Tensor, t: torch.Tensor, idx: torch.Tensor, means: torch.Tensor, group: torch.Tensor,
                share: float, last_t: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z0, t, moved [B] bool): a `share` of the batch (among clips whose caption has a mean) moved to timestep
    `last_t` with its clip replaced by its caption's mean latent. Draws from `g` only when share > 0."""
    moved = torch.zeros(z0.shape[0], dtype=torch.bool)
    if share <= 0:
        return z0, t, moved
    clip_group = group[idx.cpu()]
    moved = (torch.rand(z0.shape[0], generator=g) < share) & (clip_group >= 0)
    if moved.any():
        z0, t = z0.clone(), t.clone()
        where = moved.to(z0.device)
        z0[where] = means[clip_group[moved]].to(z0.device, z0.dtype)
        t[where] = last_t
    return z0, t, moved


def share_now(share: float, until: float, step: int, steps: int, elapsed: float, max_seconds: float) -> float:
    """The terminal share for this step: `share` until the run is `until` of the way through, then 0, so the run
    ends on plain denoising. How far through is the larger of steps done and time used, since a CPU run usually
    ends on its time cap. Why: the terminal half of each batch left objects missing from the first frames, and plain
    steps at the end put them back with the motion words kept (FINDINGS.md, "ShapesT2V v3's look")."""
    progress = max(step / max(steps, 1), elapsed / max_seconds if max_seconds > 0 else 0.0)
    return share if progress < until else 0.0

