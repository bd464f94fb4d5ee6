"""Per-query values: the state a flow threads through its steps, the trace it records, the result."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from rag.types import Chunk, Hit


@dataclass(frozen=True, slots=True)
class Citation:
    """One sentence (or span) of an answer traced back to the chunk it came from."""

    chunk_id: str
    text: str = ""


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    citations: tuple[Citation, ...] = ()
    generator: str = ""
    model_calls: int = 0


@dataclass(frozen=True, slots=True)
class QueryState:
    """Everything a flow knows about one query at one step.

    Operators never mutate it: they return ``state.evolve(...)`` with what they add.

    - ``query``: the user's question, never changed;
    - ``search_query``: the text retrievers search for (a rewrite step changes it);
    - ``variants``: extra query texts for multi-query retrieval;
    - ``hits``: the current candidates, best first;
    - ``context``: the selected context (``None`` until a select step ran);
    - ``labels``: router decisions, by router name;
    - ``filters``: metadata filters every retriever applies (equality, or membership for lists);
    - ``notes``: what an operator wants to show in the trace beyond hits (e.g. a subgraph);
    - ``iteration``: the current loop iteration (0 outside loops).
    """

    query: str
    search_query: str = ""
    variants: tuple[str, ...] = ()
    hits: tuple[Hit, ...] = ()
    context: tuple[Hit, ...] | None = None
    answer: Answer | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    filters: Mapping[str, Any] = field(default_factory=dict)
    notes: Mapping[str, Any] = field(default_factory=dict)
    iteration: int = 0

    def __post_init__(self) -> None:
        if not self.search_query:
            object.__setattr__(self, "search_query", self.query)

    def evolve(self, **changes: Any) -> "QueryState":
        return dataclasses.replace(self, **changes)

    def with_note(self, key: str, value: Any) -> "QueryState":
        return self.evolve(notes={**self.notes, key: value})

    @property
    def context_or_hits(self) -> tuple[Hit, ...]:
        return self.context if self.context is not None else self.hits


@dataclass(slots=True)
class TraceEvent:
    """One executed step: where it stands in the flow, what it is, how long it took, what it added."""

    path: str
    name: str
    kind: str
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)
    children: list["TraceEvent"] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "path": self.path,
            "name": self.name,
            "kind": self.kind,
            "seconds": round(self.seconds, 6),
            "summary": self.summary,
        }
        if self.children:
            data["children"] = [c.to_json() for c in self.children]
        return data

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(slots=True)
class Result:
    """What ``Pipeline.run`` returns."""

    query: str
    answer: str
    citations: list[Citation]
    contexts: list[Chunk]
    hits: list[Hit]
    trace: list[TraceEvent]
    state: QueryState
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "answer": self.answer,
            "citations": [{"chunk_id": c.chunk_id, "text": c.text} for c in self.citations],
            "contexts": [c.to_json() for c in self.contexts],
            "hits": [{"chunk_id": h.chunk.id, "doc_id": h.chunk.doc_id, "score": h.score, "source": h.source}
                     for h in self.hits],
            "trace": [e.to_json() for e in self.trace],
            "seconds": round(self.seconds, 6),
        }
