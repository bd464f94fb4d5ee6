"""Query rewriting for iterative (looped) retrieval."""
from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from pydantic import Field

from rag.operators import RunContext, StepOperator
from rag.ops.routing import named_spans
from rag.text import content_terms
from rag.registry import OperatorParams, operator
from rag.state import QueryState

_PROMPT = """You are searching a document collection to answer a question.
Question: {question}
What was found so far:
{found}
Write one short search query for the missing information. Reply with the query only."""


@operator("rewrite", kind="step")
class Rewrite(StepOperator):
    """Rewrites ``search_query`` from what the current hits say, to reach the next hop.

    ``method: feedback`` (offline): pseudo-relevance feedback — the question plus the named entities and
    most frequent content terms of the top hits that the question lacks (the "bridge" entities of a
    multi-hop question). ``method: llm``: the generator writes the next query (IRCoT-style).

    Example: ``{op: rewrite, method: feedback, feedback_hits: 2, max_terms: 6}``
    """

    class Params(OperatorParams):
        method: Literal["feedback", "llm"] = "feedback"
        feedback_hits: int = Field(2, ge=1)
        max_terms: int = Field(6, ge=1)
        generator: Any = None

    def __call__(self, state: QueryState, ctx: RunContext) -> QueryState:
        top = [h.chunk.text for h in state.hits[: self.params.feedback_hits]]
        if not top:
            return state
        if self.params.method == "llm":
            generator = ctx.resources.generator(self.params.generator)
            found = "\n".join(f"- {t[:400]}" for t in top)
            reply = generator.complete(_PROMPT.format(question=state.query, found=found), max_tokens=48)
            query = reply.strip().splitlines()[0].strip() if reply.strip() else state.query
            return state.evolve(search_query=query)
        known = set(content_terms(state.query))
        expansion: list[str] = []
        for span in (s for text in top for s in named_spans(text)):
            words = content_terms(span)
            if words and not set(words) <= known and span not in expansion:
                expansion.append(span)
                known.update(words)
        counts = Counter(t for text in top for t in content_terms(text) if t not in known and not t.isdigit())
        expansion += [t for t, _ in counts.most_common(self.params.max_terms)]
        return state.evolve(search_query=" ".join([state.query, *expansion[: self.params.max_terms]]))
