"""Exact 0/1 knapsack over token costs: the set of chunks with the most value that fits the budget.

Dynamic programming over integer costs (Bellman 1957), ``O(n · budget)`` with numpy doing one row per
candidate. Values are relevance minus redundancy: a pairwise penalty cannot enter an exact DP, so each
candidate's value is discounted by its largest penalty against any more relevant candidate
(``v'_j = v_j − max_{i: v_i > v_j} P_ij``) — a static approximation of ``U(S)``; ``mcts`` optimises the pairwise
utility itself. Budgets above ``max_cells`` token units are solved on costs rounded *up* to a coarser unit, so
the chosen set still fits.
"""
from __future__ import annotations

import math

import numpy as np

from retrievers.selection.pool import CandidatePool
from retrievers.selection.proposal import Proposal


def discounted_values(pool: CandidatePool) -> np.ndarray:
    """``v_j`` minus its largest redundancy penalty against a more relevant candidate (floored at 0)."""
    values = pool.values
    better = values[:, None] > values[None, :]  # better[i, j]: i is more relevant than j
    better |= (values[:, None] == values[None, :]) & np.tri(len(values), k=-1, dtype=bool).T
    worst = np.where(better, pool.penalty, 0.0).max(axis=0) if len(values) else values
    return np.clip(values - worst, 0.0, None)


def solve_knapsack(values: np.ndarray, costs: np.ndarray, budget: int) -> list[int]:
    """Indices of a maximum-value subset with ``sum(costs) <= budget`` (items of value ≤ 0 never taken)."""
    best = np.zeros(budget + 1)
    take = np.zeros((len(values), budget + 1), dtype=bool)
    for i, (value, cost) in enumerate(zip(values, costs)):
        cost = int(cost)
        if value <= 0 or cost > budget:
            continue
        with_item = best[: budget + 1 - cost] + value
        better = with_item > best[cost:]
        take[i, cost:] = better
        best[cost:] = np.where(better, with_item, best[cost:])
    chosen, capacity = [], budget
    for i in range(len(values) - 1, -1, -1):
        if take[i, capacity]:
            chosen.append(i)
            capacity -= int(costs[i])
    return chosen[::-1]


def knapsack(pool: CandidatePool, budget: int, max_cells: int = 4096) -> Proposal:
    unit = max(1, math.ceil(budget / max_cells))
    costs = np.maximum(-(-pool.costs // unit), 0)
    values = discounted_values(pool)
    chosen = solve_knapsack(values, costs, budget // unit)
    chosen.sort(key=lambda i: -pool.values[i])
    return Proposal(tuple(chosen), fill="gain")
