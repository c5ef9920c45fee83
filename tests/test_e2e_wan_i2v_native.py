"""End-to-end in a real ComfyUI 0.3.75: a Wan image-to-video LoRA saved in ComfyUI's native layout, in core's own I2V
graphs, gives Sample Video's result from the same start image.

Core's graph: LoadImage -> WanImageToVideo (Wan 2.1 / 2.2 I2V; with CLIPVisionEncode's output for the CLIP kind) or
Wan22ImageToVideoLatent (TI2V 5B), UNETLoader -> LoraLoaderModelOnly -> ModelSamplingSD3 (shift 3) -> KSampler (euler,
"normal") -> VAEDecode. Ours: Load Appearance LoRA (the same file) -> Sample Video with start_image (the same IMAGE).
Three tiny models (motion_core/backbones/wan/tiny_native.py): "concat" (36 input channels, detected by core as a Wan
2.1 T2V-type model whose patch embedding reads 20 extra channels), "clip" (also img_emb + k_img / v_img: core's
WAN21_I2V) and "ti2v" (48 channels: core's WAN22).

What is core's here: UNETLoader, LoraLoaderModelOnly, WanImageToVideo, Wan22ImageToVideoLatent, CLIPVisionEncode (its
preprocessing and core's CLIP code), KSampler, VAEDecode, and, for the 16-channel models, VAELoader and core's Wan 2.1
VAE (the tiny VAE has exactly the layout core builds, base width 8). What is ours: Load Video Model, Load Appearance
LoRA and Sample Video, reading the same files. Stand-ins (test-only nodes in tests/harness, never shipped): the text
states (core's CLIPLoader builds UMT5-XXL from a fixed config; a node turns our loaded UMT5's states into
CONDITIONING), the CLIP vision loader (core's recognises only the released sizes; the node builds core's
ClipVisionModel with the config our loader derives from the tiny file) and the Wan 2.2 VAE loader (core fixes its
widths at 160 / 256; the node builds core's own Wan 2.2 VAE class with the tiny widths).

Facts that make the two paths one computation (read in comfy_extras/nodes_wan.py and comfy/model_base.py):
- WanImageToVideo encodes a clip of `length` frames whose first frame is the start image and the rest 0.5 gray (our
  GRAY), scaled with bilinear + centre crop (a start image already width x height passes unchanged, as in ours).
- Its concat_mask is 1 everywhere and 0 on the start image's latent frame; WAN21.concat_cond inverts it (1 - mask), so
  the model sees 1 on latent frame 0 and 0 elsewhere, repeated to 4 channels: our mask channels.
- Channel order: the transformer's input is [noise (16), mask (4), image latents (16)]: concat_cond returns
  cat(mask, image) and WanModel puts it after the noise, as our cat(latents, mask, image latents).
- concat_latent_image leaves the VAE unnormalised; concat_cond normalises it with the Wan21 latent format
  ((z - mean) / std), the normalisation our VAE encoding applies.
- Wan 2.1 I2V (core's WAN21_I2V) puts img_emb(CLIP penultimate states) before the text tokens and its cross-attention
  reads the first 257 tokens as the image's; diffusers splits off everything but the last 512, so the text states
  are padded to 512 tokens on both sides (as UMT5's are in real use).
- Wan22ImageToVideoLatent writes the image's latent into latent frame 0 with noise_mask 0 there; WAN22 gives that
  frame timestep 0 (process_timestep) and keeps it clean at every step (scale_latent_inpaint), which is our
  first_frame mode (clean frame, per-token timestep 0, written back at the end).
- Noise: torch.manual_seed(seed) over the latent's shape on the CPU; "normal" on ModelSamplingDiscreteFlow gives the
  FlowMatchEulerDiscreteScheduler sigmas (tests/test_e2e_wan_native.py).
The server runs with --fp32-text-enc: on a CPU core would run CLIP vision in float16.
"""


import pytest
import torch
from safetensors import safe_open

from tests.harness.comfy_server import ComfyServer
from tests.wan_native_i2v_samples import KINDS, native_i2v_files, prepare_i2v_comfy_base

pytestmark = pytest.mark.e2e

PROMPT, NEGATIVE, SEED, STEPS, CFG, FRAMES, SIZE = "a red square moves right", "blurry", 7, 4, 2.0, 5, 64
START = "i2v_start.png"
# Measured on CPU, fp32 (see the test bodies' prints): core's graph and ours differ by float32 summation order only.
TOLERANCE = 1e-4


def video_model_inputs(kind: str) -> dict:
    """Load Video Model on the same files core's loaders read."""
    files = native_i2v_files(kind)
    return {"model": f"diffusion model: {files['diffusion_models']}", "motion_module": "none", "dtype": "fp32",
            "device": "cpu", "vae": files["vae"], "text_encoder": files["text_encoders"],
            "clip_vision": files.get("clip_vision", "none")}


def lora_file(kind: str) -> str:
    return f"wan_i2v/{kind}_00001.safetensors"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy_i2v_native")
    prepare_i2v_comfy_base(base, START, SIZE)
    with ComfyServer(base_dir=base, extra_args=["--fp32-text-enc"]) as comfy:
        yield comfy


def load_files(models, files: dict):
    """Our loader on a model's files, in this process (what Load Video Model gives Sample Video)."""
    from motion_core.backbones import load_backbone

    clip = files.get("clip_vision")
    return load_backbone(models / "diffusion_models" / files["diffusion_models"], vae=models / "vae" / files["vae"],
                         text_encoder=models / "text_encoders" / files["text_encoders"],
                         clip_vision=models / "clip_vision" / clip if clip else None)


@pytest.fixture(scope="module")
def backbones(server):
    return {kind: load_files(server.models_dir, native_i2v_files(kind)) for kind in KINDS}


@pytest.fixture(scope="module")
def loras(server, backbones):
    """A random LoRA per model (alpha != rank), saved in the comfyui format; the CLIP kind's also adapts the image
    cross-attention (attn2.add_k_proj / add_v_proj = core's k_img / v_img), which no target set holds."""
    from motion_core.lora import save_lora
    from motion_core.lora.synthetic import random_lora

    made = {}
    for kind, backbone in backbones.items():
        image_kv = [n for n, _ in backbone.denoiser.named_modules() if n.endswith(("add_k_proj", "add_v_proj"))]
        made[kind] = random_lora(backbone, ("temporal_attn", "spatial_cross_attn", "spatial_ff"), rank=4, alpha=8.0,
                                 std=0.2, name=f"i2v_{kind}", extra_modules=image_kv)
        save_lora(made[kind], server.models_dir / "loras" / lora_file(kind), format="comfyui")
    return made


def _core_graph(kind: str) -> dict:
    files = native_i2v_files(kind)
    graph = {
        "md": {"class_type": "MDLoadVideoModel", "inputs": video_model_inputs(kind)},
        **{name: {"class_type": "MDTestNativeTextStates", "inputs": {
            "video_model": ["md", 0], "text": text, "tokens": 512 if kind == "clip" else 0}}
           for name, text in (("pos", PROMPT), ("neg", NEGATIVE))},
        "image": {"class_type": "LoadImage", "inputs": {"image": START}},
        "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": files["diffusion_models"],
                                                        "weight_dtype": "default"}},
        "lora": {"class_type": "LoraLoaderModelOnly", "inputs": {
            "model": ["unet", 0], "lora_name": lora_file(kind), "strength_model": 1.0}},
        "vae": {"class_type": "MDTestTinyWan22VAE" if kind == "ti2v" else "VAELoader",
                "inputs": {"vae_name": files["vae"]}},
    }
    size = {"width": SIZE, "height": SIZE, "length": FRAMES, "batch_size": 1, "start_image": ["image", 0]}
    if kind == "ti2v":
        graph["latent"] = {"class_type": "Wan22ImageToVideoLatent", "inputs": {"vae": ["vae", 0], **size}}
        positive, negative, latent = ["pos", 0], ["neg", 0], ["latent", 0]
    else:
        inputs = {"positive": ["pos", 0], "negative": ["neg", 0], "vae": ["vae", 0], **size}
        if kind == "clip":
            graph["clip_vision"] = {"class_type": "MDTestTinyClipVision",
                                    "inputs": {"clip_name": files["clip_vision"]}}
            graph["clip_encode"] = {"class_type": "CLIPVisionEncode", "inputs": {
                "clip_vision": ["clip_vision", 0], "image": ["image", 0], "crop": "center"}}
            inputs["clip_vision_output"] = ["clip_encode", 0]
        graph["i2v"] = {"class_type": "WanImageToVideo", "inputs": inputs}
        positive, negative, latent = ["i2v", 0], ["i2v", 1], ["i2v", 2]
    for run, model in (("with_lora", ["lora", 0]), ("base", ["unet", 0])):
        graph[f"{run}_shift"] = {"class_type": "ModelSamplingSD3", "inputs": {"model": model, "shift": 3.0}}
        graph[f"{run}_ks"] = {"class_type": "KSampler", "inputs": {
            "model": [f"{run}_shift", 0], "seed": SEED, "steps": STEPS, "cfg": CFG, "sampler_name": "euler",
            "scheduler": "normal", "positive": positive, "negative": negative, "latent_image": latent,
            "denoise": 1.0}}
        graph[f"{run}_latent"] = {"class_type": "SaveLatent", "inputs": {
            "samples": [f"{run}_ks", 0], "filename_prefix": f"i2v/{kind}_{run}"}}
        graph[f"{run}_decode"] = {"class_type": "VAEDecode", "inputs": {"samples": [f"{run}_ks", 0],
                                                                          "vae": ["vae", 0]}}
        graph[f"{run}_frames"] = {"class_type": "MDTestNativeSaveImage", "inputs": {
            "images": [f"{run}_decode", 0], "name": f"{kind}_{run}.st"}}
    return graph


def _sample_video_graph(kind: str) -> dict:
    return {
        "stack": {"class_type": "MDLoadAppearanceLoRA", "inputs": {
            "lora_name": lora_file(kind), "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}},
        "ours": {"class_type": "MDSampleVideo", "inputs": {
            "video_model": ["md", 0], "prompt": PROMPT, "negative_prompt": NEGATIVE, "seed": SEED, "steps": STEPS,
            "cfg": CFG, "frames": FRAMES, "width": SIZE, "height": SIZE, "scheduler": "euler", "frame_rate": 8.0,
            "lora_stack": ["stack", 0], "start_image": ["image", 0]}},
        "ours_frames": {"class_type": "MDTestNativeSaveImage", "inputs": {"images": ["ours", 0],
                                                                          "name": f"{kind}_ours.st"}},
    }


@pytest.fixture(scope="module", params=KINDS)
def both_paths(request, server, loras):
    kind = request.param
    log_start = len(server.log())
    result = server.run({**_core_graph(kind), **_sample_video_graph(kind)}, timeout=900)
    assert result.status == "success", result.error_text

    def read(node, key, name):
        info = result.outputs[node][key][0]
        with safe_open(str(server.output_dir / info["subfolder"] / info["filename"]), "pt") as f:
            return f.get_tensor(name)
    return {"kind": kind, "log": server.log()[log_start:],
            **{f"{run}_latent": read(f"{run}_latent", "latents", "latent_tensor") for run in ("with_lora", "base")},
            **{f"{run}_frames": read(f"{run}_frames", "tensors", "images") for run in ("with_lora", "base", "ours")}}


def _normalised(backbone, raw):
    """Core hands out VAE-space latents (z * std + mean with the Wan21 / Wan22 statistics): ours are normalised."""
    mean, std = backbone._latent_stats(raw)
    return (raw - mean) / std


def _engine_latents(backbone, start_image, lora=None):
    """What Sample Video runs, in this process: the engine with the same request."""
    from motion_core.lora.stack import LoraStack
    from motion_core.sampling import SampleRequest, sample_video

    stack = LoraStack() if lora is None else LoraStack().add(lora, 1.0, 0.0, 1.0)
    request = SampleRequest(prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED, steps=STEPS, cfg=CFG, frames=FRAMES,
                            width=SIZE, height=SIZE, scheduler="euler", lora_stack=stack, start_image=start_image)
    return sample_video(backbone, request).latents


def test_the_export_holds_the_image_cross_attention_keys_where_trained(server, loras):
    with safe_open(str(server.models_dir / "loras" / lora_file("clip")), "pt") as f:
        keys = set(f.keys())
    image_kv = {k for k in keys if ".cross_attn.k_img." in k or ".cross_attn.v_img." in k}
    assert len(image_kv) == 2 * 2 * 3, sorted(image_kv)  # 2 blocks x (k_img, v_img) x (lora_A, lora_B, alpha)
    assert len(keys) == 3 * len(loras["clip"].modules())


def test_core_lora_loader_applies_every_key(both_paths):
    log = both_paths["log"]
    assert "lora key not loaded" not in log and "NOT LOADED" not in log and "ERROR" not in log, log[-3000:]


def test_the_lora_changes_what_core_samples(both_paths):
    change = (both_paths["with_lora_latent"] - both_paths["base_latent"]).abs().max().item()
    print(f"{both_paths['kind']}: latents max |with LoRA - base| = {change:.3g}")
    assert change > 1000 * TOLERANCE


def test_core_graph_matches_our_sampler_latents(server, backbones, loras, both_paths):
    from tests.wan_native_i2v_samples import write_start_image

    kind = both_paths["kind"]
    backbone = backbones[kind]
    image = write_start_image(server.base_dir / "check" / START, SIZE)
    for run, lora in (("with_lora", loras[kind]), ("base", None)):
        native = _normalised(backbone, both_paths[f"{run}_latent"])
        ours = _engine_latents(backbone, image, lora)
        assert native.shape == ours.shape
        difference = (native - ours).abs().max().item()
        print(f"{kind} {run}: latents max |core - ours| = {difference:.3g} (scale {ours.abs().max().item():.3g})")
        assert difference < TOLERANCE


@pytest.mark.parametrize("both_paths", ["clip"], indirect=True)
def test_core_read_the_same_clip_features_and_image_keys(server, backbones, loras, both_paths):
    """The controls for the CLIP kind's match: our sampler with another CLIP encoder's features, or with the LoRA's
    k_img / v_img left out, lands far outside the tolerance from core's latents; so core's CLIPVisionEncode gave our
    features and its LoRA loader applied the image keys."""
    from motion_core.backbones.wan.tiny import _tiny_clip_vision
    from motion_core.lora import MotionLora
    from tests.wan_native_i2v_samples import write_start_image

    backbone, lora = backbones["clip"], loras["clip"]
    image = write_start_image(server.base_dir / "check" / START, SIZE)
    native = _normalised(backbone, both_paths["with_lora_latent"])
    text_only = MotionLora({k: v for k, v in lora.tensors.items() if "add_k_proj" not in k and "add_v_proj" not in k},
                           lora.metadata)
    assert (native - _engine_latents(backbone, image, text_only)).abs().max() > 100 * TOLERANCE
    own = backbone.image_encoder
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(99)
        backbone.image_encoder = _tiny_clip_vision()
    try:
        assert (native - _engine_latents(backbone, image, lora)).abs().max() > 100 * TOLERANCE
    finally:
        backbone.image_encoder = own


def test_core_graph_matches_sample_video_frames(both_paths):
    core, ours = both_paths["with_lora_frames"], both_paths["ours_frames"]
    assert core.shape == ours.shape == (FRAMES, SIZE, SIZE, 3)
    difference = (core - ours).abs().max().item()
    print(f"{both_paths['kind']}: frames max |VAEDecode(core) - Sample Video| = {difference:.3g}")
    assert difference < TOLERANCE


# ---- a text-to-video LoRA on the image-to-video model of its size (Wan 2.1 14B T2V -> I2V, here the CLIP kind) ----

T2V_CANONICAL, T2V_NATIVE = "t2v_walk.safetensors", "wan_t2v/walk_00001.safetensors"


@pytest.fixture(scope="module")
def t2v_on_i2v(server):
    """A LoRA trained on the text-to-video tiny Wan of the same size (its fingerprint), on attention, ff and the patch
    embedding (which reads 16 channels there, 36 here), run three ways on the I2V model: Sample Video, Apply Motion
    LoRA (native MODEL) + KSampler, core's LoraLoaderModelOnly (its comfyui export) + KSampler."""
    from motion_core.lora import save_lora
    from motion_core.lora.synthetic import random_lora
    from tests.wan_samples import COMFY_FILES

    t2v = load_files(server.models_dir, COMFY_FILES)
    lora = random_lora(t2v, ("temporal_attn", "spatial_ff"), rank=4, alpha=8.0, std=0.2, name="walk",
                       extra_modules=["patch_embedding"])
    save_lora(lora, server.models_dir / "motion_loras" / T2V_CANONICAL)
    save_lora(lora, server.models_dir / "loras" / T2V_NATIVE, format="comfyui")
    graph = {k: v for k, v in _core_graph("clip").items() if not k.startswith(("with_lora", "base", "lora"))}
    graph.update({
        "walk": {"class_type": "MDLoadMotionLoRA", "inputs": {
            "lora_name": T2V_CANONICAL, "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}},
        "ours": {**_sample_video_graph("clip")["ours"]},
        "ours_frames": {"class_type": "MDTestNativeSaveImage", "inputs": {"images": ["ours", 0],
                                                                          "name": "t2v_ours.st"}},
        "apply": {"class_type": "MDApplyMotionLoRANative", "inputs": {
            "model": ["unet", 0], "lora": ["walk", 1], "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}},
        "core_lora": {"class_type": "LoraLoaderModelOnly", "inputs": {
            "model": ["unet", 0], "lora_name": T2V_NATIVE, "strength_model": 1.0}},
    })
    graph["ours"]["inputs"] = {**graph["ours"]["inputs"], "lora_stack": ["walk", 0]}
    for run, model in (("apply", ["apply", 0]), ("core", ["core_lora", 0])):
        graph[f"{run}_shift"] = {"class_type": "ModelSamplingSD3", "inputs": {"model": model, "shift": 3.0}}
        graph[f"{run}_ks"] = {"class_type": "KSampler", "inputs": {
            "model": [f"{run}_shift", 0], "seed": SEED, "steps": STEPS, "cfg": CFG, "sampler_name": "euler",
            "scheduler": "normal", "positive": ["i2v", 0], "negative": ["i2v", 1], "latent_image": ["i2v", 2],
            "denoise": 1.0}}
        graph[f"{run}_decode"] = {"class_type": "VAEDecode", "inputs": {"samples": [f"{run}_ks", 0],
                                                                          "vae": ["vae", 0]}}
        graph[f"{run}_frames"] = {"class_type": "MDTestNativeSaveImage", "inputs": {
            "images": [f"{run}_decode", 0], "name": f"t2v_{run}.st"}}
    log_start = len(server.log())
    result = server.run(graph, timeout=900)
    assert result.status == "success", result.error_text

    def frames(node):
        with safe_open(str(server.output_dir / f"t2v_{node}.st"), "pt") as f:
            return f.get_tensor("images")
    return {"result": result, "log": server.log()[log_start:], "lora": lora,
            **{run: frames(run) for run in ("ours", "apply", "core")}}


def test_sample_video_applies_a_t2v_lora_where_the_layers_coincide_and_says_what_it_left_out(t2v_on_i2v):
    text = "\n".join(t2v_on_i2v["result"].outputs["ours"]["text"])
    assert "LoRA 'walk' was trained on the text-to-video Wan of this size: applied on the 12 of its 13 layers" in text
    assert "not applied: patch_embedding (made for input (16, 1, 2, 2), this layer takes (36, 1, 2, 2))" in text


def test_apply_motion_lora_native_reports_the_layers_it_applied_and_the_one_it_could_not(t2v_on_i2v):
    text = "\n".join(t2v_on_i2v["result"].outputs["apply"]["text"])
    assert text == ("LoRA 'walk': applied on 12 layers of this MODEL\nLoRA 'walk': not applied: patch_embedding "
                    "(the LoRA reads 16 input channels, this image-to-video MODEL 36: noise, mask and start-image "
                    "latents)"), text


def test_the_three_paths_agree_on_the_t2v_lora(t2v_on_i2v):
    """Sample Video, Apply Motion LoRA and core's own loader all apply the 12 shared layers: core, left alone, skips
    the patch embedding too, with an error in its log (which our nodes turn into the report above)."""
    ours = t2v_on_i2v["ours"]
    for run in ("apply", "core"):
        difference = (t2v_on_i2v[run] - ours).abs().max().item()
        print(f"t2v LoRA on i2v: frames max |{run} - Sample Video| = {difference:.3g}")
        assert difference < TOLERANCE
    log = t2v_on_i2v["log"]
    assert "lora key not loaded" not in log
    assert "ERROR lora diffusion_model.patch_embedding.weight" in log, log[-2000:]
