"""Many short documents split as one text: joined with a NUL between two, each tokenized on its own, and the
pieces moved back to their documents. A chunker that keeps every piece inside one document's range gets the same
chunks as one document at a time, with the fixed cost of its array work spread over the batch."""
from __future__ import annotations

import bisect
from typing import Sequence

import numpy as np

from chunkers._spans import Span, build_chunks
from chunkers._token_index import TokenIndex, joined_token_char_bounds
from rag.types import Chunk, Document

#: documents chunked together (see :func:`chunk_in_batches`) up to about this many characters per batch (memory:
#: ~40 bytes of arrays per character)
BATCH_CHARACTERS = 1_000_000
#: a document this long is chunked on its own: its fixed cost is small against its size, and joined with others
#: it would make them slower (one non-ASCII document widens the whole joined string, and scans over it)
ALONE_CHARACTERS = 20_000
#: documents chunked on their own that are queued for encoding ahead of the one being split: two, so that a short
#: one split in a millisecond does not leave the next one to be encoded while the chunker waits for it
ENCODED_AHEAD = 2


def joined_documents(documents: Sequence[Document], tokenizer) -> tuple[str, np.ndarray, np.ndarray, TokenIndex]:
    """``(text, starts, ends, index)`` for splitting many documents as one text: their texts joined with a NUL
    between two (no sentence, word or blank-line rule matches across it), each tokenized on its own, the token
    index knowing the documents' edges. A chunker that keeps every piece inside one ``[starts[k], ends[k])``
    gets the same pieces and counts as for the documents one at a time."""
    starts, ends, position = [], [], 0
    for document in documents:
        starts.append(position)
        ends.append(position + len(document.text))
        position = ends[-1] + 1
    text = "\x00".join(document.text for document in documents)
    bounds, inside = joined_token_char_bounds([document.text for document in documents], tokenizer, text)
    index = TokenIndex(text, tokenizer, bounds, frozenset(starts) | frozenset(ends), inside)
    return text, np.array(starts), np.array(ends), index


def without_gaps(spans: list[Span], ends: np.ndarray) -> list[Span]:
    """The spans that do not start where a document ends (the separators between joined documents)."""
    outside = set(ends.tolist())
    return [span for span in spans if span[0] not in outside]


def per_document(spans: Sequence[Span], starts: np.ndarray, ends: np.ndarray) -> list[tuple[int, int]]:
    """For sorted spans of joined documents, the ``[first, last)`` range of each document's spans."""
    ranges, first = [], 0
    for end in ends.tolist():
        last = bisect.bisect_left(spans, (end, end), first)  # spans are sorted; this document's end here
        ranges.append((first, last))
        first = last
    return ranges


def chunks_of_joined(documents: Sequence[Document], starts: np.ndarray, ends: np.ndarray, spans: Sequence[Span],
                     counts: Sequence[int], oversize: Sequence[bool], tokenizer,
                     metadata: Sequence[dict] | None = None) -> list[Chunk]:
    """Every joined document's chunks (:func:`build_chunks`) from the sorted spans of the joined text, each span
    moved back to its document's offsets (``metadata``: per span, as for :func:`build_chunks`)."""
    out: list[Chunk] = []
    for document, start, (first, last) in zip(documents, starts.tolist(), per_document(spans, starts, ends)):
        out.extend(build_chunks(document, [(a - start, b - start) for a, b in spans[first:last]],
                                counts[first:last], oversize[first:last],
                                None if metadata is None else metadata[first:last], tokenizer=tokenizer))
    return out


def chunk_in_batches(documents: Sequence[Document], chunk_one, chunk_batch, tokenizer=None) -> list[Chunk]:
    """Every document's chunks in order: long documents (:data:`ALONE_CHARACTERS`) go through ``chunk_one``, the
    others through ``chunk_batch`` in groups of about :data:`BATCH_CHARACTERS`; empty documents have no chunks.
    With ``tokenizer``'s encoding able to encode ahead (:meth:`rag.fast_encoding.FastEncoding.encode_ahead`), the
    next documents chunked on their own (:data:`ENCODED_AHEAD`) are encoded in a worker thread while this one is
    split."""
    own = [len(d.text) >= ALONE_CHARACTERS for d in documents]
    encode_ahead = getattr(getattr(tokenizer, "encoding", None), "encode_ahead", None)
    upcoming = iter([d.text for d, alone_ in zip(documents, own) if alone_] if encode_ahead else [])

    def encode_next() -> None:
        text = next(upcoming, None)
        if text is not None:
            encode_ahead(text)

    for _ in range(ENCODED_AHEAD):
        encode_next()
    out: list[Chunk] = []
    batch: list[Document] = []
    size = 0
    for document, on_its_own in zip(documents, own):
        if not document.text:
            continue
        if on_its_own:
            encode_next()  # the one ENCODED_AHEAD after this
            out.extend((chunk_batch(batch) if batch else []) + chunk_one(document))
            batch, size = [], 0
            continue
        batch.append(document)
        size += len(document.text)
        if size >= BATCH_CHARACTERS:
            out.extend(chunk_batch(batch))
            batch, size = [], 0
    if batch:
        out.extend(chunk_batch(batch))
    return out
