"""The experiment runner: grids, shared cached indexes, resume, outputs, and zero re-embedding."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Collection

import numpy as np
import pytest

from evals.experiment import load_experiment, parse_experiment, set_key_path
from evals.runner import run_experiment
from rag.errors import ConfigError
from rag.generation import GENERATORS
from rag.generation.base import LLMGenerator
from rag.operators import StepOperator
from rag.registry import OperatorParams, operator
from rag.index.structure import IndexStructure
from rag.types import Hit

# A minimal exact-cosine structure + retriever over the real bundled MiniLM, so these tests do not depend
# on the retrieval package: the runner only needs some structure that embeds chunks.


@operator("evaltest_vectors", kind="structure")
class EvalTestVectors(IndexStructure):
    class Params(OperatorParams):
        pass

    def __init__(self, **params):
        super().__init__(**params)
        self.ids_: list[str] = []
        self.vectors_ = np.zeros((0, 384), dtype=np.float32)

    def add(self, chunks, resources, embeddings=None):
        if embeddings is not None:  # a chunker's own vectors (late chunking), as the dense structure keeps them
            vecs = np.asarray(embeddings, dtype=np.float32).reshape(len(chunks), 384)
        else:
            vecs = resources.embedder.embed([c.text for c in chunks]) if chunks else np.zeros((0, 384), np.float32)
        self.ids_ += [c.id for c in chunks]
        self.vectors_ = np.vstack([self.vectors_, vecs])

    def delete(self, chunk_ids: Collection[str]):
        keep = [i for i, c in enumerate(self.ids_) if c not in set(chunk_ids)]
        self.ids_ = [self.ids_[i] for i in keep]
        self.vectors_ = self.vectors_[keep]

    def save(self, directory: Path):
        np.save(directory / "vectors.npy", self.vectors_, allow_pickle=False)
        (directory / "ids.json").write_text(json.dumps(self.ids_))

    def load(self, directory: Path, resources):
        self.vectors_ = np.load(directory / "vectors.npy", allow_pickle=False)
        self.ids_ = json.loads((directory / "ids.json").read_text())

    def __len__(self):
        return len(self.ids_)


@operator("evaltest_search", kind="retriever")
class EvalTestSearch(StepOperator):
    class Params(OperatorParams):
        top_k: int = 10

    def __call__(self, state, ctx):
        structure = ctx.index.structure("evaltest_vectors")
        q = ctx.resources.embedder.embed_queries([state.search_query])[0]
        scores = structure.vectors_ @ q
        order = np.argsort(-scores, kind="stable")[: self.params.top_k]
        hits = tuple(Hit(ctx.index.chunk(structure.ids_[i]), float(scores[i]), "evaltest_search") for i in order)
        return state.evolve(hits=hits)


DOCS = {
    "cats": "Cats are small domesticated felines. They purr when content and sleep most of the day.",
    "dogs": "Dogs are loyal companions. They bark at strangers and love to fetch sticks in the park.",
    "rust": "Rust is a systems programming language focused on memory safety without garbage collection.",
    "tea": "Green tea is made from unoxidised leaves of Camellia sinensis and contains caffeine.",
}
QUERIES = [
    ("q1", "why do cats purr", "cats", "They purr when content"),
    ("q2", "which animal barks at strangers", "dogs", "They bark at strangers"),
    ("q3", "memory safe programming language", "rust", "memory safety"),
]


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGLOOM_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "tiny"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "title": d, "text": t}) + "\n"
                                               for d, t in DOCS.items()))
    lines, qrels = [], ["query-id\tcorpus-id\tscore"]
    for qid, text, doc, excerpt in QUERIES:
        start = DOCS[doc].index(excerpt)
        lines.append(json.dumps({"_id": qid, "text": text, "answers": [excerpt],
                                 "references": [{"doc_id": doc, "start": start, "end": start + len(excerpt)}]}))
        qrels.append(f"{qid}\t{doc}\t1")
    (root / "queries.jsonl").write_text("\n".join(lines) + "\n")
    (root / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n")
    return tmp_path


def write_experiment(folder: Path, flow_tail: str = "", name: str = "tiny-exp") -> Path:
    text = f"""
name: {name}
datasets: [{folder / 'tiny'}]
span: {{k: 2}}
pipelines:
  - name: vec
    index:
      chunker: {{op: token, chunk_size: 12, overlap: 0}}
      structures: [evaltest_vectors]
    flow:
      - {{op: evaltest_search, top_k: 20}}
{flow_tail}
"""
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_experiment_runs_and_writes_every_output(tiny):
    from evals.cli import main

    exp = write_experiment(tiny)
    assert main([str(exp), "--out", str(tiny / "out"), "--no-progress", "--rounds", "200"]) == 0
    out = tiny / "out"
    records = json.loads((out / "metrics.json").read_text())
    assert [(r["pipeline"], r["dataset"]) for r in records] == [("vec", "tiny")]
    metrics = records[0]["metrics"]
    for name in ("nDCG@10", "R@5", "MRR@10", "span_recall", "span_precision", "span_iou", "answer_in_context"):
        assert 0.0 <= metrics[name] <= 1.0, name
    assert "EM" not in metrics  # the flow generates no answer
    assert metrics["R@5"] == 1.0  # every chunk of the four documents is returned
    assert records[0]["config"]["flow"][0] == {"op": "evaltest_search", "top_k": 20}
    per_query = [json.loads(line) for line in (out / "per_query.jsonl").read_text().splitlines()]
    assert {r["query_id"] for r in per_query} == {"q1", "q2", "q3"}
    assert all(r["trace"] and "nDCG@10" in r["scores"] for r in per_query)
    trec = (out / "runs" / "vec__tiny.trec").read_text().splitlines()
    assert trec[0].split()[1:4:2] == ["Q0", "1"] and len(trec) == 12
    for png in ("metrics.png", "recall_at_k.png", "chunk_sizes.png", "latency.png"):
        assert (out / png).stat().st_size > 1000
    assert "metrics.png" in (out / "report.html").read_text()
    assert "| vec | tiny |" in (out / "report.md").read_text()
    # QA: nothing in the outputs said which span settings scored the span metrics, or over how many queries
    assert records[0]["span"] == {"k": 2, "source": "auto", "union_retrieved": False}
    assert metrics["span_queries"] == 3
    assert ("character recall / precision / IoU of the top 2 chunks per query, from the selected context where the "
            "flow selects one, else the top hits; retrieved characters summed over the chunks (as Chroma's "
            "evaluation). Means over the queries with references (tiny: 3 of 3 queries).") in \
        (out / "report.md").read_text()


def test_answer_metrics_score_the_generated_answer(tiny):
    generation = pytest.importorskip("rag.generation")
    if not hasattr(generation, "create_generator"):
        pytest.skip("rag.generation is not complete yet")
    exp = load_experiment(write_experiment(tiny, "      - {op: generate}"))
    run = run_experiment(exp, tiny / "out", progress=False).runs[0]
    assert {"EM", "F1"} <= set(run.metrics)
    for rec in run.records:
        assert rec["answer"] and 0.0 <= rec["scores"]["F1"] <= 1.0


def test_changing_a_downstream_operator_embeds_no_chunk_again(tiny):
    first = run_experiment(load_experiment(write_experiment(tiny)), tiny / "out1", progress=False)
    assert first.embedding_model_calls > 0 and first.indexes_built
    # a new process (fresh cache object), same index section, one more step after retrieval
    changed = write_experiment(tiny, "      - {op: select, budget_tokens: 20}", name="tiny-exp-2")
    second = run_experiment(load_experiment(changed), tiny / "out2", progress=False)
    assert second.indexes_loaded and not second.indexes_built
    assert second.embedding_model_calls == len(QUERIES) + 1  # only the queries (timed anew) and the untimed one
    run = second.runs[0]
    assert len(run.records) == 3 and all(r["context_tokens"] <= 20 for r in run.records)


def test_late_chunkings_forward_passes_count_as_embedding_model_calls_on_a_cold_build(tiny):
    def late_experiment():
        return parse_experiment({
            "name": "late", "datasets": [str(tiny / "tiny")],
            "pipelines": [{"name": "late", "flow": [{"op": "evaltest_search", "top_k": 4}], "index": {
                "chunker": {"op": "late", "boundaries": {"op": "token", "chunk_size": 12, "overlap": 0},
                            "context_weight": 1.0},  # pooled vectors alone: no chunk text is embedded on its own
                "structures": ["evaltest_vectors"]}}],
        })

    cold = run_experiment(late_experiment(), tiny / "out1", progress=False)
    # one pass per document (each fits one macro-window of MiniLM) plus one per query and the untimed first query
    assert cold.runs[0].metrics["embedding_model_calls"] == len(DOCS) + len(QUERIES) + 1 == cold.embedding_model_calls
    warm = run_experiment(late_experiment(), tiny / "out2", progress=False)
    assert warm.indexes_loaded and warm.runs[0].metrics["embedding_model_calls"] == len(QUERIES) + 1


class FirstShiftGenerator(LLMGenerator):
    """A fake LLM that always names paragraph 1 as the shift: usable only in a window starting at paragraph 0."""

    name = "evaltest_first_shift"

    def _complete(self, prompt, max_tokens, stop):
        return "Answer: ID 0001"


def test_an_llm_chunkers_calls_are_reported_for_the_run_that_built_its_index_this_invocation(tiny, monkeypatch):
    from evals.cli import main

    monkeypatch.setitem(GENERATORS, FirstShiftGenerator.name, FirstShiftGenerator)  # this test's only

    root = tiny / "paragraphs"
    (root / "qrels").mkdir(parents=True)
    docs = {"one": "Cats purr.",  # a single paragraph: no call
            "two": "Cats purr.\n\nDogs bark.",  # one call, paragraph 1 named: usable
            "three": "Cats purr.\n\nDogs bark.\n\nTea steeps."}  # then a window from paragraph 1: unusable
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "text": t}) + "\n" for d, t in docs.items()))
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "dogs"}) + "\n")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\ttwo\t1\n")
    llm_index = {"chunker": {"op": "llm", "chunk_size": 200, "generator": {"name": "evaltest_first_shift"}},
                 "structures": ["evaltest_vectors"]}
    exp = tiny / "llm.yaml"
    exp.write_text(json.dumps({
        "name": "llm", "datasets": [str(root)], "pipelines": [
            {"name": "llm", "index": llm_index, "flow": [{"op": "evaltest_search", "top_k": 4}],
             "grid": {"flow[0].top_k": [4, 1]}},  # the second shares the first one's index
            {"name": "vec", "index": {"chunker": {"op": "token", "chunk_size": 12, "overlap": 0},
                                      "structures": ["evaltest_vectors"]},
             "flow": [{"op": "evaltest_search", "top_k": 4}]}]}))

    def costs(out):
        assert main([str(exp), "--out", str(tiny / out), "--no-progress", "--rounds", "10"]) == 0
        records = json.loads((tiny / out / "metrics.json").read_text())
        return [{k: v for k, v in r["metrics"].items() if k.startswith("chunker_")} for r in records]

    assert costs("out1") == [{"chunker_model_calls": 3, "chunker_unusable_answers": 1},
                             {"chunker_model_calls": 0, "chunker_unusable_answers": 0}, {}]
    report = (tiny / "out1" / "report.md").read_text()
    assert "chunker LLM calls this run: 3 (unusable answers: 1)" in report
    cost_table = report.split("## Cost")[1].split("##")[0]
    assert "| chunker_model_calls | chunker_unusable_answers | queries |" in cost_table
    assert "| 3 | 1 | 1 |" in cost_table and "| – | – | 1 |" in cost_table  # vec's chunker calls no LLM
    assert "chunker_model_calls" not in report.split("## Cost")[0].split("## Quality")[1]
    # another invocation loads the index from the cache: no LLM call was made for it
    assert costs("out2") == [{"chunker_model_calls": 0, "chunker_unusable_answers": 0}] * 2 + [{}]
    assert "chunker LLM calls this run: 0 (unusable answers: 0)" in (tiny / "out2" / "report.md").read_text()


def test_pipelines_with_the_same_index_section_share_one_index(tiny):
    exp = parse_experiment({
        "name": "shared", "datasets": [str(tiny / "tiny")],
        "pipelines": [{"name": "a", "index": {"chunker": {"op": "token", "chunk_size": 12, "overlap": 0},
                                              "structures": ["evaltest_vectors"]},
                       "flow": [{"op": "evaltest_search", "top_k": 4}],
                       "grid": {"flow[0].top_k": [1, 3]}}],
    })
    assert [p.name for p in exp.pipelines] == ["a[top_k=1]", "a[top_k=3]"]
    outcome = run_experiment(exp, tiny / "out", limit=2, progress=False)
    assert len(outcome.indexes_built) == 1
    assert [len(r.records) for r in outcome.runs] == [2, 2]  # --limit cuts queries, never the corpus
    r1, r3 = (r.metrics["R@5"] for r in outcome.runs)
    assert r1 <= r3


def test_an_output_path_that_is_a_file_is_a_clear_error_and_the_file_is_kept(tiny):
    from evals.cli import main
    from rag.errors import RagloomError

    exp = write_experiment(tiny)
    a_file = tiny / "results"
    a_file.write_text("keep me")
    for out in (a_file, a_file / "sub"):
        with pytest.raises(RagloomError, match=f"cannot create the output directory {out}"):
            main([str(exp), "--out", str(out), "--no-progress"])
    assert a_file.read_text() == "keep me"


def test_an_interrupted_run_resumes_without_redoing_finished_queries(tiny, monkeypatch):
    from rag.pipeline import Pipeline

    exp = load_experiment(write_experiment(tiny))
    run_experiment(exp, tiny / "out", progress=False)
    log = tiny / "out" / "per_query.jsonl"
    lines = log.read_text().splitlines()
    log.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])  # killed mid-write of the second record
    calls = []
    original = Pipeline.run
    monkeypatch.setattr(Pipeline, "run", lambda self, q, filters=None: calls.append(q) or original(self, q, filters))
    outcome = run_experiment(exp, tiny / "out", progress=False)
    assert len(calls) == 1 + 2  # the untimed first query of the run, then the two left
    assert len(outcome.runs[0].records) == 3
    assert len(log.read_text().splitlines()) == 3


def _second_dataset(tiny, queries):
    """A copy of the tiny dataset, same corpus, with these (id, text, doc) queries."""
    import shutil

    other = tiny / "tiny_b"
    shutil.copytree(tiny / "tiny", other)
    lines = []
    for qid, text, doc in queries:  # answers and references as in the first: the same metrics, the same run key
        excerpt = DOCS[doc][:20]
        lines.append(json.dumps({"_id": qid, "text": text, "answers": [excerpt],
                                 "references": [{"doc_id": doc, "start": 0, "end": len(excerpt)}]}) + "\n")
    (other / "queries.jsonl").write_text("".join(lines))
    (other / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                             + "".join(f"{q}\t{d}\t1\n" for q, _, d in queries))
    return other


def test_datasets_sharing_a_corpus_are_scored_on_their_own_queries(tiny):
    # QA: the record of q1 on the first dataset was reused for q1 of the second (same run key: same config and
    # corpus), so the second dataset reported the first one's scores
    other = _second_dataset(tiny, [("q1", "a language without garbage collection", "rust"),
                                   ("q2", "a drink with caffeine", "tea")])
    pipeline = {"name": "vec", "index": {"chunker": {"op": "token", "chunk_size": 12, "overlap": 0},
                                         "structures": ["evaltest_vectors"]},
                "flow": [{"op": "evaltest_search", "top_k": 4}]}
    both = run_experiment(parse_experiment({"name": "two", "datasets": [str(tiny / "tiny"), str(other)],
                                            "pipelines": [pipeline]}), tiny / "out", progress=False)
    alone = run_experiment(parse_experiment({"name": "one", "datasets": [str(other)], "pipelines": [pipeline]}),
                           tiny / "out_b", progress=False)
    second = both.runs[1]
    assert [r["query"] for r in second.records] == ["a language without garbage collection", "a drink with caffeine"]
    assert second.metrics["MRR@10"] == alone.runs[0].metrics["MRR@10"]
    assert len((tiny / "out" / "per_query.jsonl").read_text().splitlines()) == 5


def test_an_edited_question_or_gold_is_run_again_not_reused(tiny, monkeypatch):
    from rag.pipeline import Pipeline

    exp = load_experiment(write_experiment(tiny))
    run_experiment(exp, tiny / "out", progress=False)
    queries = tiny / "tiny" / "queries.jsonl"
    lines = queries.read_text().splitlines()
    edited = json.loads(lines[0])
    edited["text"] = "what makes a loyal companion"
    lines[0] = json.dumps(edited)
    queries.write_text("\n".join(lines) + "\n")
    qrels = tiny / "tiny" / "qrels" / "test.tsv"
    qrels.write_text(qrels.read_text().replace("q3\trust", "q3\ttea"))
    calls = []
    original = Pipeline.run
    monkeypatch.setattr(Pipeline, "run", lambda self, q, filters=None: calls.append(q) or original(self, q, filters))
    outcome = run_experiment(load_experiment(tiny / "tiny-exp.yaml"), tiny / "out", progress=False)
    assert calls == ["what makes a loyal companion"] * 2 + ["memory safe programming language"]  # q2 is reused
    # (the first query twice: once untimed, loading the models, as every run does before timing)
    assert outcome.runs[0].records[0]["query"] == "what makes a loyal companion"
    assert len((tiny / "out" / "per_query.jsonl").read_text().splitlines()) == 3


def test_another_experiment_is_refused_a_folder_holding_results_and_stale_run_files_go(tiny, capsys):
    # QA: a second experiment run into the same --out pruned the first one's records and replaced its reports
    # without a word, and run files of pipelines no longer in an experiment stayed next to the new ones
    from evals.cli import main
    from rag.errors import RagloomError

    first = write_experiment(tiny)
    out = tiny / "out"
    assert main([str(first), "--out", str(out), "--no-progress", "--rounds", "50"]) == 0
    records = (out / "per_query.jsonl").read_text()
    other = write_experiment(tiny, name="other-exp")
    with pytest.raises(RagloomError, match="holds the results of experiment 'tiny-exp', not 'other-exp'"):
        main([str(other), "--out", str(out), "--no-progress"])
    assert (out / "per_query.jsonl").read_text() == records
    assert (out / "report.md").read_text().startswith("# tiny-exp")
    (out / "runs" / "gone__tiny.trec").write_text("q1 Q0 cats 1 1.0 gone\n")  # a pipeline since removed
    assert main([str(first), "--out", str(out), "--no-progress", "--rounds", "50"]) == 0
    assert [p.name for p in (out / "runs").iterdir()] == ["vec__tiny.trec"]


def test_an_experiment_that_cannot_read_its_dataset_leaves_no_run_folder(tiny):
    from rag.errors import RagloomError

    exp = parse_experiment({"name": "bad", "datasets": [str(tiny / "nowhere")], "pipelines": [
        {"name": "a", "index": {"chunker": {"op": "token", "chunk_size": 12}, "structures": ["evaltest_vectors"]},
         "flow": [{"op": "evaltest_search", "top_k": 4}]}]})
    with pytest.raises(RagloomError, match="nowhere"):
        run_experiment(exp, tiny / "out" / "bad", progress=False)
    assert not (tiny / "out").exists()


def test_a_second_eval_into_a_folder_in_use_is_refused(tiny):
    # QA: two ragloom eval processes wrote the same --out at once; one swapped per_query.jsonl while the other
    # appended to the old file
    import fcntl

    from rag.errors import RagloomError

    exp = load_experiment(write_experiment(tiny))
    run_experiment(exp, tiny / "out", progress=False)
    with open(tiny / "out" / ".lock", "a") as held:  # as another process running there holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RagloomError, match="is in use by another ragloom eval"):
            run_experiment(exp, tiny / "out", progress=False)
        fcntl.flock(held, fcntl.LOCK_UN)
    assert len(run_experiment(exp, tiny / "out", progress=False).runs[0].records) == 3


def test_an_interrupt_keeps_the_records_of_runs_it_had_not_reached(tiny, monkeypatch):
    # Ctrl-C while the first pipeline re-ran kept only the runs reached so far: the second's finished records were
    # deleted (finish() pruned to the runs of the interrupted loop)
    from rag.pipeline import Pipeline

    exp = parse_experiment({
        "name": "two", "datasets": [str(tiny / "tiny")],
        "pipelines": [{"name": "a", "index": {"chunker": {"op": "token", "chunk_size": 12, "overlap": 0},
                                              "structures": ["evaltest_vectors"]},
                       "flow": [{"op": "evaltest_search", "top_k": 4}], "grid": {"flow[0].top_k": [1, 3]}}]})
    run_experiment(exp, tiny / "out", progress=False)
    log = tiny / "out" / "per_query.jsonl"
    before = log.read_text().splitlines()
    changed = parse_experiment({"name": "two", "datasets": [str(tiny / "tiny")], "pipelines": [
        {"name": "a", "index": {"chunker": {"op": "token", "chunk_size": 12, "overlap": 0},
                                "structures": ["evaltest_vectors"]},
         "flow": [{"op": "evaltest_search", "top_k": 4}], "grid": {"flow[0].top_k": [2, 3]}}]})

    def interrupted(self, q, filters=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(Pipeline, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(changed, tiny / "out", progress=False)  # top_k=2 is new and interrupted; top_k=3 is done
    assert log.read_text().splitlines() == before
    monkeypatch.undo()
    outcome = run_experiment(changed, tiny / "out", progress=False)
    assert [len(r.records) for r in outcome.runs] == [3, 3]
    assert len(log.read_text().splitlines()) == 6  # a complete run keeps only its own runs' records


def test_a_change_to_operator_code_reruns_queries_instead_of_reusing_old_records(tiny, monkeypatch):
    from evals import index_cache
    from rag.pipeline import Pipeline

    exp = load_experiment(write_experiment(tiny))
    run_experiment(exp, tiny / "out", progress=False)
    calls = []
    original = Pipeline.run
    monkeypatch.setattr(Pipeline, "run", lambda self, q, filters=None: calls.append(q) or original(self, q, filters))
    run_experiment(exp, tiny / "out", progress=False)
    assert calls == []  # same code: every record is reused
    fingerprint = index_cache.run_code_fingerprint
    monkeypatch.setattr("evals.runner.run_code_fingerprint", lambda config: "edited-" + fingerprint(config))
    outcome = run_experiment(exp, tiny / "out", progress=False)
    assert len(calls) == 1 + 3 and len(outcome.runs[0].records) == 3  # one untimed query, then the three


def test_the_run_code_fingerprint_covers_the_operator_packages_and_plugin_modules(monkeypatch):
    from evals import index_cache

    hashed = []
    monkeypatch.setattr(index_cache, "_source_digest", lambda names: hashed.append(set(names)) or "x")
    index_cache.run_code_fingerprint({"flow": [{"op": "evaltest_search", "top_k": 2}]})
    assert {"rag", "retrievers", "graph", "chunkers", "evals"} <= hashed[0]
    assert __name__ in hashed[0]  # the module defining the plugin operator the flow names


def test_grid_expands_to_the_cartesian_product_in_file_order(tiny):
    exp = parse_experiment({
        "datasets": ["x"],
        "pipelines": [{"name": "p", "index": {"chunker": {"op": "token", "chunk_size": 12, "overlap": 0},
                                              "structures": ["evaltest_vectors"]},
                       "flow": [{"op": "evaltest_search"}],
                       "grid": {"index.chunker.chunk_size": [8, 16], "flow[0].top_k": [2, 5]}}],
    })
    assert [p.name for p in exp.pipelines] == [
        "p[chunk_size=8,top_k=2]", "p[chunk_size=8,top_k=5]", "p[chunk_size=16,top_k=2]", "p[chunk_size=16,top_k=5]"]
    assert exp.pipelines[3].config["flow"][0] == {"op": "evaltest_search", "top_k": 5}


def test_grid_errors_name_the_key(tiny):
    base = {"name": "p", "index": {"structures": ["evaltest_vectors"]}, "flow": [{"op": "evaltest_search"}]}
    with pytest.raises(ConfigError, match=r"pipelines\[0\].grid.flow\[3\].top_k: flow\[3\] does not exist"):
        parse_experiment({"datasets": ["x"], "pipelines": [{**base, "grid": {"flow[3].top_k": [1, 2]}}]})
    with pytest.raises(ConfigError, match="non-empty list"):
        parse_experiment({"datasets": ["x"], "pipelines": [{**base, "grid": {"flow[0].top_k": 3}}]})
    with pytest.raises(ConfigError, match="top_kk"):
        parse_experiment({"datasets": ["x"], "pipelines": [{**base, "grid": {"flow[0].top_kk": [3]}}]})


def test_an_error_in_a_grid_value_names_the_grid_line_of_the_experiment(tmp_path):
    # QA: it named the pipeline file's line of the chunker, where the bad value is not written
    pipeline = tmp_path / "pipe.yaml"
    pipeline.write_text("name: p\nindex:\n  chunker: {op: token, chunk_size: 50}\n  structures: [evaltest_vectors]\n"
                        "flow:\n  - {op: evaltest_search}\n")
    experiment = tmp_path / "exp.yaml"
    for grid, message in (("index.chunker.chunk_sise: [10]", "unknown key 'chunk_sise'"),
                          ("index.chunker.overlap: [60]", "must be smaller than chunk_size")):
        experiment.write_text(f"name: e\ndatasets: [x]\npipelines:\n  - path: pipe.yaml\n    grid:\n"
                              f"      {grid}\n")
        key = grid.split(":")[0]
        with pytest.raises(ConfigError, match=rf"exp.yaml:6: pipelines\[0\].grid.{key}: .*{message}"):
            load_experiment(experiment)


def test_experiment_errors_name_the_key_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ndatasets: [a]\nmetrics: [nDCG@10, recall10]\npipelines: [p.yaml]\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:3: metrics\[1\]: unknown metric 'recall10'"):
        load_experiment(path)
    path.write_text("name: x\ndatasets: [a]\npipelines: [missing.yaml]\n")
    with pytest.raises(ConfigError, match="pipeline file not found"):
        load_experiment(path)


def test_set_key_path_adds_a_parameter_to_an_existing_step():
    config = {"flow": [{"op": "x"}]}
    set_key_path(config, "flow[0].top_k", 7)
    assert config == {"flow": [{"op": "x", "top_k": 7}]}


def test_users_own_folder_of_documents_is_evaluated_like_a_beir_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGLOOM_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "mine"
    (root / "documents").mkdir(parents=True)
    for doc_id, text in DOCS.items():
        (root / "documents" / f"{doc_id}.md").write_text(text, encoding="utf-8")
    (root / "questions.yaml").write_text(
        "- question: why do cats purr\n  references: [{doc_id: cats.md, text: 'They purr when content'}]\n"
        "- question: which animal barks at strangers\n  gold_docs: [dogs.md]\n", encoding="utf-8")
    exp = parse_experiment({
        "name": "mine", "datasets": [str(root)], "span": {"k": 1},
        "pipelines": [{"name": "vec", "index": {"chunker": {"op": "token", "chunk_size": 64, "overlap": 0},
                                                "structures": ["evaltest_vectors"]},
                       "flow": [{"op": "evaltest_search", "top_k": 4}]}],
    })
    run = run_experiment(exp, tmp_path / "out", progress=False).runs[0]
    assert run.metrics["queries"] == 2
    assert run.metrics["MRR@10"] == 1.0  # both questions find their document first
    # one whole-document chunk retrieved for the cats question: the excerpt is covered exactly once
    assert run.metrics["span_recall"] == 1.0
    assert run.metrics["span_precision"] == pytest.approx(len("They purr when content") / len(DOCS["cats"]))


def test_cached_index_directory_changes_when_the_building_code_changes(tmp_path, monkeypatch):
    """A cached index built by older chunker or structure code must not be served to newer code."""
    from pathlib import Path

    from evals import index_cache
    from rag.config import loads_config

    config = loads_config("name: t\nindex: {chunker: {op: token, chunk_size: 32}, structures: [bm25]}\n"
                          "flow: [{op: bm25}]\n")
    before = index_cache.IndexCache(tmp_path).directory("corpus", config)
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes",
                        lambda self: real_read(self) + (b"#changed" if self.name == "token.py" else b""))
    after = index_cache.IndexCache(tmp_path).directory("corpus", config)
    assert before != after


def test_ranking_metrics_can_score_the_documents_of_the_selected_context(tiny):
    select = "      - {op: select, budget_tokens: 20}"
    hits_run = run_experiment(load_experiment(write_experiment(tiny, select)), tiny / "out1", progress=False).runs[0]
    exp = load_experiment(write_experiment(tiny, select, name="on-context"))
    exp = parse_experiment({**_raw(exp), "ranking": {"source": "context"}}, exp.source)
    context_run = run_experiment(exp, tiny / "out2", progress=False).runs[0]
    for by_hits, by_context in zip(hits_run.records, context_run.records):
        context_docs = list(dict.fromkeys(doc for _, doc, _, _ in by_context["evidence"]))
        assert [d for d, _ in by_context["ranking"]] == context_docs
        assert len(by_hits["ranking"]) == len(DOCS) > len(context_docs)
        gold = next(doc for qid, _, doc, _ in QUERIES if qid == by_context["query_id"])
        assert by_context["scores"]["R@5"] == float(gold in context_docs)


def test_a_pipeline_can_be_restricted_to_some_of_the_datasets(tiny):
    import shutil

    shutil.copytree(tiny / "tiny", tiny / "other")
    base = {"name": "p", "index": {"chunker": {"op": "token", "chunk_size": 12, "overlap": 0},
                                   "structures": ["evaltest_vectors"]}, "flow": [{"op": "evaltest_search"}]}
    datasets = [str(tiny / "tiny"), str(tiny / "other")]
    exp = parse_experiment({"name": "only", "datasets": datasets,
                            "pipelines": [base, {**base, "name": "q", "datasets": ["other"]}]})
    outcome = run_experiment(exp, tiny / "out", limit=1, progress=False)
    assert [(r.pipeline, r.dataset) for r in outcome.runs] == [("p", "tiny"), ("p", "other"), ("q", "other")]
    assert "datasets" not in outcome.runs[-1].config
    with pytest.raises(ConfigError, match=r"pipelines\[1\].datasets\[0\]: 'scifact' is not one of"):
        parse_experiment({"datasets": datasets, "pipelines": [base, {**base, "name": "q", "datasets": ["scifact"]}]})


def test_a_pipeline_entry_can_rank_its_hits_when_the_experiment_ranks_contexts(tiny):
    base = {"name": "p", "index": {"chunker": {"op": "token", "chunk_size": 12, "overlap": 0},
                                   "structures": ["evaltest_vectors"]},
            "flow": [{"op": "evaltest_search"}, {"op": "select", "budget_tokens": 20}]}
    exp = parse_experiment({"name": "override", "datasets": [str(tiny / "tiny")], "ranking": {"source": "context"},
                            "pipelines": [base, {**base, "name": "q", "ranking": {"source": "hits"}}]})
    on_context, on_hits = run_experiment(exp, tiny / "out", limit=1, progress=False).runs
    assert len(on_hits.records[0]["ranking"]) == len(DOCS) > len(on_context.records[0]["ranking"])
    with pytest.raises(ConfigError, match=r"pipelines\[1\].ranking: must be a mapping"):
        parse_experiment({"datasets": ["x"], "pipelines": [base, {**base, "name": "q", "ranking": "hits"}]})


def _raw(exp) -> dict:
    from rag.yaml_io import load_yaml, plain

    return plain(load_yaml(Path(exp.source)))


@pytest.mark.parametrize("span, key, message", [
    ("{k: five}", "span.k", "positive integer"), ("{k: 2.7}", "span.k", "positive integer"),
    ("{k: [5]}", "span.k", "positive integer"), ("{union_retrieved: 'false'}", "span.union_retrieved", "true or false"),
    ("{source: everything}", "span.source", "auto, hits or context"),
    ("{k: 2, souce: hits}", "span.souce", "unknown key 'souce' \\(valid: k, source, union_retrieved\\)"),
])
def test_span_settings_of_the_wrong_type_are_errors_naming_file_line_and_key(tiny, span, key, message):
    # int() crashed on 'five' and truncated 2.7; bool() read the string 'false' as true (QA pass)
    from rag.errors import ConfigError

    path = write_experiment(tiny)
    path.write_text(path.read_text().replace("span: {k: 2}", f"span: {span}"))
    with pytest.raises(ConfigError, match=f"{path.name}:4: {key}: .*{message}"):
        load_experiment(path)


def test_the_report_states_the_rounds_its_tests_used(tiny):
    # it said "10,000 rounds" whatever --rounds was (QA pass)
    from evals.report import write_reports

    exp = parse_experiment({"name": "r", "datasets": [str(tiny / "tiny")], "pipelines": [
        {"name": "a", "index": {"chunker": {"op": "token", "chunk_size": 12, "overlap": 0},
                                "structures": ["evaltest_vectors"]},
         "flow": [{"op": "evaltest_search", "top_k": 4}], "grid": {"flow[0].top_k": [1, 3]}}]})
    outcome = run_experiment(exp, tiny / "out", progress=False)
    write_reports(outcome, tiny / "out", rounds=200)
    report = (tiny / "out" / "report.md").read_text()
    assert "(200 rounds each)" in report and "10,000" not in report


def test_a_bad_dataset_is_reported_before_any_pipeline_runs(tiny, monkeypatch):
    # datasets were read one at a time: every pipeline ran on the first before the second's error appeared
    import shutil

    from rag.errors import RagloomError
    from rag.pipeline import Pipeline

    bad = tiny / "bad"
    shutil.copytree(tiny / "tiny", bad)
    (bad / "queries.jsonl").write_text('{"_id": "q", "text": "x", "references": [{"doc_id": "nope", "start": 0, '
                                       '"end": 3}]}\n')
    exp = parse_experiment({"name": "two", "datasets": [str(tiny / "tiny"), str(bad)], "pipelines": [
        {"name": "a", "index": {"chunker": {"op": "token", "chunk_size": 12, "overlap": 0},
                                "structures": ["evaltest_vectors"]},
         "flow": [{"op": "evaltest_search", "top_k": 4}]}]})
    calls = []
    monkeypatch.setattr(Pipeline, "run", lambda self, q, filters=None: calls.append(q))
    with pytest.raises(RagloomError, match="queries.jsonl:1"):
        run_experiment(exp, tiny / "out", progress=False)
    assert calls == []


def test_span_source_context_with_a_flow_that_selects_no_context_is_an_error_not_zeros(tiny):
    # every span metric was a silent 0.0 (QA pass)
    from rag.errors import ConfigError

    path = write_experiment(tiny)
    path.write_text(path.read_text().replace("span: {k: 2}", "span: {k: 2, source: context}"))
    with pytest.raises(ConfigError, match="span.source: is 'context' but the flow selects no context"):
        run_experiment(load_experiment(path), tiny / "out", progress=False)


def test_span_metrics_asked_of_a_dataset_without_references_are_reported_missing(tiny, caplog):
    import dataclasses

    from evals.runner import metric_names_for

    exp = load_experiment(write_experiment(tiny))
    exp = dataclasses.replace(exp, metrics=("R@5", "span_recall"))
    from evals.datasets import read_dataset

    dataset = read_dataset(str(tiny / "tiny"))
    dataset = dataclasses.replace(dataset, queries=[dataclasses.replace(q, references=()) for q in dataset.queries])
    with caplog.at_level("WARNING"):
        assert "span_recall" not in metric_names_for(exp, dataset)
    assert "has no character-span references" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):  # and ranking metrics of a dataset without qrels
        assert metric_names_for(dataclasses.replace(exp, metrics=("R@5", "MRR@10", "span_recall")),
                                dataclasses.replace(read_dataset(str(tiny / "tiny")), qrels={})) == \
            ["span_recall", "span_precision", "span_iou"]
    assert "has no qrels: the ranking metrics asked for (R@5, MRR@10) are not reported" in caplog.text
    # QA: with nothing else asked for, the run succeeded with an empty report
    from rag.errors import InputError

    with pytest.raises(InputError, match="dataset tiny: none of the metrics asked for \\(span_recall\\) can be scored"):
        metric_names_for(dataclasses.replace(exp, metrics=("span_recall",)), dataset)


def test_a_flow_returning_fewer_chunks_than_span_k_is_reported(tiny, caplog):
    # span.k 10 with top_k 2 silently scored 2 chunks (QA pass)
    path = write_experiment(tiny)
    path.write_text(path.read_text().replace("span: {k: 2}", "span: {k: 10}").replace("top_k: 20", "top_k: 2"))
    with caplog.at_level("WARNING"):
        run_experiment(load_experiment(path), tiny / "out", progress=False)
    assert "3 of 3 queries returned fewer than span.k = 10 chunks" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        run_experiment(load_experiment(write_experiment(tiny, name="enough")), tiny / "out2", progress=False)
    assert "fewer than span.k" not in caplog.text
