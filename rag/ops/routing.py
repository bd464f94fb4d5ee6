"""Routers: label a query so a ``route`` step can send it to the flow that suits it."""
from __future__ import annotations

import re

from rag.operators import RouterOperator, RunContext
from rag.registry import OperatorParams, operator
from rag.state import QueryState

# Multi-hop questions (HotpotQA-style) either compare two entities or reach one through another
# ("the director of the film that ..."). These cues are lexical and cheap; they favour recall.
_COMPARISON = re.compile(
    r"\b(both|same|which (one )?(is|was|has|had|came|started|did)\b.*\b(first|older|younger|earlier|later|larger|"
    r"bigger|smaller|longer|shorter|higher|more|less)|(older|younger|earlier|later|larger|smaller|longer|"
    r"shorter|taller|higher|lower) than|compared|in common|either|neither)\b", re.I)
_BRIDGE = re.compile(
    r"\b(the \w+( \w+)? (that|which|who|whose|where) |of the \w+( \w+)? (that|which|who|whose)|"
    r"\w+'s \w+'s|what (is|was) the \w+ of the \w+ (that|which|who|whose))", re.I)
_NAMED = re.compile(r"(?:(?<=\s)|^)[A-Z][\w'’.-]*(?:\s+(?:of|the|de|von|van|and|&)?\s*[A-Z][\w'’.-]*)*")


def named_spans(text: str) -> list[str]:
    """Capitalised spans, skipping the sentence-initial word when it is a question word."""
    spans = [m.group(0) for m in _NAMED.finditer(text)]
    question_words = {"What", "Which", "Who", "Whom", "Whose", "When", "Where", "Why", "How", "Is", "Are", "Was",
                      "Were", "Do", "Does", "Did", "In", "The", "A", "An"}
    return [s for s in spans if s.split()[0] not in question_words or len(s.split()) > 1]


@operator("query_kind", kind="router")
class QueryKindRouter(RouterOperator):
    """Labels a question ``multi_hop`` (comparison or bridge question, or several named entities) or ``simple``.

    Example::

        - route:
            by: {op: query_kind}
            cases:
              multi_hop: [{op: graph_ppr, top_k: 20}]
              simple: [{op: dense, top_k: 20}]
    """

    labels = ("multi_hop", "simple")

    class Params(OperatorParams):
        min_entities: int = 2

    def route(self, state: QueryState, ctx: RunContext) -> str:
        text = state.query
        if _COMPARISON.search(text) or _BRIDGE.search(text):
            return "multi_hop"
        if len(set(named_spans(text))) >= self.params.min_entities:
            return "multi_hop"
        return "simple"
