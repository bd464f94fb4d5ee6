"""Greedy value-per-token selection (the classic knapsack greedy, with a redundancy-aware marginal value).

At each step take the candidate with the highest marginal utility per token, ``ΔU(j | S) / cost_j``, among those
that still fit and add something (``ΔU > 0``); ``ΔU`` subtracts the redundancy penalty against what is already
selected (see :mod:`retrievers.selection.pool`), so a near-duplicate of a selected chunk loses its value.
"""
from __future__ import annotations

import numpy as np

from retrievers.selection.pool import CandidatePool
from retrievers.selection.proposal import Proposal


def density(pool: CandidatePool, budget: int) -> Proposal:
    n = len(pool)
    selected = np.zeros(n, dtype=bool)
    gains = pool.values.astype(np.float64).copy()
    costs = np.maximum(pool.costs, 1).astype(np.float64)
    remaining = budget
    order: list[int] = []
    while True:
        feasible = ~selected & (pool.costs <= remaining) & (gains > 0)
        if not feasible.any():
            break
        ratio = np.where(feasible, gains / costs, -np.inf)
        j = int(np.argmax(ratio))
        order.append(j)
        selected[j] = True
        remaining -= int(pool.costs[j])
        gains -= pool.penalty[j]
    return Proposal(tuple(order), fill="gain")
