"""Test-only ComfyUI nodes for the native-graph e2e tests, copied into a test server's custom_nodes (never shipped,
never imported by pytest): the tiny Wan's text states as CONDITIONING (core's CLIPLoader builds UMT5-XXL from a fixed
config and cannot load the tiny one), its VAE decoding a core LATENT, and an IMAGE saved at full precision."""
import os

import folder_paths
import torch
from safetensors.torch import save_file


class MDTestNativeTextStates:
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"video_model": ("MD_MODEL",), "text": ("STRING", {"default": ""})},
                "optional": {"tokens": ("INT", {"default": 0, "min": 0, "max": 512})}}

    def encode(self, video_model, text, tokens=0):
        """``tokens``: zero-padded to this length, as Wan 2.1 I2V's attention assumes 512 text tokens."""
        states = video_model.encode_prompt([text]).float().cpu()
        if tokens > states.shape[1]:
            states = torch.nn.functional.pad(states, (0, 0, 0, tokens - states.shape[1]))
        return ([[states, {}]],)


class MDTestNativeDecode:
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "decode"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"video_model": ("MD_MODEL",), "samples": ("LATENT",)}}

    def decode(self, video_model, samples):
        raw = samples["samples"].float()
        mean, std = video_model._latent_stats(raw)  # core hands out VAE-space latents: z * std + mean
        return (video_model.decode_latents(((raw - mean) / std).to(video_model.dtype))[0].float().cpu(),)


class MDTestNativeSaveImage:
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "name": ("STRING", {"default": "images"})}}

    def save(self, images, name):
        save_file({"images": images.contiguous()}, os.path.join(folder_paths.get_output_directory(), name))
        return {"ui": {"tensors": [{"filename": name, "subfolder": "", "type": "output"}]}}

NODE_CLASS_MAPPINGS = {"MDTestNativeTextStates": MDTestNativeTextStates, "MDTestNativeDecode": MDTestNativeDecode,
                       "MDTestNativeSaveImage": MDTestNativeSaveImage}
