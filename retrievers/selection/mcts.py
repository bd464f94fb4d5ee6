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
    rng = np.random.default_rng(seed)
    space = np.argsort(-pool.values, kind="stable")[:max_actions]
    m = len(space)
    if m == 0:
        return Proposal((), fill="gain")
    values = pool.values[space].astype(np.float64)
    costs = pool.costs[space].astype(np.int64)
    penalty = pool.penalty[np.ix_(space, space)]
    positions = np.arange(m)
    scale = max(float(values[np.cumsum(costs) <= budget].sum()), float(values.max()), 1e-9)

    def untried(last: int, remaining: int, gains: np.ndarray) -> list[int]:
        feasible = np.flatnonzero((positions > last) & (costs <= remaining) & (gains > 0))
        return feasible[np.argsort(-gains[feasible], kind="stable")].tolist()

    root = _Node(untried(-1, budget, values))
    best_utility, best_set = 0.0, ()
    for simulation in range(simulations):
        node, path = root, [root]
        chosen: list[int] = []
        gains = values.copy()
        remaining, utility, last = budget, 0.0, -1
        # selection: descend through fully expanded nodes by UCT
        while not node.untried and node.children:
            log_n = math.log(node.visits + 1)
            _, (pos, node) = max(enumerate(node.children), key=lambda item: (
                item[1][1].reward / item[1][1].visits + exploration * math.sqrt(log_n / item[1][1].visits)))
            chosen.append(pos)
            utility += gains[pos]
            gains = gains - penalty[pos]
            remaining -= int(costs[pos])
            last = pos
            path.append(node)
        # expansion: the untried child with the highest marginal utility
        if node.untried:
            pos = node.untried.pop(0)
            chosen.append(pos)
            utility += gains[pos]
            gains = gains - penalty[pos]
            remaining -= int(costs[pos])
            last = pos
            child = _Node(untried(last, remaining, gains))
            node.children.append((pos, child))
            path.append(child)
        if utility > best_utility:
            best_utility, best_set = utility, tuple(chosen)
        # rollout: random additions weighted by marginal utility; reward = best utility seen
        rollout_best, rollout_chosen, rollout_utility = utility, list(chosen), utility
        in_set = np.zeros(m, dtype=bool)
        in_set[chosen] = True
        first = simulation == 0
        while True:
            feasible = np.flatnonzero(~in_set & (costs <= remaining) & (gains > 0))
            if feasible.size == 0:
                break
            if first or rng.random() >= epsilon:
                pos = int(feasible[np.argmax(gains[feasible])])
            else:
                pos = int(feasible[rng.integers(feasible.size)])
            in_set[pos] = True
            rollout_chosen.append(pos)
            rollout_utility += gains[pos]
            gains = gains - penalty[pos]
            remaining -= int(costs[pos])
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
