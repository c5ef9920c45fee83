"""Test-only ComfyUI nodes for the image-to-video native-graph tests, copied into a test server's custom_nodes (never
shipped, never imported by pytest). Each one stands in for a core loader that cannot read a TINY file, and hands
core's own code the tiny weights:

- MDTestTinyClipVision: core's ClipVisionModel (comfy/clip_vision.py) built from the config beside the tiny file;
  core's CLIPVisionLoader only recognises the released encoder sizes (by their layer count).
- MDTestTinyWan22VAE: core's VAE wrapper and core's Wan 2.2 VAE class with the tiny widths; core's loader fixes the
  Wan 2.2 VAE at base width 160 / decoder 256.
"""
import os
from unittest import mock

import comfy.clip_vision
import comfy.ldm.wan.vae2_2
import comfy.sd
import comfy.utils
import folder_paths


class MDTestTinyClipVision:
    RETURN_TYPES = ("CLIP_VISION",)
    FUNCTION = "load"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip_name": (folder_paths.get_filename_list("clip_vision"),)}}

    def load(self, clip_name):
        path = folder_paths.get_full_path_or_raise("clip_vision", clip_name)
        model = comfy.clip_vision.ClipVisionModel(os.path.splitext(path)[0] + ".json")
        missing, unexpected = model.load_sd(comfy.utils.load_torch_file(path))
        if missing or unexpected:
            raise RuntimeError(f"tiny CLIP vision: missing {missing}, unexpected {unexpected}")
        return (model,)


class MDTestTinyWan22VAE:
    RETURN_TYPES = ("VAE",)
    FUNCTION = "load"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae_name": (folder_paths.get_filename_list("vae"),)}}

    def load(self, vae_name):
        sd = comfy.utils.load_torch_file(folder_paths.get_full_path_or_raise("vae", vae_name))
        widths = {"dim": sd["encoder.conv1.weight"].shape[0], "dec_dim": sd["decoder.conv1.weight"].shape[0] // 4}
        core_class = comfy.ldm.wan.vae2_2.WanVAE
        with mock.patch.object(comfy.ldm.wan.vae2_2, "WanVAE", lambda **config: core_class(**{**config, **widths})):
            vae = comfy.sd.VAE(sd=sd)
        vae.throw_exception_if_invalid()
        return (vae,)


NODE_CLASS_MAPPINGS = {"MDTestTinyClipVision": MDTestTinyClipVision, "MDTestTinyWan22VAE": MDTestTinyWan22VAE}
