"""`python -m motion_core.toy.pretrain --refine-decoder FOLDER`: more decoder steps on a finished ShapesT2V folder.

The decoder stage trains only the decoder on the frozen encoder's latents, so it can run again on a finished model
without touching what the UNet learned: the latents, and so the UNet, text encoder and scheduler, stay valid and are
copied byte for byte. Why it exists: the full run's 400 decoder steps left the decoder drawing a fifth of the squares
and triangles round on the encoder's own latents (FINDINGS.md, "The decoder drew squares round").
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .data import object_pixels, pretraining_specs, render_dataset
from .decoder_stage import object_error, refine_decoder
from .save import atomic_folder
from .vae_stage import encode_clips, reconstruction_error

KEPT = ("unet", "text_encoder", "tokenizer", "scheduler", "model_index.json")


def refine_folder(folder: Path, *, clips: int, seed: int, steps: int, device: str = "cpu", log=print) -> Path:
    """Run `steps` decoder steps on `folder`'s VAE with the run's own clips (same `clips` and `seed` as the run) and
    rewrite the folder atomically. The card gains a line saying so; its measured sections are kept, but they describe
    the old decoder until re-measured (the log says which)."""
    from diffusers import AutoencoderKL

    folder = Path(folder)
    missing = [name for name in (*KEPT, "vae", "README.md") if not (folder / name).exists()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a ShapesT2V folder (missing {', '.join(missing)}); pass the folder "
                                "that `python -m motion_core.toy.pretrain` wrote.")
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae").float().to(device).eval().requires_grad_(False)
    scaling = float(vae.config.scaling_factor)
    specs = pretraining_specs(clips, seed)
    frames, _ = render_dataset(specs)
    objects = object_pixels(specs, frames)
    log(f"rendered {len(specs)} clips")
    latents = encode_clips(vae, frames, scaling)
    before = (reconstruction_error(vae, frames, scaling), *object_error(vae, frames, objects))
    vae = refine_decoder(vae, frames, latents, objects, steps, scaling=scaling, seed=seed, log=log)
    after = (reconstruction_error(vae, frames, scaling), *object_error(vae, frames, objects))
    log(f"decoder: mean abs error {before[0]:.4f} -> {after[0]:.4f}; object pixels {before[1]:.4f} -> {after[1]:.4f}, "
        f"background {before[2]:.4f} -> {after[2]:.4f}")
    card = _card_with_note(folder / "README.md", steps, clips, seed, before, after)
    with atomic_folder(folder) as tmp:
        for name in KEPT:
            source = folder / name
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, tmp / name)
        vae.cpu().half().save_pretrained(tmp / "vae", safe_serialization=True)
        (tmp / "README.md").write_text(card)
    log(f"refined the decoder of {folder}; re-measure its card (base_quality --write-card, prompt_control)")
    return folder


def _card_with_note(card_path: Path, steps: int, clips: int, seed: int, before, after) -> str:
    """The card with one line about this stage, placed before the measured sections (which follow the run's facts)."""
    from ..base_quality import CARD_HEADING  # the heading base_quality writes its measurements under

    text = card_path.read_text()
    head, sep, measured = text.partition(CARD_HEADING)
    note = (f"- Decoder refined afterwards: `python -m motion_core.toy.pretrain --refine-decoder FOLDER --decoder-steps "
            f"{steps} --clips {clips} --seed {seed}` (encoder frozen: UNet, text encoder and latents unchanged); "
            f"reconstruction error {before[0]:.4f} -> {after[0]:.4f}, object pixels {before[1]:.4f} -> {after[1]:.4f}.")
    return head.rstrip() + "\n" + note + "\n" + (f"\n{sep}{measured}" if sep else "")
