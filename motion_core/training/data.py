"""Training data, prepared once per run: clips brought to the training size, encoded to latents, captions encoded.

The VAE and the text encoder run only here, never per step (they would cost more than the LoRA step itself on the
small clips motion LoRAs train on); afterwards they can leave the accelerator.
"""

from __future__ import annotations

import torch

from ..clips import Clip, ClipSet
from ..errors import InvalidInputError
from ..video.recolour import recolour_angles, rotate_hue
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


def uses_start_image(backbone, start_image: str) -> bool:
    """Whether training conditions on each clip's first frame (TrainingConfig.start_image)."""
    support = backbone.start_image
    if start_image == "none":
        if support == "required":
            raise InvalidInputError(
                "This model is image-to-video: it cannot train without a start image. Set start_image to 'auto'.")
        return False
    if start_image == "first_frame" and support == "none":
        raise InvalidInputError(
            "start_image 'first_frame' asks for image-to-video training, but this model is text-to-video only. Set "
            "start_image to 'auto', or load an image-to-video model.")
    return support == "required" or start_image == "first_frame"


@torch.no_grad()
def cache_samples(backbone, recipe, clips: ClipSet, *, frames: int, width: int, height: int,
                  training_caption: str | None = None, regularisation: bool = False, start_image: str = "auto",
                  recolour: int = 0) -> list[TrainingSample]:
    """One TrainingSample per clip. Reference clips get the recipe's training caption (and its extra prompts);
    regularisation clips keep their own captions, as NewMove requires. Image-to-video models get each clip's own
    first frame as the start image; ``recolour`` adds hue-rotated copies of each reference clip (same clip_index)."""
    kind = "regularisation clip" if regularisation else "reference clip"
    conditioned = uses_start_image(backbone, start_image)
    angles = recolour_angles(recolour) if conditioned and not regularisation else []
    samples = []
    for index, clip in enumerate(clips):
        label = f"{kind} {index + 1}" + (f" ({clip.source})" if clip.source else "")
        video = prepare_frames(clip, frames, width, height, label=label)
        caption = clip.caption if regularisation else recipe.training_caption(clip.caption, training_caption)
        extra = {} if regularisation else recipe.extra_prompts(caption)
        texts = _encode_texts(backbone, [caption, *extra.values()])
        backbone.check_video_frames(frames)
        for shown in [video, *(rotate_hue(video, angle) for angle in angles)]:
            latents = backbone.encode_video(shown).float()
            images = latents if backbone.temporal_compression == 1 else backbone.encode_frames_as_images(shown).float()
            condition = backbone.encode_start_image(shown[0], frames, width, height) if conditioned else None
            samples.append(TrainingSample(latents=latents, text_states=texts[caption], clip_index=index,
                                          caption=caption, regularisation=regularisation, image_latents=images,
                                          extra_text={k: texts[p] for k, p in extra.items()}, condition=condition))
    return samples


def add_clip_extras(backbone, recipe, clips: ClipSet, samples: list[TrainingSample], *, frames: int, width: int,
                    height: int) -> None:
    """The recipe's per-clip data (DeT's trajectories), once per reference clip; hue-rotated copies of a clip share
    it (its geometry is theirs)."""
    if not recipe.uses_clip_extras:
        return
    done: dict[int, dict] = {}
    for sample in samples:
        if sample.clip_index not in done:
            video = prepare_frames(clips.clips[sample.clip_index], frames, width, height)
            done[sample.clip_index] = recipe.clip_extras(backbone, video, sample.latents)
        sample.extras.update(done[sample.clip_index])
