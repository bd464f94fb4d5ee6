"""Base classes for each kind of query-time operator, and the context they run in.

- :class:`StepOperator` (kinds ``retriever`` and ``step``): ``state -> state``;
- :class:`MergeOperator`: combines the states of ``parallel`` branches (fusion);
- :class:`RouterOperator`: labels a query, a ``route`` runs the matching case;
- :class:`JudgeOperator`: says whether a ``loop`` may stop.

Chunkers and index structures have their own bases in ``chunkers.base`` and ``rag.index.structure``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Sequence

from rag.registry import Operator
from rag.state import QueryState

if TYPE_CHECKING:
    from rag.index.store import Index
    from rag.resources import Resources


@dataclass(frozen=True)
class RunContext:
    """What operators may read while answering a query: the index and shared resources (models)."""

    index: "Index"
    resources: "Resources"


class StepOperator(Operator):
    def __call__(self, state: QueryState, ctx: RunContext) -> QueryState:
        raise NotImplementedError


class MergeOperator(Operator):
    def merge(self, branches: Sequence[QueryState], state: QueryState, ctx: RunContext) -> QueryState:
        """Combine the branch outputs; ``state`` is the input all branches started from."""
        raise NotImplementedError


class RouterOperator(Operator):
    #: The labels this router can return; a route must have a case for each or a default.
    labels: ClassVar[tuple[str, ...]] = ()

    def route(self, state: QueryState, ctx: RunContext) -> str:
        raise NotImplementedError


class JudgeOperator(Operator):
    def judge(self, state: QueryState, ctx: RunContext) -> bool:
        """True when the loop has what it needs and may stop."""
        raise NotImplementedError
