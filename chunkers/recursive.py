"""Recursive splitting down a separator hierarchy, markdown-aware, with exact offsets and a hard size ceiling.

YAML::

    index:
      chunker: {op: recursive, chunk_size: 256}

Hierarchy: markdown headings → blocks (blank lines; code fences and tables are single blocks) → lines →
sentences → words → tokens. A span that fits ``chunk_size`` is kept; otherwise it is cut at the highest
level that has a cut, oversized pieces recurse one level down, and adjacent pieces are packed greedily up
to the limit. Everything works on character spans of the original text (no ``find()``), and token counts
come from one tokenization of the whole document; final counts are re-measured on the chunk text and any
chunk over the limit is split again, so the limit is a hard ceiling. Chunk metadata carries
``heading_path`` (titles of the enclosing markdown headings) and, for a chunk that starts inside a table
after its header, ``table_header`` (the header rows, repeated for the reader/embedder).
"""
from __future__ import annotations

import bisect
import re
from functools import cached_property
from typing import Any

import numpy as np

from pydantic import Field

from chunkers._markdown import MarkdownStructure, parse_markdown
from chunkers._sentences import sentence_spans
from chunkers._spans import _SPACE_TABLE, Span, TokenIndex, build_chunks, codepoints, count_tokens, fit_spans
from chunkers.base import Chunker
from rag.registry import OperatorParams, operator
from rag.types import Chunk, Document

HEADINGS, BLOCKS, LINES, SENTENCES, WORDS, TOKENS = range(6)
_BLANK_LINES = re.compile(r"\n(?:[ \t]*\r?\n)+")


class RecursiveSplitter:
    """Splits spans of one text into spans of at most ``limit`` tokens (estimated from one tokenization)."""

    def __init__(self, text: str, tokenizer, markdown: bool = True):
        self.text = text
        self.tokenizer = tokenizer
        self.index = TokenIndex(text, tokenizer)
        self.bounds_array = self.index.char_bounds
        self.bounds = self.bounds_array.tolist()
        self.structure = parse_markdown(text) if markdown else MarkdownStructure()

    @staticmethod
    def _positions_between(positions: np.ndarray, start: int, end: int) -> list[int]:
        return positions[np.searchsorted(positions, start, "right"):np.searchsorted(positions, end, "left")].tolist()

    @cached_property
    def _space(self) -> np.ndarray:
        cp = codepoints(self.text)
        return _SPACE_TABLE[np.minimum(cp, 0x3000)] & (cp <= 0x3000)

    @cached_property
    def line_starts(self) -> np.ndarray:
        """Positions right after each line feed (the LINES cuts)."""
        return np.flatnonzero(codepoints(self.text) == 10) + 1

    @cached_property
    def word_starts(self) -> np.ndarray:
        """Ends of whitespace runs followed by a non-space character (the WORDS cuts)."""
        space = self._space
        return np.flatnonzero(space[:-1] & ~space[1:]) + 1

    def estimate(self, start: int, end: int) -> int:
        """Tokens of the whole-text tokenization that overlap ``[start, end)``."""
        return bisect.bisect_left(self.bounds, end) - bisect.bisect_right(self.bounds, start) + 1

    def cuts(self, start: int, end: int, level: int) -> list[int]:
        text, structure = self.text, self.structure
        if level == HEADINGS:
            lo = bisect.bisect_right(structure.heading_starts, start)
            hi = bisect.bisect_left(structure.heading_starts, end)
            return structure.heading_starts[lo:hi]
        if level == BLOCKS:
            cuts = [m.end() for m in _BLANK_LINES.finditer(text, start, end)]
            for a, b, _ in structure.blocks:
                if a < end and b > start:
                    cuts.extend((a, b))
            return sorted(c for c in set(cuts) if start < c < end and not structure.inside_block(c))
        if level == LINES:
            return self._positions_between(self.line_starts, start, end)
        if level == SENTENCES:
            return [s for s, _ in sentence_spans(text, start, end)[1:]]
        if level == WORDS:
            return self._positions_between(self.word_starts, start, end)
        lo = bisect.bisect_right(self.bounds, start)
        hi = bisect.bisect_left(self.bounds, end)
        return sorted(set(self.bounds[lo:hi]))

    def split(self, start: int, end: int, limit: int, level: int = HEADINGS) -> list[Span]:
        """Spans tiling ``[start, end)``, each estimated at most ``limit`` tokens."""
        if start >= end:
            return []
        if self.estimate(start, end) <= limit or level > TOKENS:
            return [(start, end)]
        cuts = self.cuts(start, end, level)
        if not cuts:
            return self.split(start, end, limit, level + 1)
        edges = np.array([start, *cuts, end], dtype=np.int64)
        estimates = (np.searchsorted(self.bounds_array, edges[1:], "left")
                     - np.searchsorted(self.bounds_array, edges[:-1], "right") + 1)
        starts, ends = edges[:-1].tolist(), edges[1:].tolist()
        oversized = np.flatnonzero(estimates > limit).tolist()
        if not oversized:
            return self.pack(list(zip(starts, ends)), limit)
        units: list[Span] = []
        previous = 0
        for i in oversized:  # whole runs of fitting units are copied at once
            units.extend(zip(starts[previous:i], ends[previous:i]))
            units.extend(self.split(starts[i], ends[i], limit, level + 1))
            previous = i + 1
        units.extend(zip(starts[previous:], ends[previous:]))
        return self.pack(units, limit)

    def pack(self, units: list[Span], limit: int) -> list[Span]:
        """Greedily merge consecutive units while the merged span stays within ``limit``; a markdown heading
        always starts a new chunk, so no chunk ends with the heading of the next section.

        The furthest end a chunk starting at ``s`` may reach is the boundary ``limit`` tokens after the token
        containing ``s``, so each chunk is found by two binary searches instead of a scan over its units."""
        bounds, headings = self.bounds, self.structure.heading_starts
        ends = [b for _, b in units]
        packed: list[Span] = []
        pos = 0
        while pos < len(units):
            start = units[pos][0]
            first_token = bisect.bisect_right(bounds, start) - 1
            cap = bounds[first_token + limit] if first_token + limit < len(bounds) else ends[-1]
            next_heading = bisect.bisect_right(headings, start)
            if next_heading < len(headings):
                cap = min(cap, headings[next_heading])
            last = max(pos, bisect.bisect_right(ends, cap, pos) - 1)
            packed.append((start, ends[last]))
            pos = last + 1
        return packed

    def split_exact(self, start: int, end: int, limit: int) -> tuple[list[Span], list[int], list[bool]]:
        """Like :meth:`split`, then measured on the final text; chunks over ``limit`` are re-split with a
        tighter estimate (and, as a last resort, at token boundaries)."""
        spans = self.split(start, end, limit)
        counts = self.index.counts(spans)
        if all(c <= limit for c in counts):
            return spans, counts, [False] * len(spans)
        out_spans, out_counts = [], []
        for (a, b), count in zip(spans, counts):
            pieces, piece_counts, budget = [(a, b)], [count], limit
            while max(piece_counts) > limit and budget > 1:
                budget = max(1, budget - (max(piece_counts) - limit))
                pieces = self.split(a, b, budget)
                piece_counts = count_tokens(self.tokenizer, [self.text[x:y] for x, y in pieces])
            out_spans.extend(pieces)
            out_counts.extend(piece_counts)
        return fit_spans(self.text, out_spans, self.tokenizer, limit, out_counts)

    def metadata(self, spans: list[Span]) -> list[dict[str, Any]]:
        structure = self.structure
        if not structure.heading_starts and not structure.blocks:
            return [{} for _ in spans]
        out = []
        for start, end in spans:
            meta: dict[str, Any] = {}
            text = self.text[start:end]
            first = start + (len(text) - len(text.lstrip()))
            path = structure.heading_path(first)
            if path:
                meta["heading_path"] = list(path)
            block = structure.block_at(first)
            if block is not None and block[2] == "table" and first > block[0]:
                header = structure.table_headers.get(block[0], "")
                if header and not text.lstrip().startswith(header.strip()):
                    meta["table_header"] = header
            out.append(meta)
        return out


@operator("recursive", kind="chunker")
class RecursiveChunker(Chunker):
    """Separator-hierarchy splitting (headings → blocks → lines → sentences → words → tokens), markdown-aware."""

    class Params(OperatorParams):
        chunk_size: int = Field(256, gt=0, description="maximum tokens per chunk (hard ceiling)")
        tokenizer: str = "cl100k_base"
        markdown: bool = Field(True, description="treat headings, code fences and tables as structure")

    def chunk(self, document: Document) -> list[Chunk]:
        text = document.text
        if not text:
            return []
        splitter = RecursiveSplitter(text, self.tokenizer_, self.params.markdown)
        spans, counts, oversize = splitter.split_exact(0, len(text), self.params.chunk_size)
        return build_chunks(document, spans, counts, oversize, splitter.metadata(spans))
