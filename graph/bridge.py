"""``graph_bridge``: two-hop retrieval by passage pairs — a first-hop walk, a second walk from what each of the
best first-hop passages adds to the question, and a ranking that puts complete evidence pairs first.

The chain factorisation of multi-hop retrieval, P(p₁, p₂ | q) = P(p₁ | q) · P(p₂ | q, p₁) (multi-hop dense
retrieval, Xiong et al. 2021; beam retrieval, Zhang et al. 2024), with both factors read off the entity graph
by Personalized PageRank instead of a trained encoder (HippoRAG, Gutiérrez et al. 2024):

- P(p₁ | q): ``graph_ppr``'s walk (same seeds and params), over passages;
- P(p₂ | q, p₁), for each of the ``hop_top_k`` best first-hop passages: a second walk whose reset puts
  ``bridge_weight`` on what p₁ adds to the question — the entities it links to that the query's seeds do not
  hold, by edge weight — and the rest on what is left of the question once p₁ is read — the query's seeds
  without the entities p₁ mentions; over the passages other than p₁. The title links carry the walk from a
  bridge entity p₁ mentions to the passage about it (the second hop of a bridge question); the entity p₁ does
  not cover keeps the other passage of a comparison question in play.

Pairs are ranked by the product and passages emitted in pair order: each passage scores its best pair's score
(p₁ just above its partner), so the head of the ranking holds the best pairs rather than the best single
passages. ``state.notes["graph_bridge"]`` lists the first-hop passages, the best pairs with the entity joining
them (the middle node of the strongest two-step path p₁ → entity → p₂; None if the walk went further) and, for
each passage the pairing moved up, the first-hop passage and bridge entity that put it there.

YAML::

    - {op: graph_bridge, top_k: 20, hop_top_k: 5, bridge_weight: 0.5}
"""
from __future__ import annotations

import numpy as np

from graph.compiled import CompiledGraph
from graph.linking import graph_of, ranked_hits
from graph.ppr import GraphPPRRetriever
from rag.errors import ConfigError
from rag.filters import matches
from rag.operators import RunContext
from rag.registry import operator
from rag.state import QueryState

#: How many of the best pairs, and of the moved-up passages, the trace note lists.
NOTE_LENGTH = 10


@operator("graph_bridge", kind="retriever")
class GraphBridgeRetriever(GraphPPRRetriever):
    """Passage pairs ranked by P(p₁ | q) · P(p₂ | q, p₁), both from Personalized PageRank walks."""

    class Params(GraphPPRRetriever.Params):
        hop_top_k: int = 5  # first-hop passages a second walk starts from
        bridge_weight: float = 0.5  # share of the second walk's reset on what the first-hop passage adds
        bridge_tol: float = 1e-4  # L1 convergence of the second walks (they only rank pairs; see docs)

    def __init__(self, **params):
        super().__init__(**params)
        p = self.params
        if p.hop_top_k < 1:
            raise ConfigError(f"must be ≥ 1, got {p.hop_top_k}", "hop_top_k")
        if not 0.0 <= p.bridge_weight <= 1.0:
            raise ConfigError(f"must be in [0, 1], got {p.bridge_weight}", "bridge_weight")

    def pair_scores(self, state: QueryState, ctx: RunContext) -> tuple[np.ndarray, dict]:
        """Each passage's best pair score (aligned with ``passage_ids``) and the trace note."""
        p = self.params
        _, graph = graph_of(ctx, p.structure)
        n = graph.n_passages
        reset, linked, note = self.seeds(state.search_query, ctx)
        if reset.sum() <= 0:
            return np.zeros(n), note
        first = graph.personalized_pagerank(reset, p.damping, p.max_iter, p.tol)[:n] if linked else reset[:n]
        first = first / first.sum()
        hops = _first_hops(first, graph, state, ctx, p.hop_top_k)
        if not len(hops):  # no passage passes the filters
            return np.zeros(n), note
        restarts = np.zeros((len(reset), len(hops)))
        for c, i in enumerate(hops):
            restarts[:, c] = ((1.0 - p.bridge_weight) * _uncovered(graph, i, reset)
                              + p.bridge_weight * _novel_entities(graph, i, reset))
        second = graph.personalized_pagerank(restarts, p.damping, p.max_iter, p.bridge_tol)[:n]
        second[hops, np.arange(len(hops))] = 0.0
        pairs = first[hops][None, :] * second / np.maximum(second.sum(axis=0), 1e-300)  # passages × hops
        partner = pairs.argmax(axis=1)
        scores = pairs[np.arange(n), partner]
        best = pairs.max(axis=0)
        for c, i in enumerate(hops):  # p₁ just above the best partner of its best pair
            if best[c] * (1 + 1e-9) > scores[i]:
                scores[i], partner[i] = best[c] * (1 + 1e-9), -1
        note["first_hop"] = {graph.passage_ids[i]: round(float(first[i]), 4) for i in hops}
        note.update(_explain(scores, partner, pairs, first, hops, graph))
        return scores, note

    def __call__(self, state: QueryState, ctx: RunContext) -> QueryState:
        scores, note = self.pair_scores(state, ctx)
        _, graph = graph_of(ctx, self.params.structure)
        hits = ranked_hits(scores, graph, state, ctx, self.params.top_k, self.name)
        return state.evolve(hits=hits).with_note(self.name, note)


def _first_hops(first: np.ndarray, graph: CompiledGraph, state: QueryState, ctx: RunContext,
                k: int) -> np.ndarray:
    """The ``k`` best first-hop passages that pass ``state.filters``."""
    chosen = []
    for i in np.argsort(-first, kind="stable"):
        if first[i] <= 0 or len(chosen) >= k:
            break
        if not state.filters or matches(ctx.index.chunk(graph.passage_ids[i]).metadata, state.filters):
            chosen.append(int(i))
    return np.asarray(chosen, dtype=np.int64)


def _uncovered(graph: CompiledGraph, i: int, reset: np.ndarray) -> np.ndarray:
    """The query's seeds without the entities passage ``i`` mentions (what is left of the question once ``i``
    is read), normalised; the full seeds when ``i`` mentions all of them and no passage seed is left."""
    start, end = graph.adjacency.indptr[i], graph.adjacency.indptr[i + 1]
    left = reset.copy()
    left[graph.adjacency.indices[start:end]] = 0.0
    return left / left.sum() if left.sum() > 0 else reset / reset.sum()


def _novel_entities(graph: CompiledGraph, i: int, reset: np.ndarray) -> np.ndarray:
    """What passage ``i`` adds to the question: a distribution over the entities it links to (mentions and
    title link, by edge weight) that the query's seeds do not already hold; the first walk's own reset when it
    adds none (so its pairs are ranked by the first walk alone)."""
    start, end = graph.adjacency.indptr[i], graph.adjacency.indptr[i + 1]
    nodes, weights = graph.adjacency.indices[start:end], graph.adjacency.data[start:end].copy()
    weights[(nodes < graph.n_passages) | (reset[nodes] > 0)] = 0.0
    if weights.sum() <= 0:
        return reset / reset.sum()
    out = np.zeros(len(reset))
    out[nodes] = weights / weights.sum()
    return out


def bridge_entity(graph: CompiledGraph, source: int, target: int) -> str | None:
    """The entity in the middle of the strongest two-step walk ``source`` → entity → ``target`` (passage
    indices), or None when they share no entity (the walk went further)."""
    adjacency, transition = graph.adjacency, graph.transition
    out_start, out_end = adjacency.indptr[source], adjacency.indptr[source + 1]
    out = dict(zip(adjacency.indices[out_start:out_end], adjacency.data[out_start:out_end]))
    in_start, in_end = transition.indptr[target], transition.indptr[target + 1]
    best, best_weight = None, 0.0
    for node, weight in zip(transition.indices[in_start:in_end], transition.data[in_start:in_end]):
        path = out.get(node, 0.0) * weight
        if path > best_weight:
            best, best_weight = int(node), path
    return graph.entity_keys[best - graph.n_passages] if best is not None else None


def _explain(scores: np.ndarray, partner: np.ndarray, pairs: np.ndarray, first: np.ndarray, hops: np.ndarray,
             graph: CompiledGraph) -> dict:
    """The best pairs, and why each passage the pairing moved up into the head of the ranking is there."""
    ids = graph.passage_ids
    flat = np.argsort(-pairs, axis=None, kind="stable")[:NOTE_LENGTH]
    best_pairs = []
    for j, c in zip(*np.unravel_index(flat, pairs.shape)):
        best_pairs.append([ids[hops[c]], ids[j], float(f"{pairs[j, c]:.4g}"), bridge_entity(graph, hops[c], j)])
    first_rank = np.empty(len(first), dtype=np.int64)
    first_rank[np.argsort(-first, kind="stable")] = np.arange(1, len(first) + 1)
    moved = {}
    for rank, j in enumerate(np.argsort(-scores, kind="stable")[:NOTE_LENGTH], start=1):
        if partner[j] >= 0 and first_rank[j] > rank:
            i = hops[partner[j]]
            moved[ids[j]] = {"first_hop_rank": int(first_rank[j]), "rank": rank, "pair_with": ids[i],
                             "bridge": bridge_entity(graph, i, j)}
    return {"pairs": best_pairs, "moved_up": moved}
