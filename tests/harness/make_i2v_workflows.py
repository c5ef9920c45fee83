"""The image-to-video workflows of workflows/ (written by make_workflows.py, which lists them with the others).

Both use Wan 2.1 I2V 14B at 480p with its CLIP vision encoder, the model users animate their own pictures with most;
the LoRA the first one saves in ComfyUI's layout is the file the second one loads.
"""

from __future__ import annotations

from .make_workflows import UMT5, WAN_VAE, _save_video
from .workflow_builder import Graph

WAN_I2V = "wan2.1_i2v_480p_14B_fp8_scaled.safetensors"
CLIP_VISION = "clip_vision_h.safetensors"
START_IMAGE = "my_start_image.png"
SIZE = {"width": 832, "height": 480}
FRAMES = 33
LORA = "wan_i2v/skateboarding_00001.safetensors"
PROMPT = "a woman is skateboarding down a sunny street"


def wan_i2v_motion_lora(info) -> dict:
    g = Graph(info)
    g.add("Note", 0, {"text": (
        "Wan 2.1 image-to-video: your own picture performs the reference clip's motion.\n\n"
        f"1. Put {WAN_I2V} in models/diffusion_models, {WAN_VAE} in models/vae, {UMT5} in models/text_encoders and "
        f"{CLIP_VISION} in models/clip_vision.\n"
        f"2. Upload the reference clip in Load Reference Video (Wan clips are 1 + 4k frames: {FRAMES} here) and your "
        "picture in Load Image.\n"
        "3. Queue. Train Motion LoRA gives the model each clip's first frame as its start image (start_image auto) and "
        "also trains on 2 hue-turned copies of the clip (recolour), so the motion binds less to the reference's own "
        "look; its previews start from your picture. Sample Video then animates your picture with the LoRA.\n"
        "Save Motion LoRA writes the LoRA in ComfyUI's layout to models/loras/wan_i2v/, the file "
        "wan_i2v_native.json loads in core's own I2V graph.")}, height=300)
    model = g.add("MDLoadVideoModel", 0, {"model": f"diffusion model: {WAN_I2V}", "vae": WAN_VAE,
                                          "text_encoder": UMT5, "clip_vision": CLIP_VISION}, height=260)
    clip = g.add("MDLoadReferenceVideo", 0, {"video": "reference_motion.mp4", "caption": "a man is skateboarding",
                                              "frame_cap": FRAMES, **SIZE}, height=460)
    image = g.add("LoadImage", 1, {"image": START_IMAGE}, title="Your start image", height=360)
    trainer = g.add("MDTrainMotionLoRA", 1, {"recipe": "motion_director", **SIZE, "frames": FRAMES,
                                             "validate_every": 100, "name": "skateboarding", "preview_prompt": PROMPT,
                                             "start_image": "auto", "recolour": 2}, height=700)
    g.link(model, "video_model", trainer, "video_model")
    g.link(clip, "clips", trainer, "clips")
    g.link(image, "IMAGE", trainer, "preview_image")
    save = g.add("MDSaveMotionLoRA", 2, {"filename_prefix": "wan_i2v/skateboarding", "format": "comfyui"},
                 height=150)
    g.link(trainer, "motion_lora", save, "lora")
    stack = g.add("MDLoadMotionLoRA", 2, {}, height=200)
    g.link(trainer, "motion_lora", stack, "trained_lora")
    sample = g.add("MDSampleVideo", 3, {"prompt": PROMPT, "steps": 30, "cfg": 5.0, "frames": FRAMES, **SIZE,
                                        "scheduler": "auto"}, height=560)
    g.link(model, "video_model", sample, "video_model")
    g.link(stack, "lora_stack", sample, "lora_stack")
    g.link(image, "IMAGE", sample, "start_image")
    _save_video(g, 4, sample, "wan_i2v/my_picture_skateboarding", fps_from=sample)
    return g.to_json()


def wan_i2v_native(info) -> dict:
    g = Graph(info)
    g.add("Note", 0, {"text": (
        "Wan 2.1 image-to-video in core's own graph, with a motion LoRA from this pack.\n\n"
        f"Put {WAN_I2V} in models/diffusion_models, {WAN_VAE} in models/vae, {UMT5} in models/text_encoders, "
        f"{CLIP_VISION} in models/clip_vision, and the LoRA Save Motion LoRA wrote in the comfyui format "
        f"(wan_i2v_motion_lora.json) as models/loras/{LORA}. LoraLoaderModelOnly loads every key of it, the image "
        "cross-attention's (k_img / v_img) too where trained. WanImageToVideo gives the model your picture (latents, "
        "mask and CLIP vision features); shift 3 is Wan 2.1 I2V's at 832x480, as Sample Video uses it.\n"
        "A Wan 2.1 14B text-to-video LoRA loads here too (every layer but the patch embedding, which reads the "
        "start image's channels); Apply Motion LoRA (native MODEL) says which layers it applied.")}, height=300)
    unet = g.add("UNETLoader", 1, {"unet_name": WAN_I2V}, height=110)
    lora = g.add("LoraLoaderModelOnly", 1, {"lora_name": LORA, "strength_model": 1.0}, height=130)
    g.link(unet, "MODEL", lora, "model")
    shift = g.add("ModelSamplingSD3", 1, {"shift": 3.0}, height=80)
    g.link(lora, "MODEL", shift, "model")
    text = g.add("CLIPLoader", 0, {"clip_name": UMT5, "type": "wan"}, height=110)
    prompts = []
    for title, words in (("Positive prompt", PROMPT), ("Negative prompt", "blurry, static, still frame")):
        node = g.add("CLIPTextEncode", 0, {"text": words}, title=title, height=150)
        g.link(text, "CLIP", node, "clip")
        prompts.append(node)
    image = g.add("LoadImage", 2, {"image": START_IMAGE}, title="Your start image", height=360)
    vision = g.add("CLIPVisionLoader", 2, {"clip_name": CLIP_VISION}, height=90)
    features = g.add("CLIPVisionEncode", 2, {"crop": "center"}, height=100)
    g.link(vision, "CLIP_VISION", features, "clip_vision")
    g.link(image, "IMAGE", features, "image")
    vae = g.add("VAELoader", 2, {"vae_name": WAN_VAE}, height=90)
    start = g.add("WanImageToVideo", 3, {**SIZE, "length": FRAMES, "batch_size": 1}, height=280)
    for source, output, name in ((prompts[0], "CONDITIONING", "positive"), (prompts[1], "CONDITIONING", "negative"),
                                 (vae, "VAE", "vae"), (features, "CLIP_VISION_OUTPUT", "clip_vision_output"),
                                 (image, "IMAGE", "start_image")):
        g.link(source, output, start, name)
    sampler = g.add("KSampler", 3, {"steps": 30, "cfg": 5.0, "sampler_name": "uni_pc", "scheduler": "simple"},
                    height=270)
    g.link(shift, "MODEL", sampler, "model")
    g.link(start, "positive", sampler, "positive")
    g.link(start, "negative", sampler, "negative")
    g.link(start, "latent", sampler, "latent_image")
    decode = g.add("VAEDecode", 4, height=80)
    g.link(sampler, "LATENT", decode, "samples")
    g.link(vae, "VAE", decode, "vae")
    create = g.add("CreateVideo", 4, {"fps": 16.0}, height=100)
    g.link(decode, "IMAGE", create, "images")
    save = g.add("SaveVideo", 4, {"filename_prefix": "wan_i2v/native"}, height=360)
    g.link(create, "VIDEO", save, "video")
    return g.to_json()


I2V_WORKFLOWS = {"wan_i2v_motion_lora.json": wan_i2v_motion_lora, "wan_i2v_native.json": wan_i2v_native}
