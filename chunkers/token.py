"""Fixed windows of tokens with optional overlap, with exact character offsets.

YAML::

    index:
      chunker: {op: token, chunk_size: 256, overlap: 32, tokenizer: cl100k_base}
      # or windows of the embedder's own word pieces, so each chunk fits MiniLM's 256 positions exactly:
      # chunker: {op: token, chunk_size: 254, tokenizer: minilm}

Window boundaries are token boundaries mapped to character offsets through the tokens' UTF-8 byte
lengths (a word-piece tokenizer's own offsets); a window whose end falls inside a character of several tokens (CJK,
emoji), or with a word-piece tokenizer inside a word (a ``##`` piece, a Hangul syllable's jamo), ends before it, and
an overlapping window starts after the character or word its first token is in (nor does a window end or start inside
a user-perceived character: a letter and its combining mark, a ZWJ emoji sequence, a CRLF), so
``document.text[c.start:c.end] == c.text`` always holds (Chonkie's token chunker gets this wrong) and no
character or piece of a word is left a chunk of its own.
``token_count`` is then measured on the final text and any window over ``chunk_size`` is cut again.
"""
from __future__ import annotations

import unicodedata
from typing import Sequence

import numpy as np
from pydantic import Field, model_validator

from chunkers._batches import chunk_in_batches, chunks_of_joined, joined_documents
from chunkers._spans import build_chunks, drop_chunks_held_by_another, fit_spans
from chunkers._token_index import TokenIndex, token_char_bounds
from chunkers.base import Chunker, TokenizerName, overlap_below_size, tokenizer_field
from rag.registry import OperatorParams, operator
from rag.types import Chunk, Document


def token_window_spans(text: str, tokenizer, chunk_size: int, overlap: int = 0,
                       bounds=None, inside=None) -> list[tuple[int, int]]:
    """Character spans of consecutive windows of ``chunk_size`` tokens, each starting ``overlap`` tokens before the
    previous one ends; empty spans (a window inside one character) are dropped. ``inside`` (from
    :func:`token_char_bounds`) marks token boundaries that fall inside a character (CJK, emoji of several
    tokens) or, with a word-piece tokenizer, inside a word: a window whose end falls there ends before that
    character or word instead of after it or inside it (the window would count more tokens on its own and be cut
    again, leaving the character or the word's end a chunk of its own), and a window whose start falls there
    starts after it. Only a character or word of more than ``chunk_size`` tokens still ends a window inside or
    after it (and is cut again or flagged oversize). A last window that would hold only whitespace (overlap
    repeating the whitespace the window before ends in) is the text's last ``chunk_size`` tokens instead."""
    if bounds is None:
        bounds, inside = token_char_bounds(text, tokenizer, with_inside=True)

    def cuts_in(i: int) -> bool:  # boundary i cuts a character, a word piece or a grapheme cluster
        return (inside is not None and bool(inside[i])) or splits_grapheme(text, int(bounds[i]))

    n_tokens = len(bounds) - 1
    if n_tokens == 0:  # text no token covers (whitespace under a word-piece tokenizer): one span of 0 tokens
        return [(0, len(text))] if text else []
    spans: list[tuple[int, int]] = []
    first, last_end = 0, 0
    while True:
        end = min(first + chunk_size, n_tokens)
        back = end
        while back > first + 1 and cuts_in(back):
            back -= 1
        if not cuts_in(back):  # else no character boundary within chunk_size tokens: the end rounds up
            end = back
        start_char, end_char = int(bounds[first]), int(bounds[end])
        if overlap and end >= n_tokens and spans and text[start_char:end_char].isspace():
            # an overlapping last window of whitespace alone: the text's last chunk_size tokens instead, never
            # starting later than it did (a start moved past a cut character would leave the whitespace out)
            window_first, first = first, max(n_tokens - chunk_size, 0)
            while first < end and cuts_in(first):
                first += 1
            first = min(first, window_first)
            start_char = int(bounds[first])
        if end_char > start_char and end_char > last_end:
            spans.append((start_char, end_char))
            last_end = end_char
        if end >= n_tokens:
            return spans
        first = max(end - overlap, first + 1)
        while first < end and cuts_in(first):  # the next window starts after the character (or word) it is in
            first += 1


#: Code points that extend the grapheme cluster before them beyond the combining marks (categories M): the zero
#: width joiner, variation selectors, emoji skin-tone modifiers and tag characters (flag sequences).
_EXTENDERS = ((0x200D, 0x200D), (0xFE00, 0xFE0F), (0x1F3FB, 0x1F3FF), (0xE0020, 0xE007F))


def splits_grapheme(text: str, position: int) -> bool:
    """Whether a cut at ``position`` separates a user-perceived character: a letter from its combining mark, the
    parts of a ZWJ emoji sequence, an emoji from its modifier, or a CRLF."""
    if not 0 < position < len(text):
        return False
    after, before = text[position], text[position - 1]
    if before == "\u200d" or (before == "\r" and after == "\n"):
        return True
    code = ord(after)
    if code < 0x300:
        return False
    return unicodedata.category(after)[0] == "M" or any(a <= code <= b for a, b in _EXTENDERS)


@operator("token", kind="chunker")
class TokenChunker(Chunker):
    """Fixed-size token windows with overlap; exact offsets, ``chunk_size`` a hard ceiling."""

    class Params(OperatorParams):
        chunk_size: int = Field(256, gt=0, description="maximum tokens per chunk")
        overlap: int = Field(0, ge=0, description="tokens shared by consecutive windows")
        tokenizer: TokenizerName = tokenizer_field()

        _overlap_below_size = model_validator(mode="after")(overlap_below_size)

    def chunk(self, document: Document) -> list[Chunk]:
        text = document.text
        if not text:
            return []
        index = TokenIndex(text, self.tokenizer_)
        spans = token_window_spans(text, self.tokenizer_, self.params.chunk_size, self.params.overlap,
                                   index.char_bounds, index.inside)
        spans, counts, oversize = fit_spans(text, spans, self.tokenizer_, self.params.chunk_size,
                                            index.counts(spans))
        if self.params.overlap:
            spans, counts, oversize = drop_chunks_held_by_another(spans, counts, oversize)
        return build_chunks(document, spans, counts, oversize, tokenizer=self.tokenizer_)

    def chunk_documents(self, documents: Sequence[Document]) -> list[Chunk]:
        """Every document's chunks, in order, split in batches of joined documents
        (:func:`chunkers._batches.joined_documents`): the same chunks as :meth:`chunk` one document at a time,
        without its per-document numpy steps (which cost more than encoding a short document)."""
        return chunk_in_batches(documents, self.chunk, self._chunk_batch, tokenizer=self.tokenizer_)

    def _chunk_batch(self, documents: list[Document]) -> list[Chunk]:
        size, overlap = self.params.chunk_size, self.params.overlap
        text, starts, ends, index = joined_documents(documents, self.tokenizer_)
        bounds, inside = index.char_bounds, index.inside
        # each document's bounds are one block of the joined bounds, from its start to its end (a NUL apart)
        firsts = np.searchsorted(bounds, starts, "left").tolist()
        lasts = (np.searchsorted(bounds, ends, "right") - 1).tolist()
        spans = []
        for document, start, first, last in zip(documents, starts.tolist(), firsts, lasts):
            spans.extend((a + start, b + start) for a, b in token_window_spans(
                document.text, self.tokenizer_, size, overlap, bounds[first:last + 1] - start,
                None if inside is None else inside[first:last + 1]))
        kept = fit_spans(text, spans, self.tokenizer_, size, index.counts(spans))
        if overlap:  # pieces dropped for one document never involve another: the next one's chunks start after
            kept = drop_chunks_held_by_another(*kept)
        return chunks_of_joined(documents, starts, ends, *kept, self.tokenizer_)

