"""Multi-query retrieval: run retrievers for the search query and each of its variants, then fuse.

Variants come from ``state.variants`` (set by a query-rewrite operator or given by the caller) and, with
``rewrite``, from a rewrite operator run first (its ``search_query`` becomes one more variant). Each
(query text, retriever) pair yields one ranked list; the lists are fused by the ``merge`` operator (RAG-Fusion,
Rackauckas 2024: reciprocal rank fusion over LLM-generated query variants).

YAML::

    - op: multi_query
      retrievers: [{op: bm25, top_k: 100}, {op: dense, top_k: 100}]
      rewrite: {op: rewrite, method: feedback}      # optional
      merge: {op: rrf, k: 60}
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from rag.operators import RunContext, StepOperator
from rag.registry import OperatorParams, create, operator
from rag.state import QueryState


def _split(spec: dict[str, Any], path: str) -> tuple[str, dict[str, Any]]:
    from rag.errors import ConfigError

    if "op" not in spec:
        raise ConfigError("needs an 'op' key naming the operator", path)
    params = {k: v for k, v in spec.items() if k != "op"}
    return spec["op"], params


@operator("multi_query", kind="retriever")
class MultiQuery(StepOperator):
    """Retrieves for the search query and its variants with every retriever, and fuses all the lists."""

    class Params(OperatorParams):
        retrievers: list[dict[str, Any]] = Field(min_length=1)
        merge: dict[str, Any] = {"op": "rrf", "k": 60}
        rewrite: dict[str, Any] | None = None
        include_query: bool = True
        max_variants: int = Field(4, ge=0)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.retrievers = [create(*_split(spec, f"retrievers[{i}]"), kinds=("retriever",), path=f"retrievers[{i}]")
                           for i, spec in enumerate(self.params.retrievers)]
        self.fusion = create(*_split(self.params.merge, "merge"), kinds="merge", path="merge")
        self.rewriter = (create(*_split(self.params.rewrite, "rewrite"), kinds=("step", "retriever"), path="rewrite")
                         if self.params.rewrite else None)

    def __call__(self, state: QueryState, ctx: RunContext) -> QueryState:
        texts = [state.search_query] if self.params.include_query else []
        texts += [v for v in dict.fromkeys(state.variants) if v and v not in texts][: self.params.max_variants]
        texts = texts or [state.search_query]
        branches = self._retrieve(texts, state, ctx)
        if self.rewriter is not None:
            # the rewrite (e.g. pseudo-relevance feedback) reads the hits fused so far
            first = self.fusion.merge(branches, state, ctx)
            rewritten = self.rewriter(state.evolve(hits=first.hits), ctx).search_query
            if rewritten not in texts:
                branches += self._retrieve([rewritten], state, ctx)
        fused = self.fusion.merge(branches, state, ctx)
        return state.evolve(hits=fused.hits)

    def _retrieve(self, texts: list[str], state: QueryState, ctx: RunContext) -> list[QueryState]:
        return [retriever(state.evolve(search_query=text, hits=()), ctx)
                for text in texts for retriever in self.retrievers]
