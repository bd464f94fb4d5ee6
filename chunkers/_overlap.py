"""Overlap for the ``recursive`` chunker: chunks that meet end to start, each extended back into the one before by
at most a number of tokens, from a line, sentence or chunk start within that budget, else from a word start (never
inside a markdown heading or at a code fence's closing line).

The budget is taken in the splitter's estimates (one tokenization of the whole text) and then re-checked on the
repeated text's own count, so a repeated stretch is never over it.
"""
from __future__ import annotations

import bisect

import numpy as np

from chunkers._block_rules import before_last_line_break
from chunkers._sentences import sentence_cuts
from chunkers._spans import Span
from chunkers._splitter import RecursiveSplitter


def with_overlap(splitter: RecursiveSplitter, spans: list[Span], caps: list[int]) -> list[Span]:
    """``spans`` (consecutive ones meeting end to start) with every span ``i`` after the first of a run extended
    back into the one before by at most ``caps[i]`` tokens (of the repeated text's own count): from the
    earliest line, sentence or chunk start within that budget, else the earliest word start, else not at all.
    A span the next one, so extended, holds whole (a run's first, or one that could not be extended) is
    dropped, unless it starts at a markdown heading: then the overlap starts at a line, sentence or word after
    the span's start, so every section keeps the chunk that opens it."""
    # not across runs (the next document of joined ones); a chunk opening a markdown section is never held whole
    # (its heading path would be lost)
    headings = set(splitter.structure.heading_starts)
    pairs = [(i, lowest, start) for i, ((lowest, meets), (start, _)) in enumerate(zip(spans, spans[1:]), 1)
             if meets == start]
    whole = {i: lowest not in headings for i, lowest, _ in pairs}
    budgets = {i: caps[i] for i, _, _ in pairs}  # in estimated tokens, lowered where the repeated text counts more
    extended = {i: _overlap_start(splitter, lowest, start, budgets[i], whole[i]) if budgets[i] > 0 else start
                for i, lowest, start in pairs}
    # the budget is in estimated tokens; a repeated stretch starting at a word has lost the space before it
    # and may count one more: extend such spans less, with the budget lowered by the excess
    pending = [(i, start) for i, _, start in pairs if extended[i] < start]
    while pending:
        counts = splitter.index.counts([(extended[i], start) for i, start in pending])
        over = [(i, start, count) for (i, start), count in zip(pending, counts) if count > caps[i]]
        for i, start, count in over:
            budgets[i] -= count - caps[i]
            lowest = spans[i - 1][0]
            extended[i] = _overlap_start(splitter, lowest, start, budgets[i], whole[i]) if budgets[i] > 0 else start
        pending = [(i, start) for i, start, _ in over if extended[i] < start]
    out = spans[:1]
    for i, (start, end) in enumerate(spans[1:], 1):
        if i not in extended:
            out.append((start, end))
            continue
        lowest = spans[i - 1][0]
        extended_span = (extended[i], end)
        if extended_span[0] == lowest == out[-1][0]:
            out[-1] = extended_span  # only a run's first span keeps its start unextended, so only it is held whole
        else:
            out.append(extended_span)
    return out


def _overlap_start(splitter: RecursiveSplitter, lowest: int, start: int, overlap: int, whole: bool = True) -> int:
    """Where a span starting at ``start`` begins when extended back by at most ``overlap`` estimated tokens, not
    before ``lowest`` (the previous span's start; not at it either unless ``whole``): see :func:`with_overlap`."""
    bounds = splitter.bounds
    token = bisect.bisect_right(bounds, start) - 1
    earliest = max(lowest, bounds[max(token - overlap, 0)])
    while earliest < start and splitter.estimate(earliest, start) > overlap:  # a token cut by ``earliest``
        earliest = bounds[bisect.bisect_right(bounds, earliest)]
    if earliest == lowest:
        if whole:
            return lowest
        earliest += 1
    if earliest >= start:
        return start
    line_starts = splitter.line_starts
    lines = line_starts[np.searchsorted(line_starts, earliest):np.searchsorted(line_starts, start)]
    candidates = sorted(sentence_cuts(splitter.text, earliest, start) + lines.tolist())
    first = next((c for c in candidates if not _inside_markup(splitter, c)), None)
    if first is not None:
        return first
    word_starts = splitter.word_starts
    words = word_starts[np.searchsorted(word_starts, earliest):np.searchsorted(word_starts, start)].tolist()
    return next((w for w in words if not _inside_markup(splitter, w)), start)


def _inside_markup(splitter: RecursiveSplitter, position: int) -> bool:
    """Whether repeated text starting at ``position`` would open with a piece of markdown markup cut from what it
    belongs to: inside a heading (its title's end, a setext underline, the blank lines before its text) or at a
    code fence's closing line."""
    structure = splitter.structure
    if not structure.heading_starts and not structure.blocks:
        return False
    k = bisect.bisect_right(structure.heading_starts, position) - 1
    if k >= 0 and structure.heading_starts[k] < position < structure.heading_text_starts[k]:
        return True
    block = structure.block_at(position)
    if block is None or block[2] != "code" or block[0] >= position:
        return False
    # no line feed before the block's final line breaks (searched, not sliced: the fence may be megabytes long)
    text, end = splitter.text, block[1]
    while end > position and text[end - 1] in "\r\n":
        end -= 1
    return text.find("\n", position, end) < 0


def whole_blocks(splitter: RecursiveSplitter, spans: list[Span], counts: list[int],
                 limit: int) -> tuple[list[Span], list[int]]:
    """``spans`` (split for overlap, below ``limit``) with every code fence or table that fits ``limit`` whole,
    with a token to spare (without its last line break, if that line break can open the next span), but was cut
    across spans made one span again (a block of exactly ``limit`` tokens stays cut: counted across a junction,
    its text can be one token more), with the heading it opens the text of when both fit (else that heading
    would end the chunk before it, alone): the text of its first and last spans outside it stays a span of its
    own. Such a block then leaves less room for overlap (see :func:`with_overlap`)."""
    starts = [a for a, _ in spans]
    out_spans, out_counts = list(spans), list(counts)
    structure = splitter.structure
    for block_start, b, _ in reversed(structure.blocks):  # from the end: earlier indices stay valid
        a = block_start
        k = bisect.bisect_left(structure.heading_starts, a) - 1  # the heading before the block ...
        if k >= 0 and a <= structure.heading_text_starts[k] < b:  # ... whose text the block starts
            heading = structure.heading_starts[k]
            if splitter.index.counts([(heading, b)])[0] < limit:
                a = heading  # (so the block fits too)
        first = bisect.bisect_right(starts, a) - 1
        last = bisect.bisect_left(starts, b) - 1
        if first < 0 or first >= last or out_spans[first][1] <= a or out_spans[last][1] < b:
            continue  # within one span already, or not wholly in this text's spans
        if any(out_spans[k][1] != out_spans[k + 1][0] for k in range(first, last)):
            continue  # a gap between the spans (the edge of a joined document)
        # (one token of room: a junction can count one more; a block joined to its heading was counted with it)
        end = b  # or before the block's last line break, when only that leaves the token of room
        if a == block_start and splitter.index.counts([(a, b)])[0] >= limit:
            end = before_last_line_break(splitter, a, b)
            if end == b or splitter.index.counts([(a, end)])[0] >= limit:
                continue
        rest = out_spans[last][1]
        if end < rest and splitter.text[end:rest].isspace():
            # whitespace after the block (its last line break, blank lines) opens the next span if it fits there;
            # alone it would be a chunk that adds nothing to the one before
            joined = (end, out_spans[last + 1][1]) if last + 1 < len(out_spans) and out_spans[last + 1][0] == rest \
                else None
            count = splitter.index.counts([joined])[0] if joined else limit + 1
            if count <= limit:
                out_spans[last + 1], out_counts[last + 1], starts[last + 1] = joined, count, end
                rest = end
            elif end < b:
                continue  # the line break left out would be alone: the block stays cut
        pieces = [span for span in ((out_spans[first][0], a), (a, end), (end, rest)) if span[0] < span[1]]
        out_spans[first:last + 1] = pieces
        out_counts[first:last + 1] = splitter.index.counts(pieces)
        starts[first:last + 1] = [p[0] for p in pieces]
    return out_spans, out_counts
