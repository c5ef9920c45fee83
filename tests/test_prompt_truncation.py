"""Text that arrives whole (issue 22): a prompt longer than a model's text encoder reads is a UserWarning that says
how long it was, where it was cut and what was lost, in every family; a prompt that fits is encoded without one.

The nodes (Sample Video, Train Motion LoRA) turn these warnings into text on the node: tests/test_e2e_prompts_and_
folders.py checks that in a real ComfyUI.
"""

import warnings
from pathlib import Path

import pytest
import torch

from motion_core.backbones import load_backbone, tiny_animatediff_backbone, tiny_unet3d_backbone
from motion_core.backbones.wan.tiny import TINY_WAN_MAX_TOKENS, tiny_wan_backbone

SHAPES_T2V = Path(__file__).resolve().parents[1] / "motion_core" / "toy" / "shapes_t2v"
LONG_SHAPES_PROMPT = ("a red circle moves left and a blue square moves right while a green triangle spins around "
                      "slowly in the middle")


@pytest.fixture(scope="module")
def shapes_t2v():
    return load_backbone(SHAPES_T2V)


@pytest.fixture(scope="module", params=["unet3d", "animatediff"])
def tiny_clip_backbone(request):
    return {"unet3d": tiny_unet3d_backbone, "animatediff": tiny_animatediff_backbone}[request.param](seed=0)


def _encode_quietly(backbone, prompts):
    """encode_prompt, failing on any warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return backbone.encode_prompt(prompts)


def test_shapes_t2v_says_where_a_long_prompt_was_cut_and_what_was_lost(shapes_t2v):
    assert shapes_t2v.tokenizer.model_max_length == 16  # 14 words' tokens between the start and end tokens
    with pytest.warns(UserWarning) as caught:
        states = shapes_t2v.encode_prompt([LONG_SHAPES_PROMPT])
    [message] = [str(w.message) for w in caught]
    assert "is 39 tokens long but this model reads at most 14" in message
    # BPE cut "while" after "whi": the message shows the last words kept and the end that is lost
    assert 'cut after "...moves right whi"' in message
    assert '"le a green triangle spins around slowly in the middle" is lost' in message
    assert "Shorten the prompt" in message
    assert states.shape[:2] == (1, 16)


def test_shapes_t2v_encodes_a_prompt_that_fits_without_a_warning(shapes_t2v):
    states = _encode_quietly(shapes_t2v, ["a red circle moves left"])
    assert states.shape[:2] == (1, 16)


def test_the_warning_does_not_change_what_the_model_reads(shapes_t2v):
    """The cut prompt is encoded exactly as before the warning existed: its first 14 tokens."""
    with pytest.warns(UserWarning):
        cut = shapes_t2v.encode_prompt([LONG_SHAPES_PROMPT])
    ids = shapes_t2v.tokenizer(LONG_SHAPES_PROMPT, verbose=False).input_ids
    kept = torch.tensor([ids[:15] + ids[-1:]])
    with torch.no_grad():
        expected = shapes_t2v.text_encoder(kept)[0]
    torch.testing.assert_close(cut, expected.to(cut.dtype))


def test_each_cut_prompt_of_a_batch_gets_its_own_warning(shapes_t2v):
    other = "a yellow star bounces up and down and up and down and up and down and up and down again"
    with pytest.warns(UserWarning) as caught:
        shapes_t2v.encode_prompt([LONG_SHAPES_PROMPT, "a red circle", other])
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert messages[0].startswith('The prompt "a red circle moves left and a blue')
    assert messages[1].startswith('The prompt "a yellow star bounces')


def test_the_warning_points_at_the_code_that_encoded_the_prompt(shapes_t2v):
    """stacklevel: the nodes keep the pack's own warnings by where they come from."""
    with pytest.warns(UserWarning) as caught:
        shapes_t2v.encode_prompt(LONG_SHAPES_PROMPT)
    assert caught[0].filename == __file__


def test_clip_unet_families_warn_past_77_tokens(tiny_clip_backbone):
    # The tiny tokenizer spells words byte by byte (a space joins the letter before it): 80 letters are 80 tokens,
    # 75 of which fit.
    prompt = "a" * 40 + " " + "b" * 40
    with pytest.warns(UserWarning, match=r"is 80 tokens long but this model reads at most 75") as caught:
        states = tiny_clip_backbone.encode_prompt([prompt])
    assert 'its end "bbbbb" is lost' in str(caught[0].message)
    assert states.shape[1] == 77
    _encode_quietly(tiny_clip_backbone, ["a" * 75])  # exactly full: no warning


def test_wan_warns_past_its_text_window():
    backbone = tiny_wan_backbone(seed=0)
    with pytest.warns(UserWarning, match=rf"cut at {TINY_WAN_MAX_TOKENS} tokens"):
        backbone.encode_prompt(["x" * 100])
    _encode_quietly(backbone, ["a short prompt"])
