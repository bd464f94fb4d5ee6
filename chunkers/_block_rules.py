"""Markdown rules at the splitter's block level (:mod:`chunkers._splitter`): a heading joined to the first piece of
the block after it when that block is split anyway, and a code fence or table that fits a chunk whole kept whole
(with its last line break left to the text after it when only that makes it fit)."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from chunkers._sorted_positions import in_sorted, merge_sorted

if TYPE_CHECKING:
    from chunkers._splitter import RecursiveSplitter

_NON_SPACE = re.compile(r"\S")


def headings_attached(splitter: RecursiveSplitter, edges: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                      limit: int) -> np.ndarray:
    """Block edges without the cut after a heading whose next block does not fit with it: that block is split
    further down, its first piece joined to the heading, instead of the heading being left a chunk of its
    own. A next code fence or table that fits alone keeps the cut (it stays whole, the heading alone), and so
    does a table whose head (header and delimiter rows) does not fit with the heading: joined, the header row
    would end the heading's chunk without its delimiter row."""
    unit_starts, unit_ends = edges[:-1], edges[1:]
    heading_units = np.flatnonzero(in_sorted(unit_starts[:-1], splitter.heading_array))
    cut = unit_ends[heading_units]
    inner = ~in_sorted(cut, starts) & ~in_sorted(cut, ends)  # a span's own edge is never removed
    heading_units, cut = heading_units[inner], cut[inner]
    next_starts, next_ends = unit_starts[heading_units + 1], unit_ends[heading_units + 1]
    oversized_next = splitter.estimates(next_starts, next_ends) > limit
    if oversized_next.any() and splitter.structure.table_headers:
        heads = table_head_ends(splitter, next_starts)
        has_head = heads > 0
        oversized_next[has_head] &= splitter.estimates(unit_starts[heading_units][has_head], heads[has_head]) <= limit
    apart = splitter.estimates(unit_starts[heading_units], next_ends) > limit
    if splitter.structure.blocks:
        apart &= ~in_sorted(next_starts, splitter.block_start_array)
    return edges[~in_sorted(edges, cut[oversized_next | apart])]  # cut is sorted, as heading_units ascend

def table_head_ends(splitter: RecursiveSplitter, positions: np.ndarray) -> np.ndarray:
    """For each position that starts a table with a delimiter row, where that row's line ends (its line break
    included); 0 for the other positions."""
    heads = np.zeros(len(positions), dtype=np.int64)
    for k, start in enumerate(positions.tolist()):
        header = splitter.structure.table_headers.get(start)
        if header is not None and ("\n" in header or "\r" in header):
            after = np.searchsorted(splitter.line_starts, start + len(header), "right")
            heads[k] = splitter.line_starts[after] if after < len(splitter.line_starts) else len(splitter.text)
    return heads

def without_blocks_that_fit(splitter: RecursiveSplitter, edges: np.ndarray, over: np.ndarray, limit: int,
                             span_ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The edges and ``over`` (indices of units over the limit) without the units that are a whole code fence
    or table whose own text fits ``limit``. The estimate also counts a token straddling the block's end (its
    last line feed tokenized with the blank line after it, or its closing backticks with the text before),
    so a block that fits exactly would be split. A block that fits only without its last line break gets an
    edge before it: the line break goes with the blank line and the text after the block, when there is text
    to go with (:func:`_text_follows`; else the break would be a chunk of its own)."""
    blocks = {(a, b) for a, b, _ in splitter.structure.blocks}
    starts, ends = edges[:-1].tolist(), edges[1:].tolist()
    whole = [i for i in over.tolist() if (starts[i], ends[i]) in blocks]
    if not whole:
        return edges, over
    spans = [(starts[i], ends[i]) for i in whole]
    fits = {i for i, count in zip(whole, splitter.index.counts(spans)) if count <= limit}
    trimmed = [(i, starts[i], before_last_line_break(splitter, starts[i], ends[i])) for i in whole if i not in fits]
    trimmed = [(i, a, cut) for i, a, cut in trimmed if cut < ends[i] and _text_follows(splitter, ends[i], span_ends)]
    counts = splitter.index.counts([(a, cut) for _, a, cut in trimmed]) if trimmed else []
    new_edges = [cut for (i, _, cut), count in zip(trimmed, counts) if count <= limit]
    fits.update(i for (i, _, _), count in zip(trimmed, counts) if count <= limit)
    still_over = over[~np.isin(over, list(fits))]
    if not new_edges:
        return edges, still_over
    over_starts = edges[still_over]  # a unit keeps its start; later units shift by the edges added before
    edges = merge_sorted(edges, np.asarray(new_edges, dtype=np.int64))
    return edges, np.searchsorted(edges, over_starts)

def _text_follows(splitter: RecursiveSplitter, position: int, span_ends: np.ndarray) -> bool:
    """True when the first visible character after ``position`` starts plain text in the same span (not a
    code fence or table: split to the limit, its first piece would leave no room), or a heading: the line
    break opens the heading's chunk (:meth:`RecursiveSplitter._pack_edges`)."""
    end = int(span_ends[np.searchsorted(span_ends, position)])
    visible = _NON_SPACE.search(splitter.text, position, end)
    if visible is None:  # a heading at the span's end (a section's end)?
        return end < len(splitter.text) and splitter.sections.opens_section(position)
    start = visible.start()
    return splitter.structure.block_at(start) is None

def before_last_line_break(splitter: RecursiveSplitter, start: int, end: int) -> int:
    """Where the block ``[start, end)``'s final line break (LF, CRLF or a lone CR) begins, or ``end`` if it has
    none."""
    text = splitter._line_feed_text
    if end - start < 2 or text[end - 1] != "\n":
        return end
    return end - 2 if text[end - 2] == "\r" and end - 2 > start else end - 1
