"""End-to-end in a real ComfyUI 0.3.75: the pack's motion tools on native types, on the tiny Wan that core loads.

1. Apply Motion LoRA (native MODEL) at the full range is core's LoraLoaderModelOnly; with a step range KSampler
   uses the LoRA only in those steps. The reference for "only in those steps" is core's own way of switching models
   mid-schedule: two KSamplerAdvanced over one schedule (the first returning its leftover noise), one with the base
   model and one with LoraLoaderModelOnly's. Why the split lands where the range does: on the flow model (shift 3)
   core's "normal" scheduler puts step i of 4 at schedule share 1 - u_i, u = linspace(1, 0.003, 4), i.e. at 0,
   0.33, 0.66 and 0.997; a keyframe at 0.5 takes over at the first step whose sigma is at or below the sigma of
   0.5, which is step 2. So 0.5..1 means steps 2-3 (split at step 2, LoRA second) and 0..0.5 steps 0-1.
   Euler keeps no history between steps, so a run that switches weights at step 2 and a run split at step 2 take
   the same steps; they differ only by core's unscale/rescale of the handed-over latent ((1 - sigma) in flow
   models), float32 rounding far below the LoRA's effect.
2. Reference Noise (native) as SamplerCustomAdvanced's NOISE, with an empty latent, euler and the normal scheduler,
   samples what Sample Video samples with the same clip, prior share, mode, seed, steps and euler.
3. The shared native workflows run to completion on the tiny Wan. Core's CLIPLoader and VAELoader build UMT5-XXL and
   the real Wan VAE from fixed configs, which the tiny files cannot fill, so in the tiny variant (only there) their
   text encoding and decoding are done by test-only nodes with the tiny model's own encoder and VAE.

Conditioning and decoding for all of them come from the test-only nodes written into this server's custom_nodes
(never shipped), as in test_e2e_wan_native.py.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from motion_core.backbones.wan.tiny import COMFY_FREQ_DIM
from tests.harness.comfy_server import ComfyServer
from tests.harness.workflow_api import to_api_prompt
from tests.video_samples import write_sample_video
from tests.wan_samples import COMFY_FILES, place_tiny_wan_files

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]

PROMPT, NEGATIVE, SEED, STEPS, CFG, SHIFT = "a red square moves right", "blurry", 7, 4, 2.0, 3.0
FILES = COMFY_FILES
UNET = FILES["diffusion_models"]
LORA_SOURCE, LORA_NATIVE = "native_src.safetensors", "native/spin.safetensors"
CLIP_VIDEO = "native_reference.mp4"
# ComfyUI's Wan sampling and our sampler agree to ~7e-6 on these latents (test_e2e_wan_native.py); the LoRA moves
# them by ~1; see each test for what is compared.
TOLERANCE = 1e-4

VIDEO_MODEL = {"class_type": "MDLoadVideoModel", "inputs": {
    "model": f"diffusion model: {UNET}", "motion_module": "none", "dtype": "fp32", "device": "cpu",
    "vae": FILES["vae"], "text_encoder": FILES["text_encoders"]}}

TEST_NODES = (Path(__file__).parent / "harness" / "native_test_nodes.py").read_text()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy_native_door")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "md_test_native_nodes.py").write_text(TEST_NODES)
    place_tiny_wan_files(base / "models", made=base / "wan_made", freq_dim=COMFY_FREQ_DIM)
    (base / "input").mkdir(exist_ok=True)
    write_sample_video(base / "input" / CLIP_VIDEO, frames=9, width=40, height=40, fps=8)
    with ComfyServer(base_dir=base) as comfy:
        yield comfy


@pytest.fixture(scope="module")
def backbone(server):
    from motion_core.backbones import load_backbone

    models = server.models_dir
    return load_backbone(models / "diffusion_models" / UNET, vae=models / "vae" / FILES["vae"],
                         text_encoder=models / "text_encoders" / FILES["text_encoders"])


@pytest.fixture(scope="module")
def lora(server, backbone):
    """A random Wan LoRA (alpha != rank), in models/motion_loras for our loaders and in core's layout in
    models/loras for LoraLoaderModelOnly."""
    from motion_core.lora import save_lora
    from motion_core.lora.synthetic import random_lora

    with torch.no_grad():
        made = random_lora(backbone, ("temporal_attn", "spatial_cross_attn", "spatial_ff"), rank=4, alpha=8.0,
                           std=0.2, name="spin")
    save_lora(made, server.models_dir / "motion_loras" / LORA_SOURCE)
    (server.models_dir / "loras" / "native").mkdir(parents=True, exist_ok=True)
    save_lora(made, server.models_dir / "loras" / LORA_NATIVE, format="comfyui")
    return made


def _read_latent(server, result, node):
    info = result.outputs[node]["latents"][0]
    with safe_open(str(server.output_dir / info["subfolder"] / info["filename"]), "pt") as f:
        return f.get_tensor("latent_tensor")


def _read_images(server, result, node):
    info = result.outputs[node]["tensors"][0]
    with safe_open(str(server.output_dir / info["subfolder"] / info["filename"]), "pt") as f:
        return f.get_tensor("images")


COMMON = {
    "md": VIDEO_MODEL,
    "pos": {"class_type": "MDTestNativeTextStates", "inputs": {"video_model": ["md", 0], "text": PROMPT}},
    "neg": {"class_type": "MDTestNativeTextStates", "inputs": {"video_model": ["md", 0], "text": NEGATIVE}},
    "empty": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 64, "height": 64, "length": 5,
                                                                  "batch_size": 1}},
    "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": UNET, "weight_dtype": "default"}},
    "core_lora": {"class_type": "LoraLoaderModelOnly", "inputs": {
        "model": ["unet", 0], "lora_name": LORA_NATIVE, "strength_model": 1.0}},
    "our_lora": {"class_type": "MDLoadMotionLoRA", "inputs": {
        "lora_name": LORA_SOURCE, "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}},
}


def _ksampler(name, model):
    return {
        f"{name}_shift": {"class_type": "ModelSamplingSD3", "inputs": {"model": model, "shift": SHIFT}},
        f"{name}_ks": {"class_type": "KSampler", "inputs": {
            "model": [f"{name}_shift", 0], "seed": SEED, "steps": STEPS, "cfg": CFG, "sampler_name": "euler",
            "scheduler": "normal", "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["empty", 0],
            "denoise": 1.0}},
        f"{name}_save": {"class_type": "SaveLatent", "inputs": {"samples": [f"{name}_ks", 0],
                                                                "filename_prefix": f"native/{name}"}},
    }


def _applied(name, start, end):
    return {f"{name}_apply": {"class_type": "MDApplyMotionLoRANative", "inputs": {
        "model": ["unet", 0], "lora": ["our_lora", 1], "strength": 1.0, "start_percent": start,
        "end_percent": end}}, **_ksampler(name, [f"{name}_apply", 0])}


def _split(name, first_model, second_model, at):
    """One schedule over two KSamplerAdvanced, switching models at step ``at`` (core's two-expert pattern)."""
    def advanced(part, model, start, end, noise, leftover):
        return {f"{name}_{part}_shift": {"class_type": "ModelSamplingSD3", "inputs": {"model": model, "shift": SHIFT}},
                f"{name}_{part}": {"class_type": "KSamplerAdvanced", "inputs": {
                    "model": [f"{name}_{part}_shift", 0], "add_noise": noise, "noise_seed": SEED, "steps": STEPS,
                    "cfg": CFG, "sampler_name": "euler", "scheduler": "normal", "positive": ["pos", 0],
                    "negative": ["neg", 0], "latent_image": latent, "start_at_step": start, "end_at_step": end,
                    "return_with_leftover_noise": leftover}}}
    latent = ["empty", 0]
    nodes = advanced("a", first_model, 0, at, "enable", "enable")
    latent = [f"{name}_a", 0]
    nodes.update(advanced("b", second_model, at, STEPS, "disable", "disable"))
    nodes[f"{name}_save"] = {"class_type": "SaveLatent", "inputs": {"samples": [f"{name}_b", 0],
                                                                    "filename_prefix": f"native/{name}"}}
    return nodes


@pytest.fixture(scope="module")
def lora_runs(server, lora):
    prompt = {**COMMON, **_ksampler("base", ["unet", 0]), **_ksampler("core_full", ["core_lora", 0]),
              **_applied("full", 0.0, 1.0), **_applied("late", 0.5, 1.0), **_applied("early", 0.0, 0.5),
              **_split("ref_late", ["unet", 0], ["core_lora", 0], 2),
              **_split("ref_early", ["core_lora", 0], ["unet", 0], 2)}
    log_start = len(server.log())
    result = server.run(prompt, timeout=900)
    assert result.status == "success", result.error_text
    names = ("base", "core_full", "full", "late", "early", "ref_late", "ref_early")
    return {**{n: _read_latent(server, result, f"{n}_save") for n in names}, "log": server.log()[log_start:]}


def _diff(a, b) -> float:
    return (a - b).abs().max().item()


def test_full_range_equals_cores_lora_loader(lora_runs):
    difference = _diff(lora_runs["full"], lora_runs["core_full"])
    print(f"full range vs LoraLoaderModelOnly: {difference:.3g}")
    assert difference < 1e-6
    assert "lora key not loaded" not in lora_runs["log"] and "NOT LOADED" not in lora_runs["log"]


@pytest.mark.parametrize("ranged,reference", [("late", "ref_late"), ("early", "ref_early")])
def test_a_step_range_applies_the_lora_only_in_those_steps(lora_runs, ranged, reference):
    to_reference = _diff(lora_runs[ranged], lora_runs[reference])
    to_base = _diff(lora_runs[ranged], lora_runs["base"])
    to_full = _diff(lora_runs[ranged], lora_runs["full"])
    print(f"{ranged}: vs split reference {to_reference:.3g}, vs base {to_base:.3g}, vs full range {to_full:.3g}")
    assert to_reference < TOLERANCE
    assert to_base > 1000 * TOLERANCE and to_full > 1000 * TOLERANCE


def test_a_non_wan_lora_is_refused_naming_the_native_families(server):
    from motion_core.lora import MotionLora, save_lora

    ad = MotionLora({"unet.down_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(2, 8),
                     "unet.down_blocks.0.attn1.to_q.lora_B.weight": torch.ones(8, 2)}, {"family": "animatediff"})
    save_lora(ad, server.models_dir / "motion_loras" / "native_ad.safetensors")
    prompt = {**COMMON, "our_lora": {"class_type": "MDLoadMotionLoRA", "inputs": {
        "lora_name": "native_ad.safetensors", "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}},
        **_applied("ad", 0.0, 1.0)}
    prompt = {k: v for k, v in prompt.items() if k != "core_lora"}
    result = server.run(prompt, timeout=300)
    assert result.status == "error" and result.error["node_type"] == "MDApplyMotionLoRANative"
    assert "core runs only wan" in result.error["exception_message"]


@pytest.mark.parametrize("mode", ["full", "motion"])
def test_reference_noise_in_sampler_custom_advanced_reproduces_sample_video(server, mode):
    p = 0.7
    prompt = {
        **{k: COMMON[k] for k in ("md", "pos", "neg", "empty", "unet")},
        "clip": {"class_type": "MDLoadReferenceVideo", "inputs": {
            "video": CLIP_VIDEO, "caption": "", "start_frame": 0, "frame_cap": 9, "min_frames": 1, "every_nth": 1,
            "target_fps": 0.0, "width": 32, "height": 32, "resize_mode": "crop"}},
        "ours": {"class_type": "MDSampleVideo", "inputs": {
            "video_model": ["md", 0], "prompt": PROMPT, "negative_prompt": NEGATIVE, "seed": SEED, "steps": STEPS,
            "cfg": CFG, "frames": 5, "width": 32, "height": 32, "scheduler": "euler", "frame_rate": 8.0,
            "noise_prior_clips": ["clip", 2], "noise_prior_p": p, "noise_prior_mode": mode}},
        "ours_save": {"class_type": "MDTestNativeSaveImage", "inputs": {"images": ["ours", 0],
                                                                         "name": f"ours_{mode}.st"}},
        "shift": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["unet", 0], "shift": SHIFT}},
        "guider": {"class_type": "CFGGuider", "inputs": {"model": ["shift", 0], "positive": ["pos", 0],
                                                         "negative": ["neg", 0], "cfg": CFG}},
        "sampler": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "sigmas": {"class_type": "BasicScheduler", "inputs": {"model": ["shift", 0], "scheduler": "normal",
                                                              "steps": STEPS, "denoise": 1.0}},
        "prior": {"class_type": "MDReferenceNoiseNative", "inputs": {
            "video_model": ["md", 0], "reference_clips": ["clip", 2], "noise_prior_p": p, "noise_prior_mode": mode,
            "seed": SEED, "steps": STEPS, "shift": SHIFT}},
        "plain": {"class_type": "RandomNoise", "inputs": {"noise_seed": SEED}},
        **{f"{name}_sca": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": [noise, 0], "guider": ["guider", 0], "sampler": ["sampler", 0], "sigmas": ["sigmas", 0],
            "latent_image": ["empty", 0]}} for name, noise in (("native", "prior"), ("fresh", "plain"))},
        **{f"{name}_decode": {"class_type": "MDTestNativeDecode", "inputs": {
            "video_model": ["md", 0], "samples": [f"{name}_sca", 0]}} for name in ("native", "fresh")},
        **{f"{name}_img": {"class_type": "MDTestNativeSaveImage", "inputs": {
            "images": [f"{name}_decode", 0], "name": f"{name}_{mode}.st"}} for name in ("native", "fresh")},
    }
    result = server.run(prompt, timeout=900)
    assert result.status == "success", result.error_text
    assert {"ours_save", "native_img", "fresh_img"} <= result.outputs.keys(), "an output failed validation"
    ours, native, fresh = (_read_images(server, result, n) for n in ("ours_save", "native_img", "fresh_img"))
    assert ours.shape == native.shape == (5, 32, 32, 3)
    difference, prior_effect = _diff(native, ours), _diff(fresh, ours)
    print(f"{mode}: frames |native - Sample Video| = {difference:.3g}; without the prior {prior_effect:.3g}")
    assert difference < TOLERANCE
    assert prior_effect > 100 * TOLERANCE


# ---- the shared native workflows on the tiny Wan --------------------------------------------------------------

NATIVE_WORKFLOWS = ["wan_motion_lora_native.json", "wan22_a14b_two_experts.json", "motion_and_look_native.json"]
TINY = {
    "MDLoadVideoModel": VIDEO_MODEL["inputs"],
    "MDLoadReferenceVideo": {"video": CLIP_VIDEO, "width": 32, "height": 32, "frame_cap": 9, "min_frames": 5},
    "MDTrainMotionLoRA": {"steps": 2, "rank": 4, "width": 32, "height": 32, "frames": 5, "validate_every": 0,
                          "checkpoint_every": 0},
    "UNETLoader": {"unet_name": UNET, "weight_dtype": "default"},
    "EmptyHunyuanLatentVideo": {"width": 64, "height": 64, "length": 5, "batch_size": 1},
    "KSampler": {"steps": STEPS},
}


def _tiny_native_variant(prompt: dict) -> dict:
    """Tiny sizes and files; core's text encoder and VAE replaced by the test-only nodes (see the module doc)."""
    prompt = {k: v for k, v in prompt.items() if v["class_type"] not in ("CLIPLoader", "VAELoader")}
    prompt.setdefault("tiny_md", {"class_type": "MDLoadVideoModel", "inputs": dict(VIDEO_MODEL["inputs"])})
    for node in prompt.values():
        kind, inputs = node["class_type"], node["inputs"]
        inputs.update(TINY.get(kind, {}))
        if kind == "KSamplerAdvanced":  # keep the experts' split at the same share of fewer steps
            share = STEPS / inputs["steps"]
            inputs.update(steps=STEPS, start_at_step=min(STEPS, round(inputs["start_at_step"] * share)),
                          end_at_step=min(STEPS, round(min(inputs["end_at_step"], 10_000) * share)))
        elif kind == "CLIPTextEncode":
            node.update(class_type="MDTestNativeTextStates", inputs={"video_model": ["tiny_md", 0],
                                                                     "text": inputs["text"]})
        elif kind == "VAEDecode":
            node.update(class_type="MDTestNativeDecode", inputs={"video_model": ["tiny_md", 0],
                                                                 "samples": inputs["samples"]})
    return prompt


def _provide_loras(server, backbone, prompt):
    from motion_core.lora import save_lora
    from motion_core.lora.synthetic import random_lora

    for node in prompt.values():
        kind, inputs = node["class_type"], node["inputs"]
        name = inputs.get("lora_name", "none")
        if name == "none" or kind not in ("MDLoadMotionLoRA", "MDLoadAppearanceLoRA", "LoraLoaderModelOnly"):
            continue
        folder = "motion_loras" if kind == "MDLoadMotionLoRA" else "loras"
        path = server.models_dir / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        motion = kind != "MDLoadAppearanceLoRA"
        with torch.no_grad():
            made = random_lora(backbone, ["temporal_attn"] if motion else ["spatial_cross_attn"], rank=2, std=0.1,
                               name=Path(name).stem, kind="motion" if motion else "appearance")
        save_lora(made, path, format="comfyui" if kind == "LoraLoaderModelOnly" else "canonical")


@pytest.mark.parametrize("name", NATIVE_WORKFLOWS)
def test_native_workflow_runs_to_completion_on_the_tiny_wan(server, backbone, name):
    workflow = json.loads((ROOT / "workflows" / name).read_text())
    assert any(n["type"] == "Note" for n in workflow["nodes"]), "every shared workflow explains itself in a Note"
    info = server.object_info()
    prompt = _tiny_native_variant(to_api_prompt(workflow, info, check_combos=False))
    _provide_loras(server, backbone, prompt)
    log_start = len(server.log())
    result = server.run(prompt, timeout=900)
    assert result.status == "success", result.error_text
    # ComfyUI runs the outputs that validate and drops the others: every output node must have run
    outputs = {k for k, v in prompt.items() if info.get(v["class_type"], {}).get("output_node")}
    assert outputs <= result.outputs.keys(), sorted(outputs - result.outputs.keys())
    assert result.videos, result.outputs
    log = server.log()[log_start:]
    assert "lora key not loaded" not in log and "NOT LOADED" not in log, log[-3000:]


def test_a_det_lora_applies_its_kernel_on_a_native_model_and_core_alone_only_the_lora_part(server, backbone):
    """A DeT LoRA (LoRA part + temporal kernel): Apply Motion LoRA (native MODEL) puts both on core's Wan for
    KSampler; core's LoraLoaderModelOnly with its `comfyui` export applies the LoRA part (every key) and not the
    kernel, so the two samples differ by the kernel's effect; afterwards core's model is its base again."""
    from motion_core.lora import AdapterSpec, add_adapter, lora_from_adapter, remove_adapter, save_lora
    from motion_core.lora.temporal_kernel import KernelSpec

    denoiser = backbone.denoiser
    targets = backbone.target_modules("temporal_attn")
    add_adapter(denoiser, AdapterSpec("det_e2e", targets, rank=2, alpha=4.0, temporal_kernel=KernelSpec(rank=8)))
    try:
        g = torch.Generator().manual_seed(5)
        with torch.no_grad():
            for name, param in denoiser.named_parameters():
                if "det_e2e" in name:
                    param.copy_(torch.randn(param.shape, generator=g) * 0.2)
        det = lora_from_adapter(denoiser, "det_e2e", family="wan", name="det_e2e", recipe="det",
                                base_fingerprint=backbone.fingerprint())
    finally:
        remove_adapter(denoiser, "det_e2e")
    assert det.kernel
    save_lora(det, server.models_dir / "motion_loras" / "det_e2e.safetensors")
    with pytest.warns(UserWarning, match="LoRA part only"):
        save_lora(det, server.models_dir / "loras" / "native" / "det_e2e.safetensors", format="comfyui")

    prompt = {**{k: v for k, v in COMMON.items() if k not in ("core_lora", "our_lora")},
              "our_lora": {"class_type": "MDLoadMotionLoRA", "inputs": {
                  "lora_name": "det_e2e.safetensors", "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}},
              "core_lora": {"class_type": "LoraLoaderModelOnly", "inputs": {
                  "model": ["unet", 0], "lora_name": "native/det_e2e.safetensors", "strength_model": 1.0}},
              **_ksampler("det_base", ["unet", 0]), **_ksampler("det_part", ["core_lora", 0]),
              **_applied("det_whole", 0.0, 1.0)}
    log_start = len(server.log())
    result = server.run(prompt, timeout=900)
    assert result.status == "success", result.error_text
    log = server.log()[log_start:]
    assert "lora key not loaded" not in log and "NOT LOADED" not in log, log[-3000:]
    base, part, whole = (_read_latent(server, result, f"{n}_save") for n in ("det_base", "det_part", "det_whole"))
    print(f"DeT: LoRA part vs base {_diff(part, base):.3g}, whole vs LoRA part {_diff(whole, part):.3g}")
    assert _diff(part, base) > 1000 * TOLERANCE  # core applies the LoRA part
    assert _diff(whole, part) > 1000 * TOLERANCE  # and the pack's node adds the kernel on top

    again = server.run({k: v for k, v in prompt.items() if k in COMMON or k.startswith("det_base")}, timeout=900)
    assert again.status == "success", again.error_text
    assert _diff(_read_latent(server, again, "det_base_save"), base) == 0.0  # the kernel left core's model
