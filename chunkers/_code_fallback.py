"""The ``ast`` chunker's text fallback (:mod:`chunkers.ast`): for a file without a grammar, that does not parse or
whose parse takes too long, the recursive text chunker's chunks, those over ``max_chars`` non-whitespace characters
split again down the same separators, so the fallback keeps both of the ``ast`` chunker's budgets; and the split of
a syntax node's text that the parse does not split further (:func:`split_at_lines`)."""
from __future__ import annotations

import bisect
import re
from typing import Callable

import numpy as np

from chunkers._markdown import is_markdown_language
from chunkers._spans import Span, build_chunks, fit_spans
from chunkers._splitter import RecursiveSplitter
from chunkers._token_index import TokenIndex, codepoints, is_space
from rag.types import Chunk, Document

_LINE_END = re.compile(r"\n")
_WHITESPACE = re.compile(r"\s+")


def nonspace_prefix(text: str) -> np.ndarray:
    """``prefix[i]`` = number of non-whitespace characters in ``text[:i]`` (``str.isspace`` semantics)."""
    nonspace = ~is_space(codepoints(text))
    prefix = np.zeros(len(nonspace) + 1, dtype=np.int64)
    np.cumsum(nonspace, out=prefix[1:])
    return prefix


def text_chunks(document: Document, language: str | None, reason: str, chunk_size: int, max_chars: int,
                tokenizer_name: str, tokenizer) -> list[Chunk]:
    """The recursive chunker's chunks of ``document`` (markdown-aware when ``language`` is markdown or text) within
    ``max_chars`` (:func:`within_max_chars`), with the metadata keys of parsed chunks (no scope or definition known)
    and ``fallback``: ``"recursive (<reason>)"``."""
    from chunkers.recursive import RecursiveChunker

    chunks = RecursiveChunker(chunk_size=chunk_size, tokenizer=tokenizer_name,
                              markdown=is_markdown_language(language)).chunk(document)
    chunks = within_max_chars(document, chunks, max_chars, chunk_size, tokenizer)
    for c in chunks:
        c.metadata.update(language=language, scope_path=[], definitions=[], declarations=[],
                          fallback=f"recursive ({reason})")
    return chunks


def within_max_chars(document: Document, chunks: list[Chunk], max_chars: int, chunk_size: int,
                     tokenizer) -> list[Chunk]:
    """``chunks`` (tiling the text) with those over ``max_chars`` non-whitespace characters split again down
    the recursive separator hierarchy (blank lines, lines, sentences, words, characters), by a recursive
    splitter whose "tokens" are non-whitespace characters (each with the whitespace after it); pieces keep
    their chunk's metadata and get exact token counts (at most ``chunk_size``)."""
    text, limit = document.text, max_chars
    nonspace = nonspace_prefix(text)
    over = [c for c in chunks if nonspace[c.end] - nonspace[c.start] > limit]
    if not over:
        return chunks
    over_starts = {c.start for c in over}
    visible = np.flatnonzero(np.diff(nonspace))  # where each non-whitespace character is
    bounds = np.unique(np.concatenate(([0], visible, [len(text)])))
    by_chars = RecursiveSplitter(text, tokenizer, markdown=False, index=TokenIndex(text, tokenizer, char_bounds=bounds))
    edges = by_chars.split_edges(np.array([c.start for c in over]), np.array([c.end for c in over]), limit)
    spans: list[Span] = []
    counts: list[int | None] = []  # a chunk left whole keeps its count; the pieces are counted below
    metadata: list[dict] = []
    for c in chunks:
        inner = edges[np.searchsorted(edges, c.start):np.searchsorted(edges, c.end) + 1].tolist() \
            if c.start in over_starts else [c.start, c.end]
        spans.extend(zip(inner[:-1], inner[1:]))
        counts.extend([None] * (len(inner) - 1) if c.start in over_starts else [c.token_count])
        meta = {k: v for k, v in c.metadata.items() if k != "oversize"}
        metadata.extend([meta] * (len(inner) - 1))
    pieces = [i for i, count in enumerate(counts) if count is None]
    for i, count in zip(pieces, tokenizer.count_batch([text[a:b] for a, b in (spans[i] for i in pieces)])):
        counts[i] = count
    fitted, counts, oversize = fit_spans(text, spans, tokenizer, chunk_size, counts, join_next=False)
    starts = [a for a, _ in spans]
    metadata = [metadata[bisect.bisect_right(starts, a) - 1] for a, _ in fitted]
    return build_chunks(document, fitted, counts, oversize, metadata, tokenizer=tokenizer)


def split_at_lines(text: str, start: int, end: int, fits: Callable[[int, int], bool]) -> list[Span]:
    """Spans tiling ``text[start:end]`` (an unsplittable node's text, a huge string literal) that ``fits``: cut at
    lines, then whitespace, then characters, packed greedily."""
    return _split_levels(text, start, end, fits, (_LINE_END, _WHITESPACE))


def _split_levels(text: str, start: int, end: int, fits, levels: tuple) -> list[Span]:
    if start >= end:
        return []
    if fits(start, end):
        return [(start, end)]
    if not levels:
        return _split_characters(start, end, fits)
    cuts = [m.end() for m in levels[0].finditer(text, start, end) if start < m.end() < end]
    if not cuts:
        return _split_levels(text, start, end, fits, levels[1:])
    units: list[Span] = []
    for a, b in zip([start, *cuts], [*cuts, end]):
        units.extend([(a, b)] if fits(a, b) else _split_levels(text, a, b, fits, levels[1:]))
    packed: list[Span] = []
    for a, b in units:
        if packed and fits(packed[-1][0], b):
            packed[-1] = (packed[-1][0], b)
        else:
            packed.append((a, b))
    return packed


def _split_characters(start: int, end: int, fits) -> list[Span]:
    spans = []
    while start < end:
        lo, hi = start + 1, end  # the furthest end that fits (at least one character)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(start, mid):
                lo = mid
            else:
                hi = mid - 1
        spans.append((start, lo))
        start = lo
    return spans
