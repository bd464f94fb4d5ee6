"""Markdown rules at the splitter's block level (:mod:`chunkers._splitter`): a heading joined to the first piece of
the block after it when that block is split anyway, and a code fence or table that fits a chunk whole kept whole
(with its last line break left to what follows it when only that makes it fit, and taken back, the block cut before
its last line, when nothing after it has room for the line break)."""
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
    own. A next code fence or table that fits alone keeps the cut (it stays whole, the heading alone; one that
    fits only without its last line break, when what follows is sure to take the line break), and so does a
    table whose head (header and delimiter rows) does not fit with the heading: joined, the header row would
    end the heading's chunk without its delimiter row."""
    unit_starts, unit_ends = edges[:-1], edges[1:]
    heading_units = np.flatnonzero(in_sorted(unit_starts[:-1], splitter.heading_array))
    cut = unit_ends[heading_units]
    inner = ~in_sorted(cut, starts) & ~in_sorted(cut, ends)  # a span's own edge is never removed
    heading_units, cut = heading_units[inner], cut[inner]
    next_starts, next_ends = unit_starts[heading_units + 1], unit_ends[heading_units + 1]
    oversized_next = splitter.estimates(next_starts, next_ends) > limit
    if oversized_next.any() and splitter.structure.blocks:
        blocks = np.flatnonzero(oversized_next)
        kept_whole = blocks_fitting(splitter, next_starts[blocks], next_ends[blocks], limit, ends) >= 0
        oversized_next[blocks[kept_whole]] = False
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

def without_blocks_that_fit(splitter: RecursiveSplitter, edges: np.ndarray, over: np.ndarray,
                             limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The edges and ``over`` (indices of units over the limit) without the units that are a whole code fence
    or table fitting ``limit`` by :func:`blocks_fitting`, and the edges added: one before the last line break of
    each block that fits only without it (:func:`without_lone_breaks` moves such an edge back when the line break
    is left a chunk of its own)."""
    ends = edges[over + 1]
    block_ends = blocks_fitting(splitter, edges[over], ends, limit)
    trimmed = block_ends[(block_ends >= 0) & (block_ends < ends)]
    still_over = over[block_ends < 0]
    if not len(trimmed):
        return edges, still_over, trimmed
    over_starts = edges[still_over]  # a unit keeps its start; later units shift by the edges added before
    edges = merge_sorted(edges, trimmed)
    return edges, np.searchsorted(edges, over_starts), trimmed

def without_lone_breaks(splitter: RecursiveSplitter, edges: np.ndarray, breaks: np.ndarray) -> np.ndarray:
    """The chunk edges with each of ``breaks`` (an edge before a code fence's or table's last line break, from
    :func:`without_blocks_that_fit`) that starts a chunk of whitespace alone moved back to the start of the block's
    last line: nothing after the line break had room for it, and the block with it would be over the limit."""
    at = np.searchsorted(edges, breaks)
    at = at[(at < len(edges) - 1) & (edges[np.minimum(at, len(edges) - 1)] == breaks)]
    lone = [k for k in at.tolist() if _NON_SPACE.search(splitter.text, int(edges[k]), int(edges[k + 1])) is None]
    if not lone:
        return edges
    edges = edges.copy()
    edges[lone] = splitter.line_starts[np.searchsorted(splitter.line_starts, edges[lone], "right") - 1]
    return np.unique(edges)  # a one-line block (its last line's start is its own): no edge inside it

def blocks_fitting(splitter: RecursiveSplitter, starts: np.ndarray, ends: np.ndarray, limit: int,
                   span_ends: np.ndarray | None = None) -> np.ndarray:
    """For each unit ``[starts[k], ends[k])`` over ``limit`` by estimate, where its chunk ends when it is a whole
    code fence or table kept whole: ``ends[k]`` when its own text fits ``limit``; before its last line break
    when it fits only without that line break; -1 for the other units. The estimate also counts a token
    straddling the block's end (its last line feed tokenized with the blank line after it, or its closing
    backticks with the text before), so a block that fits exactly would be split. With the ``span_ends`` (of the
    spans being split), a block fitting only without its last line break counts only when what follows is sure
    to take the line break (:func:`_breaks_have_company`), for a decision that is not undone when the break is
    left alone."""
    block_ends = np.full(len(starts), -1, dtype=np.int64)
    spans = list(zip(starts.tolist(), ends.tolist()))
    whole = [k for k, span in enumerate(spans) if span in splitter.block_spans]
    if not whole:
        return block_ends
    counts = splitter.index.counts([spans[k] for k in whole])
    for k, count in zip(whole, counts):
        if count <= limit:
            block_ends[k] = spans[k][1]
    trimmed = [(k, before_last_line_break(splitter, *spans[k])) for k, count in zip(whole, counts) if count > limit]
    trimmed = [(k, cut) for k, cut in trimmed if cut < spans[k][1]]
    if span_ends is not None and trimmed:
        company = _breaks_have_company(splitter, [(cut, spans[k][1]) for k, cut in trimmed], span_ends, limit)
        trimmed = [pair for pair, has_company in zip(trimmed, company) if has_company]
    if trimmed:
        for (k, cut), count in zip(trimmed, splitter.index.counts([(spans[k][0], cut) for k, cut in trimmed])):
            if count <= limit:
                block_ends[k] = cut
    return block_ends

def _breaks_have_company(splitter: RecursiveSplitter, breaks: list[tuple[int, int]], span_ends: np.ndarray,
                         limit: int) -> list[bool]:
    """For each line break ``[cut, position)`` ending a block, True when it will open the chunk of what follows
    it: the first visible character after ``position`` starts plain text in the same span, or a code fence or
    table that fits ``limit`` with the break (one split to the limit would leave it no room), or a heading whose
    section fits ``limit`` with the break (the line break opens the heading's chunk,
    :meth:`RecursiveSplitter._pack_edges`; a section split to the limit would leave it no room, and without
    ``join_split_pieces`` no chunk crosses into the next section). The fits are estimated together (a scalar
    :meth:`RecursiveSplitter.estimate` would build the token boundaries' list for a few calls)."""
    text, sections = splitter.text, splitter.sections
    company = [False] * len(breaks)
    to_fit: list[tuple[int, int, int]] = []  # (break, its cut, where what must fit with it ends)
    for i, (cut, position) in enumerate(breaks):
        end = int(span_ends[np.searchsorted(span_ends, position)])
        visible = _NON_SPACE.search(text, position, end)
        if visible is None:  # a heading at the span's end (a section's end)?
            if end < len(text) and splitter.join_split_pieces and sections.opens_section(position):
                to_fit.append((i, cut, sections.section_end(position)))
            continue
        block = splitter.structure.block_at(visible.start())
        if block is None:
            company[i] = True
        else:
            to_fit.append((i, cut, block[1]))
    if to_fit:
        indices, cuts, reaches = (np.asarray(column, dtype=np.int64) for column in zip(*to_fit))
        for i in indices[splitter.estimates(cuts, reaches) <= limit].tolist():
            company[i] = True
    return company

def before_last_line_break(splitter: RecursiveSplitter, start: int, end: int) -> int:
    """Where the block ``[start, end)``'s final line break (LF, CRLF or a lone CR) begins, or ``end`` if it has
    none."""
    text = splitter._line_feed_text
    if end - start < 2 or text[end - 1] != "\n":
        return end
    return end - 2 if text[end - 2] == "\r" and end - 2 > start else end - 1
