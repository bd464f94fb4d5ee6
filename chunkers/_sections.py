"""What a chunk may do around markdown headings, and what it records of them: which headings are *bare*
(followed by nothing but blank lines before the next heading), where a chunk that packs whole sections may end,
and each chunk's ``heading_path`` and ``table_header`` metadata. Read from a parsed
:class:`chunkers._markdown.MarkdownStructure`; the splitter (:mod:`chunkers._splitter`) packs by these rules.
"""
from __future__ import annotations

import bisect
import re
from functools import cached_property
from typing import Any

import numpy as np

from chunkers._markdown import MarkdownStructure
from chunkers._sorted_positions import strictly_inside
from chunkers._spans import Span

_NON_SPACE = re.compile(r"\S")
_FIRST_LINE = re.compile(r"[^\r\n]*")  # a line, without its line break


class Sections:
    """The heading sections of one text and its parsed structure."""

    def __init__(self, text: str, structure: MarkdownStructure, document_starts: np.ndarray | None = None):
        """``document_starts``: where each document starts in a text joining several (a chunk's heading path
        holds only headings of its own document); None for one document."""
        self.text = text
        self.structure = structure
        self.document_starts = np.array([0]) if document_starts is None else document_starts

    @cached_property
    def text_starts(self) -> np.ndarray:
        """Where each heading's text begins (:attr:`MarkdownStructure.heading_text_starts`), as an array."""
        return np.asarray(self.structure.heading_text_starts, dtype=np.int64)

    @cached_property
    def lead_starts(self) -> np.ndarray:
        """Where the whitespace right before each heading begins (the heading's start when none precedes it): a
        chunk starting in that whitespace opens the heading's section, which would otherwise leave the whitespace
        a chunk of its own."""
        text, out = self.text, []
        for start in self.structure.heading_starts:
            lead = start
            while lead > 0 and text[lead - 1].isspace():
                lead -= 1
            out.append(lead)
        return np.asarray(out, dtype=np.int64)

    def opens_section(self, position: int) -> bool:
        """True when ``position`` is a heading's start or lies in the whitespace right before one."""
        j = bisect.bisect_left(self.structure.heading_starts, position)
        return j < len(self.structure.heading_starts) and self.lead_starts[j] <= position

    def section_end(self, position: int) -> int:
        """Where the section of the heading starting at or after ``position`` ends: at the next heading, or at the
        end of the heading's document."""
        headings = self.structure.heading_starts
        j = bisect.bisect_left(headings, position)
        following = self.document_starts[self.document_starts > headings[j]]
        end = int(following[0]) if len(following) else len(self.text)
        return min(headings[j + 1], end) if j + 1 < len(headings) else end

    def bare(self, i: int) -> bool:
        """True when heading ``i`` is followed only by blank lines up to the next heading."""
        return self.structure.heading_text_starts[i] >= self.structure.heading_starts[i + 1]

    @cached_property
    def past_bare(self) -> np.ndarray:
        """``[j]``: the first heading index ``j' >= j`` whose previous heading has text of its own (``j`` itself
        unless heading ``j − 1`` is bare). A chunk starting at heading ``i`` may run on to heading
        ``past_bare[i + 1]``: a parent heading directly followed by a sub-heading is not left a chunk of its
        own."""
        headings = self.structure.heading_starts
        past = np.arange(len(headings) + 1)
        for j in range(len(headings) - 1, 0, -1):
            if self.bare(j - 1):
                past[j] = past[j + 1]
        return past

    @cached_property
    def last_chunk_end(self) -> np.ndarray:
        """``[j]``: the last heading index ``j' <= j`` a chunk may end at (before it) when it packs whole sections:
        one whose previous heading is not bare, so the chunk does not end with a heading cut off from its text;
        −1 when there is none."""
        count = len(self.structure.heading_starts)
        endable = np.array([j == 0 or not self.bare(j - 1) for j in range(count)], dtype=bool)
        return np.maximum.accumulate(np.where(endable, np.arange(count), -1)) if count else np.empty(0, np.int64)

    @cached_property
    def _heading_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The heading starts, where each heading's line has its first visible character (its ``#`` or its
        title's first letter), and each heading path's depth."""
        structure, text = self.structure, self.text
        visible = [m.start() if (m := _NON_SPACE.search(text, start)) else len(text)
                   for start in structure.heading_starts]
        return (np.asarray(structure.heading_starts, dtype=np.int64), np.asarray(visible, dtype=np.int64),
                np.asarray([len(path) for path in structure.heading_paths], dtype=np.int64))

    def heading_paths(self, positions: np.ndarray, ends: np.ndarray) -> list[tuple[str, ...]]:
        """Per range ``[positions[k], ends[k])``: the heading path of a chunk starting at ``positions[k]`` (its first
        visible character of its own). A chunk starting at a heading (or in its indentation) takes the path of
        the last of the bare headings (:attr:`past_bare`) after it that the chunk holds, so a parent heading
        followed directly by its sub-heading has the sub-heading's path. Then the levels a heading inside the
        range closes are dropped (a sibling section packed after it closes its own level; by nesting depth, so
        two sections of the same title are not mistaken for one): the titles enclosing all of the range."""
        headings, visible, depths = self._heading_arrays
        if not len(headings):
            return [()] * len(positions)
        # the first heading of each position's document: headings before it belong to another document
        own = np.searchsorted(headings, self.document_starts[np.searchsorted(self.document_starts, positions,
                                                                             "right") - 1], "left")
        # the heading a chunk starts at: the one before it, when only its indentation lies between
        i = np.searchsorted(headings, positions, "right") - 1
        i[i < own] = -1
        at = np.maximum(i, 0)
        last = np.minimum(self.past_bare[at + 1] - 1, np.searchsorted(headings, ends, "left") - 1)
        starts_at = (i >= 0) & ((headings[at] == positions) | (visible[at] >= positions)) & (last >= i)
        positions = np.where(starts_at, headings[np.maximum(last, 0)], positions)
        # the path there, cut to the shallowest level a heading inside the range closes
        k = np.searchsorted(headings, positions, "right") - 1
        inside_end = np.searchsorted(headings, ends, "left")
        length = np.where(k >= own, depths[np.maximum(k, 0)], 0)
        crossed = np.flatnonzero(inside_end > k + 1)
        if len(crossed):
            # min of depths[k + 1 : inside_end] per crossed range (reduceat over index pairs; a sentinel ends the
            # array so that a range reaching the last heading has an end index)
            bounds = np.stack((k[crossed] + 1, inside_end[crossed]), axis=1).ravel()
            closed = np.minimum.reduceat(np.append(depths, 0), bounds)[::2] - 1
            length[crossed] = np.minimum(length[crossed], closed)
        paths = self.structure.heading_paths
        return [paths[j][:n] if n > 0 else () for j, n in zip(k.tolist(), length.tolist())]

    def metadata(self, spans: list[Span]) -> list[dict[str, Any]]:
        """Per span (in document order): ``heading_path``, the headings enclosing the text the chunk adds (past
        the overlap it repeats from the chunk before, unless that is all it has), and ``table_header``."""
        structure, text = self.structure, self.text
        if not structure.heading_starts and not structure.blocks:
            return [{} for _ in spans]
        firsts, own_firsts = [], []
        previous_end = 0
        for start, end in spans:
            found = _NON_SPACE.search(text, start, end)  # the span's first visible character
            first = found.start() if found else start  # whitespace only: it belongs where it starts
            own = _NON_SPACE.search(text, previous_end, end) if previous_end > start else found
            firsts.append(first)
            own_firsts.append(own.start() if own else first)
            previous_end = max(previous_end, end)
        ends = np.fromiter((end for _, end in spans), dtype=np.int64, count=len(spans))
        paths = self.heading_paths(np.asarray(own_firsts, dtype=np.int64), ends)
        out = [{"heading_path": list(path)} if path else {} for path in paths]
        for k in self._in_tables(firsts):
            first, end = firsts[k], int(ends[k])
            block = structure.block_at(first)
            header = structure.table_headers.get(block[0], "")
            # not in a piece of the header row itself (a header row too long for a chunk)
            in_header_row = first < block[0] + len(_FIRST_LINE.match(header).group())
            if header and not in_header_row and not text.startswith(header.strip(), first, end):
                out[k]["table_header"] = header
        return out

    def _in_tables(self, positions: list[int]) -> list[int]:
        """Indices of the ``positions`` inside a table after its first character."""
        tables = [(a, b) for a, b, kind in self.structure.blocks if kind == "table"]
        if not tables or not positions:
            return []
        table_starts, table_ends = (np.asarray(edge, dtype=np.int64) for edge in zip(*tables))
        return np.flatnonzero(strictly_inside(np.asarray(positions, dtype=np.int64), table_starts, table_ends)).tolist()
