"""The separator-hierarchy splitter behind the ``recursive`` chunker, and the boundary step of the ``sentence``,
``semantic``, ``perplexity``, ``llm`` and ``ast`` chunkers: character spans of one text split into pieces of at
most a token limit, with exact offsets.

Hierarchy: markdown headings → blocks (blank lines; code fences and tables are single blocks) → list items (in
text with markdown structure) → lines → sentences → words → tokens. A span that fits the limit is kept; otherwise it is cut at the highest level that has
a cut, oversized pieces recurse one level down, and adjacent pieces are packed greedily up to the limit.
Everything works on character spans of the original text (no ``find()``), and sizes are estimated from one
tokenization of the whole text; :func:`chunkers._exact_fit.split_exact_spans` re-measures every piece on its own
text and splits again any piece over the limit, so the limit is a hard ceiling.

The recursion runs one level at a time over all the spans that are still too big (numpy arrays of
positions, not one Python call per span), then packs bottom-up: Python only loops per chunk, never per word.
What a chunk may do around markdown headings, and the ``heading_path`` / ``table_header`` metadata it records,
come from :class:`chunkers._sections.Sections`; the block level's markdown rules (a heading kept with a block split
after it, fences and tables that fit kept whole) from :mod:`chunkers._block_rules`; where lines and words start from
:mod:`chunkers._text_scans`.
"""
from __future__ import annotations

import bisect
import re
from functools import cached_property
from typing import Sequence

import numpy as np

from chunkers._batches import without_gaps
from chunkers._block_rules import headings_attached, without_blocks_that_fit, without_lone_breaks
from chunkers._markdown import (MarkdownStructure, joined_structure, list_item_starts, list_item_starts_inside,
                               parse_markdown, with_line_feeds)
from chunkers._sections import Sections
from chunkers._sentences import sentence_cuts
from chunkers._sorted_positions import in_sorted, inside, merge_sorted, positions_inside, strictly_inside
from chunkers._spans import Span
from chunkers._start_excess import START_EXCESS_BOUND, measures_start_excess, start_corrected_end
from chunkers._text_scans import SCAN_PIECE, line_starts_of, space_of, word_starts_from_space, word_starts_of
from chunkers._token_index import TokenIndex, codepoints

HEADINGS, BLOCKS, ITEMS, LINES, SENTENCES, WORDS, TOKENS = range(7)
_BLANK_LINES = re.compile(r"\n(?:[ \t]*+\r?\n)++")  # possessive: the same runs, 25 % faster
_NON_SPACE = re.compile(r"\S")


def edges_to_spans(edges: np.ndarray) -> list[Span]:
    """The spans between consecutive edges."""
    points = edges.tolist()
    return list(zip(points[:-1], points[1:]))


class RecursiveSplitter:
    """Splits spans of one text into spans of at most ``limit`` tokens (estimated from one tokenization).

    A span's estimate is the number of document tokens overlapping it. Splits are returned as *edges*: the
    sorted boundaries of consecutive pieces, first and last being the span's own start and end."""

    def __init__(self, text: str, tokenizer, markdown: bool = True, index: TokenIndex | None = None,
                 pack_sections: bool = False, join_split_pieces: bool = True,
                 documents: tuple[np.ndarray, np.ndarray, list[MarkdownStructure]] | None = None):
        """``documents``: for a text joining several documents, their ``(starts, ends, structures)``, each structure
        parsed on its own (empty for a document not read as markdown); ``markdown`` is then not used."""
        self.text = text
        self.pack_sections = pack_sections
        self.join_split_pieces = join_split_pieces
        self.tokenizer = tokenizer
        self.index = TokenIndex(text, tokenizer) if index is None else index
        self.bounds_array = self.index.char_bounds
        if documents is None:
            self.structure = parse_markdown(text) if markdown else MarkdownStructure()
            starts, ends, structures = np.array([0]), np.array([len(text)]), [self.structure]
        else:
            starts, ends, structures = documents
            self.structure = joined_structure(structures, starts.tolist())
        # the ranges with markdown structure: list items are cut only there, so that a document chunks alike
        # alone and joined with others
        structured = np.array([bool(s.heading_starts or s.blocks) for s in structures], dtype=bool)
        self.structured_ranges = (starts[structured], ends[structured])
        self.heading_array = np.asarray(self.structure.heading_starts, dtype=np.int64)
        self.sections = Sections(text, self.structure, starts)

    @cached_property
    def block_start_array(self) -> np.ndarray:
        """Where each code fence or table starts, sorted."""
        return np.asarray(self.structure._block_starts, dtype=np.int64)

    @cached_property
    def block_end_array(self) -> np.ndarray:
        """Where each code fence or table ends, in the order of :attr:`block_start_array`."""
        return np.asarray([end for _, end, _ in self.structure.blocks], dtype=np.int64)

    @cached_property
    def block_spans(self) -> set[tuple[int, int]]:
        """The ``(start, end)`` of each code fence and table."""
        return {(start, end) for start, end, _ in self.structure.blocks}

    @cached_property
    def bounds(self) -> list[int]:
        """Token boundaries as a list, for scalar :meth:`estimate` calls (bisect beats numpy on scalars)."""
        return self.bounds_array.tolist()

    @cached_property
    def _codepoints(self) -> np.ndarray | None:
        """The text's code points, kept for the line and word scans when it has at most :data:`SCAN_PIECE`
        characters (a longer text is scanned a piece at a time: not 4 bytes a character for all of it)."""
        return codepoints(self.text) if len(self.text) <= SCAN_PIECE else None

    @cached_property
    def line_starts(self) -> np.ndarray:
        """Positions right after each line break (the LINES cuts): a line feed, or a lone CR (old Mac line ends;
        the CR of a CRLF breaks no line of its own)."""
        return line_starts_of(self.text, self._codepoints)

    @cached_property
    def item_starts(self) -> np.ndarray:
        """The ITEMS cuts: where list items start (their line's start), outside code fences; none in text without
        markdown structure (so a document chunks alike alone and batched with others, see ``chunk_documents``)."""
        if not len(self.structured_ranges[0]):
            return np.empty(0, dtype=np.int64)
        return self._items_kept(np.asarray(list_item_starts(self.text), dtype=np.int64))

    def _items_kept(self, starts: np.ndarray) -> np.ndarray:
        """The list-item ``starts`` outside code fences and tables, in documents with markdown structure."""
        keep = inside(starts, *self.structured_ranges)
        if self.structure.blocks:
            keep &= ~inside(starts, self.block_start_array, self.block_end_array)
        return starts[keep]

    @cached_property
    def word_starts(self) -> np.ndarray:
        """The WORDS cuts (:func:`word_starts_of` the whole text)."""
        return word_starts_from_space(space_of(self.text, self._codepoints))

    @cached_property
    def token_starts(self) -> np.ndarray:
        """Distinct token boundaries (the TOKENS cuts; tokens inside one character share a boundary)."""
        bounds = self.bounds_array
        return bounds[np.flatnonzero(np.diff(bounds, prepend=-1))]

    def estimate(self, start: int, end: int) -> int:
        """Tokens of the whole-text tokenization that overlap ``[start, end)``."""
        return bisect.bisect_left(self.bounds, end) - bisect.bisect_right(self.bounds, start) + 1

    def estimates(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """:meth:`estimate` of many spans at once."""
        return np.searchsorted(self.bounds_array, ends, "left") - np.searchsorted(self.bounds_array, starts, "right") + 1

    @cached_property
    def _line_feed_text(self) -> str:
        """The text with every lone CR (an old Mac line end) read as a line feed, at the same positions."""
        return with_line_feeds(self.text)

    def blank_line_ends(self, start: int, end: int) -> list[int]:
        """Where each run of blank lines inside ``[start, end)`` ends (the next paragraph's start)."""
        return [m.end() for m in _BLANK_LINES.finditer(self._line_feed_text, start, end)]

    def _block_cuts(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """The BLOCKS cuts: blank-line ends and code fence / table edges strictly inside each of the sorted,
        disjoint spans, none strictly inside a block. Blank lines are scanned per span: a blank-line run cut by
        the span's edge matches differently than in the whole text."""
        cuts = np.asarray([c for a, b in zip(starts.tolist(), ends.tolist()) for c in self.blank_line_ends(a, b)
                           if c < b], dtype=np.int64)
        if not self.structure.blocks:
            return cuts
        block_starts, block_ends = self.block_start_array, self.block_end_array
        cuts = merge_sorted(cuts, positions_inside(merge_sorted(block_starts, block_ends), starts, ends))
        return cuts[~strictly_inside(cuts, block_starts, block_ends)]

    def cuts_in(self, starts: np.ndarray, ends: np.ndarray, level: int) -> np.ndarray:
        """The ``level`` cuts strictly inside each of the sorted, disjoint spans, as one sorted array. Below the
        blocks, down to sentences, none between a heading and its text: a heading joined to a block too big to
        follow it whole (:func:`chunkers._block_rules.headings_attached`) stays with the block's first piece
        instead of being packed apart from it, alone."""
        cuts = self._cuts_in(starts, ends, level)
        if ITEMS <= level <= SENTENCES and len(self.heading_array) and len(cuts):
            heading = np.searchsorted(self.heading_array, cuts, "left") - 1
            text_starts = self.sections.text_starts
            cuts = cuts[(heading < 0) | (cuts > text_starts[np.maximum(heading, 0)])]
        return cuts

    def _cuts_in(self, starts: np.ndarray, ends: np.ndarray, level: int) -> np.ndarray:
        if level == HEADINGS:
            return positions_inside(self.heading_array, starts, ends)
        if level == ITEMS:
            return self._item_starts_inside(starts, ends)
        if level == LINES:
            return positions_inside(self.line_starts, starts, ends)
        if level == WORDS:
            return self._word_starts_inside(starts, ends)
        if level == TOKENS:
            return positions_inside(self.token_starts, starts, ends)
        if level == BLOCKS:
            return self._block_cuts(starts, ends)
        # Sentences depend on where the scan starts and stops, so each span is scanned on its own.
        cuts: list[int] = []
        for a, b in zip(starts.tolist(), ends.tolist()):
            cuts.extend(sentence_cuts(self.text, a, b))
        return np.asarray(cuts, dtype=np.int64)

    def _item_starts_inside(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """``positions_inside(self.item_starts, starts, ends)``, scanning only the spans when they are less than
        half the text (a markdown document's spans over the limit at the item level: a fifth of node's API docs)."""
        if "item_starts" in self.__dict__ or 2 * int((ends - starts).sum()) > len(self.text) \
                or not len(self.structured_ranges[0]):
            return positions_inside(self.item_starts, starts, ends)
        text = self._line_feed_text
        return self._items_kept(np.asarray([s for a, b in zip(starts.tolist(), ends.tolist())
                                            for s in list_item_starts_inside(text, a, b)], dtype=np.int64))

    def _word_starts_inside(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """``positions_inside(self.word_starts, starts, ends)``, scanning only the spans when they are a small part
        of the text (usually a few sentences too long for a chunk): the whole text's word starts cost ~5 % of a
        recursive or sentence chunking run."""
        if "word_starts" in self.__dict__ or len(starts) * 1000 + int((ends - starts).sum()) > len(self.text):
            return positions_inside(self.word_starts, starts, ends)
        pieces = [np.empty(0, dtype=np.int64)]
        for a, b in zip(starts.tolist(), ends.tolist()):
            pieces.append(word_starts_of(codepoints(self.text[a:b])) + a)
        return np.concatenate(pieces)

    def split_edges(self, starts: np.ndarray, ends: np.ndarray, limit: int, level: int = HEADINGS) -> np.ndarray:
        """Edges of the pieces that the sorted, disjoint, non-empty spans are split into, each piece estimated at
        most ``limit`` tokens (unless it is a single token), every span's start and end included.

        Top-down, level by level: a span over the limit (or, without ``pack_sections``, holding a markdown
        heading) is cut at that level's cuts (or passed down whole when it has none), and its units still over
        the limit form the next level's spans. Then bottom-up, each level packs its spans' units, an oversized
        unit standing for the pieces packed below it (which may share chunks with the units around it, unless
        ``join_split_pieces`` is off: :meth:`_kept`)."""
        oversized = self.estimates(starts, ends) > limit
        breaks = np.empty(0, dtype=np.int64)  # edges before a block's last line break (without_blocks_that_fit)
        if level == HEADINGS and not self.pack_sections and len(self.heading_array):
            # every heading starts a chunk: a span holding one is cut at its headings even when it fits whole
            oversized |= np.searchsorted(self.heading_array, ends, "left") > \
                np.searchsorted(self.heading_array, starts, "right")
        spans, levels = (starts[oversized], ends[oversized]), []
        while len(spans[0]) and level <= TOKENS:
            span_starts, span_ends = spans
            edges = merge_sorted(np.concatenate(spans), self.cuts_in(span_starts, span_ends, level))
            if level == BLOCKS and len(self.heading_array):
                edges = headings_attached(self, edges, span_starts, span_ends, limit)
            unit_starts, unit_ends = edges[:-1], edges[1:]
            # Every token has at least one of a character's (at most 4) UTF-8 bytes, so a unit of c characters
            # overlaps at most 4c + 1 tokens: only longer units can be over the limit (most words are skipped).
            over = np.flatnonzero(4 * (unit_ends - unit_starts) + 1 > limit)
            over = over[inside(unit_starts[over], span_starts, span_ends)]
            over = over[self.estimates(unit_starts[over], unit_ends[over]) > limit]
            if level == BLOCKS and len(over) and self.structure.blocks:
                edges, over, breaks = without_blocks_that_fit(self, edges, over, limit)
                unit_starts, unit_ends = edges[:-1], edges[1:]
            if len(over):
                edges, over = self._leading_whitespace_joined(edges, over, span_starts)
                unit_starts, unit_ends = edges[:-1], edges[1:]
            spans = (unit_starts[over], unit_ends[over])
            levels.append((span_starts, span_ends, edges, None if self.join_split_pieces else self._kept(*spans)))
            level += 1
        packed = np.concatenate(spans)  # spans past the TOKENS level stay whole
        kept = None  # the chunk edges every level keeps: those of the units split at it or below
        for span_starts, span_ends, edges, kept_here in reversed(levels):
            kept = kept_here if kept is None else merge_sorted(kept, kept_here)
            packed = self._pack_edges(merge_sorted(edges, packed), span_starts, span_ends, limit, kept)
        packed = merge_sorted(packed, np.concatenate((starts, ends)))
        return without_lone_breaks(self, packed, breaks) if len(breaks) else packed

    def _leading_whitespace_joined(self, edges: np.ndarray, over: np.ndarray,
                                   span_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The edges and ``over`` (indices of units over the limit) with the whitespace that starts a span (blank
        lines or spaces at a text's start, or the indentation of a line too long for a chunk) joined to the unit
        after it when that unit is over the limit: it opens that unit's first piece. Alone, it would be packed on
        its own, a chunk without content, as nothing before it in the span can take it. Not before a heading (it
        opens the heading's chunk, :meth:`_pack_edges`)."""
        first = span_starts[np.searchsorted(span_starts, edges[over], "right") - 1]
        candidates = np.flatnonzero((first < edges[over]) & ~in_sorted(edges[over], self.heading_array))
        joined = [(int(first[i]), int(over[i])) for i in candidates.tolist()
                  if _NON_SPACE.search(self.text, int(first[i]), int(edges[over[i]])) is None]
        if not joined:
            return edges, over
        over_starts = edges[over]
        dropped = []
        for span_start, k in joined:
            over_starts[over == k] = span_start
            dropped.extend(range(int(np.searchsorted(edges, span_start, "right")), k + 1))
        edges = np.delete(edges, dropped)
        return edges, np.searchsorted(edges, over_starts)

    def _kept(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Without ``join_split_pieces``: the chunk edges kept around the units ``[starts[k], ends[k])`` split
        further, so that no chunk holds text of such a unit and text around it. At a unit's end the edge is kept at
        the next visible character: the whitespace after the unit (the blank line after a paragraph) stays with its
        last piece instead of becoming a chunk without content."""
        text = self.text
        content_after = [m.start() if (m := _NON_SPACE.search(text, end)) else len(text) for end in ends.tolist()]
        return merge_sorted(starts, np.asarray(content_after, dtype=np.int64))

    def _pack_edges(self, edges: np.ndarray, starts: np.ndarray, ends: np.ndarray, limit: int,
                    kept: np.ndarray | None = None) -> np.ndarray:
        """Greedy packing of the units between consecutive ``edges`` inside each span ``[starts[k], ends[k])``:
        a chunk grows while it stays within ``limit`` tokens, and a markdown heading starts a new chunk, so no
        chunk ends with the heading of the next section — except the headings right after a bare one (a parent
        heading directly followed by a sub-heading), which join its chunk when the chunk reaches their text, so
        neither is left alone. With ``pack_sections``, whole sections after a heading join the chunk too while
        it stays within the limit: a chunk that crosses a heading ends at a heading (or the span's end), so it
        never stops inside a section it entered. Returns the chunk edges.

        The furthest a chunk starting at edge ``e`` may reach is its cap: the boundary ``limit`` tokens after the
        token containing ``e``, or the next heading, or the span's end. The chunk ends at the last edge within
        the cap (at least the next edge), computed for every edge at once; Python then follows these jumps
        once per chunk. ``kept``: sorted edges every chunk ends at (none crosses them)."""
        bounds, headings = self.bounds_array, self.heading_array
        limit = min(limit, len(bounds))  # no int64 overflow below for a huge chunk_size
        n = len(edges)
        k = np.maximum(np.searchsorted(starts, edges, "right") - 1, 0)
        span_end = ends[k]
        inside = (edges >= starts[k]) & (edges < span_end)
        cap_token = np.searchsorted(bounds, edges, "right") - 1 + limit
        cap = np.minimum(bounds[np.minimum(cap_token, len(bounds) - 1)], span_end)
        cap[cap_token >= len(bounds)] = span_end[cap_token >= len(bounds)]
        if kept is not None and len(kept):
            next_kept = np.searchsorted(kept, edges, "right")
            has_next = next_kept < len(kept)
            cap[has_next] = np.minimum(cap[has_next], kept[next_kept[has_next]])
        following_edge = np.arange(1, n + 1)

        def jumps(caps: np.ndarray, at: np.ndarray | slice = slice(None)) -> np.ndarray:
            last_within = np.maximum(np.searchsorted(edges, caps, "right") - 1, following_edge[at])
            return np.where(inside[at], last_within, following_edge[at])

        if not len(headings):
            jump = jumps(cap)
        else:
            following = np.searchsorted(headings, edges, "right")
            # an edge in the whitespace right before a heading opens that heading's chunk (alone, the whitespace
            # would be a chunk without content): the heading after it is the first that caps the chunk
            leading = np.flatnonzero(following < len(headings))
            leading = leading[edges[leading] >= self.sections.lead_starts[following[leading]]]
            following[leading] += 1
            opens = np.zeros(n, dtype=bool)
            opens[leading] = True
            has_heading = following < len(headings)
            strict = cap.copy()
            strict[has_heading] = np.minimum(cap[has_heading], headings[following[has_heading]])
            if self.pack_sections:
                # the last heading within the cap, when there is one after the edge: whole sections up to it fit
                within = np.searchsorted(headings, cap, "right") - 1
                last = np.where(within >= 0, self.sections.last_chunk_end[np.maximum(within, 0)], -1)
                crosses = last >= following
                strict[crosses] = headings[last[crosses]]
                rest_fits = cap >= span_end
                strict[rest_fits] = span_end[rest_fits]
            jump = jumps(strict)
            # a chunk starting at a bare heading may take the headings right after it, if it reaches their text
            past = self.sections.past_bare[following]
            at_bare = np.flatnonzero((past > following) & (following > 0))
            at_bare = at_bare[(headings[following[at_bare] - 1] == edges[at_bare]) | opens[at_bare]]
            if len(at_bare):
                past = past[at_bare]
                relaxed = cap[at_bare]
                more = past < len(headings)
                relaxed[more] = np.minimum(relaxed[more], headings[past[more]])
                relaxed_jump = jumps(relaxed, at_bare)
                text_start = self.sections.text_starts[past - 1]
                takes_text = edges[np.minimum(relaxed_jump, n - 1)] > text_start
                jump[at_bare[takes_text]] = np.maximum(jump[at_bare[takes_text]], relaxed_jump[takes_text])
                # a run of bare headings too long to reach its text in one chunk: as many of them as fit, none
                # taking the heading that has the text away from it
                stuck = at_bare[~takes_text]
                if len(stuck):
                    bare_cap = np.minimum(cap[stuck], headings[past[~takes_text] - 1])
                    jump[stuck] = np.maximum(jump[stuck], jumps(bare_cap, stuck))
        # the room each chunk has left by estimate; one with little room may be over on its own text, its first
        # word counting more there than by estimate (:func:`chunkers._start_excess.start_corrected_end`;
        # the others are not looked at)
        room = limit - self.estimates(edges, edges[np.minimum(jump, n - 1)])
        tight = inside & (jump > following_edge) & (room < START_EXCESS_BOUND) & measures_start_excess(self)
        chunk_edges = [0]
        i = 0
        while i < n - 1:
            j = jump.item(i)  # far fewer chunks than edges: no list of all the jumps
            if tight.item(i):
                j = start_corrected_end(self, edges, i, j, cap_token.item(i), cap.item(i), limit, room.item(i))
            chunk_edges.append(j)
            i = j
        return edges[chunk_edges]

    def split(self, start: int, end: int, limit: int, level: int = HEADINGS) -> list[Span]:
        """Spans tiling ``[start, end)``, each estimated at most ``limit`` tokens."""
        if start >= end:
            return []
        return edges_to_spans(self.split_edges(np.array([start]), np.array([end]), limit, level))

    def pack(self, units: Sequence[Span], limit: int, starts: np.ndarray | None = None,
             ends: np.ndarray | None = None) -> list[Span]:
        """Consecutive units (tiling a range, or each of the sorted ranges ``[starts[k], ends[k])`` of joined
        documents) merged greedily while the merged span stays within ``limit``, never across a range's edge."""
        if not units:
            return []
        edges = np.array([units[0][0], *(b for _, b in units)], dtype=np.int64)
        if starts is None:
            return edges_to_spans(self._pack_edges(edges, edges[:1], edges[-1:], limit))
        edges = merge_sorted(edges, np.concatenate((starts, ends)))
        return without_gaps(edges_to_spans(self._pack_edges(edges, starts, ends, limit)), ends)
