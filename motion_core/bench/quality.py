"""``python -m motion_core.bench quality``: motion fidelity, appearance accuracy and leakage of every recipe on
ShapesT2V, the measurement the five papers make (learn the motion, not the look).

For each held-out motion family and each shot count, reference clips of ONE appearance (a red square on black) are
rendered from seeded family members; each recipe trains a motion LoRA on them (the base model trains nothing),
then samples prompts of OTHER appearances doing that motion. Every sample is tracked from its pixels.

Columns (motion_core/toy/metrics.py says why each is defined as it is):
- fidelity: the primary one, `reference_fidelity`, against the reference clips' own tracked paths (best of the
  shots' clips), start-position invariant and nothing more forgiven;
- base (same seeds): the base model's fidelity from the same prompts, seeds and noise prior, i.e. what the
  sampling set-up gives without any LoRA (the base row's fidelity, repeated on every row of its family and shots);
- chance: `random_path_chance`, the mean fidelity of random paths of other families against the same references;
- family (2nd): the old `family_fidelity`, best over 48 family members; secondary, since even random wobbles score
  ~0.2 on it;
- appearance: colour and shape follow the prompt; leakage: the reference's colour or shape shows up instead (the
  object's majority vote); pixel leak / bg leak: the share of the object's / the background's pixels in the
  reference's colour, per frame (toy/pixel_leakage.py: what a viewer sees, patches included);
- train time and the process's peak memory growth.
``--quick`` (one family, one shot, short training) runs in a few minutes on a CPU; tests assert floors on it.
A recipe may carry options for an ablation (``det:temporal_kernel=false``); ``--lora-part`` adds, for a LoRA with a
DeT temporal kernel, the row of its LoRA part alone (what core's LoraLoaderModelOnly applies of it). ``--lora-end
1.0,0.5`` samples every trained LoRA once per end share, applied on the first steps only (``LoraStack().add(lora, 1.0,
0.0, end)``: kernel and weights alike), the row named ``det (steps 0-50%)``; 1.0 keeps the plain name.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch

from ..backbones import load_backbone
from ..clips import ClipSet
from ..errors import InvalidInputError
from ..lora.files import load_lora, save_lora
from ..lora.stack import LoraStack
from ..recipes import get_recipe, parse_options, recipe_names
from ..sampling import NOISE_PRIOR_MODES, SampleRequest, sample_video
from ..toy.builtin import SHAPES_T2V_DIR, clip_frames, resolve_builtin
from ..toy.captions import caption
from ..toy.metrics import random_path_chance, score_sample, summarize
from ..toy.motions import HELD_OUT_MOTIONS, sample_params
from ..toy.palette import COLOURS
from ..toy.pretrain.architecture import FPS, FRAME_SIZE, NUM_FRAMES
from ..toy.render import ClipSpec, render_clip
from ..toy.shapes import SHAPES
from ..toy.tracking import track_object
from ..training import TrainingConfig, train_motion_lora
from .gpu import fmt_or_dash, peak_gib, reset_peak
from .peak_rss import PeakRss

DEFAULT_MODEL = SHAPES_T2V_DIR
REFERENCE_COLOUR, REFERENCE_SHAPE = "red", "square"
BASE = "base"


def reference_clips(motion: str, shots: int, seed: int, frames: int = NUM_FRAMES) -> ClipSet:
    rng = random.Random(f"{motion}:{shots}:{seed}")
    clips = []
    for i in range(shots):
        params = sample_params(rng, motion, frames, 0.24)
        spec = ClipSpec(REFERENCE_COLOUR, REFERENCE_SHAPE, motion, params, "black", FRAME_SIZE, frames, FPS,
                        seed=seed * 100 + i)
        clips.append(render_clip(spec))
    return ClipSet(tuple(clips))


def other_appearances(count: int, seed: int) -> list[tuple[str, str]]:
    """Prompt appearances differing from the reference in colour AND shape, so both kinds of leak are visible."""
    rng = random.Random(seed)
    pairs = [(c, s) for c in COLOURS for s in SHAPES if c != REFERENCE_COLOUR and s != REFERENCE_SHAPE]
    rng.shuffle(pairs)
    return pairs[:count]


def world_recipe(name: str):
    """The recipe with its METHODS.md defaults, except where a default speaks outside the built-in world: MotionCrafter's
    appearance prior captions other looks ("a green person, ...") from a general colour and subject list, which the
    toy tokenizers do not know and which made those captions longer than the models read (cut, with a warning). In
    the bench its other looks are the world's own colours and shapes.

    ``name`` may carry options for an ablation: ``det:temporal_kernel=false:tracking_weight=0`` (values read as
    JSON, else as text); the row keeps the whole string as its label."""
    recipe, *pairs = name.split(":")
    options = parse_options(pairs)
    if recipe == "motion_crafter":
        options = {"colours": tuple(COLOURS), "subjects": SHAPES, **options}
    return get_recipe(recipe, **options)


def evaluate(backbone, recipe: str, motion: str, shots: int, args) -> list[dict]:
    """The row of ``recipe`` on ``motion``; with ``--lora-part`` a LoRA that carries a DeT temporal kernel gets a
    second row from the same LoRA sampled without its kernel (what core's LoraLoaderModelOnly applies of it)."""
    frames = clip_frames(backbone)
    clips = reference_clips(motion, shots, args.seed, frames)
    lora, train_s, memory = None, 0.0, 0.0
    saved = Path(args.from_loras) / f"{_file_stem(recipe)}_{motion}_{shots}.safetensors" \
        if recipe != BASE and getattr(args, "from_loras", "") else None
    if saved is not None:  # a LoRA an earlier run saved: scored again (e.g. with a newer metric), not trained
        if not saved.is_file():
            raise InvalidInputError(f"--from-loras: {saved} is missing; the folder holds what --save-loras wrote "
                                    f"({', '.join(sorted(f.name for f in saved.parent.glob('*.safetensors'))) or 'nothing'}).")
        lora = load_lora(saved)
    elif recipe != BASE:
        reset_peak(backbone.device)
        config = TrainingConfig(steps=args.train_steps or None, lr=args.lr or None, width=FRAME_SIZE,
                                height=FRAME_SIZE, frames=frames, seed=args.seed, name=f"{recipe}_{motion}",
                                timestep_skew=args.timestep_skew)
        with PeakRss() as rss:
            started = time.monotonic()
            lora = train_motion_lora(backbone, clips, world_recipe(recipe), config).motion_lora
            train_s = time.monotonic() - started
        gpu_gib = peak_gib(backbone.device)
        memory = gpu_gib * 1024 if gpu_gib is not None else rss.mib
        if getattr(args, "save_loras", ""):
            Path(args.save_loras).mkdir(parents=True, exist_ok=True)
            save_lora(lora, Path(args.save_loras) / f"{_file_stem(recipe)}_{motion}_{shots}.safetensors")
    variants = [(recipe, None, LoraStack())] if lora is None else []
    for end in () if lora is None else lora_ends(getattr(args, "lora_end", None)):
        variants.append((step_range_label(recipe, end), end, LoraStack().add(lora, 1.0, 0.0, end)))
        if getattr(args, "lora_part", False) and lora.kernel:
            variants.append((step_range_label(f"{recipe} (LoRA part only)", end), end,
                             LoraStack().add(lora.without_kernel(), 1.0, 0.0, end)))
    rows = []
    for label, end, stack in variants:
        row = score_stack(backbone, stack, clips, motion, frames, args)
        rows.append({"recipe": label, "motion": motion, "shots": shots, **row, "lora_end": end, "train_s": train_s,
                     "peak_mem_mib": memory})
    return rows


def lora_ends(text) -> tuple[float, ...]:
    """``--lora-end``'s end shares ("1.0,0.6"; None or "" = 1.0 alone): each in (0, 1], none twice."""
    if text is None or text == "":
        return (1.0,)
    if not isinstance(text, str):
        return tuple(float(v) for v in text)
    ends = []
    for part in text.split(","):
        try:
            end = float(part)
        except ValueError:
            raise InvalidInputError(f"--lora-end: {part.strip()!r} is not a number; give end shares of the sampling "
                                    "steps, e.g. 1.0,0.6,0.4.") from None
        if not 0.0 < end <= 1.0:  # also refuses nan
            raise InvalidInputError(f"--lora-end: each end share must satisfy 0 < end <= 1 (the LoRA acts on steps "
                                    f"0 to end of the sampling); got {part.strip()}.")
        if end in ends:
            raise InvalidInputError(f"--lora-end: {part.strip()} is given twice; its rows would share one name.")
        ends.append(end)
    return tuple(ends)


def step_range_label(label: str, end: float) -> str:
    """The row's name: ``label`` for the whole schedule, ``label (steps 0-60%)`` for the first 60 % of the steps."""
    if end == 1.0:
        return label
    share = f"{end * 100:.1f}".rstrip("0").rstrip(".")
    if label.endswith(")"):  # "det (LoRA part only)" -> "det (LoRA part only, steps 0-60%)"
        return f"{label[:-1]}, steps 0-{share}%)"
    return f"{label} (steps 0-{share}%)"


def score_stack(backbone, stack: LoraStack, clips: ClipSet, motion: str, frames: int, args) -> dict:
    """Samples of other looks doing ``motion`` with ``stack``, tracked and scored against the reference clips."""
    references = [track_object(c.frames) for c in clips.clips]
    scores, prior = [], clips.clips[0] if args.noise_prior > 0 else None
    for i, (colour, shape) in enumerate(other_appearances(args.prompts, args.seed)):
        for s in range(args.seeds):
            request = SampleRequest(prompt=caption(colour, shape, motion), seed=1000 * i + s, steps=args.sample_steps,
                                    cfg=args.cfg, frames=frames, width=FRAME_SIZE, height=FRAME_SIZE,
                                    lora_stack=stack, fps=FPS, noise_prior_clip=prior, noise_prior_p=args.noise_prior,
                                    noise_prior_mode=args.noise_prior_mode)
            frames_out = sample_video(backbone, request).frames
            scores.append(score_sample(track_object(frames_out), colour, shape, reference=references, motion=motion,
                                       reference_colour=REFERENCE_COLOUR, reference_shape=REFERENCE_SHAPE,
                                       frames=frames_out))
    summary = summarize(scores)
    return {"fidelity": summary["reference_fidelity"], "chance_random": random_path_chance(references, motion),
            "family_fidelity": summary["family_fidelity"], "appearance": summary["appearance_accuracy"],
            "leakage": summary["leakage"], "pixel_leakage": summary["pixel_leakage"],
            "pixel_leakage_background": summary["pixel_leakage_background"], "samples": len(scores),
            "sample_fidelity": [round(s.reference_fidelity, 4) for s in scores]}


def _file_stem(recipe: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in recipe)


def add_base_chance(rows: list[dict]) -> None:
    """Give every row the base model's fidelity from the same family, shots, prompts and seeds (`chance_base`) and
    its gain over it: the base row IS the no-LoRA control of the same samples. None where no base row ran."""
    base = {(r["motion"], r["shots"]): r["fidelity"] for r in rows if r["recipe"] == BASE}
    for r in rows:
        b = base.get((r["motion"], r["shots"]))
        r["chance_base"] = b
        r["gain_over_base"] = None if b is None else r["fidelity"] - b


def _mean(values) -> float | None:
    """Mean over the measured values; None (JSON null) when there are none, e.g. memory where it cannot be read."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    return round(sum(values) / len(values), 4) if values else None


def run(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m motion_core.bench quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(DEFAULT_MODEL),
                   help="a model folder, or a built-in one by name: shapes_t2v (default) or shapes_wan")
    p.add_argument("--quick", action="store_true",
                   help="one family (circle), one shot, 60 training steps, 3 prompts x 2 seeds")
    p.add_argument("--recipes", default=",".join([BASE, *recipe_names()]))
    p.add_argument("--motions", default=",".join(HELD_OUT_MOTIONS))
    p.add_argument("--shots", default="1,3")
    p.add_argument("--prompts", type=int, default=3, help="other appearances prompted per LoRA")
    p.add_argument("--seeds", type=int, default=2, help="samples per prompt")
    p.add_argument("--train-steps", type=int, default=0, help="0 = each recipe's default")
    p.add_argument("--lr", type=float, default=0.0, help="0 = each recipe's default")
    p.add_argument("--timestep-skew", type=float, default=None,
                   help="favour high noise in training (k; 1 = uniform); unset = each recipe's own law")
    p.add_argument("--sample-steps", type=int, default=25)
    p.add_argument("--cfg", type=float, default=5.0)
    p.add_argument("--noise-prior", type=float, default=0.0,
                   help="start every sample from the first reference clip's DDIM inversion blended at this share "
                   "(METHODS.md, Noise prior), the base model included; 0 = fresh noise")
    p.add_argument("--noise-prior-mode", choices=NOISE_PRIOR_MODES, default="full",
                   help="full: the whole inversion; motion: only its frame-to-frame part (fresh still part)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lora-part", action="store_true",
                   help="a LoRA with a DeT temporal kernel also gets a row sampled with its LoRA part alone (what "
                   "core's LoraLoaderModelOnly applies of it), from the same training")
    p.add_argument("--lora-end", default="1.0",
                   help="comma list of end shares in (0, 1]: every trained LoRA is sampled once per value, acting on "
                   "the first steps up to that share only (kernel included), each its own row, e.g. 'det (steps "
                   "0-60%%)'; 1.0 (default) is the plain row")
    p.add_argument("--save-loras", default="", help="also save every trained motion LoRA (canonical) in this folder")
    p.add_argument("--from-loras", default="", help="score the LoRAs an earlier --save-loras wrote to this folder "
                   "instead of training them (same names: recipe_motion_shots); train_s and memory read 0")
    p.add_argument("--json-out", default="", help="also write figures and every row (with each sample's fidelity) "
                   "to this JSON file")
    p.add_argument("--device", default="cpu", help="cpu or cuda. Memory: on the CPU the peak RSS growth during "
                   "each training (Linux; null elsewhere); on CUDA the peak GPU memory allocated, model included")
    args = p.parse_args(argv)
    try:
        args.lora_end = lora_ends(args.lora_end)
    except InvalidInputError as err:
        p.error(str(err))
    if args.quick:
        args.motions, args.shots, args.train_steps = "circle", "1", args.train_steps or 60
        args.prompts, args.seeds, args.sample_steps = 3, 2, 20
    torch.set_num_threads(args.threads)
    backbone = load_backbone(resolve_builtin(args.model), device=args.device)
    rows = []
    for motion in args.motions.split(","):
        for shots in (int(s) for s in args.shots.split(",")):
            for row in (r for recipe in args.recipes.split(",") for r in evaluate(backbone, recipe, motion, shots,
                                                                                   args)):
                rows.append(row)
                print(f"{row['recipe']:18s} {motion:12s} {shots}-shot  fidelity {row['fidelity']:.2f}  chance "
                      f"{row['chance_random']:.2f}  family (2nd) {row['family_fidelity']:.2f}  appearance "
                      f"{row['appearance']:.2f}  leakage {row['leakage']:.2f}  pixel leak "
                      f"{fmt_or_dash(row['pixel_leakage'], '.3f')}  train {row['train_s']:.0f}s  "
                      f"mem +{fmt_or_dash(row['peak_mem_mib'], '.0f')} MiB", flush=True)
    add_base_chance(rows)
    figures = {}
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        mine = [r for r in rows if r["recipe"] == recipe]
        figures[recipe] = {k: _mean([r[k] for r in mine]) for k in FIGURES}
    result = {"figures": figures, "rows": rows}
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1))
    return result


FIGURES = ("fidelity", "chance_base", "chance_random", "family_fidelity", "appearance", "leakage", "pixel_leakage",
           "pixel_leakage_background", "train_s", "peak_mem_mib")
# (key, header, format, width) of the summary table; the primary fidelity first, its two chance levels next to it.
COLUMNS = (("fidelity", "fidelity", ".2f", 8), ("chance_base", "base same seeds", ".2f", 15),
           ("chance_random", "chance", ".2f", 6), ("family_fidelity", "family (2nd)", ".2f", 12),
           ("appearance", "appearance", ".2f", 10), ("leakage", "leakage", ".2f", 7),
           ("pixel_leakage", "pixel leak", ".3f", 10), ("pixel_leakage_background", "bg leak", ".3f", 7),
           ("train_s", "train s", ".0f", 7),
           ("peak_mem_mib", "peak MiB", ".0f", 8))


def main(argv=None) -> int:
    result = run(argv)
    print()
    width = max([18, *(len(r) for r in result["figures"])])
    print(f"{'recipe':{width}s} " + " ".join(h.rjust(w) for _, h, _, w in COLUMNS))
    for recipe, f in result["figures"].items():
        print(f"{recipe:{width}s} " + " ".join(fmt_or_dash(f[k], s).rjust(w) for k, _, s, w in COLUMNS))
    print(json.dumps(result["figures"]))
    return 0
