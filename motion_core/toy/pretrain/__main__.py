"""python -m motion_core.toy.pretrain: reproducible (seeded) pretraining of the ShapesT2V default model."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from transformers import CLIPTokenizer

from ..vocab import write_vocab
from .architecture import MAX_TOKENS
from .card import model_card
from .compiled_forward import COMPILE_FROM_STEPS, use_compile
from .data import object_masks, object_pixels, pretraining_specs, render_dataset
from .decoder_stage import object_error, refine_decoder
from .motion_contrast import motion_swapped_captions
from .precision import PRECISIONS, resolve_precision
from .refine_folder import refine_folder
from .save import save_model_folder
from .t2v_stage import train_t2v
from .vae_stage import encode_clips, reconstruction_error, train_vae

# 400 kept colour but rounded a quarter of the squares on the encoder's own latents; 1,200 keep 99% of shapes
# (FINDINGS.md, "The decoder drew squares round"). About 4 min more on 2 cores, taken from the text-to-video cap.
DECODER_STEPS = 1200
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "shapes_t2v"


def build_tokenizer(directory: Path) -> CLIPTokenizer:
    vocab, merges = write_vocab(directory)
    return CLIPTokenizer(vocab, merges, model_max_length=MAX_TOKENS)


def _load_vae(folder: Path):
    """(vae, scaling) of an earlier run, frozen, in float32."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae").float().eval().requires_grad_(False)
    return vae, float(vae.config.scaling_factor)


def _load_previous(folder: Path):
    """(vae, scaling, (unet, text_encoder)) of an earlier run, in float32 for training."""
    from diffusers import UNet3DConditionModel
    from transformers import CLIPTextModel

    unet = UNet3DConditionModel.from_pretrained(folder, subfolder="unet")
    text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder")
    return *_load_vae(folder), (unet, text_encoder)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m motion_core.toy.pretrain", description=__doc__)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="model folder to write (replaced atomically)")
    p.add_argument("--clips", type=int, default=3000, help="rendered training clips (basic motions only)")
    p.add_argument("--vae-steps", type=int, default=300)
    p.add_argument("--decoder-steps", type=int, default=DECODER_STEPS,
                   help="refine the VAE decoder on posterior means, object pixels weighted (encoder frozen); 0 = off")
    p.add_argument("--t2v-steps", type=int, default=4000,
                   help="sized to fill the 44-min cap on the 2-core reference machine, compiled in bf16 "
                   "(~0.6 s a step)")
    p.add_argument("--minutes", type=float, default=44.0,
                   help="cap on the text-to-video stage's wall time: the whole run stays within 60 min on 2 cores")
    p.add_argument("--batch", type=int, default=16, help="whole clips per step (twice as many short windows)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--short-fraction", type=float, default=0.0,
                   help="share of the text-to-video steps trained on 4-frame windows at a doubled batch")
    p.add_argument("--continue-from", type=Path, default=None,
                   help="a ShapesT2V folder to keep training: its VAE, tokenizer, UNet and text encoder are reused")
    p.add_argument("--vae-from", type=Path, default=None,
                   help="a ShapesT2V folder whose VAE is reused (no VAE stage; the latents stay the same) while the "
                   "text-to-video model trains from scratch: compares text-to-video settings on equal latents")
    p.add_argument("--refine-decoder", type=Path, default=None, metavar="FOLDER",
                   help="only run --decoder-steps more decoder steps on this finished ShapesT2V folder (same --clips "
                   "and --seed as its run) and rewrite it; the UNet and text encoder are copied unchanged")
    p.add_argument("--luma-anchor", action="store_true",
                   help="8-channel latents, 4 of them anchored to 2-px luminance (shape as loud as colour)")
    p.add_argument("--ema-decay", type=float, default=0.999, help="EMA of the text-to-video weights (the saved ones)")
    p.add_argument("--min-snr-gamma", type=float, default=0.0, help="Min-SNR loss weighting; 0 = plain MSE")
    p.add_argument("--high-noise-share", type=float, default=0.0,
                   help="share of the text-to-video timesteps drawn from the noisier half of the schedule; 0 = uniform")
    p.add_argument("--frame-diff-weight", type=float, default=2.0,
                   help="weight of an extra loss on consecutive-frame differences (stresses what moves); 0 = off")
    p.add_argument("--object-weight", type=float, default=0.0,
                   help="extra loss weight on the latent cells objects cover (with a border, ~18%% of them); 0 = off")
    p.add_argument("--motion-contrast", type=float, default=0.0,
                   help="weight of a hinge that makes a swapped motion word fit worse than the true one (each step "
                   "denoises twice); 0 = off")
    p.add_argument("--shared-noise", type=float, default=0.0,
                   help="largest share of each clip's training noise common to all its frames (drawn per clip from "
                   "0 to this), so motion cannot be copied from the noise; 0 = independent noise per frame")
    p.add_argument("--anchor-frames", type=float, default=0.0,
                   help="share of the clips in which one frame is shown less noisy and left out of the loss, so the "
                   "other frames must follow from it and the motion word; 0 = off")
    p.add_argument("--freeze-text-encoder", action=argparse.BooleanOptionalAction, default=True,
                   help="keep the text encoder at its seeded random weights (or --continue-from's): trained jointly it "
                   "folded the motion words together; frozen they stay apart (FINDINGS.md, \"The text encoder folded "
                   "the motion words\"); on by default since the shipped run")
    p.add_argument("--terminal-mean-share", type=float, default=0.25,
                   help="share of each text-to-video batch trained at the last timestep against the mean latent of "
                   "its caption's clips, so the first sampling step learns what the words say and they, not the "
                   "noise, set the path (terminal_means.py; FINDINGS.md, \"Motion words that set the path\"); "
                   "needs --short-fraction 0; 0 = off")
    p.add_argument("--terminal-mean-until", type=float, default=0.8,
                   help="apply --terminal-mean-share until the run is this far through (steps or time, 0-1), then "
                   "end on plain steps, which keep every frame's object (FINDINGS.md, \"ShapesT2V v3's look\")")
    p.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                   help="train the UNet through torch.compile: 1.65x faster CPU steps after ~5 min of compiling; auto "
                   f"= on from {COMPILE_FROM_STEPS} text-to-video steps, where it pays for itself")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="text-to-video arithmetic: bf16 autocast (about 2x faster steps on a CPU with AVX512-BF16; "
                   "weights and loss stay float32) or fp32; auto = bf16 where the device computes it natively")
    p.add_argument("--device", default="cpu", help="cpu, or cuda to explore settings fast (the shipped model is "
                   "trained on the CPU: the command's 60-minute budget is for the 2-core reference machine)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.continue_from is not None and args.vae_from is not None:
        p.error("--continue-from already reuses that folder's VAE; give only one of --continue-from and --vae-from")
    if args.short_fraction > 0 and args.terminal_mean_share > 0:
        p.error("--short-fraction trains 4-frame windows, which have no caption mean clip: add --terminal-mean-share 0")
    if not 0.0 <= args.terminal_mean_until <= 1.0:
        p.error(f"--terminal-mean-until is a fraction of the run (0-1); got {args.terminal_mean_until}")
    torch.set_num_threads(args.threads)
    if args.refine_decoder is not None:
        refine_folder(args.refine_decoder, clips=args.clips, seed=args.seed, steps=args.decoder_steps,
                      device=args.device, log=print)
        return 0
    precision = resolve_precision(args.precision, args.device)
    started = time.monotonic()

    def log(msg):
        print(f"[{time.monotonic() - started:6.0f}s] {msg}", flush=True)

    specs = pretraining_specs(args.clips, args.seed)
    frames, captions = render_dataset(specs)
    log(f"rendered {len(specs)} clips")
    if args.vae_from is not None:
        (vae, scaling), init = _load_vae(args.vae_from), None
        log(f"VAE from {args.vae_from}")
    elif args.continue_from is None:
        vae, scaling, init = *train_vae(frames, args.vae_steps, seed=args.seed, luma_anchor=args.luma_anchor,
                                               device=args.device, log=log), None
    else:
        vae, scaling, init = _load_previous(args.continue_from)
        log(f"continuing from {args.continue_from}")
    vae = vae.to(args.device)
    latents = encode_clips(vae, frames, scaling)
    objects = object_pixels(specs, frames)
    before = object_error(vae, frames, objects)
    vae = refine_decoder(vae, frames, latents, objects, args.decoder_steps, scaling=scaling, seed=args.seed, log=log)
    recon, after = reconstruction_error(vae, frames, scaling), object_error(vae, frames, objects)
    log(f"vae: scaling factor {scaling:.3f}, mean abs reconstruction error {recon:.4f}; on object / background "
        f"pixels {after[0]:.4f} / {after[1]:.4f} (before the decoder stage {before[0]:.4f} / {before[1]:.4f})")
    masks = object_masks(objects, latents.shape[-1]) if args.object_weight > 0 else None
    del frames, objects
    log(f"encoded latents {tuple(latents.shape)}")
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tokenizer(Path(tmp))
        unet, text_encoder, scheduler, steps = train_t2v(
            latents, captions, tokenizer, steps=args.t2v_steps, max_minutes=args.minutes, batch=args.batch,
            lr=args.lr, short_fraction=args.short_fraction, min_snr_gamma=args.min_snr_gamma,
            high_noise_share=args.high_noise_share,
            frame_diff_weight=args.frame_diff_weight, masks=masks, object_weight=args.object_weight,
            motion_contrast=args.motion_contrast, shared_noise=args.shared_noise,
            anchor_share=args.anchor_frames, freeze_text_encoder=args.freeze_text_encoder,
            terminal_mean_share=args.terminal_mean_share, terminal_mean_until=args.terminal_mean_until,
            swapped_captions=motion_swapped_captions(specs, args.seed) if args.motion_contrast > 0 else None,
            ema_decay=args.ema_decay, init=init, seed=args.seed, device=args.device,
            compile=use_compile(args.compile, args.t2v_steps), precision=precision, log=log)
        unet, text_encoder, vae = unet.cpu(), text_encoder.cpu(), vae.cpu()
        previous = None if args.continue_from is None else (args.continue_from / "README.md").read_text()
        card = model_card(args={**vars(args), "precision": precision}, t2v_steps=steps, vae_error=recon,
                          object_error=after, minutes=(time.monotonic() - started) / 60, previous=previous)
        out = save_model_folder(args.out, unet=unet, vae=vae, vae_scaling=scaling, text_encoder=text_encoder,
                                tokenizer=tokenizer, scheduler=scheduler, card=card)
    log(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
