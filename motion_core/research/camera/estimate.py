"""Global (camera) motion between frames: a similarity transform per frame pair, by phase correlation.

Why this and not the object tracker: a camera move has no object to segment; every pixel moves, and the move is one
transform of the whole frame. Translation comes from phase correlation (numpy FFT, summed over the RGB channels,
Hann-windowed, sub-pixel by a parabola through the peak). Zoom and roll come from a small grid search: the later
frame is warped back by each candidate (log scale, angle) about the centre, and the candidate whose phase
correlation peak is highest wins (coarse grid, then two finer rounds). A log-polar transform would find zoom and roll
in one FFT, but at 64 px its resampling is too coarse for the 2-6 degree steps the world renders; the search costs
~0.1 s a pair on one thread.

Output per pair, in `world`'s convention: (dx, dy) the camera's move in frame widths in the earlier frame's axes
(the content moves the other way), dz its change of log zoom (> 0: zooming in), dtheta its roll in radians.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import InvalidInputError

LOWPASS = 0.12  # std (cycles per pixel) of the Gaussian weighting of the whitened cross-power spectrum
COARSE = np.linspace(-0.2, 0.2, 9)  # log scale and angle (rad) candidates per frame step: ±18% zoom, ±11.5 degrees
REFINE_ROUNDS = 3  # each a 5x5 grid at a third of the previous spacing around the best so far


def _as_frames(frames) -> torch.Tensor:
    x = torch.as_tensor(frames if not isinstance(frames, np.ndarray) else torch.from_numpy(frames))
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    x = x.float()
    if x.ndim != 4 or x.shape[-1] != 3 or x.shape[0] < 2:
        raise InvalidInputError(f"Need frames [F >= 2, H, W, 3]; got {tuple(x.shape)}.")
    return x.permute(0, 3, 1, 2)  # [F, 3, H, W]


def _window(h: int, w: int) -> np.ndarray:
    return np.outer(np.hanning(h), np.hanning(w))


def _warp(frame: torch.Tensor, dz: np.ndarray, dth: np.ndarray) -> torch.Tensor:
    """[K, 3, H, W]: `frame` sampled at exp(dz) R(-dth) u for each candidate, i.e. the later frame brought back
    into the earlier frame's scale and orientation, so only a translation is left between them."""
    k = np.exp(dz)
    c, s = np.cos(dth), np.sin(dth)
    theta = np.zeros((len(dz), 2, 3))
    theta[:, 0, 0], theta[:, 0, 1] = k * c, k * s
    theta[:, 1, 0], theta[:, 1, 1] = -k * s, k * c
    theta = torch.from_numpy(theta).float()
    grid = F.affine_grid(theta, [len(dz), *frame.shape], align_corners=False)
    return F.grid_sample(frame[None].expand(len(dz), -1, -1, -1), grid, mode="bilinear", padding_mode="border",
                         align_corners=False)


def _subpixel(corr: np.ndarray, i: int, j: int) -> tuple[float, float]:
    h, w = corr.shape

    def offset(m1, c0, p1):
        denom = m1 - 2.0 * c0 + p1
        return 0.0 if abs(denom) < 1e-12 else float(np.clip(0.5 * (m1 - p1) / denom, -0.5, 0.5))

    di = offset(corr[(i - 1) % h, j], corr[i, j], corr[(i + 1) % h, j])
    dj = offset(corr[i, (j - 1) % w], corr[i, j], corr[i, (j + 1) % w])
    return i + di, j + dj


def phase_correlation(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """a [3, H, W], b [K, 3, H, W] -> (peak heights [K], shift_y [K], shift_x [K]) in pixels, where b(u) ≈
    a(u + shift): the content of b is a's moved by -shift (the camera moved by +shift). Windowed, channels summed in
    the cross-power spectrum."""
    h, w = a.shape[-2:]
    win = _window(h, w)
    fa = np.fft.fft2((a - a.mean(axis=(-2, -1), keepdims=True)) * win)
    fb = np.fft.fft2((b - b.mean(axis=(-2, -1), keepdims=True)) * win)
    cross = (np.conj(fa)[None] * fb).sum(axis=1)
    cross /= np.abs(cross) + 1e-9
    # Whitening gives every frequency the same say, and in a generated or noisy clip the highest ones are mostly
    # noise; a Gaussian low-pass keeps the peak on the structure (the world's texture lives below ~0.1 cycles/px).
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    cross *= np.exp(-(fy**2 + fx**2) / (2.0 * LOWPASS**2))
    # The peak sits at -shift: with b(u) = a(u + s), B = A exp(+2 pi i k s), so conj(A) B -> delta at -s.
    corr = np.real(np.fft.ifft2(cross))
    flat = corr.reshape(len(b), -1).argmax(axis=1)
    peaks = corr.reshape(len(b), -1)[np.arange(len(b)), flat]
    ys, xs = np.empty(len(b)), np.empty(len(b))
    for k in range(len(b)):
        y, x = _subpixel(corr[k], *divmod(int(flat[k]), w))
        ys[k] = -((y + h / 2) % h - h / 2)
        xs[k] = -((x + w / 2) % w - w / 2)
    return peaks, ys, xs


def estimate_step(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """(dx, dy, dz, dtheta) of the camera from frame a to frame b, both [3, H, W] float in 0..1."""
    an = a.double().numpy()
    step = COARSE[1] - COARSE[0]
    zs, ts = np.meshgrid(COARSE, COARSE, indexing="ij")
    zs, ts = zs.ravel(), ts.ravel()
    for round_ in range(REFINE_ROUNDS + 1):
        peaks, ys, xs = phase_correlation(an, _warp(b, zs, ts).double().numpy())
        best = int(np.argmax(peaks))
        bz, bt = zs[best], ts[best]
        if round_ < REFINE_ROUNDS:
            step /= 3.0
            offsets = np.arange(-2, 3) * step
            zs, ts = np.meshgrid(bz + offsets, bt + offsets, indexing="ij")
            zs, ts = zs.ravel(), ts.ravel()
    h, w = a.shape[-2:]
    return np.array([xs[best] / w, ys[best] / h, bz, bt])


def estimate_path(frames) -> np.ndarray:
    """[F - 1, 4] float64 per-step camera path of a clip, frames [F, H, W, 3] (float 0..1 or uint8)."""
    x = _as_frames(frames)
    return np.stack([estimate_step(x[t], x[t + 1]) for t in range(x.shape[0] - 1)])
