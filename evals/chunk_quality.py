"""Chunk-quality metrics that need no gold labels: MoC's Boundary Clarity and Chunk Stickiness, and size statistics.

Zhao et al. 2025, "MoC: Mixtures of Text Chunking Learners for Retrieval-Augmented Generation", define two
perplexity-based measures of a chunking, computed with a small causal LM (``rag.lm.CausalLM``):

- **Boundary Clarity** of consecutive chunks ``d`` then ``q``: ``BC(q, d) = ppl(q | d) / ppl(q)``. Near (or
  above) 1 when ``d`` does not help predict ``q`` (a clean boundary); small when the cut separates text that
  belongs together. Reported as the mean over consecutive pairs inside each document (higher is better).
- **Chunk Stickiness**: a graph over a document's chunks with an edge ``i — j`` when
  ``K(i, j) = (ppl(x_j) − ppl(x_j | x_i)) / ppl(x_j)`` exceeds a threshold ``K`` (chunk ``i`` makes chunk ``j``
  much more predictable); stickiness is the graph's structural entropy ``−Σ_v (h_v / 2m) log2(h_v / 2m)``
  (``h_v`` degree, ``m`` edges). Lower is better (chunks are self-contained). The *incomplete* graph (MoC's
  default, cheaper) only conditions a chunk on earlier ones (``i < j``); the *complete* graph uses both
  directions. ``window`` limits ``j − i`` to bound the quadratic cost on long documents.

Size statistics (counts, mean / median / spread / extremes of tokens and characters, share over a limit)
need no model.

    from evals.chunk_quality import chunk_quality
    chunk_quality(chunks, lm="gemma3-270m")   # {"boundary_clarity": ..., "chunk_stickiness": ..., "size": {...}}
"""
from __future__ import annotations

import math
from array import array
from collections import defaultdict
from typing import Any, Literal, Sequence

import numpy as np

from rag.types import Chunk


#: A chunk of at most this many tokens is counted as a fragment by :func:`size_statistics` (a lone word or
#: punctuation left over by a cut; the last chunk of a document is not counted).
FRAGMENT_TOKENS = 5


def size_statistics(chunks: Sequence[Chunk], limit: int | None = None) -> dict[str, Any]:
    """Counts and the distribution of token and character sizes; ``over_limit`` is the share above ``limit``;
    ``whitespace_only`` counts chunks with no other character, ``fragments`` those of at most
    :data:`FRAGMENT_TOKENS` tokens that are not the last of their document."""
    tally = SizeTally()
    tally.add(chunks)
    return tally.statistics(limit)


class SizeTally:
    """:func:`size_statistics` over chunks given a group at a time (every chunk of a document in one group), keeping
    two integers per chunk instead of the chunks: for chunking more text than memory holds."""

    def __init__(self) -> None:
        self.tokens = array("q")
        self.chars = array("q")
        self.documents = self.whitespace_only = self.fragments = 0

    def add(self, chunks: Sequence[Chunk]) -> None:
        last_of_document = {c.doc_id: c.id for c in chunks}
        self.documents += len(last_of_document)
        self.tokens.extend(c.token_count for c in chunks)
        self.chars.extend(len(c.text) for c in chunks)
        self.whitespace_only += sum(not c.text.strip() for c in chunks)
        self.fragments += sum(c.token_count <= FRAGMENT_TOKENS and last_of_document[c.doc_id] != c.id
                              for c in chunks)

    def statistics(self, limit: int | None = None) -> dict[str, Any]:
        tokens, chars = (np.frombuffer(values, dtype=np.int64).astype(np.float64) for values in (self.tokens, self.chars))
        stats: dict[str, Any] = {"chunks": len(tokens), "documents": self.documents,
                                 "whitespace_only": self.whitespace_only, "fragments": self.fragments}
        for name, values in (("tokens", tokens), ("chars", chars)):
            if len(values) == 0:
                stats[name] = {}
                continue
            mean = float(values.mean())
            stats[name] = {"mean": mean, "median": float(np.median(values)), "std": float(values.std()),
                           "min": float(values.min()), "max": float(values.max()),
                           "p95": float(np.percentile(values, 95)), "cv": float(values.std() / mean) if mean else 0.0}
        if limit is not None:
            stats["over_limit"] = float((tokens > limit).mean()) if len(tokens) else 0.0
        return stats


def _by_document(chunks: Sequence[Chunk]) -> list[list[Chunk]]:
    groups: dict[str, list[Chunk]] = defaultdict(list)
    for c in chunks:
        groups[c.doc_id].append(c)
    return [sorted(group, key=lambda c: (c.start, c.end)) for group in groups.values()]


def _resolve_lm(lm):
    if isinstance(lm, str):
        from rag.lm import load_causal_lm

        return load_causal_lm(lm)
    return lm


def boundary_clarity_pairs(lm, chunks: Sequence[Chunk]) -> np.ndarray:
    """``ppl(q | d) / ppl(q)`` for every pair of consecutive chunks ``(d, q)`` of the same document."""
    lm = _resolve_lm(lm)
    previous, following = [], []
    for group in _by_document(chunks):
        for d, q in zip(group, group[1:]):
            previous.append(d.text)
            following.append(q.text)
    if not following:
        return np.zeros(0, dtype=np.float64)
    alone = lm.perplexities(following)
    given = lm.perplexities(following, contexts=previous)
    return np.asarray(given, dtype=np.float64) / np.asarray(alone, dtype=np.float64)


def boundary_clarity(lm, chunks: Sequence[Chunk]) -> float:
    """Mean Boundary Clarity over consecutive pairs (``nan`` with fewer than two chunks per document)."""
    values = boundary_clarity_pairs(lm, chunks)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else math.nan


def structural_entropy(n_nodes: int, edges: Sequence[tuple[int, int]]) -> float:
    """``−Σ_v (h_v / 2m) log2(h_v / 2m)`` over nodes with degree ``h_v > 0``; 0 for a graph without edges."""
    if not edges:
        return 0.0
    degree = np.zeros(n_nodes, dtype=np.float64)
    for i, j in edges:
        degree[i] += 1
        degree[j] += 1
    share = degree[degree > 0] / (2 * len(edges))
    return float(-(share * np.log2(share)).sum())


def chunk_stickiness(lm, chunks: Sequence[Chunk], threshold: float = 0.5,
                     graph: Literal["incomplete", "complete"] = "incomplete", window: int | None = None) -> float:
    """Mean over documents of the structural entropy of the chunk graph (edges where ``K(i, j) > threshold``)."""
    if graph not in ("incomplete", "complete"):
        raise ValueError(f"graph must be 'incomplete' or 'complete', got {graph!r}")
    lm = _resolve_lm(lm)
    entropies = []
    for group in _by_document(chunks):
        n = len(group)
        texts = [c.text for c in group]
        pairs = [(i, j) for i in range(n) for j in range(n) if i != j and (graph == "complete" or i < j)
                 and (window is None or abs(j - i) <= window)]
        if not pairs:
            entropies.append(0.0)
            continue
        alone = np.asarray(lm.perplexities(texts), dtype=np.float64)
        given = np.asarray(lm.perplexities([texts[j] for _, j in pairs], contexts=[texts[i] for i, _ in pairs]),
                           dtype=np.float64)
        strength = (alone[[j for _, j in pairs]] - given) / alone[[j for _, j in pairs]]
        linked = {tuple(sorted(pair)) for pair, k in zip(pairs, strength) if np.isfinite(k) and k > threshold}
        entropies.append(structural_entropy(n, sorted(linked)))
    return float(np.mean(entropies)) if entropies else math.nan


def chunk_quality(chunks: Sequence[Chunk], lm=None, limit: int | None = None, threshold: float = 0.5,
                  graph: Literal["incomplete", "complete"] = "incomplete", window: int | None = None) -> dict[str, Any]:
    """Size statistics, plus Boundary Clarity and Chunk Stickiness when a causal LM (or its name) is given."""
    result: dict[str, Any] = {"size": size_statistics(chunks, limit)}
    if lm is not None:
        lm = _resolve_lm(lm)
        result["boundary_clarity"] = boundary_clarity(lm, chunks)
        result["chunk_stickiness"] = chunk_stickiness(lm, chunks, threshold, graph, window)
    return result
