"""What a run folder tells beyond the scores: chunks and chunking cost, costs and their formats, and the
checks that stop a run before it leaves anything behind (QA of `ragloom eval` for chunkers)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from evals.experiment import load_experiment, parse_experiment
from evals.runner import metric_names_for, run_experiment
from rag.errors import ConfigError, InputError
from tests.test_evals_runner import tiny, write_experiment  # noqa: F401  (the fixture and its experiment)


def test_the_report_lists_each_runs_chunks_and_what_chunking_them_cost(tiny):
    from evals.cli import main
    from rag.index.store import Index

    exp = write_experiment(tiny)
    assert main([str(exp), "--out", str(tiny / "out"), "--no-progress", "--rounds", "50"]) == 0
    record = json.loads((tiny / "out" / "metrics.json").read_text())[0]
    summary = record["index"]
    (folder,) = (tiny / "cache" / "eval-indexes").iterdir()
    index, _ = Index.load(folder)
    tokens = [c.token_count for c in index.chunks.values()]
    assert summary["documents"] == 4 and summary["chunks"] == len(tokens) > 4
    assert summary["mean_tokens"] == pytest.approx(sum(tokens) / len(tokens)) and summary["max_tokens"] == 12
    assert summary["built_by_this_invocation"] and summary["chunking_seconds"] > 0
    assert set(summary["build_seconds"]) == {"chunk", "evaltest_vectors"}
    assert record["config"]["index"]["embedder"] == {"model": "minilm"}  # QA: `embedder: {}` for the default
    report = (tiny / "out" / "report.md").read_text()
    assert "## Chunks and index" in report and f"| vec | tiny | 4 | {len(tokens)} |" in report
    # another invocation loads the index from the cache: the build times are the ones measured when it was built
    assert main([str(exp), "--out", str(tiny / "again"), "--no-progress", "--rounds", "50"]) == 0
    again = json.loads((tiny / "again" / "metrics.json").read_text())[0]["index"]
    assert not again["built_by_this_invocation"] and again["build_seconds"] == summary["build_seconds"]
    assert "| from the cache |" in (tiny / "again" / "report.md").read_text()
    # a second pipeline sharing the index the first built in this invocation: built by this run too
    shared = write_experiment(tiny, name="shared")
    second = shared.read_text().split("pipelines:\n")[1].replace("name: vec", "name: vec2")
    shared.write_text(shared.read_text() + second)
    runs = run_experiment(load_experiment(shared), tiny / "shared", progress=False, cache_dir=tiny / "other").runs
    assert [r.pipeline for r in runs] == ["vec", "vec2"] and all(r.index_built for r in runs)


def test_queries_are_embedded_anew_in_every_run_after_one_untimed_query(tiny):
    # latency_ms compared pipelines by which ran first: a query embedded by an earlier run or pipeline was read
    # from the embedding cache; and the first query paid for loading the model
    exp = load_experiment(write_experiment(tiny))
    first = run_experiment(exp, tiny / "out", progress=False).runs[0]
    again = run_experiment(exp, tiny / "again", progress=False).runs[0]
    chunks = first.index_summary["chunks"]
    assert first.metrics["embedding_model_calls"] == chunks + 3 + 1  # the chunks, 3 queries, the untimed one
    assert again.metrics["embedding_model_calls"] == 3 + 1  # the index from the cache; queries embedded again


def test_times_are_printed_as_times_not_as_scores():
    from evals.report import _fmt

    assert _fmt(0.8, "latency_ms") == "0.80" and _fmt(1234.5678, "latency_ms") == "1234.57"
    assert _fmt(0.8, "span_recall") == "0.8000" and _fmt(880.44, "context_tokens") == "880.4"
    assert _fmt(1.0, "mean_tokens") == "1.0" and _fmt(0.0004, "chunking_seconds") == "0.000" and _fmt(None) == "–"


def test_a_run_without_chunks_writes_valid_json():
    # review: mean sizes and chunking time of nothing were NaN, which json.dumps writes and JSON readers refuse
    from evals.runner import RunOutcome

    json.dumps(RunOutcome("p", "d", {}, [], {}).to_json(), allow_nan=False)


def test_build_times_add_up_over_additions_and_survive_an_unchanged_corpus(tmp_path):
    # review: a second `ragloom index` of the same documents rewrote the manifest with ~0 s of chunking
    from rag.config import parse_config
    from rag.index.store import Index
    from rag.types import Document

    config = parse_config({"index": {"chunker": {"op": "token", "chunk_size": 8}, "structures": ["bm25"]},
                           "flow": [{"op": "bm25"}]})
    index = Index(config.index)
    index.add_documents([Document("a", "one two three four five six seven eight nine ten " * 50)])
    first = dict(index.build_seconds)
    assert set(first) == {"chunk", "bm25"} and first["chunk"] > 0
    index.add_documents([Document("a", "one two three four five six seven eight nine ten " * 50)])  # unchanged
    assert index.build_seconds["chunk"] >= first["chunk"]
    index.add_documents([Document("b", "eleven twelve " * 200)])
    assert index.build_seconds["chunk"] > first["chunk"]
    index.save(tmp_path / "ix")
    assert Index.load(tmp_path / "ix")[0].build_seconds == index.build_seconds


def test_the_recall_curve_stops_where_every_document_is_retrieved():
    from evals.plots import recall_curve_ks

    assert recall_curve_ks(4) == [1, 2, 3, 5]  # QA: drawn to k = 100 on 5 documents
    assert recall_curve_ks(5) == [1, 2, 3, 5] and recall_curve_ks(6) == [1, 2, 3, 5, 10]
    assert recall_curve_ks(0) == recall_curve_ks(10**6) == [1, 2, 3, 5, 10, 20, 50, 100]


def test_cost_metrics_are_the_reported_columns(tiny):
    exp = load_experiment(write_experiment(tiny))
    from evals.datasets import read_dataset

    dataset = read_dataset(str(tiny / "tiny"))
    asked = dataclasses.replace(exp, metrics=("R@5", "latency_ms", "embedding_model_calls"))
    assert metric_names_for(asked, dataset) == ["R@5"]  # costs are reported anyway
    only_costs = dataclasses.replace(exp, metrics=("latency_ms",))
    assert metric_names_for(only_costs, dataset) == metric_names_for(dataclasses.replace(exp, metrics=()), dataset)
    from evals.report import write_reports

    outcome = run_experiment(dataclasses.replace(exp, metrics=("R@5", "generator_model_calls")), tiny / "out",
                             progress=False)
    write_reports(outcome, tiny / "out", rounds=10)  # review: accepted, and shown in no table
    assert "| generator_model_calls |" in (tiny / "out" / "report.md").read_text()
    raw = {"name": "x", "datasets": [str(tiny / "tiny")], "metrics": ["R@5", "latency_s"],
           "pipelines": [{"name": "a", "flow": [{"op": "bm25"}]}]}
    # QA: latency_s and model_calls passed validation and were never reported
    with pytest.raises(ConfigError, match=r"metrics\[1\].*unknown metric 'latency_s'.*latency_ms"):
        parse_experiment(raw)


def test_a_metric_check_that_stops_the_run_leaves_no_run_folder(tiny):
    exp = load_experiment(write_experiment(tiny))
    exp = dataclasses.replace(exp, metrics=("EM",))  # the tiny dataset has answers but this flow...
    no_answers = tiny / "tiny"
    queries = [json.loads(line) for line in (no_answers / "queries.jsonl").read_text().splitlines()]
    (no_answers / "queries.jsonl").write_text("".join(json.dumps({k: v for k, v in q.items() if k != "answers"})
                                                      + "\n" for q in queries))
    with pytest.raises(InputError, match="none of the metrics asked for \\(EM\\) can be scored"):
        run_experiment(exp, tiny / "out" / "run", progress=False)
    assert not (tiny / "out").exists()


def test_a_missing_pipeline_file_given_as_a_bare_path_is_named_with_its_line(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("name: x\ndatasets: [scifact]\npipelines:\n  - nowhere/bm25.yaml\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert err.value.line == 4 and "pipeline file not found" in str(err.value) and "pipelines[0].path" in str(err.value)


def test_a_metric_warning_is_given_once_naming_the_dataset_as_the_experiment_does(tiny, caplog):
    # review: the metric check before the run folder is made read the metrics a second time, warning twice, the
    # first time under the dataset's folder name rather than the experiment's name for it
    root = tiny / "tiny"
    queries = [json.loads(line) for line in (root / "queries.jsonl").read_text().splitlines()]
    (root / "queries.jsonl").write_text("".join(json.dumps({k: v for k, v in q.items() if k != "references"})
                                                + "\n" for q in queries))
    exp = load_experiment(write_experiment(tiny))
    exp = dataclasses.replace(exp, metrics=("R@5", "span_recall"),
                              datasets=tuple(dataclasses.replace(d, name="renamed") for d in exp.datasets))
    with caplog.at_level("WARNING"):
        run_experiment(exp, tiny / "out", progress=False)
    assert caplog.text.count("has no character-span references") == 1
    assert "dataset renamed has no character-span references" in caplog.text
