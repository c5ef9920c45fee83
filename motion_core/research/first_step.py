"""What a model can say at its first sampling step, where the starting noise holds no clip yet.

From pure noise the best possible clean estimate is the mean of the training clips under the prompt, E[x0 | prompt],
the same for every noise draw. For a motion word that mean changes from frame to frame ("moves left": the object
sits right early and left late); for a colour word it is mostly the same in every frame. This tool renders clips of
each prompt, encodes them and averages them (the true conditional mean), then averages the model's own clean
estimate at the first sampling step over several noise draws, and compares how much each varies between prompts
that differ in one word. It also splits that variance into the part constant over frames and the part that changes
from frame to frame, because a denoiser that cannot tell frames apart when every frame's noise is alike can only
produce the constant part. First of all it reports how far apart the text encoder's states for those prompts are:
a word the encoder maps to the same states cannot steer any denoiser. A minute or two on the CPU.
Run as ``python -m motion_core.research.first_step --model shapes_wan``.
"""

from __future__ import annotations

import argparse
import json
import random

import torch

from ..errors import InvalidInputError
from ..toy.builtin import clip_frames, resolve_builtin
from ..toy.captions import caption
from ..toy.pretrain.architecture import FPS, FRAME_SIZE
from ..toy.pretrain.data import render_dataset
from ..toy.render import sample_spec

# Two prompt sets, each differing in one word from the same base ("a blue circle moves left").
WORD_SETS = {
    "motion": [("blue", m) for m in ("left", "right", "up", "down")],
    "colour": [(c, "left") for c in ("red", "green", "blue", "yellow")],
}


def between_prompt_variance(means: torch.Tensor) -> dict:
    """means [prompts, C, F, h, w]: the variance between prompts (mean over elements), and the part of it that
    changes from frame to frame (what is left once each prompt's mean over frames is taken out)."""
    if means.ndim != 5 or means.shape[0] < 2:
        raise InvalidInputError(f"Need per-prompt means shaped [prompts >= 2, C, F, h, w]; got {tuple(means.shape)}.")
    moving = means - means.mean(dim=2, keepdim=True)
    return {"total": float(means.var(0).mean()), "frame_varying": float(moving.var(0).mean())}


def relative_spread(states: torch.Tensor) -> float:
    """states [prompts, ...]: the variance between prompts over the states' mean square (0 = the same states)."""
    if states.shape[0] < 2:
        raise InvalidInputError(f"Need the states of at least 2 prompts; got {tuple(states.shape)}.")
    return float((states - states.mean(0)).pow(2).mean() / states.pow(2).mean().clamp_min(1e-12))


@torch.no_grad()
def text_separation(backbone, prompts) -> float:
    """`relative_spread` of the text encoder's states (what the denoiser reads) for (colour, motion) circle prompts."""
    return relative_spread(torch.cat([backbone.encode_prompt([caption(c, "circle", m)]).float() for c, m in prompts]))


@torch.no_grad()
def true_mean(backbone, colour: str, motion: str, *, clips: int, seed: int = 1) -> torch.Tensor:
    """Mean normalised latent of rendered clips of one prompt (circles; random anchors, rates and backgrounds).
    Every prompt draws from the same seed, so prompts differ only in the word that differs."""
    rng = random.Random(seed)
    frames = clip_frames(backbone)
    specs = [sample_spec(rng, motions=[motion], colours=[colour], shapes=["circle"], frames=frames,
                         size=FRAME_SIZE, fps=FPS) for _ in range(clips)]
    video = render_dataset(specs)[0].float()
    latents = [backbone.encode_video(video[i:i + 8].to(backbone.device)).float().cpu() for i in range(0, clips, 8)]
    return torch.cat(latents).mean(0)


@torch.no_grad()
def first_step_mean(backbone, colour: str, motion: str, *, draws: int) -> torch.Tensor:
    """The model's clean estimate at the first sampling step (the noisiest timestep, input pure noise), averaged
    over noise draws 0..draws-1."""
    objective = backbone.make_objective()
    first = torch.tensor(1000.0) if objective.kind == "flow" else torch.tensor(objective.num_train_timesteps - 1)
    frames, side = clip_frames(backbone), FRAME_SIZE // backbone.vae_scale_factor
    states = backbone.encode_prompt([caption(colour, "circle", motion)])
    total = torch.zeros(backbone.latent_channels, frames, side, side)
    for d in range(draws):
        noise = torch.randn(1, backbone.latent_channels, frames, side, side, generator=torch.Generator().manual_seed(d))
        noise = noise.to(backbone.device)
        prediction = backbone.denoise(noise, first.to(backbone.device), states).float()
        total += objective.clean_estimate(noise, prediction, first)[0].cpu()
    return total / draws


def measure(backbone, *, clips: int = 64, draws: int = 6, log=print) -> dict:
    result = {}
    for name, prompts in WORD_SETS.items():
        text = text_separation(backbone, prompts)
        truth = between_prompt_variance(torch.stack([true_mean(backbone, c, m, clips=clips) for c, m in prompts]))
        model = between_prompt_variance(torch.stack([first_step_mean(backbone, c, m, draws=draws) for c, m in prompts]))
        result[name] = {"text_states": text, "true": truth, "model": model}
        log(f"{name} words: text states differ by {text:.4f} of their mean square; variance between prompts of the "
            f"clean estimate at the first step: true mean {truth['total']:.5f} (frame-varying "
            f"{truth['frame_varying']:.5f}), model {model['total']:.5f} (frame-varying {model['frame_varying']:.6f})")
    return result


def main(argv=None) -> int:
    from ..backbones import load_backbone

    p = argparse.ArgumentParser(prog="python -m motion_core.research.first_step", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a model folder, or shapes_t2v / shapes_wan")
    p.add_argument("--clips", type=int, default=64, help="rendered clips per prompt for the true mean")
    p.add_argument("--draws", type=int, default=6, help="noise draws per prompt for the model's mean")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.clips < 1 or args.draws < 1:
        raise SystemExit("--clips and --draws must be at least 1.")
    result = measure(load_backbone(resolve_builtin(args.model), device=args.device), clips=args.clips,
                     draws=args.draws)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
