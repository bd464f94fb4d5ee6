"""Exact sizes for the separator-hierarchy splitter (:class:`chunkers._splitter.RecursiveSplitter`): its pieces,
packed by estimate, are measured on their own text, and a piece over the limit is split again with a budget
lowered by its excess, so the limit is a hard ceiling. The ``recursive`` chunker's boundary step.
"""
from __future__ import annotations

import numpy as np

from chunkers._batches import without_gaps
from chunkers._spans import Span, fit_spans
from chunkers._splitter import HEADINGS, RecursiveSplitter, edges_to_spans

#: How many chunks in a row, each packed full, a piece cut off the chunk before may be pushed through (each
#: re-split). Unbounded, a long paragraph split at words is re-split chunk by chunk to its end: on
#: chroma-chunking at 100 tokens (measured when its lower-case paragraphs had no sentence ends, before the
#: lower-cased-text sentence rule), fragments of at most 5 tokens 92 -> 2 but 2.2x the chunking time; through 4
#: chunks 92 -> 7 for 22% more time (2-4% at 200 tokens); through none (joining only a chunk with room) 92 -> 46
#: for 3% more.
CARRY_THROUGH = 4
#: Re-splits of a chunk a carried piece made too long, at most this share of a document's chunks (and at least
#: :data:`CARRY_RESPLITS_MIN`); then a piece joins the next chunk only where it fits. Each costs a split of its own:
#: in text whose every chunk counts a token or two over its estimate (160,000 characters of ZWJ emoji families
#: without a space: one pre-token for the whole text) they were 11 s of a run; on chroma-chunking they are under 1 %
#: of the chunks at every size, so the bound changes nothing there.
CARRY_RESPLIT_SHARE = 0.1
CARRY_RESPLITS_MIN = 16


def split_exact_spans(splitter: RecursiveSplitter, starts: np.ndarray, ends: np.ndarray,
                      limit: int) -> tuple[list[Span], list[int], list[bool]]:
    """The sorted, disjoint, non-empty spans split into pieces of at most ``limit`` tokens by their own count:
    ``(spans, counts, oversize)``. No piece crosses a span's edge, and the text between two spans belongs to no
    piece; a piece flagged oversize is a single token or character over the limit that could not be cut.

    The splitter packs by estimates, which a chunk's own text can exceed by a token or two (its first word
    tokenized without the space before it). Such a chunk is split again with a budget lowered by its excess,
    and its last piece (often a word or two) opens the next chunk instead of standing alone. If that makes
    the next chunk too long, it is split the same way and its own last piece carried on, through at most
    :data:`CARRY_THROUGH` chunks in a row (and for at most :data:`CARRY_RESPLIT_SHARE` of a document's chunks);
    then the piece stays a chunk of its own."""
    spans = without_gaps(edges_to_spans(splitter.split_edges(starts, ends, limit)), ends)
    counts = splitter.index.counts(spans)
    over = [i for i, count in enumerate(counts) if count > limit]
    if not over:  # (fit_spans still joins a whitespace-only piece to the one before)
        return fit_spans(splitter.text, spans, splitter.tokenizer, limit, counts, join_next=False)
    # every chunk over the limit re-split at once (used unless a carried piece joins it)
    refit = dict(zip(over, exact_pieces(splitter, [spans[i] for i in over], [counts[i] for i in over], limit)))
    range_starts = set(starts.tolist())

    def stops_carry(position: int) -> bool:  # a range's start, or a heading (or the whitespace before it)
        return position in range_starts or splitter.sections.opens_section(position)

    out_spans: list[Span] = []
    out_counts: list[int] = []
    carried: tuple[Span, int] | None = None
    pushed = 0  # chunks in a row that a carried piece made too long
    # re-splits left for such chunks, per range (a document of a batch: the same chunks as alone)
    ranges = np.searchsorted(starts, [a for a, _ in spans], "right") - 1
    resplits = [max(CARRY_RESPLITS_MIN, int(CARRY_RESPLIT_SHARE * n))
                for n in np.bincount(ranges, minlength=len(starts)).tolist()]
    for i, (span, count) in enumerate(zip(spans, counts)):
        pieces = refit.get(i)
        if carried is None:
            pushed = 0
        else:
            (carried_start, carried_end), carried_count = carried
            carried = None
            joins = carried_end == span[0] and not stops_carry(span[0])
            joined = splitter.index.counts([(carried_start, span[1])])[0] if joins else 0
            if joins and (joined <= limit or (pushed < CARRY_THROUGH and resplits[ranges[i]] > 0)):
                pushed = pushed + 1 if joined > limit else 0
                span, count = (carried_start, span[1]), joined
                pieces = None
                if count > limit:
                    resplits[ranges[i]] -= 1
                    pieces = exact_pieces(splitter, [span], [count], limit)[0]
            else:
                out_spans.append((carried_start, carried_end))
                out_counts.append(carried_count)
                pushed = 0
        if count <= limit:
            out_spans.append(span)
            out_counts.append(count)
            continue
        piece_spans, piece_counts = pieces
        out_spans.extend(piece_spans[:-1])
        out_counts.extend(piece_counts[:-1])
        carried = (piece_spans[-1], piece_counts[-1])
    if carried is not None:
        out_spans.append(carried[0])
        out_counts.append(carried[1])
    # pieces still over (the splitter could not cut them further) are cut in place, not joined across a heading
    return fit_spans(splitter.text, out_spans, splitter.tokenizer, limit, out_counts, join_next=False)


def exact_pieces(splitter: RecursiveSplitter, spans: list[Span], counts: list[int], limit: int,
                 level: int = HEADINGS) -> list[tuple[list[Span], list[int]]]:
    """The pieces (and their counts) of each sorted, disjoint span over ``limit`` by its exact count: split by
    estimate (from the splitter's ``level`` down), then with the budget lowered by the largest excess until every
    piece fits (or the budget reaches one token; fit_spans does the rest). The spans that need the same budget
    are split in one call."""
    pieces = [([span], [count]) for span, count in zip(spans, counts)]
    budgets = [limit] * len(spans)
    starts, ends = np.array([a for a, _ in spans]), np.array([b for _, b in spans])

    def split(group: list[int]) -> None:
        for budget in sorted({budgets[k] for k in group}):
            same = [k for k in group if budgets[k] == budget]
            edges = splitter.split_edges(starts[same], ends[same], budget, level)
            first = np.searchsorted(edges, starts[same]).tolist()
            last = np.searchsorted(edges, ends[same]).tolist()
            for k, a, b in zip(same, first, last):
                piece_spans = edges_to_spans(edges[a:b + 1])
                pieces[k] = (piece_spans, splitter.index.counts(piece_spans))

    # over by estimate too (a carried piece joined it): split as usual first
    split(np.flatnonzero(splitter.estimates(starts, ends) > limit).tolist())
    pending = [k for k in range(len(spans)) if max(pieces[k][1]) > limit and budgets[k] > 1]
    while pending:
        for k in pending:
            budgets[k] = max(1, budgets[k] - (max(pieces[k][1]) - limit))
        split(pending)
        pending = [k for k in pending if max(pieces[k][1]) > limit and budgets[k] > 1]
    return pieces
