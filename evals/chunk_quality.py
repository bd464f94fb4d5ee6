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
  directions, each an edge of its own (as the authors' code counts them). ``window`` limits ``|j − i|`` to bound
  the quadratic cost on long documents. The mean is over documents, one of a single chunk counting 0.

Both compare a chunk's perplexity with and without its context over the same tokens
(:meth:`rag.lm.CausalLM.perplexity_ratios`): the context keeps at least half the LM's window, and a chunk that
does not fit in the rest is scored on its first tokens; a model without a BOS token leaves a chunk's first token
out of both. A pair with a chunk of no tokens (whitespace only) is left out (``unscored_pairs``), not scored as 1.

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
        last_of_document: dict[str, Chunk] = {}  # by position, whatever the order of the list
        for c in chunks:
            last = last_of_document.get(c.doc_id)
            if last is None or (c.start, c.end) >= (last.start, last.end):
                last_of_document[c.doc_id] = c
        self.documents += len(last_of_document)
        self.tokens.extend(c.token_count for c in chunks)
        self.chars.extend(len(c.text) for c in chunks)
        self.whitespace_only += sum(not c.text.strip() for c in chunks)
        self.fragments += sum(c.token_count <= FRAGMENT_TOKENS and last_of_document[c.doc_id] is not c
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


def by_document(chunks: Sequence[Chunk]) -> list[list[Chunk]]:
    """The chunks of each document, in text order."""
    groups: dict[str, list[Chunk]] = defaultdict(list)
    for c in chunks:
        groups[c.doc_id].append(c)
    return [sorted(group, key=lambda c: (c.start, c.end)) for group in groups.values()]


def _resolve_lm(lm):
    if isinstance(lm, str):
        from rag.lm import load_causal_lm

        return load_causal_lm(lm)
    return lm


Pair = tuple[int, int, int]  # (document, i, j): chunk j of the document given chunk i


def consecutive_pairs(groups: Sequence[Sequence[Chunk]]) -> list[Pair]:
    """Boundary clarity's pairs: each chunk given the one before it."""
    return [(d, i, i + 1) for d, group in enumerate(groups) for i in range(len(group) - 1)]


def stickiness_pairs(groups: Sequence[Sequence[Chunk]], graph: str = "incomplete",
                     window: int | None = None) -> list[Pair]:
    """Chunk stickiness's pairs: each chunk given every earlier one of its document (the ``complete`` graph: every
    other one), or only those at most ``window`` chunks away."""
    _check_graph(graph, window)
    reach = window if window is not None else max((len(g) for g in groups), default=0)
    pairs = []
    for d, group in enumerate(groups):
        n = len(group)
        for j in range(n):
            earlier = range(max(0, j - reach), j)
            later = range(j + 1, min(n, j + reach + 1)) if graph == "complete" else ()
            pairs.extend((d, i, j) for i in (*earlier, *later))
    return pairs


def _check_graph(graph: str, window: int | None) -> None:
    if graph not in ("incomplete", "complete"):
        raise ValueError(f"graph must be 'incomplete' or 'complete', got {graph!r}")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise ValueError(f"window must be a whole number of chunks, at least 1, or None; got {window!r}")


def pair_ratios(lm, groups: Sequence[Sequence[Chunk]], pairs: Sequence[Pair]) -> dict[Pair, float]:
    """``ppl(x_j | x_i) / ppl(x_j)`` of each pair, each scored once, by the LM's ``perplexity_ratios``
    (:meth:`rag.lm.CausalLM.perplexity_ratios`: ``nan`` for a chunk of no tokens)."""
    pairs = list(dict.fromkeys(pairs))
    if not pairs:
        return {}
    values = lm.perplexity_ratios([groups[d][j].text for d, _, j in pairs], [groups[d][i].text for d, i, _ in pairs])
    return dict(zip(pairs, map(float, values)))


def boundary_clarity_pairs(lm, chunks: Sequence[Chunk]) -> np.ndarray:
    """``ppl(q | d) / ppl(q)`` for every pair of consecutive chunks ``(d, q)`` of the same document (``nan`` for a
    pair with a chunk of no tokens)."""
    groups = by_document(chunks)
    pairs = consecutive_pairs(groups)
    ratios = pair_ratios(_resolve_lm(lm), groups, pairs)
    return np.array([ratios[pair] for pair in pairs], dtype=np.float64)


def boundary_clarity(lm, chunks: Sequence[Chunk]) -> float:
    """Mean Boundary Clarity over the consecutive pairs that could be scored (``nan`` without any: fewer than two
    chunks per document)."""
    return _mean_clarity(boundary_clarity_pairs(lm, chunks))


def _mean_clarity(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else math.nan


def structural_entropy(n_nodes: int, edges: Sequence[tuple[int, int]]) -> float:
    """``−Σ_v (h_v / 2m) log2(h_v / 2m)`` over nodes with degree ``h_v > 0``; 0 for a graph without edges. An edge
    listed twice (both directions of the complete graph) counts twice."""
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
    """Mean over documents of the structural entropy of the chunk graph: an edge ``i → j`` where
    ``K(i, j) = 1 − ppl(x_j | x_i) / ppl(x_j) > threshold``; in the complete graph ``i → j`` and ``j → i`` are two
    edges when both pass, as the MoC authors' code counts them. A document of one chunk counts 0; ``nan`` when no
    document has two chunks."""
    _check_threshold(threshold)
    groups = by_document(chunks)
    pairs = stickiness_pairs(groups, graph, window)
    return _stickiness(groups, pairs, pair_ratios(_resolve_lm(lm), groups, pairs), threshold)


def _check_threshold(threshold: float) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not -math.inf < threshold < 1:
        raise ValueError(f"threshold must be a number below 1 (K = 1 - ppl(x_j | x_i) / ppl(x_j) is at most 1), "
                         f"got {threshold!r}")


def _stickiness(groups, pairs: Sequence[Pair], ratios: dict[Pair, float], threshold: float) -> float:
    edges: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for d, i, j in pairs:
        if 1.0 - ratios[(d, i, j)] > threshold:  # nan (a chunk of no tokens) is no edge
            edges[d].append((i, j))
    if all(len(group) < 2 for group in groups):
        return math.nan
    return float(np.mean([structural_entropy(len(group), edges[d]) for d, group in enumerate(groups)]))


def chunk_quality(chunks: Sequence[Chunk], lm=None, limit: int | None = None, threshold: float = 0.5,
                  graph: Literal["incomplete", "complete"] = "incomplete", window: int | None = None) -> dict[str, Any]:
    """Size statistics, plus Boundary Clarity and Chunk Stickiness when a causal LM (or its name) is given; each pair
    is scored once for both (boundary clarity's pairs are stickiness's neighbours). ``quality`` holds the settings
    and the pairs scored, and left out (``unscored_pairs``: a chunk of no tokens)."""
    result: dict[str, Any] = {"size": size_statistics(chunks, limit)}
    if lm is not None:
        _check_threshold(threshold)
        groups = by_document(chunks)
        consecutive, sticky = consecutive_pairs(groups), stickiness_pairs(groups, graph, window)
        ratios = pair_ratios(_resolve_lm(lm), groups, [*consecutive, *sticky])
        result["boundary_clarity"] = _mean_clarity(np.array([ratios[pair] for pair in consecutive], dtype=np.float64))
        result["chunk_stickiness"] = _stickiness(groups, sticky, ratios, threshold)
        scored = sum(math.isfinite(value) for value in ratios.values())
        result["quality"] = {"threshold": threshold, "graph": graph, "window": window, "scored_pairs": scored,
                             "unscored_pairs": len(ratios) - scored}
    return result
