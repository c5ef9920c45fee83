"""Training data, prepared once per run: clips brought to the training size, encoded to latents, captions encoded.

The VAE and the text encoder run only here, never per step (they would cost more than the LoRA step itself on the
small clips motion LoRAs train on); afterwards they can leave the accelerator.
"""

from __future__ import annotations

import torch

from ..clips import Clip, ClipSet
from ..errors import InvalidInputError
from ..video.resize import fit_frame
from .context import TrainingSample


def frame_indices(available: int, wanted: int) -> list[int]:
    """``wanted`` frames from the start with the largest even integer stride that fits: the whole motion is
    covered as far as possible while frame spacing (the motion's speed) stays uniform."""
    stride = max(1, available // wanted)
    return [i * stride for i in range(wanted)]


def prepare_frames(clip: Clip, frames: int, width: int, height: int, *, label: str = "clip") -> torch.Tensor:
    """uint8 clip -> float [frames, height, width, 3] in 0..1 at the training size (aspect kept, center crop)."""
    if clip.num_frames < frames:
        raise InvalidInputError(
            f"{label} has {clip.num_frames} frames but training uses {frames}. Lower 'frames' to "
            f"{clip.num_frames} or load more frames of that video."
        )
    chosen = [clip.frames[i].numpy() for i in frame_indices(clip.num_frames, frames)]
    resized = torch.stack([fit_frame(f, width, height, "crop") for f in chosen])
    return resized.float().div_(255.0)


def _encode_texts(backbone, prompts: list[str]) -> dict[str, object]:
    unique = list(dict.fromkeys(prompts))
    return {p: backbone.encode_prompt([p]) for p in unique}


@torch.no_grad()
def cache_samples(backbone, recipe, clips: ClipSet, *, frames: int, width: int, height: int,
                  training_caption: str | None = None, regularisation: bool = False) -> list[TrainingSample]:
    """One TrainingSample per clip. Reference clips get the recipe's training caption (and its extra prompts);
    regularisation clips keep their own captions, as NewMove requires."""
    kind = "regularisation clip" if regularisation else "reference clip"
    samples = []
    for index, clip in enumerate(clips):
        label = f"{kind} {index + 1}" + (f" ({clip.source})" if clip.source else "")
        video = prepare_frames(clip, frames, width, height, label=label)
        caption = clip.caption if regularisation else recipe.training_caption(clip.caption, training_caption)
        extra = {} if regularisation else recipe.extra_prompts(caption)
        texts = _encode_texts(backbone, [caption, *extra.values()])
        backbone.check_video_frames(frames)
        latents = backbone.encode_video(video).float()
        images = latents if backbone.temporal_compression == 1 else backbone.encode_frames_as_images(video).float()
        samples.append(TrainingSample(latents=latents, text_states=texts[caption], clip_index=index, caption=caption,
                                      regularisation=regularisation, image_latents=images,
                                      extra_text={k: texts[p] for k, p in extra.items()}))
    return samples
