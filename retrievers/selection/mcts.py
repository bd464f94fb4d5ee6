"""Monte Carlo tree search over chunk combinations (CORAG, Wang et al. 2024, "CORAG: A Cost-Constrained
Retrieval Optimization System for Retrieval-Augmented Generation").

A node is a set of chunks; a child adds one more chunk that still fits the budget. Sets are built in one
canonical order (a child only adds a candidate ranked after the node's last one), so every combination has one
node. Selection descends by UCT (Kocsis & Szepesvári 2006); expansion adds the untried child of highest
marginal utility; the rollout keeps adding chunks (any that fit, in any order) ε-greedily — the chunk of highest
positive marginal utility, or with probability ``epsilon`` a random one of positive utility — and its reward is
the best utility along the way: with a non-monotone utility the best set may stop early. The first simulation
is therefore the greedy set, and the result is never worse than it.
The search space is the ``max_actions`` most relevant candidates; the result is the best set ever visited.
Seeded: the same inputs and seed give the same set.
"""
from __future__ import annotations

import math

import numpy as np

from retrievers.selection.pool import CandidatePool
from retrievers.selection.proposal import Proposal


class _Node:
    __slots__ = ("untried", "children", "visits", "reward")

    def __init__(self, untried: list[int]):
        self.untried = untried
        self.children: list[tuple[int, "_Node"]] = []
        self.visits = 0
        self.reward = 0.0


def mcts(pool: CandidatePool, budget: int, simulations: int = 64, exploration: float = 0.7,
         max_actions: int = 24, epsilon: float = 0.2, seed: int = 0) -> Proposal:
    # The search space is small (``max_actions``), so the tree walk and the rollouts run on Python lists and
    # floats: a numpy call per step costs more than the whole step. Penalty rows that are all zero (no
    # redundancy, the common case) are skipped, since subtracting them changes nothing.
    rng = np.random.default_rng(seed)
    space = np.argsort(-pool.values, kind="stable")[:max_actions]
    m = len(space)
    if m == 0:
        return Proposal((), fill="gain")
    values = pool.values[space].astype(np.float64)
    costs_array = pool.costs[space].astype(np.int64)
    penalty = pool.penalty[np.ix_(space, space)]
    scale = max(float(values[np.cumsum(costs_array) <= budget].sum()), float(values.max()), 1e-9)
    value_list, costs = values.tolist(), costs_array.tolist()
    rows = [row.tolist() if row.any() else None for row in penalty]

    def add(gains: list[float], pos: int) -> list[float]:
        """The marginal gains after adding ``pos`` (a new list; ``gains`` itself when nothing changes)."""
        row = rows[pos]
        return gains if row is None else [g - r for g, r in zip(gains, row)]

    def untried(last: int, remaining: int, gains: list[float]) -> list[int]:
        feasible = [k for k in range(last + 1, m) if costs[k] <= remaining and gains[k] > 0]
        return sorted(feasible, key=lambda k: -gains[k])  # stable: ties in rank order

    root = _Node(untried(-1, budget, value_list))
    best_utility, best_set = 0.0, ()
    for simulation in range(simulations):
        node, path = root, [root]
        chosen: list[int] = []
        gains = value_list
        remaining, utility = budget, 0.0
        # selection: descend through fully expanded nodes by UCT
        while not node.untried and node.children:
            log_n = math.log(node.visits + 1)
            best_score, pos, next_node = -math.inf, -1, node
            for child_pos, child in node.children:  # the first child of the highest score
                score = child.reward / child.visits + exploration * math.sqrt(log_n / child.visits)
                if score > best_score:
                    best_score, pos, next_node = score, child_pos, child
            node = next_node
            chosen.append(pos)
            utility += gains[pos]
            gains = add(gains, pos)
            remaining -= costs[pos]
            path.append(node)
        # expansion: the untried child with the highest marginal utility
        if node.untried:
            pos = node.untried.pop(0)
            chosen.append(pos)
            utility += gains[pos]
            gains = add(gains, pos)
            remaining -= costs[pos]
            child = _Node(untried(pos, remaining, gains))
            node.children.append((pos, child))
            path.append(child)
        if utility > best_utility:
            best_utility, best_set = utility, tuple(chosen)
        # rollout: random additions weighted by marginal utility; reward = best utility seen
        rollout_best, rollout_chosen, rollout_utility = utility, list(chosen), utility
        in_set = set(chosen)
        first = simulation == 0
        # costs only shrink ``remaining`` and penalties (≥ 0) only lower gains, so a candidate that stops being
        # feasible never becomes feasible again: the candidate list only shrinks
        open_ = [k for k in range(m) if k not in in_set and costs[k] <= remaining]
        while True:
            feasible = [k for k in open_ if costs[k] <= remaining and gains[k] > 0]
            if not feasible:
                break
            open_ = feasible
            if first or rng.random() >= epsilon:
                pos = max(feasible, key=gains.__getitem__)  # the first of the highest gain
            else:
                pos = feasible[int(rng.integers(len(feasible)))]
            open_.remove(pos)
            rollout_chosen.append(pos)
            rollout_utility += gains[pos]
            gains = add(gains, pos)
            remaining -= costs[pos]
            if rollout_utility > rollout_best:
                rollout_best = rollout_utility
                if rollout_utility > best_utility:
                    best_utility, best_set = rollout_utility, tuple(rollout_chosen)
        reward = rollout_best / scale
        for visited in path:
            visited.visits += 1
            visited.reward += reward
    order = sorted(best_set, key=lambda p: -values[p])
    return Proposal(tuple(int(space[p]) for p in order), fill="gain")
