"""Recursive splitting down a separator hierarchy, markdown-aware, with exact offsets and a hard size ceiling.

YAML::

    index:
      chunker: {op: recursive, chunk_size: 256}

Hierarchy: markdown headings → blocks (blank lines; code fences and tables are single blocks) → list items → lines →
sentences → words → tokens (the splitter in :mod:`chunkers._splitter`). A span that fits ``chunk_size`` is kept;
otherwise it is cut at the highest level that has a cut, oversized pieces recurse one level down, and adjacent
pieces are packed greedily up to the limit. Small whole sections share a chunk (``pack_sections``; a chunk that
crosses a heading ends at one, so no section is cut after it starts); ``pack_sections: false`` starts a chunk at
every heading. Token counts come from one tokenization of the whole document; final counts are re-measured on the
chunk text and any chunk over the limit is split again, so the limit is a hard ceiling. Chunk metadata carries
``heading_path`` (titles of the markdown headings enclosing all of the chunk) and, for a chunk that starts inside a
table after its header, ``table_header`` (the header rows, repeated for the reader/embedder).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from pydantic import Field, model_validator

from chunkers._batches import chunk_in_batches, chunks_of_joined, joined_documents
from chunkers._exact_fit import split_exact_spans
from chunkers._markdown import MarkdownStructure, is_markdown_language, parse_markdown
from chunkers._overlap import whole_blocks, with_overlap
from chunkers._spans import build_chunks, drop_chunks_held_by_another, fit_spans
from chunkers._splitter import RecursiveSplitter
from chunkers.base import Chunker, TokenizerName, overlap_below_size, tokenizer_field
from rag.registry import OperatorParams, operator
from rag.types import Chunk, Document


@operator("recursive", kind="chunker")
class RecursiveChunker(Chunker):
    """Separator-hierarchy splitting (headings → blocks → list items → lines → sentences → words → tokens),
    markdown-aware."""

    class Params(OperatorParams):
        chunk_size: int = Field(256, gt=0, description="maximum tokens per chunk (hard ceiling)")
        overlap: int = Field(0, ge=0, description="tokens a chunk may repeat from the one before (at most; it "
                                                 "starts at a line, sentence or word boundary)")
        tokenizer: TokenizerName = tokenizer_field()
        markdown: bool = Field(True, description="treat headings, code fences and tables as structure (in "
                                                 "documents without a language or of language markdown)")
        pack_sections: bool = Field(True, description="small whole markdown sections share a chunk up to "
                                    "chunk_size (a chunk that crosses a heading ends at a heading, so no section "
                                    "is cut after it starts; heading_path then holds the headings enclosing all "
                                    "of them); false: every heading starts a new chunk")
        join_split_pieces: bool = Field(True, description="the pieces of a paragraph (list item, line, sentence) "
                                        "too big for one chunk may share a chunk with the text around it; false: "
                                        "they are packed only among themselves (LangChain's rule), so no chunk "
                                        "holds the end of a split paragraph and the start of the next")

        _overlap_below_size = model_validator(mode="after")(overlap_below_size)

    def _markdown(self, document: Document) -> bool:
        # markdown structure in markdown and plain text, not in code ("# comment" is not a heading)
        return self.params.markdown and is_markdown_language(document.metadata.get("language"))

    def chunk(self, document: Document) -> list[Chunk]:
        text = document.text
        if not text:
            return []
        splitter = RecursiveSplitter(text, self.tokenizer_, self._markdown(document),
                                     pack_sections=self.params.pack_sections,
                                     join_split_pieces=self.params.join_split_pieces)
        spans, counts, oversize = self._split(splitter, np.array([0]), np.array([len(text)]))
        return build_chunks(document, spans, counts, oversize, splitter.sections.metadata(spans), tokenizer=self.tokenizer_)

    def _split(self, splitter: RecursiveSplitter, starts: np.ndarray, ends: np.ndarray):
        """Exact spans of the ranges ``[starts[k], ends[k])``; with ``overlap``, chunks of ``chunk_size − overlap``
        tokens (a code fence or table under ``chunk_size`` whole: :func:`chunkers._overlap.whole_blocks`), each then
        extended back by up to ``overlap`` tokens (so at most ``chunk_size``, re-checked)."""
        limit, overlap = self.params.chunk_size, self.params.overlap
        spans, counts, oversize = split_exact_spans(splitter, starts, ends, limit - overlap)
        if not overlap:
            return spans, counts, oversize
        if splitter.structure.blocks:
            spans, counts = whole_blocks(splitter, spans, counts, limit)
        # a chunk is extended back by at most what its own count leaves of chunk_size (a whole block can leave
        # less than overlap)
        spans = with_overlap(splitter, spans, [min(overlap, limit - count) for count in counts])
        spans, counts, oversize = fit_spans(splitter.text, spans, self.tokenizer_, limit, splitter.index.counts(spans))
        return drop_chunks_held_by_another(spans, counts, oversize)

    def chunk_documents(self, documents: Sequence[Document]) -> list[Chunk]:
        """Every document's chunks, in order. Short documents are split in batches (see
        :func:`chunkers._batches.joined_documents`), each parsed for markdown on its own: the same chunks as
        :meth:`chunk` one document at a time, with the fixed cost of the array work spread over many documents
        (most of the time on short documents)."""
        return chunk_in_batches(documents, self.chunk, self._chunk_batch, tokenizer=self.tokenizer_)

    def _chunk_batch(self, documents: list[Document]) -> list[Chunk]:
        text, starts, ends, index = joined_documents(documents, self.tokenizer_)
        structures = [parse_markdown(d.text) if self._markdown(d) else MarkdownStructure() for d in documents]
        splitter = RecursiveSplitter(text, self.tokenizer_, index=index, pack_sections=self.params.pack_sections,
                                     join_split_pieces=self.params.join_split_pieces,
                                     documents=(starts, ends, structures))
        spans, counts, oversize = self._split(splitter, starts, ends)
        return chunks_of_joined(documents, starts, ends, spans, counts, oversize, self.tokenizer_,
                                splitter.sections.metadata(spans))
