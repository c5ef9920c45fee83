"""motion_core.native without ComfyUI: which LoRAs a native MODEL takes, in which layout, and their step ranges as
keyframes."""

import pytest
import torch

from motion_core.errors import InvalidInputError
from motion_core.lora import MotionLora
from motion_core.lora.formats.wan_comfy import to_comfy_wan_file
from motion_core.lora.stack import LoraStack
from motion_core.native import StrengthKeyframe, native_loras, native_state_dict, range_keyframes


@pytest.fixture(scope="module")
def wan_lora():
    from motion_core.backbones.wan.tiny import tiny_wan_backbone
    from motion_core.lora.synthetic import random_lora

    with torch.no_grad():
        return random_lora(tiny_wan_backbone(), ("temporal_attn",), rank=2, alpha=4.0, name="spin")


def _ad_lora():
    return MotionLora({"unet.down_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(2, 8),
                       "unet.down_blocks.0.attn1.to_q.lora_B.weight": torch.ones(8, 2)},
                      {"family": "animatediff", "name": "wave"})


def test_full_range_needs_no_keyframes():
    assert range_keyframes(0.0, 1.0) == ()


def test_late_range_starts_off_and_switches_on_at_its_start():
    assert range_keyframes(0.3, 1.0) == (StrengthKeyframe(0.0, 0.0), StrengthKeyframe(0.3, 1.0))


def test_middle_range_switches_on_then_off():
    assert range_keyframes(0.3, 0.8) == (StrengthKeyframe(0.0, 0.0), StrengthKeyframe(0.3, 1.0),
                                         StrengthKeyframe(0.8, 0.0))


def test_early_range_starts_on():
    assert range_keyframes(0.0, 0.5) == (StrengthKeyframe(0.0, 1.0), StrengthKeyframe(0.5, 0.0))


@pytest.mark.parametrize("start,end", [(0.6, 0.4), (-0.1, 0.5), (0.0, 1.5), (float("nan"), 1.0)])
def test_bad_ranges_are_refused(start, end):
    with pytest.raises(InvalidInputError, match="start_percent <= end_percent"):
        range_keyframes(start, end)


def test_a_wan_lora_is_written_in_cores_layout_the_same_as_the_comfyui_file(wan_lora):
    native = native_state_dict(wan_lora)
    written, _ = to_comfy_wan_file(wan_lora)
    assert native.keys() == written.keys()
    assert all(k.startswith("diffusion_model.blocks.") for k in native)
    assert all(torch.equal(native[k], written[k]) for k in native)


def test_a_non_wan_lora_is_refused_naming_the_native_families():
    with pytest.raises(InvalidInputError, match="core runs only wan"):
        native_loras(_ad_lora())


def test_one_lora_gets_the_nodes_strength_and_range(wan_lora):
    (entry,) = native_loras(wan_lora, 0.7, 0.2, 0.9)
    assert (entry.name, entry.strength, entry.start_percent, entry.end_percent) == ("spin", 0.7, 0.2, 0.9)
    assert entry.modules == len(wan_lora.modules())


def test_a_stack_keeps_each_entrys_strength_and_range_scaled_and_narrowed_by_the_node(wan_lora):
    stack = LoraStack().add(wan_lora, 0.5, 0.0, 0.6).add(wan_lora, 2.0, 0.3, 1.0)
    first, second = native_loras(stack, 2.0, 0.1, 0.8)
    assert (first.strength, first.start_percent, first.end_percent) == (1.0, 0.1, 0.6)
    assert (second.strength, second.start_percent, second.end_percent) == (4.0, 0.3, 0.8)


def test_entries_that_could_never_act_are_left_out(wan_lora):
    stack = LoraStack().add(wan_lora, 0.0).add(wan_lora, 1.0, 0.0, 0.2).add(wan_lora, 1.0, 0.5, 1.0)
    (kept,) = native_loras(stack, 1.0, 0.3, 1.0)
    assert (kept.start_percent, kept.end_percent) == (0.5, 1.0)
