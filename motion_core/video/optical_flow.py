"""Dense optical flow between two frames, classical and in plain torch: coarse-to-fine Horn-Schunck with warping.

Why this one: DeT's tracking loss needs where each point of the reference goes from frame to frame, once per clip.
The public code runs CoTracker, a learned tracker whose weights must be downloaded; the pack loads nothing from the
network. OpenCV's DIS flow would do but is a 40 MB dependency ComfyUI does not ship. Horn-Schunck needs nothing but
torch, and what the loss asks is coarse: a latent cell is 8 or 16 pixels, so a flow accurate to a pixel at a working
size of at most 256 pixels is more than enough. Its smoothness term also fills the flat insides of objects, where
matching methods have nothing to match.

The method (Horn & Schunck 1981, with the usual image pyramid and warping, e.g. Brox et al. 2004 without the robust
penalties): at each level from coarse to fine, the second frame is warped towards the first by the current flow, the
brightness constancy is linearised there, and Jacobi iterations solve for the flow with a quadratic smoothness term.
All colour channels contribute to the data term (a red object on a dark-red background still has contrast).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InvalidInputError

WORKING_SIZE = 256
"""Flows are computed with the longer side at most this many pixels (then scaled back)."""


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image`` [C, H, W] sampled at x + flow (flow [2, H, W] in pixels, x then y); outside the frame it repeats
    the border."""
    _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype), torch.arange(w, dtype=flow.dtype), indexing="ij")
    gx = (xs + flow[0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)[None]
    return F.grid_sample(image[None], grid, mode="bilinear", padding_mode="border", align_corners=True)[0]


def _gradients(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    padded = F.pad(image[None], (1, 1, 1, 1), mode="replicate")[0]
    gx = (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2]) * 0.5
    gy = (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1]) * 0.5
    return gx, gy


_NEIGHBOURS = torch.tensor([[1.0, 2.0, 1.0], [2.0, 0.0, 2.0], [1.0, 2.0, 1.0]]) / 12.0


def _local_mean(field: torch.Tensor) -> torch.Tensor:
    """Horn-Schunck's neighbourhood average of each flow component (edges repeat)."""
    kernel = _NEIGHBOURS.to(field.dtype)[None, None].repeat(field.shape[0], 1, 1, 1)
    padded = F.pad(field[None], (1, 1, 1, 1), mode="replicate")
    return F.conv2d(padded, kernel, groups=field.shape[0])[0]


def _refine(first: torch.Tensor, second: torch.Tensor, flow: torch.Tensor, smoothness: float, rest: float,
            warps: int, iterations: int) -> torch.Tensor:
    alpha2, beta2 = smoothness * smoothness, rest * rest
    for _ in range(warps):
        moved = warp(second, flow)
        gx, gy = _gradients((moved + first) * 0.5)
        dt = moved - first
        a, b, c = (gx * gx).sum(0), (gx * gy).sum(0), (gy * gy).sum(0)
        # Data term linearised at the flow of this warp: sum_c (g_c . (u - base) + dt_c)^2.
        d1 = (gx * (gx * flow[0] + gy * flow[1] - dt)).sum(0)
        d2 = (gy * (gx * flow[0] + gy * flow[1] - dt)).sum(0)
        m11, m22 = a + alpha2 + beta2, c + alpha2 + beta2
        det = m11 * m22 - b * b
        for _ in range(iterations):
            # Jacobi step: (g g^T + (alpha^2 + beta^2) I) u = alpha^2 mean(u) + data, solved per pixel (2x2).
            mean = _local_mean(flow)
            r1, r2 = alpha2 * mean[0] + d1, alpha2 * mean[1] + d2
            flow = torch.stack([(m22 * r1 - b * r2) / det, (m11 * r2 - b * r1) / det])
    return flow


def dense_flow(first: torch.Tensor, second: torch.Tensor, *, smoothness: float = 0.3, rest: float = 0.0,
               levels: int = 0, warps: int = 3, iterations: int = 60) -> torch.Tensor:
    """Flow [2, H, W] in pixels (x, y) such that ``second`` at x + flow(x) looks like ``first`` at x.

    Frames are float [H, W, 3] (or [3, H, W]) in 0..1. ``smoothness`` is alpha in units of intensity per pixel of
    flow; ``rest`` (beta) pulls the flow towards zero where the frames say nothing (flat regions), so a flat
    background does not take on a moving object's flow; ``levels`` 0 picks as many pyramid levels as halve the
    working size down to 8 pixels."""
    first, second = _as_chw(first), _as_chw(second)
    if first.shape != second.shape:
        raise InvalidInputError(
            f"Flow needs two frames of one size; got {tuple(first.shape)} and {tuple(second.shape)}.")
    _, h, w = first.shape
    scale = min(1.0, WORKING_SIZE / max(h, w))
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    a = F.interpolate(first[None], size=size, mode="area")[0] if scale < 1 else first
    b = F.interpolate(second[None], size=size, mode="area")[0] if scale < 1 else second
    count = levels or max(1, int(torch.log2(torch.tensor(min(size) / 8.0)).floor().item()) + 1)
    pyramid = [(a, b)]
    for _ in range(count - 1):
        a, b = F.avg_pool2d(a[None], 2)[0], F.avg_pool2d(b[None], 2)[0]
        pyramid.append((a, b))
    flow = torch.zeros(2, *pyramid[-1][0].shape[1:], dtype=torch.float32)
    for level, (a, b) in enumerate(reversed(pyramid)):
        if level:
            flow = F.interpolate(flow[None], size=a.shape[1:], mode="bilinear", align_corners=False)[0] * 2.0
        flow = _refine(a, b, flow, smoothness, rest, warps, iterations)
    if scale < 1:
        flow = F.interpolate(flow[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        flow = flow * torch.tensor([w / size[1], h / size[0]]).view(2, 1, 1)
    return flow


def _as_chw(frame: torch.Tensor) -> torch.Tensor:
    frame = torch.as_tensor(frame)
    if frame.ndim != 3:
        raise InvalidInputError(f"A frame must be [H, W, 3] or [3, H, W]; got shape {tuple(frame.shape)}.")
    if frame.shape[-1] in (1, 3, 4) and frame.shape[0] not in (1, 3, 4):
        frame = frame.permute(2, 0, 1)
    frame = frame[:3].float()
    return frame / 255.0 if frame.max() > 1.5 else frame
