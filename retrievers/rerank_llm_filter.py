"""``op: llm_filter`` — ChunkRAG-style relevance filtering (Singh et al. 2024, "ChunkRAG: Novel LLM-Chunk
Filtering Method for RAG Systems"): the generator rates each chunk's relevance to the question; chunks rated
below ``threshold`` are dropped.

    - {op: llm_filter, generator: {name: hf, model: /models/qwen}, threshold: 0.5, candidates: 20}

The prompt asks for one integer 0..10; the first number in the reply is read and divided by 10. A reply with
no number keeps the chunk (a formatting slip must not delete evidence) and is counted in
``state.notes["llm_filter"]["unparsed"]``. Kept hits keep their order (``reorder: true`` sorts them by the
rating, ties by the original order). Hits beyond ``candidates`` are dropped: only rated chunks pass.
"""
from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from rag.operators import RunContext, StepOperator
from rag.registry import OperatorParams, operator
from rag.state import QueryState
from rag.types import Hit

PROMPT = (
    "Rate how relevant the passage is to answering the question, from 0 (irrelevant) to 10 (fully answers it).\n"
    "Reply with the number only.\n\nQuestion: {question}\n\nPassage:\n{passage}\n\nRelevance (0-10):"
)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_rating(reply: str, scale: float = 10.0) -> float | None:
    """The first number in ``reply`` as a fraction of ``scale`` (clipped to [0, 1]); None if there is none."""
    match = _NUMBER.search(reply)
    if match is None:
        return None
    return min(1.0, max(0.0, float(match.group()) / scale))


@operator("llm_filter", kind="step")
class LLMRelevanceFilter(StepOperator):
    """Drop hits the generator rates as irrelevant to the question (ChunkRAG)."""

    class Params(OperatorParams):
        generator: str | dict[str, Any] | None = Field(None, description="generator spec; default: the pipeline's")
        threshold: float = Field(0.5, ge=0.0, le=1.0, description="minimum rating (0..1) to keep a chunk")
        candidates: int = Field(20, gt=0, description="rate only the best N hits")
        reorder: bool = False
        max_passage_chars: int = Field(4000, gt=0)

    def __call__(self, state: QueryState, ctx: RunContext) -> QueryState:
        generator = ctx.resources.generator(self.params.generator)
        kept: list[tuple[float, int, Hit]] = []
        unparsed = 0
        for position, hit in enumerate(state.hits[: self.params.candidates]):
            prompt = PROMPT.format(question=state.query, passage=hit.chunk.text[: self.params.max_passage_chars])
            rating = parse_rating(generator.complete(prompt, max_tokens=4))
            if rating is None:
                unparsed += 1
                kept.append((hit.score, position, hit))
            elif rating >= self.params.threshold:
                kept.append((rating, position, Hit(hit.chunk, rating, self.name)))
        if self.params.reorder:
            kept.sort(key=lambda item: (-item[0], item[1]))
        rated = min(len(state.hits), self.params.candidates)
        note = {"rated": rated, "kept": len(kept), "unparsed": unparsed}
        return state.evolve(hits=tuple(h for _, _, h in kept)).with_note("llm_filter", note)
