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
    """``v_j`` minus its largest redundancy penalty against a more relevant candidate (floored at 0; ties in
    value: the earlier candidate counts as more relevant). Only the redundant pairs are looked at."""
    values = pool.values
    if pool.pairs_of is None or not pool.redundancy_weight or not len(values):
        return np.clip(values, 0.0, None)
    rows, cols, _ = pool.pairs_of()  # rows < cols
    penalty = pool.penalty[rows, cols]
    row_better = values[rows] >= values[cols]  # on a tie the earlier (row) candidate is the better one
    worse = np.where(row_better, cols, rows)
    worst = np.zeros_like(values)
    np.maximum.at(worst, worse, penalty)
    return np.clip(values - worst, 0.0, None)


def solve_knapsack(values: np.ndarray, costs: np.ndarray, budget: int) -> list[int]:
    """Indices of a maximum-value subset with ``sum(costs) <= budget`` (items of value ≤ 0 never taken).

    One numpy row update per item, in place: ``take_i[c] = best[c − cost] + v > best[c]``, then
    ``best[c] = max(best[c], best[c − cost] + v)`` (the shifted row is copied first, so each item is used once);
    ties keep the set without the item."""
    best = np.zeros(budget + 1)
    take = np.zeros((len(values), budget + 1), dtype=bool)
    for i, (value, cost) in enumerate(zip(values.tolist(), np.asarray(costs).tolist())):
        cost = int(cost)
        if value <= 0 or cost > budget:
            continue
        with_item = best[: budget + 1 - cost] + value
        np.greater(with_item, best[cost:], out=take[i, cost:])
        np.maximum(best[cost:], with_item, out=best[cost:])
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
