"""The ragloom CLI as a user meets it: readable output, --json, clear errors with exit code 2."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_validate_reports_file_line_and_key_path(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nflow:\n  - loop:\n      body: [{op: bm25}]\n")
    code, out, err = run(capsys, "validate", str(bad))
    assert code == 2
    assert f"{bad}:3: flow[0].loop.max_iters: is required (loops must be bounded)" in err
    assert "Traceback" not in err


def test_validate_accepts_the_examples(capsys):
    code, out, _ = run(capsys, "validate", str(CONFIGS / "linear.yaml"), str(CONFIGS / "loop.yaml"))
    assert code == 0 and out.count(": ok") == 2


def test_index_query_delete_round_trip_with_json(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bm25.md").write_text("BM25 ranks chunks by query terms, weighting rare terms by inverse document frequency.")
    (docs / "faiss.md").write_text("FAISS stores vectors and searches them by inner product.")
    index_dir = tmp_path / "idx"
    code, out, err = run(capsys, "index", str(CONFIGS / "linear.yaml"), str(docs), "--index-dir", str(index_dir), "-q")
    assert code == 0, err
    assert "2 added" in out
    code, out, _ = run(capsys, "index", str(CONFIGS / "linear.yaml"), str(docs), "--index-dir", str(index_dir), "-q")
    assert "2 unchanged" in out
    code, out, err = run(capsys, "query", str(index_dir), "How are rare terms weighted?", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["citations"] and result["citations"][0]["chunk_id"].startswith("bm25.md")
    assert result["trace"][0]["name"] == "bm25"
    code, out, _ = run(capsys, "delete", str(index_dir), "bm25.md")
    assert code == 0
    code, out, _ = run(capsys, "query", str(index_dir), "How are rare terms weighted?", "--json")
    assert all(not h["doc_id"].startswith("bm25") for h in json.loads(out)["hits"])


def test_index_refuses_a_changed_config_without_rebuild_and_keeps_the_old_index(tmp_path, capsys):
    docs = tmp_path / "d.jsonl"
    docs.write_text('{"id": "a", "text": "alpha beta gamma"}\n')
    index_dir = tmp_path / "idx"
    assert run(capsys, "index", str(CONFIGS / "linear.yaml"), str(docs), "--index-dir", str(index_dir), "-q")[0] == 0
    other = tmp_path / "other.yaml"
    other.write_text((CONFIGS / "linear.yaml").read_text().replace("chunk_size: 128", "chunk_size: 64"))
    code, _, err = run(capsys, "index", str(other), str(docs), "--index-dir", str(index_dir), "-q")
    assert code == 2 and "--rebuild" in err
    code, out, _ = run(capsys, "query", str(index_dir), "alpha", "--json")
    assert code == 0 and json.loads(out)["hits"]


def test_missing_input_and_missing_index_are_clear_errors(tmp_path, capsys):
    code, _, err = run(capsys, "index", str(CONFIGS / "linear.yaml"), str(tmp_path / "nope"), "--index-dir", str(tmp_path / "i"))
    assert code == 2 and "input not found" in err
    code, _, err = run(capsys, "query", str(tmp_path / "nope"), "q")
    assert code == 2 and "index directory not found" in err


def test_ops_lists_operators_of_a_kind(capsys):
    code, out, _ = run(capsys, "ops", "--kind", "router")
    assert code == 0 and "query_kind" in out
