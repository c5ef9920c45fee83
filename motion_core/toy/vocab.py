"""CLIP tokenizer files (vocab.json + merges.txt) for the ShapesT2V world, built offline from WORLD_WORDS.

The layout copies OpenAI CLIP's so `transformers.CLIPTokenizer(vocab_file, merges_file)` reads it unchanged:
the 256 byte-level characters, the same with the end-of-word marker "</w>", then one token per merge, then
<|startoftext|> and <|endoftext|>. Because every single character is a token, any prompt tokenizes without
unknown tokens (an unseen word falls back to pieces); the merges are learned by byte-pair encoding on the world's
words until each is one token ("circle" -> "circle</w>"). BPE encoding applies merges in the order they were
learned, so a word seen in training is rebuilt exactly as it was merged: whole.

"V*" is two tokens ("v</w>", "*</w>"): CLIP's pre-tokenizer splits letters from punctuation before BPE, so no
vocabulary can make it one. The spare trigger words in `captions.SPARE_TRIGGERS` are single tokens.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from functools import lru_cache
from typing import Iterable

from ..errors import InvalidInputError
from .captions import WORLD_WORDS

START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
END_OF_WORD = "</w>"


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table (so whitespace and control bytes get visible
    stand-ins); the same table the tokenizer uses to read the vocabulary."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, (chr(c) for c in chars)))


def _symbols(word: str) -> tuple[str, ...]:
    table = bytes_to_unicode()
    chars = [table[b] for b in word.encode("utf-8")]
    return tuple(chars[:-1]) + (chars[-1] + END_OF_WORD,)


def learn_merges(words: Iterable[str]) -> list[tuple[str, str]]:
    """Byte-pair merges that turn every word into a single token.

    Each round merges the most frequent adjacent pair over all words not yet whole (ties: the alphabetically first
    pair, so the files are deterministic).
    """
    corpus = {w: _symbols(w) for w in sorted(set(words)) if w}
    merges: list[tuple[str, str]] = []
    while True:
        pairs = Counter()
        for symbols in corpus.values():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += 1
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        joined = best[0] + best[1]
        for word, symbols in corpus.items():
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(joined)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            corpus[word] = tuple(out)


def build_vocab(words: Iterable[str] = WORLD_WORDS) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(token -> id, merges) in CLIP's layout. Words are lower-cased, as CLIPTokenizer lower-cases its input."""
    lowered = [w.lower() for w in words]
    for w in lowered:
        # CLIP's pre-tokenizer cuts text into runs of letters, single digits and runs of other symbols; a word
        # mixing them could never reach BPE whole.
        if not w.isalpha():
            raise InvalidInputError(
                f"Vocabulary words must be letters only (CLIP splits digits and symbols off); got {w!r}."
            )
    base = list(bytes_to_unicode().values())
    tokens = base + [b + END_OF_WORD for b in base]
    merges = learn_merges(lowered)
    tokens += [a + b for a, b in merges]
    tokens += [START_TOKEN, END_TOKEN]
    vocab: dict[str, int] = {}
    for tok in tokens:
        vocab.setdefault(tok, len(vocab))
    return vocab, merges


def write_vocab(directory: str | os.PathLike, words: Iterable[str] = WORLD_WORDS) -> tuple[str, str]:
    """Write vocab.json and merges.txt into `directory`; returns their paths."""
    vocab, merges = build_vocab(words)
    os.makedirs(directory, exist_ok=True)
    vocab_path = os.path.join(directory, "vocab.json")
    merges_path = os.path.join(directory, "merges.txt")
    with open(vocab_path, "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, indent=0)
    with open(merges_path, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        f.writelines(f"{a} {b}\n" for a, b in merges)
    return vocab_path, merges_path


def clip_tokenizer(directory: str | os.PathLike, words: Iterable[str] = WORLD_WORDS, model_max_length: int = 77):
    """Write the vocabulary into `directory` and load it as a `transformers.CLIPTokenizer`.

    Loaded through `from_pretrained(directory)`, which reads vocab.json/merges.txt in both transformers 4 and 5
    (in 5 the constructor's keyword names changed to `vocab`/`merges`, and `vocab_file=` is silently ignored).
    """
    from transformers import CLIPTokenizer

    write_vocab(directory, words)
    return CLIPTokenizer.from_pretrained(os.fspath(directory), model_max_length=model_max_length)
