"""Token boundaries of a text as exact character offsets, and exact token counts of its spans from one
tokenization (:class:`TokenIndex`): the measure every chunker's sizes are taken in.

A token boundary inside a multibyte character is moved to that character's end (and marked, so a window can end
before the character instead); counts of a span equal ``len(encode(text[a:b]))`` without re-encoding its middle.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from rag.encodings import SAFE_CUT_ENCODINGS, first_safe_cut, is_safe_cut
from rag.tokens import TiktokenTokenizer

Span = tuple[int, int]


@lru_cache(maxsize=4)
def token_byte_lengths(tokenizer: TiktokenTokenizer) -> np.ndarray:
    """UTF-8 byte length of every token id of a tiktoken encoding (0 for unused ids)."""
    enc = tokenizer.encoding
    lengths = np.zeros(enc.max_token_value + 1, dtype=np.int64)
    ranks, specials = getattr(enc, "_mergeable_ranks", None), getattr(enc, "_special_tokens", None)
    if isinstance(ranks, dict) and isinstance(specials, dict):  # tiktoken's tables: 8x faster than the loop
        lengths[np.fromiter(ranks.values(), np.int64, len(ranks))] = np.fromiter(map(len, ranks), np.int64, len(ranks))
        for text, token in specials.items():
            lengths[token] = len(text.encode("utf-8"))
        return lengths
    for token in range(enc.max_token_value + 1):
        try:
            lengths[token] = len(enc.decode_single_token_bytes(token))
        except KeyError:
            pass
    return lengths


def utf8_char_index(text: str) -> np.ndarray:
    """``index[b]`` = the character offset of UTF-8 byte offset ``b`` of ``text``, rounded up to the next
    character start when ``b`` falls inside a multibyte character (length ``len(bytes) + 1``).

    Surrogates are encoded with ``surrogatepass`` (3 bytes), the width of the U+FFFD the tokenizer encodes for
    each of them (:func:`rag.encodings.without_lone_surrogates`), so byte offsets stay aligned.
    """
    data = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    is_char_start = (data & 0xC0) != 0x80
    index = np.empty(len(data) + 1, dtype=np.int64)
    index[0] = 0
    np.cumsum(is_char_start, out=index[1:])
    return index


def token_char_bounds(text: str, tokenizer: TiktokenTokenizer, ids: Sequence[int] | None = None,
                      with_inside: bool = False):
    """Character offsets of the token boundaries of ``text``: ``bounds[i]`` is where token ``i`` starts,
    ``bounds[-1] == len(text)``. A boundary inside a multibyte character is moved to that character's end,
    so every span between two bounds is a valid (possibly empty) character range. Tokenizers other than tiktoken's
    report their bounds themselves (:meth:`rag.tokens.HuggingFaceTokenizer.char_bounds`). ``with_inside``:
    returns ``(bounds, inside)``, ``inside[i]`` True when boundary ``i`` was moved, or for a word-piece tokenizer
    when it falls inside a word (None when none does)."""
    if not isinstance(tokenizer, TiktokenTokenizer):
        return tokenizer.char_bounds_and_inside(text) if with_inside else tokenizer.char_bounds(text)
    if ids is None:
        ids = encode_ordinary(tokenizer.encoding, text)  # through the encoder's numpy buffer
    byte_bounds = np.zeros(len(ids) + 1, dtype=np.int64)
    if len(ids):
        ids = ids if isinstance(ids, np.ndarray) else np.asarray(ids, dtype=np.int64)  # encoders give uint32
        np.cumsum(token_byte_lengths(tokenizer)[ids], out=byte_bounds[1:])
    return char_offsets_and_inside(text, byte_bounds) if with_inside else char_offsets(text, byte_bounds)


def joined_token_char_bounds(texts: Sequence[str], tokenizer: TiktokenTokenizer, joined: str):
    """``(bounds, inside)``: :func:`token_char_bounds` of every text (``with_inside``), moved to where the text
    starts in ``joined`` (the texts joined with one NUL between two), concatenated. With tiktoken's encodings the
    texts are encoded in one call (:meth:`rag.encodings.RepairedEncoding.encode_ordinary_flat`, each text on its
    own) and the byte and character offsets are computed for all of them at once: the numpy steps per text cost
    more than encoding a short text."""
    if not isinstance(tokenizer, TiktokenTokenizer):
        bounds, insides, position = [], [], 0
        for text in texts:
            text_bounds, inside = tokenizer.char_bounds_and_inside(text)
            bounds.append(text_bounds + position)
            insides.append(np.zeros(len(text_bounds), dtype=bool) if inside is None else inside)
            position += len(text) + 1
        if not bounds:
            return np.zeros(0, dtype=np.int64), None
        inside = np.concatenate(insides)
        return np.concatenate(bounds), (inside if inside.any() else None)
    ids, offsets = tokenizer.encoding.encode_ordinary_flat(texts)
    token_counts = np.diff(offsets)
    # one byte step per token, and before each text's tokens the step to its start: the NUL before it (1 byte)
    heads = np.cumsum(token_counts + 1) - token_counts - 1
    steps = np.ones(len(ids) + len(texts), dtype=np.int64)
    is_token = np.ones(len(steps), dtype=bool)
    is_token[heads] = False
    if len(texts):
        steps[is_token] = token_byte_lengths(tokenizer)[ids]
        steps[0] = 0
    return char_offsets_and_inside(joined, np.cumsum(steps))


def char_offsets(text: str, byte_offsets: np.ndarray) -> np.ndarray:
    """``utf8_char_index(text)[byte_offsets]`` without building the whole index: the character offset of a byte
    offset is that offset minus the UTF-8 continuation bytes (``10xxxxxx``) before it, and they are few."""
    return char_offsets_and_inside(text, byte_offsets)[0]


def char_offsets_and_inside(text: str, byte_offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`char_offsets`, and which ``byte_offsets`` fall inside a multibyte character (on a continuation byte,
    so rounded up to the character's end), or None when none does."""
    if text.isascii():
        return byte_offsets, None
    encoded = text.encode("utf-8", "surrogatepass")
    data = np.empty(len(encoded) + 1, dtype=np.uint8)  # a zero byte after the text: no offset is out of range
    data[:-1] = np.frombuffer(encoded, dtype=np.uint8)
    data[-1] = 0
    del encoded
    np.bitwise_and(data, 0xC0, out=data)
    is_continuation = data == 0x80
    del data
    inside = is_continuation[byte_offsets]  # one byte per offset (long texts: no 8-byte temporaries)
    continuation = np.flatnonzero(is_continuation)
    del is_continuation
    before = np.searchsorted(continuation, byte_offsets)
    return np.subtract(byte_offsets, before, out=before), (inside if inside.any() else None)


# str.isspace by code point; U+3000 is the last whitespace character, so one more (False) entry stands for
# every code point above it (see is_space).
_SPACE_TABLE = np.zeros(0x3002, dtype=bool)
_SPACE_TABLE[[c for c in range(0x3002) if chr(c).isspace()]] = True


def codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def is_space(points: np.ndarray) -> np.ndarray:
    """``str.isspace`` of every code point."""
    return np.take(_SPACE_TABLE, points, mode="clip")


#: How far from a span's edge the search for a safe cut goes before giving up (then the span is encoded).
SAFE_CUT_SEARCH = 64


def safe_cut_mask(text: str) -> "np.ndarray":
    """:func:`is_safe_cut` at every position ``0..len(text)`` (for tests and diagnostics)."""
    return np.array([is_safe_cut(text, p) for p in range(len(text) + 1)], dtype=bool)


def _first_safe_cut(text: str, lo: int, hi: int) -> int:
    """The first safe cut in ``[lo, hi]`` within :data:`SAFE_CUT_SEARCH` characters, or -1."""
    return first_safe_cut(text, lo, min(hi, lo + SAFE_CUT_SEARCH))


def _last_safe_cut(text: str, lo: int, hi: int) -> int:
    """The last safe cut in ``[lo, hi]`` within :data:`SAFE_CUT_SEARCH` characters, or -1."""
    first = max(lo, hi - SAFE_CUT_SEARCH, 0)
    p = hi
    while p >= first:
        candidate = text.rfind(" ", first, p + 1)
        newline = text.rfind("\n", max(first - 1, 0), p)
        if newline >= 0 and newline + 1 > candidate:
            candidate = newline + 1
        if candidate < first:
            return -1
        if is_safe_cut(text, candidate):
            return candidate
        p = candidate - 1
    return -1


def encode_ordinary(encoding, text: str) -> np.ndarray:
    """``encoding.encode_ordinary(text)`` as an array, read from the encoder's numpy buffer: no list of Python ints
    to build and convert (15% faster). With no special token allowed, ``encode`` is ``encode_ordinary``.
    ``encoding`` is a :class:`rag.encodings.RepairedEncoding`: surrogates become one U+FFFD each, so offsets hold."""
    return encoding.encode_to_numpy(text, disallowed_special=())


class TokenIndex:
    """One tokenization of a text: token boundaries as character offsets (for size estimates) and exact
    token counts of spans without re-encoding them.

    ``counts`` is exact (equal to ``len(encode(text[a:b]))``): between the first safe cut inside a span and the
    last one (:func:`is_safe_cut`), the span's tokens are the document's own tokens, so they are counted from
    the document's token boundaries; only the short pieces before and after are encoded. Spans without two
    safe cuts near their edges, and encodings other than cl100k, are encoded whole.
    """

    def __init__(self, text: str, tokenizer: TiktokenTokenizer, char_bounds: np.ndarray | None = None,
                 edges: frozenset[int] = frozenset(), inside: np.ndarray | None = None):
        self.text = text
        self.tokenizer = tokenizer
        self.safe_encoding = isinstance(tokenizer, TiktokenTokenizer) and tokenizer.encoding.name in SAFE_CUT_ENCODINGS
        # A token starting inside a multibyte character maps to that character's end (see token_char_bounds);
        # ``inside`` says which boundaries were so moved (None: none, or not known when char_bounds are given).
        if char_bounds is None:
            char_bounds, inside = token_char_bounds(text, tokenizer, with_inside=True)
        self.char_bounds = char_bounds
        self.inside = inside
        #: positions where a tokenization starts or ends (the documents' edges when ``text`` joins several
        #: documents, each tokenized on its own and given as ``char_bounds``): counted like safe cuts
        self.edges = edges

    def counts(self, spans: Sequence[Span]) -> list[int]:
        text = self.text
        if not self.safe_encoding:
            return self.tokenizer.count_batch([text[a:b] for a, b in spans])
        # Each span's count: its pieces before the first and after the last safe cut, encoded (all of them in
        # one batch), plus the document's own tokens between the two cuts. A span without two such cuts is one
        # piece; -1 stands for no piece.
        pieces: list[str] = []
        heads, tails, fixed = [], [], []
        inner: list[tuple[int, int]] = []
        n, edges = len(text), self.edges
        for a, b in spans:
            # An edge that is itself a safe cut of the document (or the text's start / end) needs no piece.
            s = a if a == 0 or a in edges or is_safe_cut(text, a) else _first_safe_cut(text, a + 1, b - 2)
            tail = 0
            if s < 0:
                e = -1
            elif b == n or b in edges or is_safe_cut(text, b):
                e = b
            elif text[b - 1] == " " and b - 1 >= s and is_safe_cut(text, b - 1):
                # A span ending with the space after a word or a sentence (the usual chunk end): that lone space
                # is the span's last token, and every token before it is the document's own.
                e, tail = b - 1, 1
            else:
                e = _last_safe_cut(text, max(s, a + 1), b - 2)
            if e < s or e < 0:
                heads.append(len(pieces))
                pieces.append(text[a:b])
                tails.append(-1)
                inner.append((0, 0))
            else:
                heads.append(len(pieces) if s > a else -1)
                if s > a:
                    pieces.append(text[a:s])
                tails.append(len(pieces) if not tail and e < b else -1)
                if not tail and e < b:
                    pieces.append(text[e:b])
                inner.append((s, e))
            fixed.append(tail)
        if not spans:
            return []
        piece_counts = np.zeros(len(pieces) + 1, dtype=np.int64)  # [-1]: no piece
        piece_counts[:-1] = self.tokenizer.count_batch(pieces)  # cl100k: one fastokens call
        # A token starts exactly at every safe cut; tokens beginning inside the character before it share its
        # character offset, so the token at the cut is the last one with that offset.
        index = np.searchsorted(self.char_bounds, np.asarray(inner, dtype=np.int64), "right") - 1
        return (piece_counts[heads] + piece_counts[tails] + np.asarray(fixed) + index[:, 1] - index[:, 0]).tolist()

