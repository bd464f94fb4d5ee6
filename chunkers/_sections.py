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
from chunkers._spans import Span

_NON_SPACE = re.compile(r"\S")
_FIRST_LINE = re.compile(r"[^\r\n]*")  # a line, without its line break


class Sections:
    """The heading sections of one text and its parsed structure."""

    def __init__(self, text: str, structure: MarkdownStructure):
        self.text = text
        self.structure = structure

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

    def path_position(self, position: int, end: int) -> int:
        """The last of the bare headings (:attr:`past_bare`) starting a chunk at ``position`` and inside it, whose
        heading path is the chunk's (or ``position`` when no heading starts there)."""
        headings = self.structure.heading_starts
        i = bisect.bisect_right(headings, position) - 1  # a heading's start is its line's, indentation included
        # only whitespace between (its indentation)? Searched, not sliced: the last heading before a chunk may be
        # megabytes back (a slice per chunk made a long text after one heading quadratic)
        if i < 0 or headings[i] != position and _NON_SPACE.search(self.text, headings[i], position) is not None:
            return position
        last = min(int(self.past_bare[i + 1]) - 1, bisect.bisect_left(headings, end) - 1)
        return headings[last] if last >= i else position  # no heading inside the chunk starts there

    def enclosing_path(self, position: int, end: int) -> tuple[str, ...]:
        """The titles of the headings enclosing all of ``[position, end)``: the path at ``position`` less the
        levels that a heading inside the range closes (a sibling section packed after it closes its own level;
        by nesting depth, so two sections of the same title are not mistaken for one)."""
        structure = self.structure
        path = structure.heading_path(position)
        first = bisect.bisect_right(structure.heading_starts, position)
        for j in range(first, bisect.bisect_left(structure.heading_starts, end)):
            path = path[:len(structure.heading_paths[j]) - 1]
        return path

    def metadata(self, spans: list[Span]) -> list[dict[str, Any]]:
        """Per span (in document order): ``heading_path``, the headings enclosing the text the chunk adds (past
        the overlap it repeats from the chunk before, unless that is all it has), and ``table_header``."""
        structure, text = self.structure, self.text
        if not structure.heading_starts and not structure.blocks:
            return [{} for _ in spans]
        out = []
        previous_end = 0
        for start, end in spans:
            meta: dict[str, Any] = {}
            found = _NON_SPACE.search(text, start, end)  # the span's first visible character
            first = found.start() if found else start  # whitespace only: it belongs where it starts
            own = _NON_SPACE.search(text, max(start, previous_end), end) if previous_end > start else found
            own_first = own.start() if own else first
            previous_end = max(previous_end, end)
            path = self.enclosing_path(self.path_position(own_first, end), end)
            if path:
                meta["heading_path"] = list(path)
            block = structure.block_at(first)
            if block is not None and block[2] == "table" and first > block[0]:
                header = structure.table_headers.get(block[0], "")
                # not in a piece of the header row itself (a header row too long for a chunk)
                in_header_row = first < block[0] + len(_FIRST_LINE.match(header).group())
                if header and not in_header_row and not text.startswith(header.strip(), first, end):
                    meta["table_header"] = header
            out.append(meta)
        return out
