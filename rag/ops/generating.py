"""The generate step: turns the selected context into an answer with the configured generator."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from rag.operators import RunContext, StepOperator
from rag.registry import OperatorParams, operator
from rag.state import QueryState


@operator("generate", kind="step")
class Generate(StepOperator):
    """Answers the question from ``state.context`` (or, when no select step ran, the top ``max_chunks`` hits).

    ``generator`` overrides the pipeline's generator: a name (``extractive``, ``openai``, ``hf``) or a mapping
    with ``name`` and options. Example: ``{op: generate, generator: extractive}``
    """

    class Params(OperatorParams):
        generator: Any = None
        max_chunks: int = Field(5, ge=1)

    def __call__(self, state: QueryState, ctx: RunContext) -> QueryState:
        hits = state.context if state.context is not None else state.hits[: self.params.max_chunks]
        generator = ctx.resources.generator(self.params.generator)
        answer = generator.answer(state.query, [h.chunk for h in hits])
        return state.evolve(answer=answer, context=tuple(hits))
