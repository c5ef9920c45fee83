"""A short text-to-video probe on the camera world: does a model learn the motion words when motion fills the frame?

Why a fine-tune of the shipped UNet: the CPU budget is ~15 minutes, a few hundred steps; the shipped UNet already
denoises this VAE's latents, so the steps go to the new world. The text encoder is new (the camera words are not in
the shipped vocabulary; `captions.CAMERA_WORDS` is added), so the motion words start with no meaning and anything the
prompt share shows was learned here. Training is `pretrain.t2v_stage.train_t2v` unchanged (v-prediction, caption
dropout, EMA, the shipped run's frame-difference weight 2). The shipped VAE encodes the clips, frozen.
Then: `camera.prompt_control.measure` (prompt share of pans/tilts and of zooms/rolls) and `weight.reversal_loss_change`
on held-out camera clips. Run as ``python -m motion_core.research.camera.probe --minutes 14``.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch

from ...toy.captions import WORLD_WORDS
from ...toy.pretrain.architecture import MAX_TOKENS, build_text_encoder, build_unet
from ...toy.pretrain.save import save_model_folder
from ...toy.pretrain.t2v_stage import train_t2v
from ...toy.pretrain.vae_stage import encode_clips
from ...toy.vocab import clip_tokenizer
from .captions import CAMERA_WORDS
from .world import render_camera_frames, sample_camera_spec

SHIPPED = Path(__file__).resolve().parents[1] / "shapes_t2v"


def main(argv=None) -> int:
    from diffusers import AutoencoderKL, UNet3DConditionModel

    from ...backbones import load_backbone
    from . import prompt_control, weight

    p = argparse.ArgumentParser(prog="python -m motion_core.research.camera.probe", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("/tmp/camera_probe_model"))
    p.add_argument("--clips", type=int, default=1500)
    p.add_argument("--steps", type=int, default=600, help="upper bound; --minutes usually stops first")
    p.add_argument("--minutes", type=float, default=14.0)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--ema-decay", type=float, default=0.99)
    p.add_argument("--frame-diff-weight", type=float, default=2.0)
    p.add_argument("--from-scratch", action="store_true", help="a fresh UNet instead of the shipped one")
    p.add_argument("--precision", default="bf16")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--measure-only", action="store_true", help="skip training; measure the model at --out")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.monotonic()

    def log(msg):
        print(f"[{time.monotonic() - started:6.0f}s] {msg}", flush=True)

    if not args.measure_only:
        rng = random.Random(f"camera-probe:{args.seed}")
        specs = [sample_camera_spec(rng) for _ in range(args.clips)]
        frames = torch.stack([render_camera_frames(s).half() for s in specs])
        captions = [s.text() for s in specs]
        log(f"rendered {len(specs)} camera clips")
        vae = AutoencoderKL.from_pretrained(SHIPPED, subfolder="vae").float().eval().requires_grad_(False)
        scaling = float(vae.config.scaling_factor)
        latents = encode_clips(vae, frames, scaling)
        del frames
        log(f"encoded latents {tuple(latents.shape)}, std {latents.std():.3f}")
        with tempfile.TemporaryDirectory() as tmp:
            tokenizer = clip_tokenizer(tmp, tuple(WORLD_WORDS) + CAMERA_WORDS, model_max_length=MAX_TOKENS)
            unet = (build_unet(latents.shape[1]) if args.from_scratch
                    else UNet3DConditionModel.from_pretrained(SHIPPED, subfolder="unet"))
            init = (unet.float(), build_text_encoder(tokenizer))
            unet, text_encoder, scheduler, steps = train_t2v(
                latents, captions, tokenizer, steps=args.steps, max_minutes=args.minutes, batch=args.batch,
                lr=args.lr, warmup=50, ema_decay=args.ema_decay, short_fraction=0.0,
                frame_diff_weight=args.frame_diff_weight, init=init, seed=args.seed, precision=args.precision, log=log)
            card = (f"# Camera-world probe (not shipped)\n\n`python -m motion_core.research.camera.probe` with "
                    f"{json.dumps({k: str(v) for k, v in vars(args).items()})}; {steps} text-to-video steps, "
                    f"{(time.monotonic() - started) / 60:.1f} min.\n")
            save_model_folder(args.out, unet=unet, vae=vae, vae_scaling=scaling, text_encoder=text_encoder,
                              tokenizer=tokenizer, scheduler=scheduler, card=card)
        log(f"saved {args.out} after {steps} steps")
    backbone = load_backbone(args.out)
    results = {}
    for name, moves in (("pan_tilt", prompt_control.PAN_TILT), ("zoom_roll", prompt_control.ZOOM_ROLL)):
        r = prompt_control.measure(backbone, moves=moves, log=log)
        results[name] = r
        log(f"{name}: prompt share {r['prompt_share']:.2f} (between prompts {r['prompt_variance']:.5f}, between "
            f"seeds {r['seed_variance']:.5f}); prompted move followed in {r['prompted_move_rate']:.0%} (chance 12%)")
    frames, captions = weight.camera_clips(48, args.seed + 1000)
    results["weight"] = weight.measure_world(backbone, frames, captions, seed=args.seed)
    for k, v in results["weight"].items():
        if k.startswith("reversal_loss_"):
            log(f"reversal {k[14:]}: loss x {v['x']:.4f} -> {v['x_rev']:.4f} ({v['relative_change']:+.1%}), harder "
                f"in {v['clips_harder_reversed']:.0%} of clips")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
