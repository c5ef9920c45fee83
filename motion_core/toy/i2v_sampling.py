"""A small image-to-video sampling loop for a WanImageToVideoPipeline folder without a CLIP image encoder
(ShapesWan-I2V): what the base-quality measurement samples with until the pack's sampler takes a start image.

It is the pipeline's loop (`i2v_condition` says the layout), with the pack's sampling conventions: noise drawn from
one CPU generator seeded per sample, prompts padded to the tokenizer's length with zero states past each prompt
(as WanBackbone.encode_prompt feeds them), the pack's flow solvers with the model's shift, classifier-free guidance
against the empty prompt (the image stays in both branches, as in the pipeline). With the "euler" solver it
matches diffusers' WanImageToVideoPipeline run on the same folder (tests/test_toy_wan_i2v_pretrain.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..backbones.objectives import FlowMatchObjective
from ..sampling.schedulers import make_scheduler
from .i2v_condition import image_condition, latent_stats, model_input
from .pretrain.wan_t2v_stage import text_states, wan_tokenize


@dataclass
class I2VModel:
    """The components of an image-to-video folder, in eval mode on one device."""

    transformer: object
    vae: object
    text_encoder: object
    tokenizer: object
    scheduler_config: dict
    device: str = "cpu"

    @classmethod
    def load(cls, folder, device: str = "cpu") -> "I2VModel":
        from diffusers import AutoencoderKLWan, WanTransformer3DModel
        from transformers import AutoTokenizer, UMT5EncoderModel

        folder = Path(folder)
        parts = [WanTransformer3DModel.from_pretrained(folder, subfolder="transformer"),
                 AutoencoderKLWan.from_pretrained(folder, subfolder="vae"),
                 UMT5EncoderModel.from_pretrained(folder, subfolder="text_encoder")]
        parts = [m.float().to(device).eval().requires_grad_(False) for m in parts]
        config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
        return cls(*parts, AutoTokenizer.from_pretrained(folder / "tokenizer"), config, device)

    @property
    def objective(self) -> FlowMatchObjective:
        return FlowMatchObjective(shift=float(self.scheduler_config.get("shift", 1.0)),
                                  num_train_timesteps=int(self.scheduler_config.get("num_train_timesteps", 1000)))

    @torch.no_grad()
    def encode_prompts(self, prompts) -> torch.Tensor:
        ids, mask = wan_tokenize(self.tokenizer, prompts)
        return text_states(self.text_encoder, ids.to(self.device), mask.to(self.device))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents [B, C, F, h, w] -> frames [B, F, H, W, 3] in 0..1 (CPU)."""
        mean, std = latent_stats(self.vae, latents)
        video = self.vae.decode(latents * std + mean).sample.float()
        return (video / 2.0 + 0.5).clamp(0.0, 1.0).permute(0, 2, 3, 4, 1).cpu()


@torch.no_grad()
def sample_i2v(model: I2VModel, start_image: torch.Tensor, prompt: str, *, seed: int, steps: int = 25,
               cfg: float = 5.0, frames: int = 9, scheduler: str = "unipc", negative_prompt: str = "",
               noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One video from `start_image` ([H, W, 3] in 0..1). Returns (frames [F, H, W, 3] in 0..1, final latents).
    `noise`: the starting latents, else drawn from a CPU generator seeded with `seed`."""
    condition = image_condition(model.vae, start_image[None].float().cpu(), frames).to(model.device)
    channels = int(model.vae.config.z_dim)
    shape = (1, channels, *condition.shape[2:])
    if noise is None:
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)))
    solver = make_scheduler(scheduler, model.scheduler_config, model.objective)
    solver.set_timesteps(steps, device=model.device)
    guided = cfg != 1.0
    states = model.encode_prompts([negative_prompt, prompt] if guided else [prompt])
    latents = noise.to(model.device).float() * float(getattr(solver, "init_noise_sigma", 1.0))
    for t in solver.timesteps:
        inputs = model_input(latents, condition)
        if guided:
            pred = model.transformer(hidden_states=torch.cat([inputs, inputs]), timestep=t.expand(2),
                                     encoder_hidden_states=states, return_dict=False)[0].float()
            uncond, cond = pred.chunk(2)
            pred = uncond + cfg * (cond - uncond)
        else:
            pred = model.transformer(hidden_states=inputs, timestep=t.expand(1), encoder_hidden_states=states,
                                     return_dict=False)[0].float()
        latents = solver.step(pred, t, latents).prev_sample
    return model.decode(latents)[0], latents.cpu()
