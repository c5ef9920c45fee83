"""python -m motion_core.toy.pretrain.wan: reproducible (seeded) pretraining of ShapesWan, the built-in Wan-family
model: the ShapesT2V world on the real diffusers Wan classes, saved as a WanPipeline folder that the pack's Wan
loader opens like any other Wan diffusers folder. Two stages: the VAE (`wan_vae_stage`), then text-to-video on its
latents (`wan_t2v_stage`). The defaults fit in 60 minutes on the 2-core reference machine."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import diffusers
import torch

from ..motions import BASIC_MOTIONS, HELD_OUT_MOTIONS
from .card import _where
from .data import object_pixels, pretraining_specs, render_dataset
from .save import atomic_folder
from .wan_architecture import (FRAME_SIZE, TEXT_CONFIG, TRANSFORMER_CONFIG, VAE_CONFIG, WAN_FLOW_SHIFT,
                               WAN_NUM_FRAMES, build_wan_scheduler, build_wan_tokenizer)
from .wan_decoder_stage import refine_wan_decoder
from .wan_t2v_stage import train_wan_t2v
from .wan_vae_stage import encode_wan_clips, latent_statistics, train_wan_vae, wan_reconstruction_error

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "shapes_wan"
MODEL_INDEX = {"_class_name": "WanPipeline", "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
               "text_encoder": ["transformers", "UMT5EncoderModel"], "tokenizer": ["transformers", "T5Tokenizer"],
               "transformer": ["diffusers", "WanTransformer3DModel"], "vae": ["diffusers", "AutoencoderKLWan"]}


def save_wan_folder(out: Path, *, transformer, vae, text_encoder, tokenizer, scheduler, card: str) -> Path:
    """Atomic: written to a sibling temp folder that replaces `out` only when complete. float32 weights (the whole
    model is ~10 MB, and a Wan VAE's statistics are read in float32 anyway)."""
    with atomic_folder(out) as tmp:
        transformer.float().save_pretrained(tmp / "transformer", safe_serialization=True)
        vae.float().save_pretrained(tmp / "vae", safe_serialization=True)
        text_encoder.float().save_pretrained(tmp / "text_encoder", safe_serialization=True)
        tokenizer.save_pretrained(tmp / "tokenizer")
        scheduler.save_pretrained(tmp / "scheduler")
        index = dict(MODEL_INDEX, _diffusers_version=diffusers.__version__)
        (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        (tmp / "README.md").write_text(card)
    return Path(out)


def wan_model_card(*, args: dict, t2v_steps: int, vae_errors, minutes: float, decoder_note: str = "") -> str:
    shown = {k: str(v) for k, v in args.items() if k != "command_line"}
    return f"""# ShapesWan

A small Wan-family text-to-video model of the same procedural world of coloured shapes as ShapesT2V, built from the
real diffusers classes (WanTransformer3DModel, AutoencoderKLWan, UMT5EncoderModel + T5Tokenizer, FlowMatchEuler
scheduler) and saved as a WanPipeline folder; weights in float32. The motion-customization node pack ships it as its
built-in Wan model, so Wan LoRA training and sampling can be tried and measured without downloading Wan.

- Clips: {WAN_NUM_FRAMES} frames of {FRAME_SIZE}x{FRAME_SIZE} pixels, 8 fps; latents {VAE_CONFIG['z_dim']}x{WAN_NUM_FRAMES}x{FRAME_SIZE // 4}x{FRAME_SIZE // 4}
  (no temporal compression; space 4x; `motion_core/toy/pretrain/wan_architecture.py` says why).
- Pretraining motions: {', '.join(BASIC_MOTIONS)}.
- Held-out motion families (never seen in pretraining; for customization): {', '.join(HELD_OUT_MOTIONS)}.
- Command: `python -m motion_core.toy.pretrain.wan` with {json.dumps(shown)}
- Text-to-video steps: {t2v_steps}; VAE reconstruction error (mean abs, 0..1): {vae_errors[0]:.4f} ({vae_errors[1]:.4f}
  on object pixels, {vae_errors[2]:.4f} on the background); wall time {minutes:.1f} min on {_where(args)}.{decoder_note}
- Objective: rectified flow, shift {WAN_FLOW_SHIFT} (the scheduler's, which the pack's Wan trainer reads).
- Transformer: {json.dumps(TRANSFORMER_CONFIG)}
- VAE: {json.dumps(VAE_CONFIG)}; latent channels 0-2 anchored to the frame's colour over each 4x4-pixel cell.
- Text encoder (UMT5): {json.dumps(TEXT_CONFIG)}; every world word and trigger example ("sks", "V*") is one token.
"""


def _render(clips: int, seed: int, log):
    specs = pretraining_specs(clips, seed, frames=WAN_NUM_FRAMES)
    frames, captions = render_dataset(specs)
    log(f"rendered {len(specs)} clips of {WAN_NUM_FRAMES} frames")
    return frames, captions, object_pixels(specs, frames)


def _log_errors(vae, frames, objects, log, when: str):
    errors = wan_reconstruction_error(vae, frames, objects)
    log(f"vae {when}: mean abs reconstruction error {errors[0]:.4f} (object {errors[1]:.4f}, background "
        f"{errors[2]:.4f})")
    return errors


def refine_folder(folder: Path, args, log) -> int:
    """Run the decoder stage on a finished ShapesWan folder (same clips: same --clips and --seed) and rewrite it
    atomically; the transformer, text encoder and latent statistics are unchanged, since the encoder is."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
    from transformers import AutoTokenizer, UMT5EncoderModel

    frames, _, objects = _render(args.clips, args.seed, log)
    vae = AutoencoderKLWan.from_pretrained(folder, subfolder="vae").float().eval().requires_grad_(False)
    before = _log_errors(vae, frames, objects, log, "before the decoder stage")
    raw = encode_wan_clips(vae, frames)
    vae = refine_wan_decoder(vae, frames, raw, objects, args.decoder_steps, seed=args.seed, log=log)
    after = _log_errors(vae, frames, objects, log, "after the decoder stage")
    card = (folder / "README.md").read_text().rstrip() + "\n" + _decoder_note(args.decoder_steps, before, after,
                                                                               refined=True) + "\n"
    save_wan_folder(folder, transformer=WanTransformer3DModel.from_pretrained(folder, subfolder="transformer"),
                    vae=vae, text_encoder=UMT5EncoderModel.from_pretrained(folder, subfolder="text_encoder"),
                    tokenizer=AutoTokenizer.from_pretrained(folder / "tokenizer"),
                    scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(folder, subfolder="scheduler"),
                    card=card)
    log(f"refined the decoder of {folder}")
    return 0


def _load_wan_folder(folder: Path):
    """(vae, transformer, text_encoder, tokenizer) of a finished ShapesWan folder, in float32."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import AutoTokenizer, UMT5EncoderModel

    vae = AutoencoderKLWan.from_pretrained(folder, subfolder="vae").float().eval().requires_grad_(False)
    return (vae, WanTransformer3DModel.from_pretrained(folder, subfolder="transformer"),
            UMT5EncoderModel.from_pretrained(folder, subfolder="text_encoder"),
            AutoTokenizer.from_pretrained(folder / "tokenizer"))


def continue_training(folder: Path, args, log, started: float) -> int:
    """Keep training the text-to-video model of a finished ShapesWan folder on the same clips (same --clips and
    --seed), its VAE and latent statistics unchanged, and write the result to --out (never over `folder` unless
    asked). Why a continuation: on the shared 2-core machine a step costs 3-5x what it did for the shipped run, so a
    fresh run in the same hour would train less, not more (FINDINGS.md, "ShapesWan v2")."""
    frames, captions, _ = _render(args.clips, args.seed, log)
    vae, transformer, text_encoder, tokenizer = _load_wan_folder(folder)
    raw = encode_wan_clips(vae, frames)
    shape = (1, -1, 1, 1, 1)
    mean, std = torch.tensor(vae.config.latents_mean).view(shape), torch.tensor(vae.config.latents_std).view(shape)
    latents = (raw - mean) / std
    del frames, raw
    log(f"continuing from {folder}: encoded latents {tuple(latents.shape)}")
    transformer, text_encoder, steps = train_wan_t2v(
        latents, captions, tokenizer, steps=args.t2v_steps, max_minutes=args.minutes, batch=args.batch, lr=args.lr,
        frame_diff_weight=args.frame_diff_weight, terminal_mean_share=args.terminal_mean_share,
        train_shift=args.train_shift, seed=args.seed,
        device=args.device, init=(transformer, text_encoder), log=log)
    previous = (folder / "README.md").read_text().split("## Measured")[0].rstrip()
    previous = previous.replace("# ShapesWan\n", f"# ShapesWan ({Path(args.out).name})\n", 1)
    shown = {k: str(v) for k, v in vars(args).items() if k != "command_line"}
    command = " ".join(["python -m motion_core.toy.pretrain.wan", *args.command_line])
    card = (previous + f"\n\n## Continued\n\n`{command}`, that is {json.dumps(shown)}: "
            f"{steps} more text-to-video steps on the same clips and latents, the VAE unchanged; wall time "
            f"{(time.monotonic() - started) / 60:.1f} min on {_where(vars(args))}.\n")
    out = save_wan_folder(args.out, transformer=transformer.cpu(), vae=vae, text_encoder=text_encoder.cpu(),
                          tokenizer=tokenizer, scheduler=build_wan_scheduler(), card=card)
    log(f"saved {out}")
    return 0


def _decoder_note(steps: int, before, after, refined: bool = False) -> str:
    if steps <= 0:
        return ""
    how = (f"`python -m motion_core.toy.pretrain.wan --refine-decoder FOLDER --decoder-steps {steps}` on the run above"
           if refined else f"{steps} steps")
    return (f"\n- Decoder stage ({how}; encoder frozen, so the latents are unchanged): object-pixel error "
            f"{before[1]:.4f} -> {after[1]:.4f}, background {before[2]:.4f} -> {after[2]:.4f}.")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m motion_core.toy.pretrain.wan", description=__doc__)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="model folder to write (replaced atomically)")
    p.add_argument("--clips", type=int, default=2000, help="rendered training clips (basic motions only)")
    p.add_argument("--vae-steps", type=int, default=800)
    p.add_argument("--decoder-steps", type=int, default=400,
                   help="refine the VAE decoder on the frozen encoder's means, object pixels weighted; 0 = off")
    p.add_argument("--refine-decoder", type=Path, default=None,
                   help="only run the decoder stage on this finished ShapesWan folder and rewrite it")
    p.add_argument("--continue-from", type=Path, default=None,
                   help="a finished ShapesWan folder whose text-to-video model keeps training (its VAE is reused)")
    p.add_argument("--t2v-steps", type=int, default=2000,
                   help="sized to the 40-min cap at ~1.2 s a step of 16 clips on the 2-core reference machine")
    p.add_argument("--minutes", type=float, default=40.0,
                   help="cap on the text-to-video stage's wall time: the whole run stays within 60 min on 2 cores")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--frame-diff-weight", type=float, default=2.0,
                   help="weight of the loss on consecutive-frame differences (stresses what moves); 0 = off")
    p.add_argument("--terminal-mean-share", type=float, default=0.0,
                   help="share of each text-to-video batch trained at σ = 1 against the mean latent of its caption's "
                   "clips, so the first sampling step learns what the words say (terminal_means.py); 0 = off")
    p.add_argument("--train-shift", type=float, default=None,
                   help="shift of the law the training σ is drawn from (default: the model's 2.0); larger trains more "
                   "at high noise, where the samples' layout is decided; the saved scheduler keeps 2.0")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.command_line = list(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    started = time.monotonic()

    def log(msg):
        print(f"[{time.monotonic() - started:6.0f}s] {msg}", flush=True)

    if args.refine_decoder is not None:
        return refine_folder(args.refine_decoder, args, log)
    if args.continue_from is not None:
        if args.out.resolve() == DEFAULT_OUT.resolve():
            p.error("--continue-from needs an --out other than the shipped ShapesWan folder")
        return continue_training(args.continue_from, args, log, started)
    frames, captions, objects = _render(args.clips, args.seed, log)
    vae = train_wan_vae(frames, objects, args.vae_steps, seed=args.seed, device=args.device, log=log)
    before = _log_errors(vae, frames, objects, log, "after the joint stage")
    raw = encode_wan_clips(vae, frames)
    vae = refine_wan_decoder(vae, frames, raw, objects, args.decoder_steps, seed=args.seed, log=log)
    errors = _log_errors(vae, frames, objects, log, "after the decoder stage") if args.decoder_steps > 0 else before
    mean, std = latent_statistics(raw)
    vae.register_to_config(latents_mean=mean, latents_std=std)
    shape = (1, -1, 1, 1, 1)
    latents = (raw - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)
    del frames, objects, raw
    log(f"encoded latents {tuple(latents.shape)}; channel means {[round(m, 3) for m in mean]}, "
        f"stds {[round(s, 3) for s in std]}")
    tokenizer = build_wan_tokenizer()
    transformer, text_encoder, steps = train_wan_t2v(
        latents, captions, tokenizer, steps=args.t2v_steps, max_minutes=args.minutes, batch=args.batch, lr=args.lr,
        frame_diff_weight=args.frame_diff_weight, terminal_mean_share=args.terminal_mean_share,
        train_shift=args.train_shift, seed=args.seed,
        device=args.device, log=log)
    card = wan_model_card(args=vars(args), t2v_steps=steps, vae_errors=errors,
                          minutes=(time.monotonic() - started) / 60,
                          decoder_note=_decoder_note(args.decoder_steps, before, errors))
    out = save_wan_folder(args.out, transformer=transformer.cpu(), vae=vae.cpu(), text_encoder=text_encoder.cpu(),
                          tokenizer=tokenizer, scheduler=build_wan_scheduler(), card=card)
    log(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
