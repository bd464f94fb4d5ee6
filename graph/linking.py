"""Query-side helpers shared by the graph retrievers: linking a query to entity nodes, dense passage scores,
and turning node scores into filtered :class:`~rag.types.Hit` lists."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graph.compiled import CompiledGraph
from graph.structure import GraphStructure
from rag.filters import matches
from rag.operators import RunContext
from rag.state import QueryState
from rag.types import Hit


@dataclass(frozen=True)
class QueryLink:
    """The query's vector, its named entities, and the entity nodes they link to with a similarity each."""

    vector: np.ndarray
    phrases: tuple[str, ...]
    entities: dict[int, float]  # entity index -> similarity in [0, 1]


def graph_of(ctx: RunContext, name: str) -> tuple[GraphStructure, CompiledGraph]:
    structure = ctx.index.structure(name)
    if not isinstance(structure, GraphStructure):
        from rag.errors import ConfigError

        raise ConfigError(f"structure {name!r} is a {type(structure).__name__}, not a graph structure", "structure")
    return structure, structure.compiled()


def link_query(query: str, structure: GraphStructure, graph: CompiledGraph, ctx: RunContext,
               phrase_threshold: float, query_top_k: int, query_threshold: float,
               fact_top_k: int = 0) -> QueryLink:
    """HippoRAG-style entity linking without an LLM: the query's named entities/phrases (same extractor as the
    index) link exactly through names and aliases, or else to their nearest entity by embedding when the cosine
    is ≥ ``phrase_threshold``; the whole query also links to its ``query_top_k`` nearest entities (cosine ≥
    ``query_threshold``), and the entities of its ``fact_top_k`` nearest entity–entity edges
    (:meth:`CompiledGraph.fact_vectors`; HippoRAG 2's query-to-fact matching) with the fact's cosine."""
    phrases = tuple(structure.extractor_.extract_query(query))
    linked: dict[int, float] = {}
    unmatched = []
    for phrase in phrases:
        j = graph.aliases.get(phrase)
        if j is not None:
            linked[j] = 1.0
        else:
            unmatched.append(phrase)
    vectors = ctx.resources.embedder.embed_queries([query, *unmatched])
    query_vector = vectors[0]
    if graph.entity_vectors is not None and graph.n_entities:
        if unmatched:
            sims = vectors[1:] @ graph.entity_vectors.T
            best = sims.argmax(axis=1)
            for row, j in enumerate(best):
                if sims[row, j] >= phrase_threshold:
                    linked[int(j)] = max(linked.get(int(j), 0.0), float(sims[row, j]))
        if query_top_k > 0:
            sims = graph.entity_vectors @ query_vector
            top = np.argpartition(-sims, min(query_top_k, len(sims) - 1))[:query_top_k]
            for j in top:
                if sims[j] >= query_threshold:
                    linked[int(j)] = max(linked.get(int(j), 0.0), float(sims[j]))
        facts = graph.fact_vectors() if fact_top_k > 0 else None
        if facts is not None and len(facts):
            sims = facts @ query_vector
            top = np.argpartition(-sims, min(fact_top_k, len(sims) - 1))[:fact_top_k]
            for edge in top:
                score = max(float(sims[edge]), 0.0)
                for j in (int(graph.edge_src[edge]), int(graph.edge_dst[edge])):
                    linked[j] = max(linked.get(j, 0.0), score)
    return QueryLink(query_vector, phrases, linked)


def dense_passage_scores(graph: CompiledGraph, query_vector: np.ndarray) -> np.ndarray | None:
    if graph.passage_vectors is None:
        return None
    return graph.passage_vectors @ query_vector


def minmax(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def ranked_hits(scores: np.ndarray, graph: CompiledGraph, state: QueryState, ctx: RunContext, top_k: int,
                source: str, candidates: np.ndarray | None = None) -> tuple[Hit, ...]:
    """The ``top_k`` passages by ``scores`` (aligned with ``graph.passage_ids``) that pass ``state.filters``;
    only positive scores count, ``candidates`` (passage indices) restricts the pool."""
    pool = np.flatnonzero(scores > 0) if candidates is None else candidates[scores[candidates] > 0]
    order = pool[np.argsort(-scores[pool], kind="stable")]
    hits = []
    for i in order:
        chunk = ctx.index.chunk(graph.passage_ids[i])
        if state.filters and not matches(chunk.metadata, state.filters):
            continue
        hits.append(Hit(chunk, float(scores[i]), source))
        if len(hits) >= top_k:
            break
    return tuple(hits)
