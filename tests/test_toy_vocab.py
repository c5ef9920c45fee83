"""ShapesT2V tokenizer files: a CLIPTokenizer built offline from them knows every world word as one token."""

import json

import pytest

from motion_core.toy import COLOURS, MOTIONS, SHAPES, SPARE_TRIGGERS, WORLD_WORDS, ClipSpec, Companion, build_vocab
from motion_core.toy.vocab import clip_tokenizer, write_vocab

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    vocab_path, merges_path = write_vocab(tmp_path_factory.mktemp("vocab"))
    return transformers.CLIPTokenizer(vocab_path, merges_path)


def test_files_follow_clip_layout(tmp_path):
    vocab_path, merges_path = write_vocab(tmp_path)
    vocab = json.load(open(vocab_path, encoding="utf-8"))
    assert vocab["!"] == 0 and vocab["!</w>"] == 256
    assert "<|startoftext|>" in vocab and "<|endoftext|>" in vocab
    assert sorted(vocab.values()) == list(range(len(vocab)))
    assert open(merges_path, encoding="utf-8").readline().startswith("#version")
    assert build_vocab() == build_vocab()  # deterministic


def test_every_world_word_is_one_whole_token(tokenizer):
    for word in WORLD_WORDS:
        assert tokenizer.tokenize(word) == [word + "</w>"], word


def test_every_caption_tokenizes_without_unknown_tokens(tokenizer):
    unk = tokenizer.unk_token_id
    for motion in MOTIONS:
        for colour in COLOURS:
            for shape in SHAPES:
                text = ClipSpec(colour, shape, motion, companion=Companion("red", "square", 0.5, 0.5)).text()
                ids = tokenizer(text).input_ids
                assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
                assert unk not in ids[1:-1], text
                assert len(ids) == len(text.split()) + 2


def test_trigger_words_and_unseen_words_have_no_unknown_tokens(tokenizer):
    assert tokenizer.tokenize("a red circle V*") == ["a</w>", "red</w>", "circle</w>", "v</w>", "*</w>"]
    for trigger in SPARE_TRIGGERS:
        assert tokenizer.tokenize(f"moves like {trigger}")[-1] == trigger + "</w>"
    ids = tokenizer("A Hippo dances, 3 times!").input_ids
    assert tokenizer.unk_token_id not in ids[1:-1]


def test_clip_tokenizer_helper_loads_from_a_folder(tmp_path):
    tok = clip_tokenizer(tmp_path)
    assert tok.model_max_length == 77
    assert tok.tokenize("a blue circle moves left") == ["a</w>", "blue</w>", "circle</w>", "moves</w>", "left</w>"]
