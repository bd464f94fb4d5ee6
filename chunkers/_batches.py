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
#: documents chunked on their own, or batches, that are queued for encoding ahead of the one being split: two, so
#: that a short one split in a millisecond does not leave the next one to be encoded while the chunker waits for it
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
    With ``tokenizer``'s encoding able to encode ahead (:meth:`rag.fast_encoding.FastEncoding.encode_ahead` and
    ``encode_flat_ahead``), the next documents or batches (:data:`ENCODED_AHEAD`) are encoded in a worker thread
    while this one is split."""
    groups = _groups(documents)
    encoding = getattr(tokenizer, "encoding", None)
    ahead = hasattr(encoding, "encode_ahead") and hasattr(encoding, "encode_flat_ahead")

    def encode_ahead(k: int) -> None:
        if ahead and k < len(groups):
            group = groups[k]
            if isinstance(group, Document):
                encoding.encode_ahead(group.text)
            else:
                encoding.encode_flat_ahead([document.text for document in group])

    for k in range(ENCODED_AHEAD):
        encode_ahead(k)
    out: list[Chunk] = []
    for k, group in enumerate(groups):
        encode_ahead(k + ENCODED_AHEAD)  # the one ENCODED_AHEAD after this
        out.extend(chunk_one(group) if isinstance(group, Document) else chunk_batch(group))
    return out


def _groups(documents: Sequence[Document]) -> list[Document | list[Document]]:
    """The non-empty documents in order, a long one (:data:`ALONE_CHARACTERS`) on its own, the others in batches
    of about :data:`BATCH_CHARACTERS` between them."""
    groups: list[Document | list[Document]] = []
    batch: list[Document] = []
    size = 0
    for document in documents:
        if not document.text:
            continue
        if len(document.text) >= ALONE_CHARACTERS:
            if batch:
                groups.append(batch)
                batch, size = [], 0
            groups.append(document)
            continue
        batch.append(document)
        size += len(document.text)
        if size >= BATCH_CHARACTERS:
            groups.append(batch)
            batch, size = [], 0
    if batch:
        groups.append(batch)
    return groups
