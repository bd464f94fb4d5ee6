"""Exact character spans for chunkers: a hard size ceiling, and Chunk building.

Every chunker ends in :func:`build_chunks`, which measures ``token_count`` on the final text, and uses
:func:`fit_spans` to enforce ``chunk_size`` as a hard ceiling, so the invariants of :mod:`chunkers.base`
hold whatever the boundary logic did. Sizes come from :mod:`chunkers._token_index`.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from chunkers._token_index import Span, token_char_bounds
from rag.tokens import TiktokenTokenizer
from rag.types import Chunk, Document, chunk_id

def fit_spans(text: str, spans: Iterable[Span], tokenizer: TiktokenTokenizer, limit: int,
              counts: Sequence[int] | None = None, join_next: bool = True) -> tuple[list[Span], list[int], list[bool]]:
    """Split every span whose text has more than ``limit`` tokens into consecutive spans that fit.

    Returns ``(spans, token_counts, oversize)``; counts are measured on the final text. A span is cut at
    token boundaries (mapped to characters), the last cut moved back to a word's start when it falls inside a
    word; what is left after the last cut opens the next span when that span starts where it ends and still
    fits with it (a chunk packed to the limit by estimate is often a token over, and the rest would otherwise be
    a chunk of its own: a lone space, or a word's last letters); ``join_next=False`` keeps every piece inside its
    span (for chunkers whose spans obey another limit too), and a span overlapping the next one is only cut at token
    boundaries (the pieces the next chunk holds are dropped by the caller). Only a single indivisible
    character that alone needs more than ``limit`` tokens can stay over the limit, and it is flagged in
    ``oversize``.
    """
    spans = list(spans)
    if counts is None:
        counts = tokenizer.count_batch([text[a:b] for a, b in spans])
    kept = [i for i, (a, b) in enumerate(spans) if b > a]
    if len(kept) < len(spans):
        spans, counts = [spans[i] for i in kept], [counts[i] for i in kept]
    out_spans: list[Span] = []
    out_counts: list[int] = []
    oversize: list[bool] = []

    def keep(span: Span, count: int, over: bool = False) -> None:
        out_spans.append(span)
        out_counts.append(count)
        oversize.append(over)

    def keep_alone(rest: Span, count: int) -> None:
        # Whitespace alone would be a chunk without content: the word before it joins it, if it can, else the
        # last token before it (the end of a word longer than the limit).
        if text[rest[0]:rest[1]].isspace() and out_spans and out_spans[-1][1] == rest[0] and not oversize[-1]:
            previous = (out_spans.pop(), out_counts.pop(), oversize.pop())
            pieces = _last_cut_at_a_word(text, [previous, (rest, count, False)], tokenizer, limit, before_space=True)
            if pieces[-1][0] == rest:
                pieces = _last_cut_a_token_back(text, pieces, tokenizer, limit)
            for piece in pieces:
                keep(*piece)
        else:
            keep(rest, count)

    rest: tuple[Span, int] | None = None  # the end of a span cut to fit, offered to the next span
    for i, ((start, end), count) in enumerate(zip(spans, counts)):
        if rest is not None:
            (rest_start, rest_end), rest_count = rest
            rest = None
            merged = tokenizer.count(text[rest_start:end]) if join_next and rest_end == start else limit + 1
            if merged <= limit:
                start, count = rest_start, merged
            else:
                keep_alone((rest_start, rest_end), rest_count)
        if count <= limit:
            if text[start:end].isspace():
                keep_alone((start, end), count)
            else:
                keep((start, end), count)
            continue
        pieces = list(_split_to_limit(text, start, end, tokenizer, limit))
        if i + 1 < len(spans) and spans[i + 1][0] < end:
            # a span overlapping the next one is cut at token boundaries only: a moved cut could put pieces out
            # of document order; the caller drops the pieces another chunk holds (drop_chunks_held_by_another)
            for piece in pieces:
                keep(*piece)
            continue
        pieces = _last_cut_at_a_word(text, pieces, tokenizer, limit)
        for piece, piece_count, over in pieces[:-1]:
            keep(piece, piece_count, over)
        last, last_count, last_over = pieces[-1]
        if last_over or len(pieces) == 1:
            keep(last, last_count, last_over)
        else:
            rest = (last, last_count)
    if rest is not None:
        keep_alone(*rest)
    return out_spans, out_counts, oversize


def _last_cut_at_a_word(text: str, pieces: list, tokenizer: TiktokenTokenizer, limit: int,
                        before_space: bool = False) -> list:
    """``pieces`` (consecutive ``(span, count, oversize)``) with the cut before the last one moved back to the
    start of the word it falls in, or with ``before_space``, of the last word before it when the last piece is only
    whitespace (with any whitespace between them); kept as they are when no word starts inside the piece before or
    a moved piece would not fit (or, with ``before_space``, leave whitespace alone)."""
    if len(pieces) < 2 or pieces[-2][2]:
        return pieces
    (a, cut), _, _ = pieces[-2]
    b = pieces[-1][0][1]
    inside_word = not text[cut - 1].isspace() and not text[cut].isspace()
    if before_space and not inside_word and text[cut:b].isspace():
        while cut > a and text[cut - 1].isspace():  # the whitespace the piece before ends in goes along
            cut -= 1
    elif not inside_word:
        return pieces
    word = cut - 1
    while word > a and not text[word - 1].isspace():
        word -= 1
    # no word start in the piece (one long word, or a script without spaces), or whitespace alone before the
    # word that would join whitespace
    if word <= a or (before_space and text[a:word].isspace()):
        return pieces
    before, after = tokenizer.count(text[a:word]), tokenizer.count(text[word:b])
    if before > limit or after > limit:
        return pieces
    return [*pieces[:-2], ((a, word), before, False), ((word, b), after, False)]


def _last_cut_a_token_back(text: str, pieces: list, tokenizer: TiktokenTokenizer, limit: int) -> list:
    """``pieces`` (consecutive ``(span, count, oversize)``) with the cut before the last one moved back to the
    start of the piece before's last token, when both pieces still fit; else as they are."""
    (a, cut), _, _ = pieces[-2]
    b = pieces[-1][0][1]
    bounds = token_char_bounds(text[a:cut], tokenizer)
    last_token = a + int(bounds[np.searchsorted(bounds, bounds[-1], "left") - 1]) if len(bounds) > 2 else a
    if last_token <= a:
        return pieces
    before, after = tokenizer.count(text[a:last_token]), tokenizer.count(text[last_token:b])
    if before > limit or after > limit:
        return pieces
    return [*pieces[:-2], ((a, last_token), before, False), ((last_token, b), after, False)]


def drop_chunks_held_by_another(spans: list[Span], counts: list[int], oversize: list[bool]):
    """With overlapping chunks, a chunk that :func:`fit_spans` had to cut again (its estimate fit, its exact
    count did not) can end in pieces that another chunk holds whole: pieces starting after the next chunk does,
    or, when one character takes several tokens, a piece equal to or inside a neighbour. They are dropped (nothing
    is lost: the chunk holding one covers it), so chunks are in document order with starts and ends both
    strictly increasing. Used by every chunker with overlap."""
    order = sorted(range(len(spans)), key=lambda i: (spans[i][0], -spans[i][1]))
    keep, reach = [], -1
    for i in order:
        if spans[i][1] > reach:  # not inside a chunk starting before it (or at the same place, and longer)
            keep.append(i)
            reach = spans[i][1]
    return [spans[i] for i in keep], [counts[i] for i in keep], [oversize[i] for i in keep]


def _split_to_limit(text: str, start: int, end: int, tokenizer: TiktokenTokenizer, limit: int):
    limit = max(1, limit)
    while start < end:
        piece = text[start:end]
        count = tokenizer.count(piece)
        if count <= limit:
            yield (start, end), count, False
            return
        bounds = token_char_bounds(piece, tokenizer)
        k = min(limit, len(bounds) - 1)
        # BPE counts of a prefix are almost always its token count; verify and back off when they are not.
        while k > 1 and (bounds[k] == 0 or tokenizer.count(piece[:bounds[k]]) > limit):
            k -= 1
        cut = int(bounds[k])
        if cut == 0:  # the first token lies inside a character: take that whole character
            cut = int(bounds[np.searchsorted(bounds, 0, side="right")])
        piece_count = tokenizer.count(piece[:cut])
        while piece_count > limit and cut > 1:
            # the cut was moved to the end of a character its token boundary fell inside (each of " \u200d" and
            # "漢" takes several tokens): step back a character, so only a single character is ever over the limit
            cut -= 1
            piece_count = tokenizer.count(piece[:cut])
        yield (start, start + cut), piece_count, piece_count > limit
        start += cut


def build_chunks(document: Document, spans: Sequence[Span], counts: Sequence[int],
                 oversize: Sequence[bool] | None = None,
                 metadata: Sequence[Mapping[str, Any]] | None = None, *,
                 tokenizer: TiktokenTokenizer) -> list[Chunk]:
    """Chunks of ``document`` for the given character spans, in order, with ids ``doc#i``.

    ``counts`` are the exact token counts of the spans' texts with ``tokenizer``, whose identity each chunk
    records (``Chunk.tokenizer``). Each chunk's metadata is the document's metadata plus the per-span
    ``metadata`` entry; an ``oversize: True`` flag marks an indivisible piece over the limit.
    """
    text = document.text
    base = dict(document.metadata)
    identity = tokenizer.identity
    chunks = []
    for i, (start, end) in enumerate(spans):
        meta = dict(base) if metadata is None else {**base, **metadata[i]}
        if oversize is not None and oversize[i]:
            meta["oversize"] = True
        chunks.append(Chunk(chunk_id(document.id, i), document.id, text[start:end], start, end, int(counts[i]), meta,
                            identity))
    return chunks
