"""``op: mmr`` — maximal marginal relevance (Carbonell & Goldstein 1998): diverse hits, best first.

    - {op: mmr, lambda: 0.7, top_k: 10}

Greedily picks ``argmax_d λ·cos(q, d) − (1 − λ)·max_{s∈S} cos(d, s)`` with the pipeline's embedder (cached
vectors); ``λ = 1`` is pure relevance, ``λ = 0`` pure novelty. The new score of each hit is its MMR value at
the moment it was picked (decreasing down the list).
"""
from __future__ import annotations

import numpy as np
from pydantic import Field

from rag.operators import RunContext, StepOperator
from rag.registry import OperatorParams, operator
from rag.state import QueryState
from rag.types import Hit


def mmr_order(query: np.ndarray, docs: np.ndarray, lam: float, k: int) -> tuple[list[int], list[float]]:
    """Indices picked by MMR (at most ``k``) and their MMR values; vectors are L2-normalised."""
    relevance = docs @ query
    similarity = docs @ docs.T
    n = len(docs)
    picked: list[int] = []
    values: list[float] = []
    closest = np.full(n, -np.inf)  # max similarity to anything picked so far
    available = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        novelty = np.where(np.isfinite(closest), closest, 0.0)
        score = np.where(available, lam * relevance - (1.0 - lam) * novelty, -np.inf)
        j = int(np.argmax(score))
        picked.append(j)
        values.append(float(score[j]))
        available[j] = False
        closest = np.maximum(closest, similarity[j])
    return picked, values


@operator("mmr", kind="step")
class MaximalMarginalRelevance(StepOperator):
    """Reorder hits for relevance and diversity (λ = weight of relevance)."""

    class Params(OperatorParams):
        lambda_: float = Field(0.7, ge=0.0, le=1.0, alias="lambda", description="weight of relevance vs novelty")
        top_k: int | None = Field(None, gt=0, description="hits to keep (default: all candidates)")
        candidates: int = Field(100, gt=0, description="only the best N hits are reordered")

    def __call__(self, state: QueryState, ctx: RunContext) -> QueryState:
        pool = state.hits[: self.params.candidates]
        if not pool:
            return state
        embedder = ctx.resources.embedder
        docs = embedder.embed([h.chunk.text for h in pool])
        query = embedder.embed_queries([state.search_query])[0]
        picked, values = mmr_order(query, docs, self.params.lambda_, self.params.top_k or len(pool))
        hits = tuple(Hit(pool[i].chunk, v, self.name) for i, v in zip(picked, values))
        if not self.params.top_k:
            hits += state.hits[len(pool):]
        return state.evolve(hits=hits)
