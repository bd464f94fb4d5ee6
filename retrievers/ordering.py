"""``op: lost_in_the_middle`` — put the strongest chunks at the start and end of the context.

Language models use information at the edges of a long context best (Liu et al. 2024, "Lost in the Middle:
How Language Models Use Long Contexts"). Given chunks best first, ranks 1, 3, 5, ... fill the context from the
front and ranks 2, 4, 6, ... from the back, so the weakest chunks sit in the middle.

    - {op: select, budget_tokens: 1500}
    - {op: lost_in_the_middle}
"""
from __future__ import annotations

from typing import Literal, Sequence, TypeVar

from rag.operators import RunContext, StepOperator
from rag.registry import OperatorParams, operator
from rag.state import QueryState

T = TypeVar("T")


def edges_first(items: Sequence[T]) -> list[T]:
    """Best-first items reordered so the best are at both ends: [1, 3, 5, ..., 6, 4, 2]."""
    return list(items[0::2]) + list(items[1::2])[::-1]


@operator("lost_in_the_middle", kind="step")
class LostInTheMiddleOrdering(StepOperator):
    """Reorder the context (or the hits, before a select) so the best chunks are at the edges."""

    class Params(OperatorParams):
        target: Literal["auto", "context", "hits"] = "auto"

    def __call__(self, state: QueryState, ctx: RunContext) -> QueryState:
        target = self.params.target
        if target == "auto":
            target = "context" if state.context is not None else "hits"
        if target == "context":
            ranked = sorted(state.context or (), key=lambda h: -h.score)
            return state.evolve(context=tuple(edges_first(ranked)))
        return state.evolve(hits=tuple(edges_first(state.hits)))
