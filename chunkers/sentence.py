"""Sentence packing: offline segmentation, greedy packing up to ``chunk_size`` tokens, overlap in sentences.

YAML::

    index:
      chunker: {op: sentence, chunk_size: 128, overlap_sentences: 1}

Sentences come from :func:`chunkers._sentences.sentence_spans` (rules, no model download). A sentence
longer than the limit is split at words, then tokens (the recursive splitter's lower levels). Sizes are
re-measured on the final chunk text; ``chunk_size`` is a hard ceiling.
"""
from __future__ import annotations

import numpy as np
from pydantic import Field

from chunkers._sentences import sentence_cuts
from chunkers._spans import Span, build_chunks, fit_spans
from chunkers.base import Chunker, tokenizer_field
from chunkers.recursive import WORDS, RecursiveSplitter, edges_to_spans
from rag.registry import OperatorParams, operator
from rag.types import Chunk, Document


def sentence_units(splitter: RecursiveSplitter, limit: int) -> list[Span]:
    """Sentence spans tiling the text, with any sentence over ``limit`` split at words or tokens."""
    text = splitter.text
    if not text:
        return []
    edges = np.array([0, *sentence_cuts(text), len(text)])
    return edges_to_spans(splitter.split_edges(edges[:-1], edges[1:], limit, WORDS))


def pack_with_overlap(splitter: RecursiveSplitter, units: list[Span], limit: int, overlap: int) -> list[Span]:
    """Consecutive units packed greedily under ``limit``; each chunk after the first repeats up to ``overlap``
    trailing units of the previous one (fewer if they would not fit)."""
    if not overlap:  # plain greedy packing, which the splitter does without a Python step per unit
        return splitter.pack(units, limit)
    spans: list[Span] = []
    first = 0
    while first < len(units):
        last = first
        while last + 1 < len(units) and splitter.estimate(units[first][0], units[last + 1][1]) <= limit:
            last += 1
        spans.append((units[first][0], units[last][1]))
        if last + 1 >= len(units):
            break
        next_first = last + 1
        while next_first > max(first + 1, last + 1 - overlap) and \
                splitter.estimate(units[next_first - 1][0], units[last + 1][1]) <= limit:
            next_first -= 1
        first = next_first
    return spans


def drop_pieces_inside_the_next_chunk(spans: list[Span], counts: list[int], oversize: list[bool]):
    """With overlap, a chunk that ``fit_spans`` had to split (its estimate fit, its exact count did not) can end
    in pieces that start after the next chunk does; the next chunk holds them whole (it ends later), so they are
    dropped and chunks stay in document order."""
    keep = [True] * len(spans)
    following = None
    for i in range(len(spans) - 1, -1, -1):
        if following is not None and spans[i][0] > spans[following][0] and spans[i][1] <= spans[following][1]:
            keep[i] = False
        else:
            following = i
    return ([x for x, k in zip(spans, keep) if k], [x for x, k in zip(counts, keep) if k],
            [x for x, k in zip(oversize, keep) if k])


@operator("sentence", kind="chunker")
class SentenceChunker(Chunker):
    """Packs whole sentences up to ``chunk_size`` tokens, optionally repeating sentences as overlap."""

    class Params(OperatorParams):
        chunk_size: int = Field(256, gt=0, description="maximum tokens per chunk (hard ceiling)")
        overlap_sentences: int = Field(0, ge=0, description="sentences repeated from the previous chunk")
        tokenizer: str = tokenizer_field()

    def spans(self, text: str) -> tuple[list[Span], list[int], list[bool]]:
        limit = self.params.chunk_size
        splitter = RecursiveSplitter(text, self.tokenizer_, markdown=False)
        spans = pack_with_overlap(splitter, sentence_units(splitter, limit), limit, self.params.overlap_sentences)
        counts = splitter.index.counts(spans)
        return drop_pieces_inside_the_next_chunk(*fit_spans(text, spans, self.tokenizer_, limit, counts))

    def chunk(self, document: Document) -> list[Chunk]:
        if not document.text:
            return []
        spans, counts, oversize = self.spans(document.text)
        return build_chunks(document, spans, counts, oversize, tokenizer=self.tokenizer_)
