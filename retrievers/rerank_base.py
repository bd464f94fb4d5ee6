"""What every reranker shares: rescore the best ``candidates`` hits, reorder, keep ``top_k``.

Hits beyond ``candidates`` are not rescored; they follow the reranked ones in their original order (so a
later ``select`` still sees them), unless ``top_k`` cuts the list.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from rag.state import QueryState
from rag.types import Hit


def reranked(state: QueryState, rescored: Sequence[Hit], scores: Sequence[float], source: str,
             top_k: int | None) -> QueryState:
    """``state`` with ``rescored`` hits sorted by ``scores`` (stable) ahead of the hits that were not rescored."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    head = [Hit(rescored[i].chunk, float(scores[i]), source) for i in order]
    tail = list(state.hits[len(rescored):])
    hits = tuple(head + tail)
    return state.evolve(hits=hits[:top_k] if top_k else hits)
