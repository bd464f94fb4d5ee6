"""``structure: minhash``: word signatures computed at index time, kept with the index, read by ``op: select``."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import retrievers.select as select_module
from rag.config import loads_config
from rag.errors import IndexStoreError
from rag.operators import RunContext
from rag.pipeline import Pipeline
from rag.registry import create
from rag.resources import Resources
from rag.types import Chunk, Document, Hit
from retrievers.selection.pool import word_signatures

CONFIG = """name: t
index:
  chunker: {op: token, chunk_size: 12}
  structures: [bm25, minhash]
flow: [{op: bm25, top_k: 50}]
"""

BODY = "budgeted selection keeps the context small while the answer stays in it and nothing repeats "
DOCS = [Document("a", BODY * 3),
        Document("b", BODY * 2 + "with one extra clause at the end"),  # near-duplicate chunks of "a"
        Document("c", "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi " * 2),
        Document("d", "unrelated words about rivers mountains and the weather in spring")]


def indexed() -> Pipeline:
    pipe = Pipeline.from_config(loads_config(CONFIG))
    pipe.index(DOCS)
    return pipe


def stored(pipe: Pipeline) -> dict[str, np.ndarray]:
    structure = pipe.index_.structure("minhash")
    return {i: structure.table_[row] for i, row in zip(structure.ids_, range(len(structure)))}


def expected(chunks) -> dict[str, np.ndarray]:
    chunks = list(chunks)
    return dict(zip((c.id for c in chunks), word_signatures([c.text for c in chunks]).astype(np.uint32)))


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_minhash_holds_the_signature_of_every_index_chunk_through_adds_replacements_and_deletes():
    pipe = indexed()
    assert same(stored(pipe), expected(pipe.index_.chunks.values()))
    pipe.delete(["b"])
    pipe.index([Document("a", "a changed text, so its chunks are replaced " * 3), Document("e", "a new document")])
    assert len(pipe.index_.structure("minhash")) == len(pipe.index_.chunks)
    assert same(stored(pipe), expected(pipe.index_.chunks.values()))


def test_minhash_signatures_survive_save_and_load(tmp_path):
    pipe = indexed()
    pipe.save(tmp_path / "idx")
    assert same(stored(Pipeline.load(tmp_path / "idx")), stored(pipe))


def test_signatures_stored_under_another_definition_are_refused(tmp_path):
    version = indexed().save(tmp_path / "idx")
    meta = version / "structures" / "minhash" / "minhash.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "signature": "minhash64/an-older-word-split"}))
    with pytest.raises(IndexStoreError, match="rebuild the index"):
        Pipeline.load(tmp_path / "idx", verify=False)


def computed_texts(monkeypatch) -> list[str]:
    """Every text whose signature select computes from now on."""
    texts: list[str] = []
    real = select_module.word_signatures
    monkeypatch.setattr(select_module, "word_signatures", lambda batch: texts.extend(batch) or real(batch))
    return texts


@pytest.mark.parametrize("strategy", ["density", "knapsack", "mcts"])
def test_select_reads_the_index_signatures_and_selects_exactly_what_it_selects_computing_them(monkeypatch, strategy):
    pipe = indexed()
    chunks = sorted(pipe.index_.chunks.values(), key=lambda c: c.id)
    # a chunk with an index id but other text, and one the index does not hold: their signatures are computed
    edited = dataclasses.replace(chunks[0], text=chunks[0].text.upper() + " edited", tokenizer=None)
    foreign = Chunk("z#0", "z", BODY, 0, len(BODY), 0)
    hits = tuple(Hit(c, 1.0 - i / 100, "t") for i, c in enumerate([edited, *chunks[1:], foreign]))
    params = {"budget_tokens": 60, "strategy": strategy, "simulations": 16, "near_duplicate": 0.5}
    computed = computed_texts(monkeypatch)
    with_index = create("select", params).select(hits, RunContext(pipe.index_, Resources()))
    assert computed == [edited.text, foreign.text]
    without = create("select", params).select(hits, RunContext(None, Resources()))
    assert set(computed[2:]) == {h.chunk.text for h in hits}  # without the index, every text is computed
    assert [h.chunk.id for h in with_index[0]] == [h.chunk.id for h in without[0]]
    assert with_index[1] == without[1]


def test_the_signature_definition_is_pinned():
    """Stored signatures are read back only under the same SIGNATURE_DEFINITION: if this fails, word_signatures
    changed — change retrievers.selection.pool.SIGNATURE_DEFINITION too (indexes must then be rebuilt), then these
    values."""
    rows = word_signatures(["The cat sat on the mat", "Ünïcode wörds, too"])[:, :4].tolist()
    assert rows == [[36812594, 492838139, 100459278, 482373358], [1153952561, 453395066, 335452863, 1297163187]]
