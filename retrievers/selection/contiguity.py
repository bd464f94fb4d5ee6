"""``smoothed``: rank order over relevance smoothed along each document.

Evidence is contiguous in documents: a passage that answers a question often crosses a chunk boundary, so a
chunk next to a relevant chunk is likely to hold part of the answer even when its own score is low. Each
candidate's value is smoothed over its neighbours in the document (a ``[w, 1, w]`` kernel along the chunk
sequence, as in passage-score smoothing for passage retrieval and relevant segment extraction)::

    v'_j = v_j + w · Σ_{i adjacent to j} v_i

and candidates are taken best ``v'`` first (ties in rank order). ``w`` is the chance that evidence in a chunk
continues into a given neighbour; with rank values (``1/(1+rank)``, the default normalisation) ``w = 0.3`` puts
the neighbour of the first hit (0.3 plus its own value) just ahead of the fourth-ranked chunk. Two candidates are
adjacent when they are chunks of one document whose spans overlap or touch, or whose ids are consecutive
(``chunk_id(doc, i)`` and ``chunk_id(doc, i + 1)``: chunkers that drop the whitespace between chunks).
"""
from __future__ import annotations

import numpy as np

from retrievers.selection.pool import CandidatePool
from retrievers.selection.proposal import Proposal


def _position(chunk_id: str, doc_id: str) -> int:
    """``i`` for an id ``f"{doc_id}#{i}"``, else -2 (never consecutive to anything)."""
    prefix = doc_id + "#"
    tail = chunk_id[len(prefix):] if chunk_id.startswith(prefix) else ""
    return int(tail) if tail.isdigit() else -2


def adjacency(pool: CandidatePool) -> np.ndarray:
    """``A[i, j]``: candidates ``i ≠ j`` are neighbours in one document (symmetric, zero diagonal)."""
    chunks = [h.chunk for h in pool.hits]
    codes: dict[str, int] = {}
    doc = np.array([codes.setdefault(c.doc_id, len(codes)) for c in chunks], dtype=np.int64)
    starts = np.array([c.start for c in chunks], dtype=np.int64)
    ends = np.array([c.end for c in chunks], dtype=np.int64)
    position = np.array([_position(c.id, c.doc_id) for c in chunks], dtype=np.int64)
    touching = (starts[:, None] <= ends[None, :]) & (starts[None, :] <= ends[:, None])
    consecutive = (np.abs(position[:, None] - position[None, :]) == 1) & (position[:, None] >= 0) & (
        position[None, :] >= 0)
    near = (doc[:, None] == doc[None, :]) & (touching | consecutive)
    np.fill_diagonal(near, False)
    return near


def smoothed_values(pool: CandidatePool, weight: float) -> np.ndarray:
    """``v_j + weight · Σ`` of the values of ``j``'s neighbours among the candidates."""
    if weight <= 0 or len(pool) < 2:
        return pool.values.astype(np.float64)
    return pool.values + weight * (adjacency(pool).astype(np.float64) @ pool.values)


def smoothed(pool: CandidatePool, budget: int, weight: float = 0.3) -> Proposal:
    order = np.argsort(-smoothed_values(pool, weight), kind="stable")
    return Proposal(tuple(int(i) for i in order), fill=None)
