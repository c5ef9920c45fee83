"""python -m motion_core.toy.pretrain.wan_i2v: reproducible (seeded) pretraining of ShapesWan-I2V, the image-to-video
form of the built-in Wan model. It starts from the shipped ShapesWan folder: the VAE, text encoder, tokenizer and
scheduler are copied byte for byte, and the transformer is ShapesWan's, widened to read the first-frame condition
(`wan_i2v_stage`, `..i2v_condition`) and fine-tuned on the world's clips with each clip's own first frame as the
start image. Saved as a WanImageToVideoPipeline folder (no CLIP image encoder, like Wan 2.2 I2V A14B). The defaults
fit in 60 minutes at one thread on the 2-core reference machine."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import diffusers
import torch

from ..i2v_condition import encode_clips, image_condition, temporal_compression
from ..motions import BASIC_MOTIONS
from .card import _where
from .data import pretraining_specs, render_dataset
from .precision import PRECISIONS, resolve_precision
from .save import atomic_folder
from .wan_architecture import FRAME_SIZE, WAN_NUM_FRAMES
from .wan_i2v_stage import I2V_CAPTION_DROPOUT, caption_states, train_wan_i2v, widen_patch_embedding

TOY_DIR = Path(__file__).resolve().parents[1]
DEFAULT_BASE = TOY_DIR / "shapes_wan"
DEFAULT_OUT = TOY_DIR / "shapes_wan_i2v"
COPIED = ("vae", "text_encoder", "tokenizer", "scheduler")
MODEL_INDEX = {"_class_name": "WanImageToVideoPipeline", "image_encoder": [None, None],
               "image_processor": [None, None], "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
               "text_encoder": ["transformers", "UMT5EncoderModel"], "tokenizer": ["transformers", "T5Tokenizer"],
               "transformer": ["diffusers", "WanTransformer3DModel"], "vae": ["diffusers", "AutoencoderKLWan"]}


def i2v_channels(vae) -> int:
    """Noisy latents + mask + image latents: 2 * z_dim + T (36 for Wan 2.1/2.2 I2V, 9 for ShapesWan's VAE)."""
    return 2 * int(vae.config.z_dim) + temporal_compression(vae)


def save_i2v_folder(out: Path, *, base: Path, transformer, card: str) -> Path:
    """Atomic: the base folder's VAE, text encoder, tokenizer and scheduler copied unchanged, the new transformer in
    float32, model_index.json and the card, written to a sibling temp folder that replaces `out` when complete."""
    with atomic_folder(out) as tmp:
        for part in COPIED:
            shutil.copytree(Path(base) / part, tmp / part)
        transformer.float().save_pretrained(tmp / "transformer", safe_serialization=True)
        index = dict(MODEL_INDEX, _diffusers_version=diffusers.__version__)
        (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        (tmp / "README.md").write_text(card)
    return Path(out)


def i2v_model_card(*, args: dict, steps: int, loss: float, minutes: float, config: dict) -> str:
    shown = {k: str(v) for k, v in args.items()}
    return f"""# ShapesWan-I2V

The image-to-video form of ShapesWan, the pack's built-in Wan-family model: the same world of coloured shapes, the
same real diffusers classes, saved as a WanImageToVideoPipeline folder (weights float32). The video starts from a
given image: the transformer reads the noisy latents, a mask and the image's latents, in the layout of diffusers'
WanImageToVideoPipeline and ComfyUI's WanImageToVideo (concat latent, no CLIP image embedding, like Wan 2.2 I2V A14B).

- Clips: {WAN_NUM_FRAMES} frames of {FRAME_SIZE}x{FRAME_SIZE} pixels, 8 fps; the start image is frame 0.
- Condition: mask (1 channel: the VAE has no temporal compression; 1 on latent frame 0, 0 elsewhere) and the
  normalised posterior-mean latents of [start image, then grey frames]; transformer input channels 4 + 1 + 4 = 9.
- From ShapesWan: VAE, text encoder, tokenizer and scheduler copied unchanged; the transformer initialised from
  ShapesWan's, its patch embedding widened with zero weights on the 5 new channels (step 0 predicts what ShapesWan
  predicts), then fine-tuned with ShapesWan's loss (rectified flow, shift 2.0, frame-difference term) on every latent
  frame, the patch embedding at {float(args.get('patch_lr_scale', 1.0)):g}x the learning rate; the text encoder frozen; captions dropped in {float(args.get('caption_dropout', I2V_CAPTION_DROPOUT)):.0%} of the steps, so the image alone can carry the look.
- Training clips: the pretraining world (motions {', '.join(BASIC_MOTIONS)};
  random colours, shapes, sizes, positions, backgrounds), each clip's own first frame as its start image.
- Command: `python -m motion_core.toy.pretrain.wan_i2v` with {json.dumps(shown)}
- Image-to-video steps: {steps}; final running loss {loss:.4f}; wall time {minutes:.1f} min on {_where(args)}.
- Transformer: {json.dumps(config)}
"""


def main(argv=None) -> int:
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import AutoTokenizer, UMT5EncoderModel

    p = argparse.ArgumentParser(prog="python -m motion_core.toy.pretrain.wan_i2v", description=__doc__)
    p.add_argument("--base", type=Path, default=DEFAULT_BASE, help="the ShapesWan folder to start from")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="model folder to write (replaced atomically)")
    p.add_argument("--clips", type=int, default=2000, help="rendered training clips (basic motions only)")
    p.add_argument("--steps", type=int, default=1500,
                   help="~1.4 s a step of 16 clips at one thread in bf16 on an idle machine; the time cap ends it "
                   "first when the machine is shared")
    p.add_argument("--minutes", type=float, default=48.0,
                   help="cap on the training stage's wall time: with rendering and encoding the run stays well "
                   "within 60 min at one thread")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--patch-lr-scale", type=float, default=10.0,
                   help="learning-rate multiple for the patch embedding, where the zero-started condition channels "
                   "are (FINDINGS.md, ShapesWan-I2V: at 1x they stayed ~20x smaller than the latent channels)")
    p.add_argument("--frame-diff-weight", type=float, default=2.0, help="as in ShapesWan's stage; 0 = off")
    p.add_argument("--caption-dropout", type=float, default=I2V_CAPTION_DROPOUT)
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto: bfloat16 autocast where the processor computes it natively (precision.py)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.monotonic()

    def log(msg):
        print(f"[{time.monotonic() - started:6.0f}s] {msg}", flush=True)

    precision = resolve_precision(args.precision, args.device)
    vae = AutoencoderKLWan.from_pretrained(args.base, subfolder="vae").float().eval().requires_grad_(False)
    text_encoder = UMT5EncoderModel.from_pretrained(args.base, subfolder="text_encoder").float().eval()
    tokenizer = AutoTokenizer.from_pretrained(args.base / "tokenizer")
    base_transformer = WanTransformer3DModel.from_pretrained(args.base, subfolder="transformer").float()
    transformer = widen_patch_embedding(base_transformer, i2v_channels(vae))
    del base_transformer
    specs = pretraining_specs(args.clips, args.seed, frames=WAN_NUM_FRAMES)
    frames, captions = render_dataset(specs)
    log(f"rendered {len(specs)} clips of {WAN_NUM_FRAMES} frames")
    vae = vae.to(args.device)
    latents = encode_clips(vae, frames)
    conditions = image_condition(vae, frames[:, 0].float(), WAN_NUM_FRAMES)
    del frames
    log(f"encoded latents {tuple(latents.shape)} and conditions {tuple(conditions.shape)}")
    states = caption_states(text_encoder, tokenizer, captions)
    empty = caption_states(text_encoder, tokenizer, [""])
    transformer, steps, loss = train_wan_i2v(
        transformer, latents, conditions, states, empty, steps=args.steps, max_minutes=args.minutes,
        batch=args.batch, lr=args.lr, frame_diff_weight=args.frame_diff_weight, caption_dropout=args.caption_dropout,
        shift=_scheduler_shift(args.base), precision=precision, patch_lr_scale=args.patch_lr_scale, seed=args.seed,
        device=args.device, log=log)
    shown = {**vars(args), "base": _shown_path(args.base), "out": _shown_path(args.out),
             "precision": f"{args.precision} ({precision})"}
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in transformer.config.items()
              if not k.startswith("_")}
    card = i2v_model_card(args=shown, steps=steps, loss=loss, minutes=(time.monotonic() - started) / 60,
                          config=config)
    out = save_i2v_folder(args.out, base=args.base, transformer=transformer.cpu(), card=card)
    log(f"saved {out}")
    return 0


def _shown_path(path: Path) -> str:
    """A path inside the repository as the repository spells it (the card travels with the folder)."""
    path, root = Path(path).resolve(), TOY_DIR.parents[1]
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _scheduler_shift(base: Path) -> float:
    """The flow shift the base model was trained and is sampled with (its scheduler's)."""
    return float(json.loads((Path(base) / "scheduler" / "scheduler_config.json").read_text())["shift"])


if __name__ == "__main__":
    raise SystemExit(main())
