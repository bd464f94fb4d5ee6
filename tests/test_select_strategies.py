"""Specification of the selection strategies on small hand-made and generated candidate pools."""
from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.types import Chunk, Hit
from retrievers.selection.contiguity import adjacency, smoothed
from retrievers.selection.density import density
from retrievers.selection.knapsack import knapsack, solve_knapsack
from retrievers.selection.mcts import mcts
from retrievers.selection.pool import CandidatePool, build_pool
from retrievers.selection.ranked import gradient, steep_drop_cut


def hit(doc: str, i: int, text: str, score: float, start: int | None = None) -> Hit:
    start = i * 1000 if start is None else start
    return Hit(Chunk(f"{doc}#{i}", doc, text, start, start + len(text), len(text.split())), score, "t")


def pool_of(hits, costs, **kw) -> CandidatePool:
    return build_pool(hits, costs, **kw)


def best_subset_utility(pool: CandidatePool, budget: int) -> float:
    best = 0.0
    for r in range(1, len(pool) + 1):
        for subset in itertools.combinations(range(len(pool)), r):
            if pool.costs[list(subset)].sum() <= budget:
                best = max(best, pool.utility(subset))
    return best


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=8), costs=st.lists(st.integers(1, 30), min_size=8,
       max_size=8), budget=st.integers(1, 80))
def test_knapsack_dp_finds_the_brute_force_optimum(values, costs, budget):
    values, costs = np.array(values), np.array(costs[: len(values)])
    chosen = solve_knapsack(values, costs, budget)
    assert costs[chosen].sum() <= budget
    optimum = max((values[list(s)].sum() for r in range(len(values) + 1)
                   for s in itertools.combinations(range(len(values)), r) if costs[list(s)].sum() <= budget))
    assert values[chosen].sum() >= optimum - 1e-9


def test_density_prefers_the_shorter_of_two_equally_relevant_chunks():
    hits = [hit("a", 0, "long " * 10, 0.9), hit("b", 0, "short", 0.9), hit("c", 0, "low", 0.1)]
    proposal = density(pool_of(hits, [100, 10, 10]), budget=100)
    assert proposal.order[0] == 1


def test_knapsack_beats_rank_order_when_two_small_chunks_outweigh_one_large():
    hits = [hit("a", 0, "big chunk", 1.0), hit("b", 0, "small one", 0.8), hit("c", 0, "small two", 0.7),
            hit("d", 0, "floor", 0.0)]
    proposal = knapsack(pool_of(hits, [100, 50, 50, 50]), budget=100)
    assert sorted(proposal.order) == [1, 2]


def test_near_duplicate_chunks_are_not_selected_twice():
    text = "the mitochondria is the powerhouse of the cell and makes atp"
    hits = [hit("a", 0, text, 1.0), hit("b", 0, text + " indeed", 0.95), hit("c", 0, "ribosomes make proteins", 0.5),
            hit("d", 0, "unrelated", 0.0)]
    pool = pool_of(hits, [10, 10, 10, 10], near_duplicate=0.8)
    for strategy in (density, knapsack, mcts):
        chosen = set(strategy(pool, 20).order)
        assert not {0, 1} <= chosen, strategy.__name__
        assert 2 in chosen, strategy.__name__


def test_overlapping_chunks_of_one_document_are_redundant():
    hits = [hit("a", 0, "x" * 100, 1.0, start=0), hit("a", 1, "y" * 100, 0.9, start=50), hit("a", 2, "z" * 100, 0.2, start=500)]
    pool = pool_of(hits, [10, 10, 10], near_duplicate=2.0)
    redundancy = pool.redundancy_of()
    assert redundancy[0, 1] == 0.5 and redundancy[0, 2] == 0.0


@settings(max_examples=25, deadline=None)
@given(values=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=7), costs=st.lists(st.integers(1, 20), min_size=7,
       max_size=7), budget=st.integers(5, 60), dup=st.lists(st.integers(0, 2), min_size=7, max_size=7))
def test_mcts_finds_the_best_set_on_small_pools_and_stops_when_adding_would_lower_utility(values, costs, budget, dup):
    words = ["alpha beta gamma", "delta epsilon zeta", "eta theta iota"]
    hits = [hit(f"d{i}", 0, words[dup[i]], v) for i, v in enumerate(values)]
    pool = pool_of(hits, costs[: len(values)], redundancy_weight=1.5, near_duplicate=0.9)
    proposal = mcts(pool, budget, simulations=400, max_actions=7, seed=1)
    chosen = list(proposal.order)
    assert pool.costs[chosen].sum() <= budget
    assert pool.utility(chosen) >= best_subset_utility(pool, budget) - 1e-9


def test_mcts_is_deterministic_for_a_seed():
    rng = np.random.default_rng(0)
    hits = [hit(f"d{i}", 0, f"text {i} " + "w" * int(rng.integers(1, 5)), float(rng.random())) for i in range(40)]
    pool = pool_of(hits, rng.integers(5, 50, size=40))
    assert mcts(pool, 150, seed=3).order == mcts(pool, 150, seed=3).order


def test_steep_drop_cut_keeps_chunks_above_the_first_cliff():
    values = np.array([1.0, 0.95, 0.9, 0.4, 0.35, 0.0])
    assert steep_drop_cut(values, np.ones(6, dtype=int), budget=10, threshold=0.2) == 3
    assert steep_drop_cut(values, np.ones(6, dtype=int), budget=2, threshold=0.2) == 2


def test_gradient_fills_with_neighbours_of_kept_chunks_before_lower_ranked_chunks():
    hits = [hit("a", 0, "x" * 10, 1.0, start=0), hit("b", 0, "far", 0.5, start=0), hit("a", 1, "y" * 10, 0.45, start=10),
            hit("c", 0, "zz", 0.0)]
    proposal = gradient(pool_of(hits, [10, 10, 10, 10]), budget=20, threshold=0.3)
    assert proposal.order[:2] == (0, 2)


def test_smoothed_moves_the_neighbour_of_the_best_hit_ahead_of_weaker_unrelated_chunks():
    hits = [hit("a", 0, "x" * 10, 0.9, start=0), hit("b", 0, "b", 0.8), hit("c", 0, "c", 0.7), hit("d", 0, "d", 0.6),
            hit("e", 0, "e", 0.5), hit("a", 1, "y" * 10, 0.4, start=10)]
    proposal = smoothed(pool_of(hits, [10] * 6, normalization="rank"), budget=30, weight=0.3)
    assert proposal.order == (0, 1, 5, 2, 3, 4)


def test_smoothed_without_weight_is_rank_order():
    hits = [hit("a", i, "w" * 10, 1.0 - i / 10, start=10 * i) for i in range(6)]
    assert smoothed(pool_of(hits, [10] * 6, normalization="rank"), budget=30, weight=0.0).order == tuple(range(6))


def test_consecutive_chunk_ids_are_adjacent_across_a_whitespace_gap_but_other_documents_are_not():
    hits = [hit("a", 0, "x" * 10, 0.9, start=0), hit("a", 1, "y" * 10, 0.8, start=11),
            hit("b", 0, "z" * 10, 0.7, start=21), hit("a", 3, "v" * 10, 0.6, start=40)]
    near = adjacency(pool_of(hits, [10] * 4))
    assert near[0, 1] and near[1, 0]
    assert not near[1, 2] and not near[1, 3] and not near[0, 3]


@settings(max_examples=60, deadline=None)
@given(docs=st.lists(st.integers(0, 3), min_size=1, max_size=12), scores=st.lists(st.floats(0.0, 1.0), min_size=12,
       max_size=12), weight=st.floats(0.0, 1.0))
def test_smoothed_orders_every_candidate_once_and_keeps_the_rank_order_of_chunks_without_neighbours(docs, scores,
                                                                                                     weight):
    position = {}
    hits = []
    for doc, score in zip(docs, scores):
        i = position[doc] = position.get(doc, -1) + 1
        hits.append(hit(f"d{doc}", i, "w" * 10, score, start=10 * i))
    hits.sort(key=lambda h: -h.score)
    pool = pool_of(hits, [10] * len(hits), normalization="rank")
    order = smoothed(pool, budget=50, weight=weight).order
    assert sorted(order) == list(range(len(hits)))
    isolated = [i for i in order if not adjacency(pool)[i].any()]
    assert isolated == sorted(isolated)
