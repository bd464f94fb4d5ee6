"""``graph_pcst``: a connected subgraph of the entity graph chosen by prize-collecting Steiner tree
(G-Retriever, He et al. 2024), solved with ``pcst_fast`` (Hegde et al. 2015's GW-pruning algorithm).

Prizes go to the ``node_top_k`` entity nodes and passage nodes most similar to the query (``k, k-1, ..., 1`` by
rank, as in G-Retriever) and to the ``edge_top_k`` most similar entity–entity relations; every edge costs
``edge_cost``. As in G-Retriever, a relation whose prize exceeds its cost becomes a virtual node carrying the
difference. The search runs on the neighbourhood of the prized nodes. The passages of the tree are returned
(ranked by prize, then query similarity) and the tree itself goes to ``state.notes["graph_pcst"]`` — nodes
with their names and kinds, edges as pairs — so the trace shows why each passage was chosen.
"""
from __future__ import annotations

import numpy as np

from graph.linking import graph_of, minmax, ranked_hits
from rag.errors import ConfigError
from rag.operators import RunContext, StepOperator
from rag.registry import OperatorParams, operator
from rag.state import QueryState


def load_pcst_fast():
    """``pcst_fast.pcst_fast``, checked on a three-node path: pcst-fast 1.0.10 built against numpy 1 returns
    garbage indices under numpy 2 (fraenkel-lab/pcst_fast#16); the pcst-fast2 wheels fix it."""
    try:
        from pcst_fast import pcst_fast
    except ImportError:
        raise ConfigError("op graph_pcst needs the package pcst-fast2 (pip install 'ragloom[graph]')", "op") from None
    vertices, _ = pcst_fast(np.array([[0, 1], [1, 2]], np.int64), np.array([1.0, 0.0, 1.0]),
                            np.array([0.1, 0.1]), -1, 1, "gw", 0)
    if sorted(vertices.tolist()) != [0, 1, 2]:
        raise ConfigError("the installed pcst_fast returns wrong results with this numpy version; "
                          "pip uninstall pcst-fast && pip install pcst-fast2", "op")
    return pcst_fast


def _rank_prizes(similarities: np.ndarray, k: int) -> np.ndarray:
    prizes = np.zeros(len(similarities))
    k = min(k, len(similarities))
    if k > 0:
        top = np.argsort(-similarities, kind="stable")[:k]
        prizes[top] = np.arange(k, 0, -1, dtype=np.float64)
    return prizes


@operator("graph_pcst", kind="retriever")
class GraphPCSTRetriever(StepOperator):
    """Prize-collecting Steiner tree subgraph and its passages (G-Retriever)."""

    class Params(OperatorParams):
        structure: str = "graph"
        top_k: int = 20
        node_top_k: int = 10
        edge_top_k: int = 10
        edge_cost: float = 0.5

    def __call__(self, state: QueryState, ctx: RunContext) -> QueryState:
        pcst_fast = load_pcst_fast()
        p = self.params
        _, graph = graph_of(ctx, p.structure)
        n_p, n_e = graph.n_passages, graph.n_entities
        query_vector = ctx.resources.embedder.embed_queries([state.search_query])[0]
        similarity = np.zeros(n_p + n_e)
        if graph.passage_vectors is not None:
            similarity[:n_p] = graph.passage_vectors @ query_vector
        if graph.entity_vectors is not None:
            similarity[n_p:] = graph.entity_vectors @ query_vector
        prizes = np.concatenate([_rank_prizes(similarity[:n_p], p.node_top_k),
                                 _rank_prizes(similarity[n_p:], p.node_top_k)])
        if not prizes.any():
            return state.evolve(hits=()).with_note(self.name, {"nodes": [], "edges": []})

        # the neighbourhood of the prized nodes, as a local graph for pcst_fast
        prized = np.flatnonzero(prizes)
        adjacency = graph.adjacency
        nodes = np.union1d(prized, adjacency[prized].indices)
        sub = adjacency[nodes][:, nodes].tocoo()
        keep = sub.row < sub.col
        edges = np.stack([sub.row[keep], sub.col[keep]], axis=1).astype(np.int64)
        costs = np.full(len(edges), p.edge_cost)
        node_prizes = prizes[nodes].copy()

        # relation prizes: cosine of the query with the mean of the two entity vectors, rank-based
        both_entities = (nodes[edges[:, 0]] >= n_p) & (nodes[edges[:, 1]] >= n_p) if len(edges) else np.zeros(0, bool)
        virtual_edges, virtual_prizes = [], []
        if both_entities.any() and graph.entity_vectors is not None:
            idx = np.flatnonzero(both_entities)
            a, b = nodes[edges[idx, 0]] - n_p, nodes[edges[idx, 1]] - n_p
            pair_cos = np.einsum("ij,ij->i", graph.entity_vectors[a], graph.entity_vectors[b])
            edge_sim = (similarity[n_p + a] + similarity[n_p + b]) / np.sqrt(np.maximum(2 + 2 * pair_cos, 1e-12))
            edge_prizes = _rank_prizes(edge_sim, p.edge_top_k)
            for e, prize in zip(idx, edge_prizes):
                if prize <= 0:
                    continue
                if prize <= costs[e]:
                    costs[e] -= prize
                else:  # G-Retriever: the edge becomes a node holding the surplus prize
                    virtual = len(nodes) + len(virtual_prizes)
                    virtual_prizes.append(prize - costs[e])
                    virtual_edges += [(edges[e, 0], virtual), (virtual, edges[e, 1])]
                    costs[e] = np.inf
        finite = np.isfinite(costs)
        all_edges = np.concatenate([edges[finite], np.asarray(virtual_edges, np.int64).reshape(-1, 2)])
        all_costs = np.concatenate([costs[finite], np.zeros(len(virtual_edges))])
        all_prizes = np.concatenate([node_prizes, np.asarray(virtual_prizes, np.float64)])
        vertices, tree_edges = pcst_fast(all_edges, all_prizes, all_costs, -1, 1, "gw", 0)

        real = len(nodes)
        chosen = {int(v) for v in vertices if v < real}
        pairs = set()
        for e in tree_edges:
            u, v = (int(x) for x in all_edges[e])
            if u < real and v < real:
                pairs.add((min(u, v), max(u, v)))
        for v in (int(x) for x in vertices if x >= real):  # a virtual node stands for an edge
            ends = [int(x) for x in all_edges[(all_edges == v).any(axis=1)].ravel() if x != v]
            chosen.update(ends)
            if len(ends) == 2:
                pairs.add((min(ends), max(ends)))
        chosen_global = nodes[sorted(chosen)]
        passages = chosen_global[chosen_global < n_p]
        scores = np.zeros(n_p)
        scores[passages] = prizes[passages] + minmax(similarity[:n_p])[passages] + 1e-6
        hits = ranked_hits(scores, graph, state, ctx, p.top_k, self.name, candidates=passages)

        def label(n: int) -> str:
            return f"p:{graph.passage_ids[n]}" if n < n_p else f"e:{graph.entity_keys[n - n_p]}"

        note = {"nodes": [label(int(n)) for n in chosen_global],
                "edges": [[label(int(nodes[u])), label(int(nodes[v]))] for u, v in sorted(pairs)]}
        return state.evolve(hits=hits).with_note(self.name, note)
