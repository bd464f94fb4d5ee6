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
    spans = [s for s in spans if s[1] > s[0]]
    if counts is None:
        counts = count_tokens(tokenizer, [text[a:b] for a, b in spans])
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
