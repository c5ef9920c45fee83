"""LoRAs on image-to-video Wan models: other tools' I2V LoRAs (with the image cross-attention keys k_img / v_img) load
with every key applied, and a text-to-video LoRA on the image-to-video model of its size applies where the layers
coincide, with a report of what applied and what did not, instead of the strict base check's refusal."""

import pytest
import torch
from safetensors.torch import save_file

from motion_core.backbones.wan.tiny import tiny_wan_backbone, tiny_wan_i2v_backbone
from motion_core.errors import LoraMismatchError
from motion_core.lora import MotionLora, load_lora
from motion_core.lora.stack import LoraStack
from motion_core.lora.synthetic import random_lora
from motion_core.sampling import SampleRequest, sample_video
from motion_core.sampling.callbacks import SamplingCallbacks

TEXT_SETS = ("temporal_attn", "spatial_ff")
IMAGE_KV = {"add_k_proj": "k_img", "add_v_proj": "v_img"}
SIZE, FRAMES = 16, 5


@pytest.fixture(scope="module")
def t2v():
    return tiny_wan_backbone(0)


@pytest.fixture(scope="module")
def i2v():
    """Wan 2.1 I2V's layout (CLIP features through k_img / v_img), the same size as ``t2v``."""
    return tiny_wan_i2v_backbone(0, kind="clip")


@pytest.fixture(scope="module")
def start():
    return torch.rand(1, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(4))


def _sample(backbone, start, lora=None, **request):
    stack = LoraStack() if lora is None else LoraStack().add(lora)
    return sample_video(backbone, SampleRequest(
        prompt="a square moves", seed=1, steps=2, cfg=1.0, frames=FRAMES, width=SIZE, height=SIZE, scheduler="euler",
        start_image=start, lora_stack=stack, **request), SamplingCallbacks(preview="none"))


def _image_kv(backbone):
    return [n for n, _ in backbone.denoiser.named_modules() if n.endswith(tuple(IMAGE_KV))]


# ---- other tools' image-to-video LoRAs ------------------------------------------------------------------------

def _original(module: str) -> str:
    """blocks.0.attn2.add_k_proj -> blocks.0.cross_attn.k_img (other names: the T2V table of test_lora_wan_formats)."""
    block, _, rest = module.removeprefix("blocks.").partition(".")
    names = {"attn1.to_q": "self_attn.q", "attn1.to_k": "self_attn.k", "attn1.to_v": "self_attn.v",
             "attn1.to_out.0": "self_attn.o", "ffn.net.0.proj": "ffn.0", "ffn.net.2": "ffn.2",
             **{f"attn2.{d}": f"cross_attn.{o}" for d, o in IMAGE_KV.items()}}
    return f"blocks.{block}.{names[rest]}"


def _layout(lora: MotionLora, name: str) -> dict:
    out = {}
    for module in lora.modules():
        a, b = lora.weights(module)
        alpha = torch.tensor(lora.module_alpha(module))
        if name == "musubi":
            stem = "lora_unet_" + _original(module).replace(".", "_")
            out.update({f"{stem}.lora_down.weight": a, f"{stem}.lora_up.weight": b, f"{stem}.alpha": alpha})
        elif name == "ai-toolkit":
            stem = "diffusion_model." + _original(module)
            out.update({f"{stem}.lora_A.weight": a, f"{stem}.lora_B.weight": b, f"{stem}.alpha": alpha})
        else:  # diffusers / PEFT names, alpha in per-module tensors as ComfyUI's LoRA saver writes them
            out.update({f"transformer.{module}.lora_A.weight": a, f"transformer.{module}.lora_B.weight": b})
    return out


@pytest.fixture(scope="module")
def image_lora(i2v):
    """A Wan 2.1 I2V LoRA as the general trainers make them: attention, ff and the image keys k_img / v_img; scale 1
    (alpha = rank) so that the diffusers spelling, which carries no alpha, reads to the same LoRA."""
    return random_lora(i2v, TEXT_SETS, rank=4, alpha=4.0, std=0.2, name="wave", extra_modules=_image_kv(i2v),
                       base_fingerprint="")


@pytest.mark.parametrize("layout", ["musubi", "ai-toolkit", "diffusers"])
def test_other_tools_i2v_loras_load_with_their_image_keys_and_sample_as_the_lora_itself(layout, i2v, image_lora,
                                                                                         start, tmp_path):
    path = tmp_path / f"{layout}.safetensors"
    save_file({k: v.contiguous() for k, v in _layout(image_lora, layout).items()}, str(path))
    loaded = load_lora(path)
    assert loaded.modules() == image_lora.modules()
    assert sum(m.endswith(tuple(IMAGE_KV)) for m in loaded.modules()) == 4
    ours = _sample(i2v, start, loaded)
    assert not ours.not_applied
    torch.testing.assert_close(ours.latents, _sample(i2v, start, image_lora).latents, rtol=0, atol=1e-6)


def test_the_image_keys_act_when_sampling(i2v, image_lora, start):
    """The control for the test above: dropping k_img / v_img changes the video, so a reader that lost them would
    not sample as the LoRA itself."""
    text_only = MotionLora({k: v for k, v in image_lora.tensors.items() if not any(p in k for p in IMAGE_KV)},
                           image_lora.metadata)
    change = (_sample(i2v, start, text_only).latents - _sample(i2v, start, image_lora).latents).abs().max().item()
    assert change > 1e-3, change


def test_comfys_full_weight_patches_on_the_image_attention_are_carried(i2v, image_lora, start, tmp_path):
    """ComfyUI's Train LoRA node also writes .diff for norms (norm_k_img) and .diff_b for biases (k_img)."""
    tensors = _layout(image_lora, "ai-toolkit")
    tensors["diffusion_model.blocks.0.cross_attn.norm_k_img.diff"] = torch.full((128,), 0.5)
    tensors["diffusion_model.blocks.1.cross_attn.k_img.diff_b"] = torch.full((128,), 0.25)
    save_file(tensors, str(tmp_path / "comfy_train.safetensors"))
    loaded = load_lora(tmp_path / "comfy_train.safetensors")
    assert loaded.patched_modules() == ["blocks.0.attn2.norm_added_k", "blocks.1.attn2.add_k_proj"]
    plain = _sample(i2v, start, image_lora).latents
    assert (_sample(i2v, start, loaded).latents - plain).abs().max() > 1e-3


# ---- a text-to-video LoRA on the image-to-video model of its size ----------------------------------------------

def test_a_text_to_video_lora_applies_whole_to_the_i2v_model_of_its_size_and_says_so(t2v, i2v, start):
    lora = random_lora(t2v, TEXT_SETS, rank=4, std=0.2, name="walk")
    result = _sample(i2v, start, lora)
    said = ("LoRA 'walk' was trained on the text-to-video Wan of this size: applied on the 12 of its 12 layers this "
            "model shares")
    assert result.not_applied == (said,)
    own = lora.with_metadata(base_fingerprint=i2v.fingerprint())  # the same LoRA, as if trained on this model
    assert torch.equal(result.latents, _sample(i2v, start, own).latents)
    assert (result.latents - _sample(i2v, start).latents).abs().max() > 1e-3


@pytest.mark.parametrize("recorded_base", [True, False], ids=["our_lora", "other_tools_lora"])
def test_the_layer_the_i2v_model_reads_differently_is_left_out_and_named(recorded_base, t2v, i2v, start):
    """The patch embedding reads 16 channels in text-to-video, 36 (noise, mask, image latents) in image-to-video: a
    LoRA on it cannot apply. A LoRA from another tool records no base; missing only that layer marks it the same."""
    lora = random_lora(t2v, TEXT_SETS, rank=4, std=0.2, name="walk", extra_modules=["patch_embedding"])
    if not recorded_base:
        lora = lora.with_metadata(base_fingerprint="")
    result = _sample(i2v, start, lora)
    applied, left_out = result.not_applied
    origin = "was trained on" if recorded_base else "has layers shaped for"
    expected = (f"LoRA 'walk' {origin} the text-to-video Wan of this size: applied on the 12 of its 13 layers "
                "this model shares")
    assert applied == expected
    assert left_out.startswith("LoRA 'walk': not applied: patch_embedding (made for input (16, 1, 2, 2), this layer "
                               "takes (36, 1, 2, 2))")
    without = MotionLora({k: v for k, v in lora.tensors.items() if "patch_embedding" not in k},
                         lora.with_metadata(base_fingerprint=i2v.fingerprint()).metadata)
    assert torch.equal(result.latents, _sample(i2v, start, without).latents)


def test_loras_of_unrelated_models_are_still_refused(t2v, i2v, start):
    other_base = random_lora(t2v, TEXT_SETS, name="walk").with_metadata(base_fingerprint="0123456789abcdef")
    with pytest.raises(LoraMismatchError, match="was trained on base model 0123456789abcdef"):
        _sample(i2v, start, other_base)
    # no recorded base and a layer that differs beyond the image input: a LoRA of another size
    wide = MotionLora({"unet.blocks.0.attn1.to_q.lora_A.weight": torch.ones(2, 256),
                       "unet.blocks.0.attn1.to_q.lora_B.weight": torch.ones(256, 2)}, {"family": "wan"})
    with pytest.raises(LoraMismatchError, match="made for a model of another size"):
        _sample(i2v, start, wide)


def test_an_i2v_lora_is_not_taken_for_the_text_to_video_model(t2v, i2v, image_lora):
    """The relation goes one way: the text-to-video model lacks the image keys, and a LoRA trained on the
    image-to-video model stays refused there by the strict base check."""
    lora = image_lora.with_metadata(base_fingerprint=i2v.fingerprint())
    request = SampleRequest(prompt="a square", steps=1, frames=FRAMES, width=SIZE, height=SIZE,
                            lora_stack=LoraStack().add(lora))
    with pytest.raises(LoraMismatchError, match="was trained on base model"):
        sample_video(t2v, request)


@pytest.mark.parametrize("i2v_name, t2v_name", [("wan2.1_i2v_14b", "wan2.1_t2v_14b"),
                                                ("wan2.2_i2v_a14b_expert", "wan2.2_t2v_a14b_expert")])
def test_the_released_i2v_models_take_the_t2v_model_of_their_size_as_related(i2v_name, t2v_name):
    """On the meta device, from the shipped configs: the relation names exactly the released text-to-video model,
    and every layer of it but the patch embedding has its place, with its shape, in the image-to-video model."""
    import json

    from diffusers import WanTransformer3DModel

    from motion_core.backbones.wan import CONFIGS_DIR, WanBackbone

    models = {}
    for name in (i2v_name, t2v_name):
        config = json.loads((CONFIGS_DIR / "wan_transformer" / name / "config.json").read_text())
        with torch.device("meta"):
            denoiser = WanTransformer3DModel.from_config(config)
        models[name] = WanBackbone(denoiser=denoiser, vae=None, text_encoder=None, tokenizer=None, scheduler=None)
    i2v, t2v = models[i2v_name], models[t2v_name]
    (related,) = i2v.related_bases()
    assert related.fingerprint == t2v.fingerprint() != i2v.fingerprint()
    assert t2v.related_bases() == ()
    def weights(backbone):
        return {n: tuple(m.weight.shape) for n, m in backbone.denoiser.named_modules()
                if getattr(m, "weight", None) is not None}

    shapes = weights(i2v)
    differ = [n for n, shape in weights(t2v).items() if shapes.get(n) != shape]
    assert differ == list(related.differing) == ["patch_embedding"]


# ---- the same rule on a native MODEL (core's weight keys and shapes, no ComfyUI needed) --------------------------

Q, PATCH = "diffusion_model.blocks.0.self_attn.q.weight", "diffusion_model.patch_embedding.weight"
I2V_WEIGHTS = {Q: (128, 128), PATCH: (128, 36, 1, 2, 2)}
T2V_FACTORS = {Q: ((128, 4), (4, 128)), PATCH: ((128, 4, 1, 1, 1), (4, 16, 1, 2, 2))}


def test_native_fit_leaves_out_a_t2v_patch_embedding_on_an_i2v_model_and_says_why():
    from motion_core.native import check_native_fit, native_report

    left_out = check_native_fit("walk", T2V_FACTORS, I2V_WEIGHTS, "WAN21")
    assert list(left_out) == [PATCH]
    why = ("LoRA 'walk': not applied: patch_embedding (the LoRA reads 16 input channels, this image-to-video MODEL "
           "36: noise, mask and start-image latents)")
    assert native_report("walk", 1, left_out) == ["LoRA 'walk': applied on 1 layer of this MODEL", why]


def test_native_fit_still_refuses_other_misfits_and_names_the_patch_embedding_with_them():
    from motion_core.native import check_native_fit

    wider = {**T2V_FACTORS, PATCH: ((128, 4, 1, 1, 1), (4, 48, 1, 2, 2))}  # reads more than the model: not T2V
    with pytest.raises(LoraMismatchError, match=r"1 of its 2 layers .*patch_embedding"):
        check_native_fit("wide", wider, I2V_WEIGHTS, "WAN21")
    other_size = {Q: ((256, 4), (4, 256)), PATCH: T2V_FACTORS[PATCH]}
    with pytest.raises(LoraMismatchError, match=r"2 of its 2 layers .*blocks\.0\.self_attn\.q .*patch_embedding"):
        check_native_fit("big", other_size, I2V_WEIGHTS, "WAN21")
    with pytest.raises(LoraMismatchError, match="adapts only the patch embedding"):
        check_native_fit("patch", {PATCH: T2V_FACTORS[PATCH]}, I2V_WEIGHTS, "WAN21")


def test_the_command_line_prints_what_a_t2v_lora_applied_on_an_i2v_model(t2v, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from motion_core.__main__ import main
    from motion_core.backbones.wan.tiny import save_tiny_wan_i2v_diffusers_folder
    from motion_core.lora import save_lora

    model = save_tiny_wan_i2v_diffusers_folder(tmp_path / "i2v", 0, kind="concat")
    lora = random_lora(t2v, TEXT_SETS, rank=2, std=0.1, name="walk", extra_modules=["patch_embedding"])
    save_lora(lora, tmp_path / "walk.safetensors")
    Image.fromarray(np.full((SIZE, SIZE, 3), 90, dtype=np.uint8)).save(tmp_path / "start.png")
    code = main(["sample", "--model", str(model), "--prompt", "a square", "--steps", "1", "--cfg", "1", "--frames",
                 str(FRAMES), "--width", str(SIZE), "--height", str(SIZE), "--image", str(tmp_path / "start.png"),
                 "--lora", f"{tmp_path / 'walk.safetensors'}:1.0", "--out", str(tmp_path / "out.gif")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "note: LoRA 'walk' was trained on the text-to-video Wan of this size: applied on the 12 of its 13" in out
    assert "note: LoRA 'walk': not applied: patch_embedding" in out
