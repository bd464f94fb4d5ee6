"""The flow engine: linear, parallel, route and loop steps, and the trace they record."""
from __future__ import annotations

import json

import pytest

from rag.config import loads_config
from rag.flow import FlowError
from rag.pipeline import Pipeline
from rag.types import Document

DOCS = [
    Document("a", "apples are red fruit"),
    Document("b", "bananas are yellow fruit"),
    Document("c", "cherries are small red fruit"),
]


def pipeline(flow: str) -> Pipeline:
    text = f"name: t\nindex:\n  chunker: {{op: token, chunk_size: 32}}\n  structures: [t_terms]\nflow:\n{flow}"
    pipe = Pipeline.from_config(loads_config(text))
    pipe.index(DOCS)
    return pipe


def test_linear_flow_returns_hits_and_trace():
    result = pipeline("  - {op: t_match, top_k: 2}\n").run("red fruit")
    assert [h.chunk.doc_id for h in result.hits] == ["a", "c"]
    assert result.trace[0].name == "t_match" and result.trace[0].summary["hits"] == 2
    json.dumps([e.to_json() for e in result.trace])


def test_parallel_runs_every_branch_on_the_same_input_then_merges():
    pipe = pipeline("""  - parallel:
      - {op: t_match, top_k: 1, label: first}
      - [{op: t_append, word: bananas}, {op: t_match, top_k: 3, label: second}]
    merge: {op: t_concat}
""")
    result = pipe.run("red apples")
    assert result.hits[0].source == "first" and result.hits[0].chunk.doc_id == "a"
    assert {h.chunk.doc_id for h in result.hits} == {"a", "b", "c"}
    event = result.trace[0]
    assert [c.name for c in event.children] == ["branch", "branch", "t_concat"]
    assert event.children[1].children[0].summary["search_query"] == "red apples bananas"
    assert result.state.search_query == "red apples"  # a branch's rewrite does not leak out


def test_route_takes_the_matching_case_or_the_default():
    pipe = pipeline("""  - route:
      by: {op: t_length}
      cases:
        long: [{op: t_match, top_k: 1, label: long}]
      default: [{op: t_match, top_k: 3, label: short}]
""")
    long_result = pipe.run("which fruit is red and small")
    short_result = pipe.run("red fruit")
    assert {h.source for h in long_result.hits} == {"long"} and len(long_result.hits) == 1
    assert {h.source for h in short_result.hits} == {"short"}
    assert short_result.trace[0].summary["case"] == "default"
    assert long_result.state.labels == {"t_length": "long"}


def test_undeclared_label_without_case_uses_default():
    pipe = pipeline("""  - route:
      by: {op: t_free_router}
      cases:
        red: [{op: t_match, label: red}]
      default: [{op: t_match, label: other}]
""")
    assert {h.source for h in pipe.run("red fruit").hits} == {"red"}
    assert {h.source for h in pipe.run("yellow fruit").hits} == {"other"}


@pytest.mark.parametrize("max_iters", [1, 3, 7])
def test_loop_stops_at_max_iters_when_the_judge_never_agrees(max_iters):
    pipe = pipeline(f"""  - loop:
      max_iters: {max_iters}
      until: {{op: t_never}}
      body: [{{op: t_append, word: w}}]
""")
    result = pipe.run("q")
    assert result.state.search_query == "q" + " w" * max_iters
    assert result.trace[0].summary["iterations"] == max_iters
    assert result.trace[0].summary["stopped_by"] == "max_iters"


def test_loop_stops_when_the_judge_says_so():
    pipe = pipeline("""  - loop:
      max_iters: 10
      until: {op: t_after, n: 2}
      body: [{op: t_append, word: w}]
""")
    result = pipe.run("q")
    assert result.state.search_query == "q w w"
    assert result.trace[0].summary["stopped_by"] == "t_after"
    assert result.state.iteration == 0


def test_loop_accumulates_hits_across_iterations():
    pipe = pipeline("""  - loop:
      max_iters: 2
      body: [{op: t_match, top_k: 1}, {op: t_append, word: bananas}]
""")
    result = pipe.run("bananas yellow red")
    # iteration 0 finds b ("bananas yellow"); iteration 1 searches "... bananas" again: b first, nothing new
    assert [h.chunk.doc_id for h in result.hits] == ["b"]
    pipe = pipeline("""  - loop:
      max_iters: 2
      body: [{op: t_match, top_k: 1}, {op: t_append, word: small red cherries}]
""")
    result = pipe.run("bananas yellow")
    assert [h.chunk.doc_id for h in result.hits] == ["b", "c"]


def test_operator_failure_names_the_step():
    pipe = pipeline("  - {op: t_match}\n")
    pipe.index_.structures.clear()
    with pytest.raises(Exception) as info:
        pipe.run("red")
    assert "t_terms" in str(info.value)


def test_pipeline_is_rerunnable_and_not_mutated_by_runs():
    pipe = pipeline("  - {op: t_append}\n  - {op: t_match}\n")
    first = pipe.run("red fruit")
    second = pipe.run("red fruit")
    assert [h.chunk.id for h in first.hits] == [h.chunk.id for h in second.hits]
    assert first.state.search_query == second.state.search_query == "red fruit again"


def test_empty_query_is_rejected():
    with pytest.raises(Exception, match="empty"):
        pipeline("  - {op: t_match}\n").run("  ")


def test_flow_error_type_for_unexpected_exceptions():
    assert issubclass(FlowError, Exception)


def test_budget_smaller_than_every_chunk_names_the_step_and_key():
    from rag.errors import ConfigError

    pipe = pipeline("  - {op: t_match}\n  - {op: select, budget_tokens: 1}\n")
    with pytest.raises(ConfigError) as info:
        pipe.run("red fruit")
    assert info.value.path == "flow[1].budget_tokens"
