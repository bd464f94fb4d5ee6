"""Perplexity chunking (Meta-Chunking, Zhao et al. 2024, "Meta-Chunking: Learning Efficient Text Segmentation
via Logical Perception", the PPL Chunking strategy).

YAML::

    index:
      chunker: {op: perplexity, chunk_size: 256, model: gemma3-270m, threshold: 0.0}

Each sentence is scored by a small causal LM given the sentences before it (``rag.lm.CausalLM.
sentence_perplexities``, up to ``max_context_tokens`` of context). A sentence whose perplexity is a local
minimum (lower than its predecessor by more than ``threshold`` and lower than, or equal to, its successor)
closes a segment: it is well predicted by what precedes it, while the next sentence is not. Segments are then
merged greedily up to ``chunk_size`` tokens (the paper's dynamic merging); a segment over the limit is packed
sentence by sentence, so ``chunk_size`` is a hard ceiling and the chunks tile the text.

The default model is the bundled Gemma 3 270M GGUF (``gemma3-270m``); any local transformers directory or
``.gguf`` file works. Nothing is downloaded.
"""
from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, Field

from chunkers._spans import Span, build_chunks, fit_spans
from chunkers._splitter import RecursiveSplitter
from chunkers.base import Chunker, TokenizerName, tokenizer_field
from chunkers.sentence import sentence_units
from rag.errors import ConfigError, field_check
from rag.lm import DTYPES
from rag.lm_files import check_local_lm
from rag.registry import OperatorParams, operator
from rag.types import Chunk, Document


def perplexity_minima(perplexities: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Indices ``i`` of the sentences that close a segment: ``ppl[i-1] - ppl[i] > threshold`` and
    ``ppl[i+1] >= ppl[i]`` (strictly greater, or equal when the drop on the left is what marks it), as in
    Meta-Chunking's ``find_minima``. Sentences without a perplexity (``nan``: no LM tokens) are skipped."""
    values = np.asarray(perplexities, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(values))
    v = values[finite]
    if len(v) < 3:
        return np.zeros(0, dtype=np.int64)
    middle, left, right = v[1:-1], v[:-2], v[2:]
    is_min = (left - middle > threshold) & (right >= middle)
    return finite[1:-1][is_min]


def merge_segments(splitter: RecursiveSplitter, units: list[Span], closing: np.ndarray, limit: int) -> list[Span]:
    """Segments ending after each closing unit, merged greedily while they fit ``limit`` tokens; a segment
    over the limit is packed unit by unit."""
    edges = [0, *(int(i) + 1 for i in closing if int(i) + 1 < len(units)), len(units)]
    segments: list[Span] = []
    for a, b in zip(edges[:-1], edges[1:]):
        if a >= b:
            continue
        if splitter.estimate(units[a][0], units[b - 1][1]) <= limit:
            segments.append((units[a][0], units[b - 1][1]))
        else:
            segments.extend(splitter.pack(units[a:b], limit))
    merged: list[Span] = []
    for start, end in segments:
        if merged and splitter.estimate(merged[-1][0], end) <= limit:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


@operator("perplexity", kind="chunker")
class PerplexityChunker(Chunker):
    """Meta-Chunking: cut after sentences at local minima of LM perplexity, then merge up to the size."""

    class Params(OperatorParams):
        chunk_size: int = Field(256, gt=0, description="maximum tokens per chunk (hard ceiling)")
        model: Annotated[str, AfterValidator(field_check(check_local_lm))] = Field(
            "gemma3-270m", description="local model directory, .gguf file or bundled alias")
        threshold: float = Field(0.0, ge=0, allow_inf_nan=False, description="perplexity drop that marks a minimum")
        max_context_tokens: int = Field(1024, gt=1, description="LM context for each sentence's perplexity")
        dtype: Literal[DTYPES] = Field("float32", description=f"one of {', '.join(DTYPES)}")
        tokenizer: TokenizerName = tokenizer_field()

    def __init__(self, **params):
        super().__init__(**params)
        self._lm = None

    @property
    def lm(self):
        if self._lm is None:
            from rag.lm import load_causal_lm

            try:
                self._lm = load_causal_lm(self.params.model, dtype=self.params.dtype,
                                          max_context_tokens=self.params.max_context_tokens)
            except ConfigError as exc:  # a bundled alias is resolved only now: name the key, as at config time
                raise ConfigError(exc.message, exc.path or "model") from None
        return self._lm

    def use_lm(self, lm) -> "PerplexityChunker":
        """Share an already loaded :class:`rag.lm.CausalLM`."""
        self._lm = lm
        return self

    def chunk(self, document: Document) -> list[Chunk]:
        text = document.text
        if not text:
            return []
        limit = self.params.chunk_size
        splitter = RecursiveSplitter(text, self.tokenizer_, markdown=False)
        units = sentence_units(splitter, limit)
        closing = np.zeros(0, dtype=np.int64)
        if len(units) >= 3:
            closing = perplexity_minima(self.lm.sentence_perplexities([text[a:b] for a, b in units]),
                                        self.params.threshold)
        spans = merge_segments(splitter, units, closing, limit)
        counts = splitter.index.counts(spans)
        spans, counts, oversize = fit_spans(text, spans, self.tokenizer_, limit, counts)
        return build_chunks(document, spans, counts, oversize, tokenizer=self.tokenizer_)
