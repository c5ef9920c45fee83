"""End-to-end in a real ComfyUI 0.3.75: a Wan LoRA saved by this pack in ComfyUI's native layout means the same thing
in core's nodes as in ours.

Core path: UNETLoader (the tiny Wan diffusion-model file) -> LoraLoaderModelOnly -> ModelSamplingSD3 (shift 3, our
backbone's) -> KSampler (euler, "normal" scheduler) -> SaveLatent. Our path: Load Video Model -> Load Appearance LoRA
(models/loras, the same file) -> Sample Video (euler). Same seed, steps, CFG and prompts.

Why these settings match: ComfyUI draws the noise with torch.manual_seed(seed) on the CPU over the latent's shape, as
our sampler does; its "normal" scheduler on ModelSamplingDiscreteFlow gives exactly diffusers'
FlowMatchEulerDiscreteScheduler sigmas (both apply the shift twice to the last sigma: 1.0 ... 0.00893 for shift 3),
while "simple" differs by up to 0.59 in sigma at 3 steps; its euler step x + (sigma' - sigma) * (x - x0) / sigma is
ours in v form. Its Wan21 latent format hands out latents * std + mean (VAE space), so they are normalised before
comparing. Its empty Wan latent assumes the real VAE's 8x compression; the tiny VAE compresses 4x, so our 32x32 video
has the latent of ComfyUI's 64x64 one.

The transformer file is the tiny Wan with freq_dim 256: ComfyUI's Wan detection fixes the timestep-embedding width
at 256 (the default tiny model's 32 fails in UNETLoader with a size mismatch in time_embedding.0).

Conditioning: core's CLIPLoader builds UMT5-XXL from a fixed config, so the tiny UMT5 file cannot load there; and
the states must be identical for the comparison to mean anything. A test-only custom node (written into this server's
custom_nodes, never shipped) turns the text states our loaded model computes into CONDITIONING, the states Sample
Video itself uses. The tiny VAE is not core's Wan VAE shape either, so ComfyUI's latent is decoded here with our VAE.
"""

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from motion_core.backbones.wan.tiny import COMFY_FREQ_DIM
from tests.harness.comfy_server import ComfyServer
from tests.wan_samples import COMFY_FILES, place_tiny_wan_files

pytestmark = pytest.mark.e2e

PROMPT, NEGATIVE, SEED, STEPS, CFG = "a red square moves right", "blurry", 7, 4, 2.0
FILES = COMFY_FILES
LORA_FILE = "wan_native/dance_00001.safetensors"
# Measured on CPU, fp32 (seed 7 / 4 steps and seed 3 / 10 steps): ComfyUI's latents and ours differ by at most
# 7.3e-6 with the LoRA and 2.5e-6 without it (values up to ~5, where one float32 ulp is ~4.8e-7), decoded frames by
# 1.7e-6; the LoRA itself moves the latents by ~3.7. The remaining difference is float32 summation order only: the
# same weights run through ComfyUI's own Wan code instead of diffusers' (one forward pass already differs by 2e-6),
# with the LoRA merged as W + (alpha/r)(B@A) vs W + (B@A)(alpha/r), CFG applied on x0 instead of v, and Euler in x0
# form. 1e-4 leaves >10x headroom over the worst measurement and is ~40000x below the LoRA's effect.
TOLERANCE = 1e-4

VIDEO_MODEL = {"class_type": "MDLoadVideoModel", "inputs": {
    "model": f"diffusion model: {FILES['diffusion_models']}", "motion_module": "none", "dtype": "fp32", "device": "cpu",
    "vae": FILES["vae"], "text_encoder": FILES["text_encoders"]}}

TEST_NODES = (Path(__file__).parent / "harness" / "native_test_nodes.py").read_text()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A ComfyUI of its own: the test-only nodes must be in custom_nodes before it starts."""
    base = tmp_path_factory.mktemp("comfy_native")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "md_test_wan_nodes.py").write_text(TEST_NODES)
    place_tiny_wan_files(base / "models", made=base / "wan_made", freq_dim=COMFY_FREQ_DIM)
    with ComfyServer(base_dir=base) as comfy:
        yield comfy


@pytest.fixture(scope="module")
def backbone(server):
    """The same files loaded in this process (the LoRA must carry this model's fingerprint; our VAE decodes)."""
    from motion_core.backbones import load_backbone

    models = server.models_dir
    return load_backbone(models / "diffusion_models" / FILES["diffusion_models"], vae=models / "vae" / FILES["vae"],
                         text_encoder=models / "text_encoders" / FILES["text_encoders"])


@pytest.fixture(scope="module")
def saved_lora(server, backbone):
    """A random Wan LoRA (alpha != rank, so the scale matters) saved by our Save node in the comfyui format."""
    from motion_core.lora import save_lora
    from motion_core.lora.synthetic import random_lora

    lora = random_lora(backbone, ("temporal_attn", "spatial_cross_attn", "spatial_ff"), rank=4, alpha=8.0,
                       std=0.2, name="dance", alpha_pattern={"blocks.0.ffn.net.0.proj": 2.0})
    save_lora(lora, server.models_dir / "motion_loras" / "wan_native_source.safetensors")
    result = server.run({
        "1": {"class_type": "MDLoadMotionLoRA", "inputs": {
            "lora_name": "wan_native_source.safetensors", "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}},
        "2": {"class_type": "MDSaveMotionLoRA", "inputs": {
            "lora": ["1", 1], "filename_prefix": "wan_native/dance", "format": "comfyui"}},
    }, timeout=300)
    assert result.status == "success", result.error_text
    return lora


def _native_sampler(model, positive, negative, latent, prefix):
    return {
        f"{prefix}_shift": {"class_type": "ModelSamplingSD3", "inputs": {"model": model, "shift": 3.0}},
        f"{prefix}_ks": {"class_type": "KSampler", "inputs": {
            "model": [f"{prefix}_shift", 0], "seed": SEED, "steps": STEPS, "cfg": CFG, "sampler_name": "euler",
            "scheduler": "normal", "positive": positive, "negative": negative, "latent_image": latent,
            "denoise": 1.0}},
        f"{prefix}_save": {"class_type": "SaveLatent", "inputs": {
            "samples": [f"{prefix}_ks", 0], "filename_prefix": f"native/{prefix}"}},
    }


@pytest.fixture(scope="module")
def both_paths(server, saved_lora):
    prompt = {
        "model": VIDEO_MODEL,
        "stack": {"class_type": "MDLoadAppearanceLoRA", "inputs": {
            "lora_name": LORA_FILE, "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}},
        "ours": {"class_type": "MDSampleVideo", "inputs": {
            "video_model": ["model", 0], "prompt": PROMPT, "negative_prompt": NEGATIVE, "seed": SEED, "steps": STEPS,
            "cfg": CFG, "frames": 5, "width": 32, "height": 32, "scheduler": "euler", "frame_rate": 8.0,
            "lora_stack": ["stack", 0]}},
        "ours_save": {"class_type": "MDTestNativeSaveImage", "inputs": {"images": ["ours", 0], "name": "ours.st"}},
        "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": FILES["diffusion_models"],
                                                        "weight_dtype": "default"}},
        "lora": {"class_type": "LoraLoaderModelOnly", "inputs": {
            "model": ["unet", 0], "lora_name": LORA_FILE, "strength_model": 1.0}},
        "pos": {"class_type": "MDTestNativeTextStates", "inputs": {"video_model": ["model", 0], "text": PROMPT}},
        "neg": {"class_type": "MDTestNativeTextStates", "inputs": {"video_model": ["model", 0], "text": NEGATIVE}},
        "empty": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {
            "width": 64, "height": 64, "length": 5, "batch_size": 1}},
        **_native_sampler(["lora", 0], ["pos", 0], ["neg", 0], ["empty", 0], "with_lora"),
        **_native_sampler(["unet", 0], ["pos", 0], ["neg", 0], ["empty", 0], "base"),
    }
    log_start = len(server.log())
    result = server.run(prompt, timeout=600)
    assert result.status == "success", result.error_text

    def read(node, key, name):
        info = result.outputs[node][key][0]
        with safe_open(str(server.output_dir / info["subfolder"] / info["filename"]), "pt") as f:
            return f.get_tensor(name)
    return {"ours_frames": read("ours_save", "tensors", "images"),
            "native": read("with_lora_save", "latents", "latent_tensor"),
            "native_base": read("base_save", "latents", "latent_tensor"), "log": server.log()[log_start:]}


def normalised(backbone, raw):
    """ComfyUI's Wan21 latent (VAE space: z * std + mean) -> the normalised latents our sampler works in."""
    mean, std = backbone._latent_stats(raw)
    return (raw - mean) / std


def test_the_saved_file_is_in_comfys_native_layout_in_models_loras(server, saved_lora):
    with safe_open(str(server.models_dir / "loras" / LORA_FILE), "pt") as f:
        keys = list(f.keys())
    assert keys and all(k.startswith("diffusion_model.blocks.") for k in keys)
    assert len(keys) == 3 * len(saved_lora.modules())  # lora_A, lora_B, alpha per module


def test_core_lora_loader_applies_every_key(both_paths):
    log = both_paths["log"]
    assert "lora key not loaded" not in log and "NOT LOADED" not in log, log[-3000:]


def test_the_log_check_would_see_a_key_core_cannot_place(server, saved_lora):
    """The control for the test above: our kohya export of the same LoRA (diffusers names flattened) is not a layout
    core maps for Wan, and ComfyUI says so in the log this test reads."""
    from motion_core.lora import save_lora

    save_lora(saved_lora, server.models_dir / "loras" / "wan_native" / "kohya.safetensors", format="kohya")
    log_start = len(server.log())
    result = server.run({
        "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": FILES["diffusion_models"],
                                                        "weight_dtype": "default"}},
        "lora": {"class_type": "LoraLoaderModelOnly", "inputs": {
            "model": ["unet", 0], "lora_name": "wan_native/kohya.safetensors", "strength_model": 1.0}},
        "zero": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {
            "width": 64, "height": 64, "length": 5, "batch_size": 1}},
        "ks": {"class_type": "KSampler", "inputs": {
            "model": ["lora", 0], "seed": 0, "steps": 1, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal",
            "positive": ["zero_cond", 0], "negative": ["zero_cond", 0], "latent_image": ["zero", 0], "denoise": 1.0}},
        "zero_cond": {"class_type": "MDTestNativeTextStates", "inputs": {"video_model": ["model", 0], "text": ""}},
        "model": VIDEO_MODEL,
        "out": {"class_type": "SaveLatent", "inputs": {"samples": ["ks", 0], "filename_prefix": "native/kohya"}},
    }, timeout=300)
    assert result.status == "success", result.error_text
    assert "lora key not loaded: lora_unet_blocks_0_attn1_to_q.lora_down.weight" in server.log()[log_start:]


def test_the_lora_changes_what_core_samples(backbone, both_paths):
    change = (both_paths["native"] - both_paths["native_base"]).abs().max().item()
    print(f"latents: max |with LoRA - base| = {change:.3g}")
    assert change > 1000 * TOLERANCE, change


def test_core_sampling_with_the_lora_matches_our_sampler_latents(server, backbone, both_paths):
    """Our engine (what Sample Video runs) with the LoRA read back from the native file, in this process."""
    from motion_core.lora import load_lora
    from motion_core.lora.stack import LoraStack
    from motion_core.sampling import SampleRequest, sample_video

    stack = LoraStack().add(load_lora(server.models_dir / "loras" / LORA_FILE), 1.0, 0.0, 1.0)
    ours = sample_video(backbone, SampleRequest(prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED, steps=STEPS,
                                                cfg=CFG, frames=5, width=32, height=32, scheduler="euler",
                                                lora_stack=stack)).latents
    native = normalised(backbone, both_paths["native"])
    assert native.shape == ours.shape == (1, 16, 2, 8, 8)
    difference = (native - ours).abs().max().item()
    print(f"latents: max |ComfyUI - ours| = {difference:.3g} (scale {ours.abs().max().item():.3g})")
    assert difference < TOLERANCE
    # the same comparison without the LoRA: what the two implementations differ by on their own
    base = sample_video(backbone, SampleRequest(prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED, steps=STEPS,
                                                cfg=CFG, frames=5, width=32, height=32, scheduler="euler")).latents
    base_difference = (normalised(backbone, both_paths["native_base"]) - base).abs().max().item()
    print(f"latents without LoRA: max |ComfyUI - ours| = {base_difference:.3g}")
    assert base_difference < TOLERANCE


def test_core_sampling_with_the_lora_matches_sample_video_frames(backbone, both_paths):
    frames = backbone.decode_latents(normalised(backbone, both_paths["native"]))[0]
    ours = both_paths["ours_frames"]
    assert frames.shape == ours.shape == (5, 32, 32, 3)
    difference = (frames - ours).abs().max().item()
    print(f"frames: max |decode(ComfyUI) - Sample Video| = {difference:.3g}")
    assert difference < TOLERANCE



def test_saving_a_non_wan_lora_in_the_comfyui_format_is_a_node_error_with_the_reason(server):
    from motion_core.lora import MotionLora, save_lora

    unet = MotionLora({"unet.down_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(2, 8),
                       "unet.down_blocks.0.attn1.to_q.lora_B.weight": torch.ones(8, 2)}, {"family": "animatediff"})
    save_lora(unet, server.models_dir / "motion_loras" / "ad_source.safetensors")
    result = server.run({
        "1": {"class_type": "MDLoadMotionLoRA", "inputs": {
            "lora_name": "ad_source.safetensors", "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}},
        "2": {"class_type": "MDSaveMotionLoRA", "inputs": {
            "lora": ["1", 1], "filename_prefix": "ad/wave", "format": "comfyui"}},
    }, timeout=300)
    assert result.status == "error" and result.error["node_type"] == "MDSaveMotionLoRA"
    assert "native layout for Wan LoRAs" in result.error["exception_message"]
    assert not list((server.models_dir / "loras").glob("ad/*"))
