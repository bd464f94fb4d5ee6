"""Sentence packing: offline segmentation, greedy packing up to ``chunk_size`` tokens, overlap in sentences.

YAML::

    index:
      chunker: {op: sentence, chunk_size: 128, overlap_sentences: 1}

Sentences come from :func:`chunkers._sentences.sentence_spans` (rules, no model download). A sentence
longer than the limit is split at words, then tokens (the recursive splitter's lower levels). Sizes are
re-measured on the final chunk text; ``chunk_size`` is a hard ceiling.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from pydantic import Field

from chunkers._batches import chunk_in_batches, chunks_of_joined, joined_documents, per_document, without_gaps
from chunkers._sentences import sentence_cuts
from chunkers._spans import Span, build_chunks, drop_pieces_inside_the_next_chunk, fit_spans
from chunkers._splitter import WORDS, RecursiveSplitter, edges_to_spans
from chunkers.base import Chunker, tokenizer_field
from rag.registry import OperatorParams, operator
from rag.types import Chunk, Document


def sentence_units(splitter: RecursiveSplitter, limit: int, starts: np.ndarray | None = None,
                   ends: np.ndarray | None = None) -> list[Span]:
    """Sentence spans tiling the text (or each of the ranges ``[starts[k], ends[k])`` of joined documents), with
    any sentence over ``limit`` split at words or tokens."""
    text = splitter.text
    if starts is None:
        if not text:
            return []
        starts, ends = np.array([0]), np.array([len(text)])
    unit_starts, unit_ends = [], []
    for start, end in zip(starts.tolist(), ends.tolist()):
        edges = [start, *sentence_cuts(text, start, end), end]
        unit_starts.extend(edges[:-1])
        unit_ends.extend(edges[1:])
    edges = splitter.split_edges(np.array(unit_starts), np.array(unit_ends), limit, WORDS)
    return without_gaps(edges_to_spans(edges), ends)


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

    def chunk_documents(self, documents: Sequence[Document]) -> list[Chunk]:
        """Every document's chunks, in order, split in batches of joined documents
        (:func:`chunkers._batches.joined_documents`): the same chunks as :meth:`chunk` one document at a time."""
        return chunk_in_batches(documents, self.chunk, self._chunk_batch)

    def _chunk_batch(self, documents: list[Document]) -> list[Chunk]:
        limit, overlap = self.params.chunk_size, self.params.overlap_sentences
        text, starts, ends, index = joined_documents(documents, self.tokenizer_)
        splitter = RecursiveSplitter(text, self.tokenizer_, markdown=False, index=index)
        units = sentence_units(splitter, limit, starts, ends)
        if overlap:
            spans = [span for first, last in per_document(units, starts, ends)
                     for span in pack_with_overlap(splitter, units[first:last], limit, overlap)]
        else:  # every document's greedy packing in one call
            spans = splitter.pack(units, limit, starts, ends)
        # pieces dropped for one document never involve another: the next document's chunks start after its end
        kept = drop_pieces_inside_the_next_chunk(*fit_spans(text, spans, self.tokenizer_, limit, index.counts(spans)))
        return chunks_of_joined(documents, starts, ends, *kept, self.tokenizer_)
