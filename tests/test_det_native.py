"""A DeT LoRA on a native MODEL in the provisioned ComfyUI 0.3.75 (in a subprocess, no server): core's loader takes
the LoRA part, the pack's object patches add the temporal kernel, and core's Wan then computes what the pack's own
Wan computes with the whole LoRA; unpatched, core's model is its base again."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from harness.provision import comfyui_dir
from safetensors.torch import load_file, save_file

from motion_core.backbones.wan.keys import diffusers_to_original
from motion_core.backbones.wan.tiny import COMFY_FREQ_DIM, tiny_wan_parts
from motion_core.lora import AdapterSpec, add_adapter, attach_lora, lora_from_adapter, remove_adapter, save_lora
from motion_core.lora.kernels import kernel_parameters
from motion_core.lora.temporal_kernel import KernelSpec

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4

SCRIPT = r"""
import sys, types
root, repo, model_file, lora_file, inputs_file, out_file = sys.argv[1:]
sys.argv = ["x", "--cpu"]
sys.path.insert(0, root)
import comfy.options; comfy.options.enable_args_parsing()
import torch, comfy.sd, comfy.lora
from safetensors.torch import load_file, save_file
pack = types.ModuleType("md_pack"); pack.__path__ = [repo]; sys.modules["md_pack"] = pack
from md_pack.nodes.native_kernel import apply_native_kernels
from md_pack.motion_core.lora import load_lora
from md_pack.motion_core.native import native_loras
from md_pack.motion_core.native.temporal_kernel_patch import native_kernels

base = comfy.sd.load_diffusion_model_state_dict(load_file(model_file), model_options={"dtype": torch.float32})
lora = load_lora(lora_file)
inputs = load_file(inputs_file)

def run(patcher):
    patcher.patch_model()
    try:
        # what core's sampling puts there (sampler_helpers.prepare_model_patcher)
        options = {"wrappers": patcher.wrappers}
        with torch.no_grad():
            return patcher.model.diffusion_model(inputs["x"], inputs["t"], inputs["context"],
                                                 transformer_options=options).float().clone()
    finally:
        patcher.unpatch_model()

outputs = {"base": run(base)}
for name, kernel in (("lora_part", False), ("whole", True)):
    patcher = base.clone()
    key_map = comfy.lora.model_lora_keys_unet(patcher.model, {})
    for entry in native_loras(lora):
        patcher.add_patches(comfy.lora.load_lora(entry.state_dict, key_map), entry.strength)
    if kernel:
        apply_native_kernels(patcher, native_kernels(lora))
    outputs[name] = run(patcher)
outputs["base_after"] = run(base)
save_file(outputs, out_file)
"""


@pytest.mark.skipif(not (comfyui_dir() / "comfy" / "sd.py").is_file(), reason="ComfyUI is not provisioned")
def test_core_with_the_pack_kernel_patch_computes_what_the_pack_computes(tmp_path):
    denoiser = tiny_wan_parts(0, freq_dim=COMFY_FREQ_DIM)["denoiser"].float().eval()
    save_file({k: v.contiguous() for k, v in diffusers_to_original(denoiser.state_dict(), "model.diffusion_model.")
               .items()}, str(tmp_path / "wan.safetensors"))
    targets = [n for n, _ in denoiser.named_modules() if n.endswith(("attn1.to_q", "attn1.to_k", "attn1.to_v",
                                                                    "attn1.to_out.0"))]
    torch.manual_seed(0)
    add_adapter(denoiser, AdapterSpec("det", targets, rank=2, alpha=4.0, temporal_kernel=KernelSpec(rank=8)))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in denoiser.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=g) * 0.2)
    lora = lora_from_adapter(denoiser, "det", family="wan", name="det")
    remove_adapter(denoiser, "det")
    save_lora(lora, tmp_path / "det.safetensors")

    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, denoiser.config.in_channels, 3, 4, 4, generator=g)
    t = torch.tensor([500.0])
    context = torch.randn(1, 6, denoiser.config.text_dim, generator=g)
    save_file({"x": x, "t": t, "context": context}, str(tmp_path / "inputs.safetensors"))

    def ours(with_kernel):
        name = attach_lora(denoiser, lora if with_kernel else lora.without_kernel())
        assert bool(kernel_parameters(denoiser, name)) == with_kernel
        try:
            with torch.no_grad():
                return denoiser(hidden_states=x, timestep=t, encoder_hidden_states=context, return_dict=False)[0]
        finally:
            remove_adapter(denoiser, name)

    with torch.no_grad():
        base = denoiser(hidden_states=x, timestep=t, encoder_hidden_states=context, return_dict=False)[0]
    files = [str(tmp_path / name) for name in ("wan.safetensors", "det.safetensors", "inputs.safetensors",
                                               "out.safetensors")]
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(comfyui_dir()), str(REPO), *files], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    core = load_file(str(tmp_path / "out.safetensors"))
    assert (core["base"] - base).abs().max() < TOLERANCE  # the two implementations agree on the base
    assert (core["lora_part"] - ours(False)).abs().max() < TOLERANCE
    assert (core["whole"] - ours(True)).abs().max() < TOLERANCE
    assert (core["whole"] - core["lora_part"]).abs().max() > 100 * TOLERANCE  # the kernel acts in core
    assert torch.equal(core["base_after"], core["base"])  # unpatched: core's base again


def _lora_with_kernel():
    from motion_core.lora.motion_lora import MotionLora
    from motion_core.lora.temporal_kernel import kernel_key

    kernel = {kernel_key(f"blocks.{i}", part): torch.zeros(shape) for i in range(2)
              for part, shape in (("down", (4, 8, 3)), ("up", (8, 4, 3)))}
    factors = {"unet.blocks.0.attn1.to_q.lora_A.weight": torch.zeros(2, 8),
               "unet.blocks.0.attn1.to_q.lora_B.weight": torch.zeros(8, 2)}
    return MotionLora(factors, {"name": "det", "family": "wan"}, kernel=kernel)


def test_native_kernels_take_the_strengths_and_ranges_their_lora_parts_take():
    from motion_core.lora.stack import LoraStack
    from motion_core.native.temporal_kernel_patch import native_kernels

    lora = _lora_with_kernel()
    (one,) = native_kernels(lora, 0.5, 0.0, 0.4)
    assert (one.strength, one.start_percent, one.end_percent, one.full_range) == (0.5, 0.0, 0.4, False)
    stack = LoraStack().add(lora, 2.0, 0.2, 1.0).add(lora.without_kernel()).add(lora, 0.0)
    (entry,) = native_kernels(stack, 0.5, 0.0, 0.5)  # no kernel / strength 0: left out; ranges intersect
    assert (entry.strength, entry.start_percent, entry.end_percent) == (1.0, 0.2, 0.5)
    assert native_kernels(LoraStack().add(lora, 1.0, 0.6, 1.0), 1.0, 0.0, 0.5) == []


def test_a_ranged_kernel_acts_between_its_start_and_end_sigmas_as_cores_keyframes_do():
    from motion_core.native.temporal_kernel_patch import acts_at, native_kernels

    (full,) = native_kernels(_lora_with_kernel())
    (early,) = native_kernels(_lora_with_kernel(), 1.0, 0.0, 0.5)
    bounds = {id(early): (1.0, 0.6)}  # percent_to_sigma(0) and (0.5) of some schedule
    assert acts_at(full, {}, None)
    assert acts_at(early, bounds, torch.tensor([0.9])) and acts_at(early, bounds, torch.tensor([1.0]))
    assert not acts_at(early, bounds, torch.tensor([0.59])) and not acts_at(early, bounds, torch.tensor([0.3]))
    assert not acts_at(early, {}, torch.tensor([0.9]))  # outside a sampling run no range is known: off


def test_a_native_kernel_of_another_model_is_refused_naming_what_to_connect():
    from motion_core.errors import LoraMismatchError
    from motion_core.native.temporal_kernel_patch import check_native_kernel_fits, native_kernels

    (kernel,) = native_kernels(_lora_with_kernel())
    check_native_kernel_fits(kernel, ["blocks.0", "blocks.1"], 8)
    with pytest.raises(LoraMismatchError, match="Connect the Wan model"):
        check_native_kernel_fits(kernel, ["blocks.0", "blocks.1", "blocks.2"], 8)
    with pytest.raises(LoraMismatchError, match="8 channels wide"):
        check_native_kernel_fits(kernel, ["blocks.0", "blocks.1"], 16)
