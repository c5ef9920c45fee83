"""The bridge from motion_core's plain callbacks to ComfyUI: progress bar with previews, interrupt, and the
`md.*` server events the web extension listens to (live loss chart, training preview clip)."""

from __future__ import annotations

import base64
import io as bytes_io
import logging

import numpy as np
import torch
from PIL import Image

import comfy.model_management
import comfy.utils

log = logging.getLogger("motion_customization")
PREVIEW_SIZE = 512


def interrupted() -> bool:
    return comfy.model_management.processing_interrupted()


def send_event(event: str, data: dict) -> None:
    """Broadcast to every connected frontend; a headless run without a server is not an error."""
    try:
        from server import PromptServer

        PromptServer.instance.send_sync(event, data)
    except Exception as err:  # noqa: BLE001 - previews must never break a run
        log.debug("could not send %s: %s", event, err)


def frames_to_pil(frames: torch.Tensor) -> list[Image.Image]:
    array = (frames.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return [Image.fromarray(np.ascontiguousarray(f)) for f in array]


def filmstrip(frames: torch.Tensor, max_frames: int = 8) -> Image.Image:
    """A row of up to `max_frames` evenly spaced frames: ComfyUI's node preview shows one still image."""
    picks = np.linspace(0, frames.shape[0] - 1, min(max_frames, frames.shape[0])).round().astype(int)
    images = frames_to_pil(frames[torch.as_tensor(picks)])
    w, h = images[0].size
    strip = Image.new("RGB", (w * len(images), h))
    for i, im in enumerate(images):
        strip.paste(im, (i * w, 0))
    return strip


def animated_webp_data_url(frames: torch.Tensor, fps: float = 8.0) -> str:
    images = frames_to_pil(frames)
    buffer = bytes_io.BytesIO()
    images[0].save(
        buffer, format="WEBP", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0, quality=80
    )
    return "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class NodeProgress:
    """One ComfyUI progress bar; `update(step, total, frames)` also shows a filmstrip preview when given frames."""

    def __init__(self, total: int):
        self.bar = comfy.utils.ProgressBar(total)

    def update(self, step: int, total: int, frames: torch.Tensor | None = None) -> None:
        preview = ("JPEG", filmstrip(frames), PREVIEW_SIZE) if frames is not None else None
        try:
            self.bar.update_absolute(step, total, preview)
        except comfy.model_management.InterruptProcessingException:
            # ComfyUI's progress hook raises on Cancel and clears the flag. Set it again so the engine's own cancel
            # check stops the run cleanly: the trainer writes a checkpoint, the sampler restores the base weights.
            comfy.model_management.interrupt_current_processing(True)
