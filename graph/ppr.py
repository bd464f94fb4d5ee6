"""``graph_ppr``: Personalized PageRank over the entity graph (HippoRAG, Gutiérrez et al. 2024; HippoRAG 2, 2025).

Seeds: entity nodes linked from the query (:func:`graph.linking.link_query`), each weighted by its link
similarity × node specificity (1 / number of passages mentioning it), plus — as in HippoRAG 2's "dense–sparse
integration" — *every* passage node weighted by its min-max-normalised dense score, the passages getting
``passage_weight`` of the reset mass. Optionally (``query_fact_top_k``) the query is also matched against the
graph's entity–entity edges ("facts", HippoRAG 2's query-to-triple linking; here without an LLM filter) and the
entities of the best facts are seeded with the fact's similarity. PPR with damping 0.5 spreads the mass along
mentions, title links, co-occurrence and synonym edges; passages are ranked by their stationary probability.
When no entity links, it ranks by the dense score alone (and says so in ``state.notes``).

Seeding all passages (not a top few) matters: a passage that gets a large reset share keeps ``(1 − damping)``
of it whatever the walk does, so seeding only the top 50 ranks every seeded passage above any passage reached
only through the graph — the second hop of a bridge question.

YAML::

    - {op: graph_ppr, top_k: 20, damping: 0.5}
"""
from __future__ import annotations

import numpy as np

from graph.linking import dense_passage_scores, graph_of, link_query, minmax, ranked_hits
from rag.errors import ConfigError
from rag.operators import RunContext, StepOperator
from rag.registry import OperatorParams, operator
from rag.state import QueryState


@operator("graph_ppr", kind="retriever")
class GraphPPRRetriever(StepOperator):
    """Personalized PageRank from query-linked entities and dense-scored passages (HippoRAG 2)."""

    class Params(OperatorParams):
        structure: str = "graph"
        top_k: int = 20
        damping: float = 0.5
        passage_weight: float = 0.5  # share of the reset mass on passage seeds
        passage_seed_top: int | None = None  # passages seeded (best dense scores); None = all, 0 = none
        phrase_threshold: float = 0.8
        query_link_top_k: int = 0  # whole query -> nearest entity nodes (off: adds near-namesakes as seeds)
        query_link_threshold: float = 0.5
        query_fact_top_k: int = 0  # whole query -> nearest entity–entity edges, their entities seeded
        max_iter: int = 50
        tol: float = 1e-8

    def __init__(self, **params):
        super().__init__(**params)
        p = self.params
        if not 0.0 < p.damping < 1.0:
            raise ConfigError(f"must be in (0, 1), got {p.damping}", "damping")
        if not 0.0 <= p.passage_weight <= 1.0:
            raise ConfigError(f"must be in [0, 1], got {p.passage_weight}", "passage_weight")

    def seeds(self, query: str, ctx: RunContext) -> tuple[np.ndarray, bool, dict]:
        """The reset vector over the compiled graph's nodes (passages first), whether any entity linked (if
        not, the reset holds dense-scored passages only), and what to show in the trace."""
        p = self.params
        structure, graph = graph_of(ctx, p.structure)
        link = link_query(query, structure, graph, ctx, p.phrase_threshold, p.query_link_top_k,
                          p.query_link_threshold, p.query_fact_top_k)
        dense = dense_passage_scores(graph, link.vector)
        note = {"query_entities": list(link.phrases),
                "seeds": {graph.entity_keys[j]: round(s, 4) for j, s in sorted(link.entities.items(),
                                                                                key=lambda kv: -kv[1])}}
        reset = np.zeros(graph.n_passages + graph.n_entities)
        if not link.entities:
            note["fallback"] = "dense" if dense is not None else "none"
            if dense is not None:
                reset[:graph.n_passages] = minmax(dense) + 1e-9
            return reset, False, note
        entity_ids = np.fromiter(link.entities, dtype=np.int64)
        entity_seed = np.fromiter(link.entities.values(), dtype=np.float64) * graph.specificity[entity_ids]
        passage_share = p.passage_weight if dense is not None and p.passage_seed_top != 0 else 0.0
        reset[graph.n_passages + entity_ids] = (1.0 - passage_share) * entity_seed / entity_seed.sum()
        if passage_share:
            top = np.argsort(-dense)[:p.passage_seed_top]  # [:None] = all
            seed = minmax(dense[top])
            if seed.sum() > 0:
                reset[top] = passage_share * seed / seed.sum()
        note["passage_seeds"] = int(np.count_nonzero(reset[:graph.n_passages]))
        return reset, True, note

    def scores(self, query: str, ctx: RunContext) -> tuple[np.ndarray, dict]:
        """Passage scores aligned with the compiled graph's ``passage_ids``, and what to show in the trace."""
        p = self.params
        _, graph = graph_of(ctx, p.structure)
        reset, linked, note = self.seeds(query, ctx)
        if not linked:  # rank by the dense score alone (the reset holds it), or by nothing
            return reset[:graph.n_passages], note
        ranks = graph.personalized_pagerank(reset, p.damping, p.max_iter, p.tol)
        return ranks[:graph.n_passages], note

    def __call__(self, state: QueryState, ctx: RunContext) -> QueryState:
        scores, note = self.scores(state.search_query, ctx)
        _, graph = graph_of(ctx, self.params.structure)
        hits = ranked_hits(scores, graph, state, ctx, self.params.top_k, self.name)
        return state.evolve(hits=hits).with_note(self.name, note)
