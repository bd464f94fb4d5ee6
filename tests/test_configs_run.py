"""Every example config in configs/ validates, and each flow kind answers on the bundled corpus."""
from __future__ import annotations

from pathlib import Path

import pytest

from rag.cli import QUICKSTART_CORPUS
from rag.config import load_config
from rag.flow import compile_flow
from rag.pipeline import Pipeline

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PIPELINE_CONFIGS = sorted(p for p in CONFIGS.rglob("*.yaml") if "eval" not in p.parts)


@pytest.mark.parametrize("path", PIPELINE_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_example_config_validates_and_compiles(path):
    config = load_config(path)
    compile_flow(config.flow)


@pytest.mark.parametrize("name, kind", [("linear", None), ("parallel", "parallel"), ("route", "route"),
                                        ("loop", "loop"), ("quickstart", "parallel")])
def test_each_flow_kind_answers_with_citations(name, kind):
    pipe = Pipeline.from_yaml(CONFIGS / f"{name}.yaml")
    pipe.index(QUICKSTART_CORPUS)
    result = pipe.run("How does late chunking embed a long document?")
    assert result.answer and result.citations
    assert any(c.doc_id == "late_chunking.md" for c in result.contexts)
    if kind:
        assert any(e.kind == kind for e in result.trace)
    budget = next(s.params["budget_tokens"] for s in pipe.config.flow if getattr(s, "op", None) == "select")
    tokenizer = pipe.resources.tokenizer()
    assert sum(tokenizer.count(c.text) for c in result.contexts) <= budget


def test_route_config_sends_a_comparison_question_to_the_multi_hop_case():
    pipe = Pipeline.from_yaml(CONFIGS / "route.yaml")
    pipe.index(QUICKSTART_CORPUS)
    result = pipe.run("Which is older, BM25 or late chunking?")
    route = next(e for e in result.trace if e.kind == "route")
    assert route.summary["label"] == "multi_hop"
