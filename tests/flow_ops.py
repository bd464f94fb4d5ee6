"""Small, real operators used by the flow and index tests (registered under names starting with ``t_``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

from rag.index.structure import IndexStructure
from rag.operators import JudgeOperator, MergeOperator, RouterOperator, StepOperator
from rag.registry import OperatorParams, operator
from rag.types import Hit


@operator("t_terms", kind="structure")
class TermSets(IndexStructure):
    """Chunk id → set of lowercase words, persisted as JSON."""

    fail_on_save: ClassVar[bool] = False

    def __init__(self, **params):
        super().__init__(**params)
        self.terms_: dict[str, list[str]] = {}

    def add(self, chunks, resources, embeddings=None):
        for c in chunks:
            self.terms_[c.id] = sorted(set(c.text.lower().split()))

    def delete(self, chunk_ids):
        for i in chunk_ids:
            self.terms_.pop(i, None)

    def save(self, directory: Path):
        (directory / "part1.json").write_text("{}")
        if TermSets.fail_on_save:
            raise OSError("disk full (simulated)")
        (directory / "terms.json").write_text(json.dumps(self.terms_))

    def load(self, directory: Path, resources):
        self.terms_ = json.loads((directory / "terms.json").read_text())

    def __len__(self):
        return len(self.terms_)


@operator("t_match", kind="retriever")
class TermMatch(StepOperator):
    """Hits = chunks sharing words with the search query, by overlap count."""

    class Params(OperatorParams):
        top_k: int = 10
        label: str = "t_match"

    def __call__(self, state, ctx):
        words = set(state.search_query.lower().split())
        terms = ctx.index.structure("t_terms").terms_
        scored = sorted(((len(words & set(t)), cid) for cid, t in terms.items()), key=lambda x: (-x[0], x[1]))
        hits = tuple(Hit(ctx.index.chunk(cid), float(s), self.params.label) for s, cid in scored[: self.params.top_k] if s > 0)
        return state.evolve(hits=hits)


@operator("t_append", kind="step")
class AppendWord(StepOperator):
    """Appends a word to the search query (to observe loop iterations)."""

    class Params(OperatorParams):
        word: str = "again"

    def __call__(self, state, ctx):
        return state.evolve(search_query=f"{state.search_query} {self.params.word}")


@operator("t_concat", kind="merge")
class Concat(MergeOperator):
    """Concatenates branch hits in branch order, de-duplicated."""

    def merge(self, branches, state, ctx):
        seen, hits = set(), []
        for b in branches:
            for h in b.hits:
                if h.chunk.id not in seen:
                    seen.add(h.chunk.id)
                    hits.append(h)
        return state.evolve(hits=tuple(hits))


@operator("t_length", kind="router")
class LengthRouter(RouterOperator):
    """``long`` for queries of more than three words, else ``short``."""

    labels = ("long", "short")

    def route(self, state, ctx):
        return "long" if len(state.query.split()) > 3 else "short"


@operator("t_free_router", kind="router")
class FreeRouter(RouterOperator):
    """Returns the first word of the query as label (labels not declared)."""

    def route(self, state, ctx):
        return state.query.split()[0]


@operator("t_never", kind="judge")
class Never(JudgeOperator):
    def judge(self, state, ctx):
        return False


@operator("t_after", kind="judge")
class AfterIterations(JudgeOperator):
    class Params(OperatorParams):
        n: int = 2

    def judge(self, state, ctx):
        return state.iteration + 1 >= self.params.n
