"""Rank-order selectors: ``topk`` (the baseline) and ``gradient`` (SAGE).

``topk`` takes hits in rank order until the budget is full (a hit that does not fit is skipped and the next
tried). ``gradient`` follows SAGE (Zhang et al. 2025, "SAGE: A Framework of Precise Retrieval for RAG"):
relevance scores sorted best first usually fall off a cliff where relevant chunks end; keep the chunks above
the first steep drop, then fill the leftover budget — first with candidates adjacent to a kept chunk in its
document (small-to-big: a gold passage that crosses a chunk boundary continues there), then in rank order.
"""
from __future__ import annotations

import numpy as np

from retrievers.selection.pool import CandidatePool, normalized_values
from retrievers.selection.proposal import Proposal


def topk(pool: CandidatePool, budget: int) -> Proposal:
    return Proposal(tuple(range(len(pool))), fill=None)


def steep_drop_cut(values: np.ndarray, costs: np.ndarray, budget: int, threshold: float, min_keep: int = 1) -> int:
    """How many of the best-first ``values`` to keep: up to (and including) the first position whose drop to the
    next value is ≥ ``threshold`` (values are in [0, 1]); only positions reachable within ``budget`` count."""
    reachable = int(np.searchsorted(np.cumsum(costs), budget, side="right"))
    reachable = max(min_keep, min(reachable, len(values)))
    drops = values[:reachable - 1] - values[1:reachable] if reachable > 1 else np.zeros(0)
    steep = np.flatnonzero(drops >= threshold)
    steep = steep[steep + 1 >= min_keep]
    return int(steep[0]) + 1 if steep.size else reachable


def _adjacent(pool: CandidatePool, kept: list[int]) -> list[int]:
    """Candidates not kept that overlap or touch a kept chunk of the same document, in rank order."""
    spans = {}
    for i in kept:
        chunk = pool.hits[i].chunk
        spans.setdefault(chunk.doc_id, []).append((chunk.start, chunk.end))
    kept_set = set(kept)
    out = []
    for j, hit in enumerate(pool.hits):
        if j in kept_set:
            continue
        c = hit.chunk
        if any(s <= c.end and c.start <= e for s, e in spans.get(c.doc_id, ())):
            out.append(j)
    return out


def gradient(pool: CandidatePool, budget: int, threshold: float = 0.1) -> Proposal:
    """The cut is taken on the min-max-scaled hit scores themselves (whatever the pool's value normalisation:
    rank values would put a "cliff" after every first hit)."""
    scores = normalized_values(np.array([h.score for h in pool.hits], dtype=np.float64), "minmax")
    order = np.argsort(-scores, kind="stable")
    keep = steep_drop_cut(scores[order], pool.costs[order], budget, threshold)
    kept = [int(i) for i in order[:keep]]
    return Proposal(tuple(kept + _adjacent(pool, kept)), fill="rank")
