"""Dense trajectories of a reference clip on the latent grid: where each latent cell of one latent frame goes in
the next, and whether it is still seen there. What DeT's tracking loss follows.

Computed once per clip, when the trainer caches it: the classical flow (optical_flow.py) between the video frames
that the latent frames stand for, in both directions. A cell counts as visible when most of its pixels pass the
forward-backward check (the flow there and the backward flow at its landing point cancel; occluded and
disoccluded pixels fail it) and it lands inside the frame. The public code tracks CoTracker points from the first
frame (a grid plus points on the subject) and compares consecutive frames along them; following every cell from
each latent frame to the next covers the same consecutive pairs densely, without the drift of chaining, and sees
what enters the frame later too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InvalidInputError
from .optical_flow import dense_flow, warp


@dataclass(frozen=True)
class LatentTracks:
    """``targets`` [F'-1, h, w, 2]: for the cell (row, column) of latent frame f, its position (x, y) in latent frame
    f + 1, in cell units (cell centres at integers). ``visible`` [F'-1, h, w] float 0/1."""

    targets: torch.Tensor
    visible: torch.Tensor

    @property
    def latent_frames(self) -> int:
        return int(self.targets.shape[0]) + 1

    def to(self, device) -> "LatentTracks":
        return LatentTracks(self.targets.to(device), self.visible.to(device))


def latent_frame_sources(video_frames: int, temporal_compression: int) -> list[int]:
    """The video frame each latent frame stands for: every frame without compression; with a causal VAE of
    compression c, frame 0 and then the last frame of each chunk of c (0, c, 2c, ...), as the public code's
    linspace over the clip picks them for CogVideoX's 4x."""
    c = int(temporal_compression)
    if c <= 1:
        return list(range(int(video_frames)))
    if (int(video_frames) - 1) % c:
        raise InvalidInputError(f"A clip for a VAE compressing time by {c} has 1 + {c}·k frames; got {video_frames}.")
    return list(range(0, int(video_frames), c))


def forward_backward_visible(forward: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
    """[H, W] 1 where the backward flow at the forward flow's landing point brings the pixel back (Sundaram et al.'s
    test: |f + b'|^2 < 0.01 (|f|^2 + |b'|^2) + 0.5 pixels^2) and the landing point is inside the frame."""
    back = warp(backward, forward)
    error = (forward + back).pow(2).sum(0)
    bound = 0.01 * (forward.pow(2).sum(0) + back.pow(2).sum(0)) + 0.5
    _, h, w = forward.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=forward.dtype), torch.arange(w, dtype=forward.dtype), indexing="ij")
    inside = (xs + forward[0] >= -0.5) & (xs + forward[0] <= w - 0.5) & (ys + forward[1] >= -0.5) & (
        ys + forward[1] <= h - 0.5)
    return ((error < bound) & inside).float()


def latent_tracks(video: torch.Tensor, latent_size: tuple[int, int], temporal_compression: int = 1) -> LatentTracks:
    """Tracks of ``video`` float [F, H, W, 3] in 0..1 on a latent grid of ``latent_size`` (h, w)."""
    if video.ndim != 4 or video.shape[-1] != 3:
        raise InvalidInputError(f"Trajectories need a clip [frames, height, width, 3]; got {tuple(video.shape)}.")
    sources = latent_frame_sources(video.shape[0], temporal_compression)
    if len(sources) < 2:
        raise InvalidInputError("Trajectories need at least two latent frames; train with more frames.")
    _, height, width, _ = video.shape
    h, w = (int(s) for s in latent_size)
    cell_x, cell_y = width / w, height / h
    targets, visible = [], []
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing="ij")
    for here, there in zip(sources[:-1], sources[1:]):
        forward = dense_flow(video[here], video[there])
        backward = dense_flow(video[there], video[here])
        seen = forward_backward_visible(forward, backward)
        # One value per cell: the mean flow and the share of its pixels that passed the check.
        flow = F.adaptive_avg_pool2d(forward[None], (h, w))[0]
        share = F.adaptive_avg_pool2d(seen[None, None], (h, w))[0, 0]
        x, y = cols + flow[0] / cell_x, rows + flow[1] / cell_y
        inside = (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)
        targets.append(torch.stack([x, y], dim=-1))
        visible.append(((share > 0.5) & inside).float())
    return LatentTracks(torch.stack(targets), torch.stack(visible))
