"""Shared by the pretraining-option tests: a tiny CLI run with and without one option, to compare."""

import torch
from safetensors.torch import load_file

from motion_core.toy.pretrain.__main__ import main as pretrain

TINY_RUN = ["--clips", "6", "--vae-steps", "2", "--decoder-steps", "0", "--t2v-steps", "3", "--batch", "2",
            "--threads", "1", "--compile", "off"]
UNET_FILE = "unet/diffusion_pytorch_model.safetensors"


def train_with_and_without(tmp_path, *option, baseline=()):
    """The option run's model card text, after checking that its UNet is finite and differs from the plain run's
    (`baseline`: options of the plain run, written to tmp_path / "plain")."""
    plain, other = tmp_path / "plain", tmp_path / "option"
    assert pretrain(["--out", str(plain), *baseline, *TINY_RUN]) == 0
    assert pretrain(["--out", str(other), *option, *TINY_RUN]) == 0
    a, b = load_file(plain / UNET_FILE), load_file(other / UNET_FILE)
    assert all(torch.isfinite(v.float()).all() for v in b.values())
    assert any(not torch.equal(a[k], b[k]) for k in a)
    return (other / "README.md").read_text()
