"""``graph_local``, ``graph_global``, ``graph_hybrid``: LightRAG's dual-level retrieval (Guo et al. 2024)
without an LLM.

- **local** (low level, specific entities): the query's entities and its nearest entity nodes, each weighted by
  link similarity × specificity, score the passages that mention them (by mention share), plus — damped by
  ``neighbour_weight`` — the passages of their one-hop entity neighbours.
- **global** (high level, relations and themes): every entity–entity relation is scored against the whole
  query as the cosine with the mean of its two entity vectors, ``(s_a + s_b) / sqrt(2 + 2 cos(a, b))``; the
  ``edge_top_k`` best relations score the passages that mention both of their entities.
- **hybrid**: reciprocal rank fusion (k = 60) of the two rankings, as LightRAG's hybrid mode merges both
  contexts.

YAML::

    - {op: graph_hybrid, top_k: 20}
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from graph.compiled import CompiledGraph
from graph.linking import graph_of, link_query, ranked_hits
from rag.operators import RunContext, StepOperator
from rag.registry import OperatorParams, operator
from rag.state import QueryState


class _LevelParams(OperatorParams):
    structure: str = "graph"
    top_k: int = 20
    phrase_threshold: float = 0.8
    entity_top_k: int = 10  # entity nodes linked from the whole query
    entity_threshold: float = 0.3
    neighbour_weight: float = 0.3
    edge_top_k: int = 50


def local_scores(query: str, ctx: RunContext, p: _LevelParams) -> tuple[np.ndarray, dict]:
    structure, graph = graph_of(ctx, p.structure)
    link = link_query(query, structure, graph, ctx, p.phrase_threshold, p.entity_top_k, p.entity_threshold)
    weights = np.zeros(graph.n_entities)
    for j, sim in link.entities.items():
        weights[j] = sim * graph.specificity[j]
    entity_part = graph.adjacency[graph.n_passages:, graph.n_passages:]
    if p.neighbour_weight > 0 and entity_part.nnz:
        row_sums = np.asarray(entity_part.sum(axis=1)).ravel()
        normalised = sp.diags(np.where(row_sums > 0, 1.0 / np.maximum(row_sums, 1e-300), 0.0)) @ entity_part
        neighbours = p.neighbour_weight * (normalised.T @ weights) * graph.specificity
        weights = weights + np.where(weights > 0, 0.0, neighbours)
    scores = graph.mentions.T @ weights
    note = {"entities": [graph.entity_keys[j] for j in sorted(link.entities, key=lambda j: -link.entities[j])]}
    return scores, note


def global_scores(query: str, ctx: RunContext, p: _LevelParams) -> tuple[np.ndarray, dict]:
    _, graph = graph_of(ctx, p.structure)
    scores = np.zeros(graph.n_passages)
    if graph.entity_vectors is None or not len(graph.edge_src):
        return scores, {"relations": []}
    query_vector = ctx.resources.embedder.embed_queries([query])[0]
    entity_sims = graph.entity_vectors @ query_vector
    edge_scores = ((entity_sims[graph.edge_src] + entity_sims[graph.edge_dst])
                   / np.sqrt(np.maximum(2.0 + 2.0 * graph.edge_cosines(), 1e-12)))
    k = min(p.edge_top_k, len(edge_scores))
    top = np.argpartition(-edge_scores, k - 1)[:k]
    top = top[np.argsort(-edge_scores[top])]
    mentions = graph.mentions
    for e in top:
        a, b = graph.edge_src[e], graph.edge_dst[e]
        both = np.intersect1d(mentions.indices[mentions.indptr[a]:mentions.indptr[a + 1]],
                              mentions.indices[mentions.indptr[b]:mentions.indptr[b + 1]], assume_unique=True)
        scores[both] += max(float(edge_scores[e]), 0.0)
    note = {"relations": [[graph.entity_keys[graph.edge_src[e]], graph.entity_keys[graph.edge_dst[e]],
                           round(float(edge_scores[e]), 4)] for e in top[:10]]}
    return scores, note


def rank_fusion(graph: CompiledGraph, *score_lists: np.ndarray, k: int = 60) -> np.ndarray:
    fused = np.zeros(graph.n_passages)
    for scores in score_lists:
        order = np.argsort(-scores, kind="stable")
        ranked = order[scores[order] > 0]
        fused[ranked] += 1.0 / (k + 1 + np.arange(len(ranked)))
    return fused


class _LevelRetriever(StepOperator):
    """Shared query path of the LightRAG levels: score passages, rank them, note what was matched."""

    Params = _LevelParams

    def level_scores(self, query: str, ctx: RunContext) -> tuple[np.ndarray, dict]:
        raise NotImplementedError

    def __call__(self, state: QueryState, ctx: RunContext) -> QueryState:
        scores, note = self.level_scores(state.search_query, ctx)
        _, graph = graph_of(ctx, self.params.structure)
        return state.evolve(hits=ranked_hits(scores, graph, state, ctx, self.params.top_k, self.name)
                            ).with_note(self.name, note)


@operator("graph_local", kind="retriever")
class GraphLocalRetriever(_LevelRetriever):
    """LightRAG low level: passages of the query's entities and their neighbours."""

    def level_scores(self, query: str, ctx: RunContext) -> tuple[np.ndarray, dict]:
        return local_scores(query, ctx, self.params)


@operator("graph_global", kind="retriever")
class GraphGlobalRetriever(_LevelRetriever):
    """LightRAG high level: passages supporting the relations closest to the query."""

    def level_scores(self, query: str, ctx: RunContext) -> tuple[np.ndarray, dict]:
        return global_scores(query, ctx, self.params)


@operator("graph_hybrid", kind="retriever")
class GraphHybridRetriever(_LevelRetriever):
    """LightRAG hybrid: rank fusion of the local and global levels."""

    def level_scores(self, query: str, ctx: RunContext) -> tuple[np.ndarray, dict]:
        local, local_note = local_scores(query, ctx, self.params)
        global_, global_note = global_scores(query, ctx, self.params)
        _, graph = graph_of(ctx, self.params.structure)
        return rank_fusion(graph, local, global_), {**local_note, **global_note}
