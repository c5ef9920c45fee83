"""Training data, prepared once per run: clips brought to the training size, encoded to latents, captions encoded.

The VAE and the text encoder run only here, never per step (they would cost more than the LoRA step itself on the
small clips motion LoRAs train on); afterwards they can leave the accelerator.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ..clips import Clip, ClipSet
from ..errors import InvalidInputError
from ..video.recolour import recolour_angles, rotate_hue
from ..video.resize import fit_frame
from ..video.shift import shift_clip, shift_offsets
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
                  recolour: int = 0, shift_copies: int = 0) -> list[TrainingSample]:
    """One TrainingSample per clip. Reference clips get the recipe's training caption (and its extra prompts);
    regularisation clips keep their own captions, as NewMove requires. Image-to-video models get each clip's own
    first frame as the start image; ``recolour`` adds hue-rotated copies of each reference clip and
    ``shift_copies`` translated ones (each shifted copy recoloured too), all with the clip's clip_index."""
    kind = "regularisation clip" if regularisation else "reference clip"
    conditioned = uses_start_image(backbone, start_image)
    varied = conditioned and not regularisation
    angles = recolour_angles(recolour) if varied else []
    offsets = [(0, 0), *(shift_offsets(shift_copies, width, height) if varied else [])]
    samples = []
    for index, clip in enumerate(clips):
        label = f"{kind} {index + 1}" + (f" ({clip.source})" if clip.source else "")
        video = prepare_frames(clip, frames, width, height, label=label)
        caption = clip.caption if regularisation else recipe.training_caption(clip.caption, training_caption)
        extra = {} if regularisation else recipe.extra_prompts(caption)
        texts = _encode_texts(backbone, [caption, *extra.values()])
        backbone.check_video_frames(frames)
        common = {"text_states": texts[caption], "clip_index": index, "caption": caption,
                  "regularisation": regularisation, "extra_text": {k: texts[p] for k, p in extra.items()}}
        for offset in offsets:
            moved = video if offset == (0, 0) else shift_clip(video, *offset)
            for shown in (moved, *(rotate_hue(moved, angle) for angle in angles)):
                samples.append(_encoded(backbone, shown, (frames, width, height), conditioned, offset=offset,
                                        **common))
    return samples


def _encoded(backbone, shown: torch.Tensor, size: tuple[int, int, int], conditioned: bool, **fields) -> TrainingSample:
    """One copy of a clip encoded: its latents, its frames as images and its start image (and no-image) conditions."""
    frames, width, height = size
    latents = backbone.encode_video(shown).float()
    images = latents if backbone.temporal_compression == 1 else backbone.encode_frames_as_images(shown).float()
    condition = backbone.encode_start_image(shown[0], frames, width, height) if conditioned else None
    no_image = backbone.without_image(condition) if conditioned else None
    return TrainingSample(latents=latents, image_latents=images, condition=condition, no_image_condition=no_image,
                          **fields)


def drop_start_image(sample: TrainingSample, share: float, generator: torch.Generator) -> TrainingSample:
    """start_image_dropout: with probability ``share`` the sample trains this step with its no-image condition.
    The draw comes from the step's seeded generator and is made only when dropout can apply, so runs without it
    replay exactly as before."""
    if share <= 0 or sample.condition is None:
        return sample
    if float(torch.rand((1,), generator=generator)) >= share:
        return sample
    return replace(sample, condition=sample.no_image_condition)


def add_clip_extras(backbone, recipe, clips: ClipSet, samples: list[TrainingSample], *, frames: int, width: int,
                    height: int) -> None:
    """The recipe's per-clip data (DeT's trajectories), once per reference clip and shift: hue-rotated copies share
    their clip's (its geometry is theirs), shifted copies get their own from the moved clip."""
    if not recipe.uses_clip_extras:
        return
    done: dict[tuple, dict] = {}
    for sample in samples:
        key = (sample.clip_index, sample.offset)
        if key not in done:
            video = prepare_frames(clips.clips[sample.clip_index], frames, width, height)
            video = video if sample.offset == (0, 0) else shift_clip(video, *sample.offset)
            done[key] = recipe.clip_extras(backbone, video, sample.latents)
        sample.extras.update(done[key])
