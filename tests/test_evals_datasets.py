"""Loading BEIR folders and users' own document folders, with errors that name file and line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.datasets import load_beir, read_dataset, load_folder, resolve_dataset
from rag.errors import InputError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def write_beir(root: Path, corpus=None, queries=None, qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\n") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    corpus = corpus if corpus is not None else [
        {"_id": "d1", "title": "Cats", "text": "Cats  purr.\nThey sleep a lot."},
        {"_id": "d2", "title": "Dogs", "text": "Dogs bark."},
    ]
    queries = queries if queries is not None else [
        {"_id": "q1", "text": "do cats purr", "answers": ["yes"],
         "references": [{"doc_id": "d1", "start": 0, "end": 11}]},
    ]
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus), encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries), encoding="utf-8")
    if qrels is not None:
        (root / "qrels").mkdir(exist_ok=True)
        (root / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    return root


def test_beir_documents_keep_text_exactly_and_title_in_metadata(tmp_path):
    ds = load_beir(write_beir(tmp_path / "tiny"))
    doc = ds.documents[0]
    assert doc.text == "Cats  purr.\nThey sleep a lot."
    assert doc.metadata["title"] == "Cats"
    q = ds.queries[0]
    assert q.answers == ("yes",) and q.references == (("d1", 0, 11),)
    assert doc.text[0:11] == "Cats  purr."
    assert ds.qrels == {"q1": {"d1": 1}}


def test_bad_json_line_is_reported_with_file_and_line(tmp_path):
    root = write_beir(tmp_path / "bad")
    with (root / "corpus.jsonl").open("a") as fh:
        fh.write("{not json\n")
    with pytest.raises(InputError, match=r"corpus.jsonl:3: invalid JSON"):
        load_beir(root)


def test_span_outside_document_is_rejected(tmp_path):
    root = write_beir(tmp_path / "span", queries=[
        {"_id": "q1", "text": "x", "references": [{"doc_id": "d2", "start": 5, "end": 999}]}])
    with pytest.raises(InputError, match=r"queries.jsonl:1: references\[0\]: span \[5, 999\)"):
        load_beir(root)


@pytest.mark.parametrize("start", ['"1"', "true", "1.5"])
def test_span_offsets_that_are_not_integers_are_rejected_as_such(tmp_path, start):
    # a string offset was reported as "not inside the document"; true was read as offset 1 (QA pass)
    import json

    root = write_beir(tmp_path / "types", queries=[
        {"_id": "q1", "text": "x", "references": [{"doc_id": "d2", "start": json.loads(start), "end": 3}]}])
    with pytest.raises(InputError, match=r"queries.jsonl:1: references\[0\]: 'start' and 'end' must be integers"):
        load_beir(root)


def test_qrels_naming_an_unknown_document_is_rejected(tmp_path):
    root = write_beir(tmp_path / "qr", qrels="q1\tnope\t1\n")
    with pytest.raises(InputError, match=r"test.tsv:1: corpus id 'nope'"):
        load_beir(root)


def test_duplicate_document_ids_are_rejected(tmp_path):
    root = write_beir(tmp_path / "dup", corpus=[{"_id": "d1", "text": "a"}, {"_id": "d1", "text": "b"}],
                      qrels=None, queries=[{"_id": "q1", "text": "a"}])
    with pytest.raises(InputError, match="duplicate document id 'd1'"):
        load_beir(root)


def test_only_judged_queries_are_evaluated(tmp_path):
    root = write_beir(tmp_path / "judged", queries=[{"_id": "q1", "text": "cats"}, {"_id": "q2", "text": "x"}])
    assert [q.id for q in load_beir(root).queries] == ["q1"]


def test_limit_cuts_queries_but_never_the_corpus(tmp_path):
    root = write_beir(tmp_path / "lim", queries=[{"_id": "q1", "text": "cats"}, {"_id": "q2", "text": "dogs"}],
                      qrels="q1\td1\t1\nq2\td2\t1\n")
    ds = load_beir(root).limited(1)
    assert len(ds.queries) == 1 and len(ds.documents) == 2 and set(ds.qrels) == {"q1"}


def test_folder_of_documents_with_excerpt_references(tmp_path):
    root = tmp_path / "mine"
    (root / "documents" / "sub").mkdir(parents=True)
    (root / "documents" / "a.md").write_text("# A\nThe answer is forty-two.\n", encoding="utf-8")
    (root / "documents" / "sub" / "b.txt").write_text("Nothing here.", encoding="utf-8")
    (root / "questions.yaml").write_text(
        "- question: what is the answer\n  answers: [forty-two]\n"
        "  references: [{doc_id: a.md, text: 'The answer is forty-two.'}]\n"
        "- {question: where is nothing, gold_docs: [sub/b.txt]}\n", encoding="utf-8")
    ds = load_folder(root)
    assert [d.id for d in ds.documents] == ["a.md", "sub/b.txt"]
    a = ds.documents[0]
    (_, start, end), = ds.queries[0].references
    assert a.text[start:end] == "The answer is forty-two."
    assert ds.qrels == {"q0": {"a.md": 1}, "q1": {"sub/b.txt": 1}}


def test_folder_excerpt_not_in_document_names_the_question(tmp_path):
    root = tmp_path / "mine"
    (root / "documents").mkdir(parents=True)
    (root / "documents" / "a.md").write_text("hello", encoding="utf-8")
    (root / "questions.jsonl").write_text(json.dumps(
        {"question": "q", "references": [{"doc_id": "a.md", "text": "bye"}]}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"questions.jsonl:1: references\[0\]: excerpt not found"):
        load_folder(root)


def test_an_excerpt_found_twice_and_an_empty_span_are_errors_naming_the_question(tmp_path):
    # QA: the first of two occurrences was taken silently, and [50, 10) was called "not inside the document"
    root = tmp_path / "mine"
    (root / "documents").mkdir(parents=True)
    (root / "documents" / "a.md").write_text("apples and pears, then apples again", encoding="utf-8")
    questions = root / "questions.jsonl"
    questions.write_text(json.dumps({"question": "q", "references": [{"doc_id": "a.md", "text": "apples"}]}) + "\n",
                         encoding="utf-8")
    with pytest.raises(InputError, match=r"questions.jsonl:1: references\[0\]: excerpt found more than once in "
                                         r"document 'a.md' \(at characters 0 and 23\)"):
        load_folder(root)
    questions.write_text(json.dumps({"question": "q", "references": [{"doc_id": "a.md", "start": 9, "end": 3}]})
                         + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"span \[9, 3\) is empty: 'end' must be greater than 'start'"):
        load_folder(root)


def test_dataset_by_name_is_found_under_ragloom_datasets(tmp_path, monkeypatch):
    write_beir(tmp_path / "store" / "tiny")
    monkeypatch.setenv("RAGLOOM_DATASETS", str(tmp_path / "store"))
    assert resolve_dataset("tiny") == (tmp_path / "store" / "tiny").resolve()
    assert read_dataset("tiny").name == "tiny"
    with pytest.raises(InputError, match="dataset 'absent' not found"):
        resolve_dataset("absent")


def test_dataset_path_is_relative_to_the_experiment_file(tmp_path):
    write_beir(tmp_path / "exp" / "data" / "tiny")
    exp = tmp_path / "exp" / "experiment.yaml"
    exp.write_text("name: x\n")
    assert resolve_dataset("data/tiny", exp) == (tmp_path / "exp" / "data" / "tiny").resolve()


@pytest.mark.skipif(not (SHARED / "chroma-chunking").is_dir(), reason="shared datasets absent")
def test_shared_chroma_chunking_spans_index_into_documents():
    ds = read_dataset(SHARED / "chroma-chunking")
    assert len(ds.queries) == 472 and len(ds.documents) == 5
    text_of = {d.id: d.text for d in ds.documents}
    assert all(0 <= s < e <= len(text_of[doc]) for q in ds.queries for doc, s, e in q.references)


def test_a_folder_that_is_not_a_dataset_does_not_shadow_a_named_dataset(tmp_path, monkeypatch):
    write_beir(tmp_path / "store" / "tiny")
    (tmp_path / "exp" / "tiny").mkdir(parents=True)  # e.g. a run folder named like the dataset
    exp = tmp_path / "exp" / "experiment.yaml"
    exp.write_text("name: x\n")
    monkeypatch.setenv("RAGLOOM_DATASETS", str(tmp_path / "store"))
    monkeypatch.chdir(tmp_path / "exp")
    assert resolve_dataset("tiny", exp) == (tmp_path / "store" / "tiny").resolve()


def test_a_yes_or_no_answer_in_questions_yaml_stays_a_word(tmp_path):
    # YAML 1.1 read `answers: [no]` as False: the gold answer became "False"
    root = tmp_path / "mine"
    (root / "documents").mkdir(parents=True)
    (root / "documents" / "a.md").write_text("Is water wet? Yes. Is fire cold? No. Lunch at 12:30.", encoding="utf-8")
    (root / "questions.yaml").write_text("- {question: is fire cold, answers: [no], gold_docs: [a.md]}\n"
                                         "- {question: is water wet, answer: yes, gold_docs: [a.md]}\n"
                                         "- {question: when is lunch, answer: 12:30, gold_docs: [a.md]}\n",
                                         encoding="utf-8")
    assert [q.answers for q in load_folder(root).queries] == [("no",), ("yes",), ("12:30",)]


def test_invalid_questions_yaml_names_file_and_line(tmp_path):
    root = tmp_path / "mine"
    (root / "documents").mkdir(parents=True)
    (root / "documents" / "a.md").write_text("hello", encoding="utf-8")
    (root / "questions.yaml").write_text("- question: q\n  answers: [a\n- question: r\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"questions.yaml:\d+: invalid YAML"):
        load_folder(root)
