"""Sentence packing: offline segmentation, greedy packing up to ``chunk_size`` tokens, overlap in sentences.

YAML::

    index:
      chunker: {op: sentence, chunk_size: 128, overlap_sentences: 1}

Sentences come from :func:`chunkers._sentences.sentence_spans` (rules, no model download; a hard-wrapped
sentence runs over its line breaks). A sentence longer than the limit is split at lines, then words, then tokens
(the recursive splitter's lower levels). Sizes are re-measured on the final chunk text; ``chunk_size`` is a hard
ceiling.

Paragraphs (text between blank lines) that fit in one chunk are kept whole (``keep_paragraphs``): a chunk that
has no room for the whole next paragraph closes before it rather than cutting it. A paragraph over the limit
is packed sentence by sentence, with its neighbours. With ``overlap_sentences``, a chunk repeats the last
sentences of the one before; across a paragraph break only whole paragraphs are repeated, never the tail of a
paragraph that ended before the chunk's new text.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from pydantic import Field

from chunkers._batches import chunk_in_batches, chunks_of_joined, joined_documents, per_document, without_gaps
from chunkers._exact_fit import exact_pieces
from chunkers._sentences import sentence_cuts
from chunkers._spans import Span, build_chunks, drop_chunks_held_by_another, fit_spans
from chunkers._sorted_positions import merge_sorted
from chunkers._splitter import BLOCKS, LINES, WORDS, RecursiveSplitter, edges_to_spans
from chunkers.base import Chunker, TokenizerName, tokenizer_field
from rag.registry import OperatorParams, operator
from rag.types import Chunk, Document


def sentence_units(splitter: RecursiveSplitter, limit: int, starts: np.ndarray | None = None,
                   ends: np.ndarray | None = None, paragraph_starts: np.ndarray | None = None) -> list[Span]:
    """Sentence spans tiling the text (or each of the ranges ``[starts[k], ends[k])`` of joined documents), with
    any sentence over ``limit`` split at lines, words or tokens; a sentence also ends at any of ``paragraph_starts``."""
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
    unit_starts, unit_ends = np.array(unit_starts), np.array(unit_ends)
    if paragraph_starts is not None and len(paragraph_starts):
        edges = merge_sorted(np.concatenate((unit_starts, unit_ends)), paragraph_starts)
        in_documents = ~np.isin(edges[:-1], ends)  # not the separator between two joined documents
        unit_starts, unit_ends = edges[:-1][in_documents], edges[1:][in_documents]
    unit_starts, unit_ends = _trailing_whitespace_apart(splitter, unit_starts, unit_ends, limit)
    # only the sentences over by their own count are split: the estimate counts a token straddling a sentence's
    # start (" (" of "(x)" after the previous sentence's space) and can be one over
    over = np.flatnonzero(splitter.estimates(unit_starts, unit_ends) > limit)
    if len(over):
        counts = splitter.index.counts(list(zip(unit_starts[over].tolist(), unit_ends[over].tolist())))
        over = over[np.asarray(counts) > limit]
        unit_starts, unit_ends, over = _whitespace_joined_to_the_split_sentence(splitter, unit_starts, unit_ends, over,
                                                                                limit, paragraph_starts, starts)
    edges = merge_sorted(unit_starts, unit_ends)
    if len(over):
        edges = merge_sorted(edges, splitter.split_edges(unit_starts[over], unit_ends[over], limit, LINES))
    return without_gaps(_pieces_that_fit(splitter, edges_to_spans(edges), unit_starts, unit_ends, limit), ends)


def _ends_without_whitespace(text: str, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Where the text of each span ``[starts[k], ends[k])`` ends without the whitespace after it."""
    return np.fromiter((a + len(text[a:b].rstrip()) for a, b in zip(starts.tolist(), ends.tolist())),
                       np.int64, len(starts))


def _trailing_whitespace_apart(splitter: RecursiveSplitter, unit_starts: np.ndarray, unit_ends: np.ndarray,
                               limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The units, with the trailing whitespace of each one over ``limit`` only with it made a unit of its own: the
    sentence is then not cut at a word for its whitespace's sake (its last word would open the next chunk), and the
    whitespace opens the next chunk instead."""
    over = np.flatnonzero(splitter.estimates(unit_starts, unit_ends) > limit)
    if not len(over):
        return unit_starts, unit_ends
    starts, ends = unit_starts[over], unit_ends[over]
    text_ends = _ends_without_whitespace(splitter.text, starts, ends)
    apart = (text_ends > starts) & (text_ends < ends)
    # by its own count: a token straddling the text's end ("!\n") makes the estimate one over
    counts = splitter.index.counts(list(zip(starts[apart].tolist(), text_ends[apart].tolist())))
    apart[apart] = np.asarray(counts) <= limit
    if not apart.any():
        return unit_starts, unit_ends
    cuts = text_ends[apart]
    return merge_sorted(unit_starts, cuts), merge_sorted(unit_ends, cuts)


def _whitespace_joined_to_the_split_sentence(splitter: RecursiveSplitter, unit_starts: np.ndarray,
                                            unit_ends: np.ndarray, over: np.ndarray, limit: int,
                                            paragraph_starts: np.ndarray | None, document_starts: np.ndarray
                                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The units, with a whitespace-only unit right before a sentence that is split anyway (``over``) made part of
    that sentence, whose first piece it opens; and the split sentences' new indices. Alone, the whitespace would be
    packed after the sentence before it and cut that sentence when it fills a chunk exactly, or, at a document's
    start, be a chunk without content. After other text, only whitespace that fits with the sentence's first word
    (longer, it would be a piece of its own all the same), and not across a paragraph start (the paragraph's own
    edge)."""
    before = over[over > 0] - 1
    before = before[(unit_ends[before] == unit_starts[before + 1]) & ~np.isin(before, over)]
    if paragraph_starts is not None and len(before):
        before = before[~np.isin(unit_starts[before + 1], paragraph_starts) | np.isin(unit_starts[before],
                                                                                      document_starts)]
    text = splitter.text
    before = before[[text[a:b].isspace() for a, b in zip(unit_starts[before].tolist(), unit_ends[before].tolist())]]
    if len(before):  # the whitespace and the first word of the sentence after it (up to the next word's start)
        sentence_starts, sentence_ends = unit_starts[before + 1], unit_ends[before + 1]
        words = np.append(splitter.cuts_in(sentence_starts, sentence_ends, WORDS), np.iinfo(np.int64).max)
        first_word_ends = np.minimum(words[np.searchsorted(words, sentence_starts, "right")], sentence_ends)
        before = before[(splitter.estimates(unit_starts[before], first_word_ends) <= limit)
                        | np.isin(unit_starts[before], document_starts)]
    if not len(before):
        return unit_starts, unit_ends, over
    kept = np.ones(len(unit_starts), dtype=bool)
    kept[before] = False
    unit_starts = unit_starts.copy()
    unit_starts[before + 1] = unit_starts[before]
    return unit_starts[kept], unit_ends[kept], (np.cumsum(kept) - 1)[over]


def _pieces_that_fit(splitter: RecursiveSplitter, pieces: list[Span], unit_starts: np.ndarray, unit_ends: np.ndarray,
                     limit: int) -> list[Span]:
    """``pieces`` of the sentences ``[unit_starts[k], unit_ends[k])``, with each sentence the splitter cut by
    estimate and whose pieces do not all fit ``limit`` by their own count cut again, with a lower budget, into
    pieces that do (:func:`chunkers._exact_fit.exact_pieces`). Cut to the limit later, each such piece would leave
    its last token or two a chunk of its own (one in two chunks of a long run of flag emoji or of CJK without
    punctuation)."""
    piece_starts = np.fromiter((a for a, _ in pieces), np.int64, len(pieces))
    first = np.searchsorted(piece_starts, unit_starts)
    last = np.searchsorted(piece_starts, unit_ends)  # one past the sentence's last piece
    cut = np.flatnonzero(last - first > 1)
    if not len(cut):
        return pieces
    cut_pieces = [pieces[i] for k in cut.tolist() for i in range(first[k], last[k])]
    counts = iter(splitter.index.counts(cut_pieces))
    over = [k for k in cut.tolist() if max(next(counts) for _ in range(first[k], last[k])) > limit]
    if not over:
        return pieces
    sentences = [(int(unit_starts[k]), int(unit_ends[k])) for k in over]
    refit = exact_pieces(splitter, sentences, splitter.index.counts(sentences), limit, WORDS)
    out, taken = [], 0
    for k, (sentence_pieces, _) in zip(over, refit):
        out.extend(pieces[taken:first[k]])
        out.extend(sentence_pieces)
        taken = last[k]
    out.extend(pieces[taken:])
    return out


def unit_edges(units: list[Span]) -> tuple[np.ndarray, np.ndarray]:
    """The units' starts and ends as two arrays."""
    edges = np.array(units, dtype=np.int64).reshape(-1, 2)
    return edges[:, 0], edges[:, 1]


def paragraph_of(units: list[Span], paragraph_starts: np.ndarray) -> np.ndarray:
    """For each unit, the number of the paragraph it belongs to: a unit starting at one of ``paragraph_starts``
    opens the next paragraph."""
    return np.cumsum(np.isin(unit_edges(units)[0], paragraph_starts))


def paragraph_reach(splitter: RecursiveSplitter, units: list[Span], paragraph_starts: np.ndarray,
                    limit: int) -> np.ndarray:
    """For each unit, the index of the last unit that a chunk taking it must take too: the last unit of its
    paragraph when the unit opens a paragraph (one of ``paragraph_starts``) whose text (without the whitespace
    after it) fits in ``limit``, else itself.
    A paragraph runs from its start to the next paragraph start or the end of its document's units."""
    unit_starts, unit_ends = unit_edges(units)
    reach = np.arange(len(units))
    opens = np.flatnonzero(np.isin(unit_starts, paragraph_starts))
    if not len(opens):
        return reach
    # a paragraph's last unit: the one before the next opening unit, or before a gap (the next document)
    closes = np.flatnonzero(np.append(unit_ends[:-1] != unit_starts[1:], True))
    last = np.minimum(np.append(opens[1:] - 1, len(units) - 1), closes[np.searchsorted(closes, opens)])
    # a paragraph fits when its text does: the blank lines after it can open the next chunk instead
    text_ends = _ends_without_whitespace(splitter.text, unit_starts[last], unit_ends[last])
    fits = splitter.estimates(unit_starts[opens], np.maximum(text_ends, unit_starts[opens] + 1)) <= limit
    reach[opens[fits]] = last[fits]
    return reach


def joined_through_reach(units: list[Span], reach: np.ndarray) -> list[Span]:
    """The units with each run ``i .. reach[i]`` joined into one: greedy packing without overlap of the joined
    units takes the same chunks as the unit-by-unit packing that honours ``reach``."""
    if not units:
        return []
    inside = np.zeros(len(units) + 1, dtype=np.int64)
    runs = np.flatnonzero(reach > np.arange(len(units)))
    np.add.at(inside, runs, 1)
    np.add.at(inside, reach[runs], -1)
    last = np.flatnonzero(np.cumsum(inside)[:-1] == 0)  # units whose end is not inside a run: a joined unit's last
    first = np.concatenate(([0], last[:-1] + 1))
    unit_starts, unit_ends = unit_edges(units)
    return list(zip(unit_starts[first].tolist(), unit_ends[last].tolist()))


def pack_with_overlap(splitter: RecursiveSplitter, units: list[Span], limit: int, overlap: int,
                      reach: np.ndarray | None = None, paragraph: np.ndarray | None = None) -> list[Span]:
    """Consecutive units packed greedily under ``limit``; each chunk after the first repeats up to ``overlap``
    trailing units of the previous one (fewer if they would not fit). A chunk takes unit ``i`` only if units
    ``i`` to ``reach[i]`` all fit (:func:`paragraph_reach`). Given each unit's ``paragraph``
    (:func:`paragraph_of`), the repeated units never begin inside a paragraph that ended before the chunk's new
    text: across a paragraph break only whole paragraphs are repeated. Without overlap the splitter packs every
    document at once and without a Python step per unit (:meth:`SentenceChunker._packed`)."""
    reach_of = range(len(units)) if reach is None else reach.tolist()
    paragraph_list = None if paragraph is None else paragraph.tolist()
    spans: list[Span] = []
    first = fresh = 0
    while first < len(units):
        last = first
        while last + 1 < len(units) and splitter.estimate(units[first][0], units[reach_of[last + 1]][1]) <= limit:
            last += 1
        first, last = _counted_under(splitter, units, first, fresh, last, reach_of, paragraph_list, limit)
        spans.append((units[first][0], units[last][1]))
        if last + 1 >= len(units):
            break
        fresh = last + 1  # the next chunk's first unit not in this one
        next_first = candidate = fresh
        while candidate > max(first + 1, fresh - overlap) and \
                splitter.estimate(units[candidate - 1][0], units[reach_of[fresh]][1]) <= limit:
            candidate -= 1
            if _may_open_overlap(paragraph_list, candidate, fresh):
                next_first = candidate
        if splitter.text[units[next_first][0]:units[fresh][0]].isspace():
            next_first = fresh  # no sentence to repeat, only the whitespace between two
        first = next_first
    return spans


def _may_open_overlap(paragraph: list[int] | None, unit: int, fresh: int) -> bool:
    """Whether repeated ``unit`` may open a chunk whose new text starts at unit ``fresh``: it is inside the
    paragraph the chunk continues, or opens a paragraph (across a paragraph break the overlap repeats only whole
    paragraphs; ``paragraph``, each unit's paragraph number, is None without ``keep_paragraphs``)."""
    return paragraph is None or paragraph[unit] in (paragraph[fresh], paragraph[unit - 1] + 1)


def _counted_under(splitter: RecursiveSplitter, units: list[Span], first: int, fresh: int, last: int,
                   reach_of: Sequence[int], paragraph: list[int] | None, limit: int) -> tuple[int, int]:
    """The first and last units of a chunk packed by estimate from ``units[first]`` to ``units[last]``, whose new
    text starts at ``units[fresh]``: these, or, when the chunk counts over ``limit`` (an estimate can be a token or
    two short), first fewer repeated units (the overlap), then the chunk closed before its last unit without
    cutting a paragraph it holds whole (``reach_of``). Cutting at a word instead would repeat the unit's last words
    as the start of the next chunk. A single unit over the limit is left to :func:`fit_spans`."""
    text = splitter.text

    def over() -> bool:  # whitespace after the last unit's text can open the next chunk instead (fit_spans)
        start, end = units[first][0], units[last][1]
        return splitter.index.counts([(start, max(start + len(text[start:end].rstrip()), start + 1))])[0] > limit

    while first < fresh and over():
        first += 1
        while first < fresh and not _may_open_overlap(paragraph, first, fresh):
            first += 1
    while last > max(first, fresh) and over():
        last -= 1
        while last > first and max(reach_of[first + 1:last + 1]) > last:  # inside a paragraph kept whole
            last -= 1
    return first, last


def over_at_the_last_unit(splitter: RecursiveSplitter, spans: list[Span], unit_starts: np.ndarray,
                          limit: int) -> tuple[list[Span], list[int]]:
    """Packed ``spans`` (tiling, of whole units starting at ``unit_starts``) with each one over ``limit`` by its own
    count (packed by estimate, a chunk can count a token or two more) closed before its last unit, which opens
    the next chunk if they fit together, else stands alone. Cutting at a word instead would leave the unit's
    last words at the start of the next chunk. A chunk of one unit is left to :func:`fit_spans`. Returns the spans
    and their counts."""
    counts = splitter.index.counts(spans)
    if max(counts, default=0) <= limit:
        return spans, counts
    out: list[Span] = []
    out_counts: list[int] = []
    carried: tuple[Span, int] | None = None
    for (start, end), count in zip(spans, counts):
        if carried is not None:
            (carried_start, carried_end), carried_count = carried
            carried = None
            joined = splitter.index.counts([(carried_start, end)])[0] if carried_end == start else limit + 1
            if joined <= limit:
                start, count = carried_start, joined
            else:
                out.append((carried_start, carried_end))
                out_counts.append(carried_count)
        last_unit = int(unit_starts[np.searchsorted(unit_starts, end) - 1])
        if count > limit and last_unit > start:
            head, rest = splitter.index.counts([(start, last_unit), (last_unit, end)])
            if head <= limit:
                out.append((start, last_unit))
                out_counts.append(head)
                carried = ((last_unit, end), rest)
                continue
        out.append((start, end))
        out_counts.append(count)
    if carried is not None:
        out.append(carried[0])
        out_counts.append(carried[1])
    return out, out_counts


@operator("sentence", kind="chunker")
class SentenceChunker(Chunker):
    """Packs whole sentences up to ``chunk_size`` tokens, optionally repeating sentences as overlap."""

    class Params(OperatorParams):
        chunk_size: int = Field(256, gt=0, description="maximum tokens per chunk (hard ceiling)")
        overlap_sentences: int = Field(0, ge=0, description=(
            "sentences repeated from the previous chunk (with keep_paragraphs, across a paragraph break only "
            "whole paragraphs)"))
        keep_paragraphs: bool = Field(True, description=(
            "a paragraph (text between blank lines) that fits in one chunk is never split across two: the chunk "
            "before it closes early instead"))
        tokenizer: TokenizerName = tokenizer_field()

    def _packed(self, splitter: RecursiveSplitter, starts: np.ndarray,
                ends: np.ndarray) -> tuple[list[Span], list[int]]:
        """Chunk spans of the ranges ``[starts[k], ends[k])`` (one per document) and their counts, before the
        hard ceiling (:func:`fit_spans`)."""
        limit, overlap = self.params.chunk_size, self.params.overlap_sentences
        reach = paragraph = None
        if self.params.keep_paragraphs:
            paragraph_starts = merge_sorted(starts, splitter.cuts_in(starts, ends, BLOCKS))
            units = sentence_units(splitter, limit, starts, ends, paragraph_starts)
            reach = paragraph_reach(splitter, units, paragraph_starts, limit)
        else:
            units = sentence_units(splitter, limit, starts, ends)
        if not overlap:  # every document's greedy packing in one call, then chunks over by their own count
            packing = units if reach is None else joined_through_reach(units, reach)
            spans = splitter.pack(packing, limit, starts, ends)
            return over_at_the_last_unit(splitter, spans, unit_edges(packing)[0], limit)
        if self.params.keep_paragraphs:  # only the overlap needs to know where paragraphs change
            paragraph = paragraph_of(units, paragraph_starts)
        spans = [span for first, last in per_document(units, starts, ends)
                 for span in pack_with_overlap(splitter, units[first:last], limit, overlap,
                                               None if reach is None else reach[first:last] - first,
                                               None if paragraph is None else paragraph[first:last])]
        return spans, splitter.index.counts(spans)

    def spans(self, text: str) -> tuple[list[Span], list[int], list[bool]]:
        limit = self.params.chunk_size
        splitter = RecursiveSplitter(text, self.tokenizer_, markdown=False)
        spans, counts = self._packed(splitter, np.array([0]), np.array([len(text)]))
        return drop_chunks_held_by_another(*fit_spans(text, spans, self.tokenizer_, limit, counts))

    def chunk(self, document: Document) -> list[Chunk]:
        if not document.text:
            return []
        spans, counts, oversize = self.spans(document.text)
        return build_chunks(document, spans, counts, oversize, tokenizer=self.tokenizer_)

    def chunk_documents(self, documents: Sequence[Document]) -> list[Chunk]:
        """Every document's chunks, in order, split in batches of joined documents
        (:func:`chunkers._batches.joined_documents`): the same chunks as :meth:`chunk` one document at a time."""
        return chunk_in_batches(documents, self.chunk, self._chunk_batch, tokenizer=self.tokenizer_)

    def _chunk_batch(self, documents: list[Document]) -> list[Chunk]:
        limit = self.params.chunk_size
        text, starts, ends, index = joined_documents(documents, self.tokenizer_)
        splitter = RecursiveSplitter(text, self.tokenizer_, markdown=False, index=index)
        spans, counts = self._packed(splitter, starts, ends)
        # pieces dropped for one document never involve another: the next document's chunks start after its end
        kept = drop_chunks_held_by_another(*fit_spans(text, spans, self.tokenizer_, limit, counts))
        return chunks_of_joined(documents, starts, ends, *kept, self.tokenizer_)
