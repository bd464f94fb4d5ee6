"""Judges: decide whether a ``loop`` has gathered enough and may stop."""
from __future__ import annotations

from pydantic import Field

from rag.operators import JudgeOperator, RunContext
from rag.text import content_terms
from rag.registry import OperatorParams, operator
from rag.state import QueryState


def query_coverage(query: str, texts: list[str]) -> float:
    """Share of the query's content terms that occur in ``texts``."""
    wanted = set(content_terms(query))
    if not wanted:
        return 1.0
    found = {t for text in texts for t in content_terms(text)}
    return len(wanted & found) / len(wanted)


@operator("enough_context", kind="judge")
class EnoughContext(JudgeOperator):
    """Stops a loop once the top ``top_n`` hits cover at least ``coverage`` of the question's content terms.

    Example::

        - loop:
            max_iters: 3
            until: {op: enough_context, coverage: 0.9}
            body: [{op: rewrite}, {op: bm25, top_k: 10}]
    """

    class Params(OperatorParams):
        top_n: int = Field(5, ge=1)
        coverage: float = Field(0.9, gt=0.0, le=1.0)

    def judge(self, state: QueryState, ctx: RunContext) -> bool:
        texts = [h.chunk.text for h in state.context_or_hits[: self.params.top_n]]
        return query_coverage(state.query, texts) >= self.params.coverage
