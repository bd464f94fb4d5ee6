"""Specifications of the bm25 / dense structures and retrievers and the rrf / convex merges."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rag.operators import RunContext
from rag.registry import create, get_spec
from rag.resources import Resources
from rag.state import QueryState
from rag.types import Chunk, Hit
from retrievers.bm25 import BM25Index
from retrievers.dense import DenseIndex
from retrievers.fusion import convex_combination, reciprocal_rank_fusion

TEXTS = [
    ("cats", "The cat sat on the mat and purred at the dogs.", "pets"),
    ("dogs", "Dogs chase cats in the park every morning.", "pets"),
    ("fox", "A quick brown fox jumps over the lazy dog.", "fables"),
    ("bm25", "BM25 ranks documents by term frequency and inverse document frequency.", "ir"),
    ("dense", "Dense retrieval embeds queries and passages into one vector space.", "ir"),
    ("faiss", "FAISS searches millions of vectors with HNSW graphs or inverted lists.", "ir"),
    ("parks", "City parks are green and quiet in the early morning.", "city"),
    ("runners", "Runners run through the park; running keeps them fit.", "city"),
]


def make_chunks(rows=TEXTS) -> list[Chunk]:
    return [Chunk(f"{d}#0", d, t, 0, len(t), len(t.split()), {"title": d.title(), "topic": topic})
            for d, t, topic in rows]


class ChunkStore:
    """The part of the index a retriever reads: structures by name and chunks by id."""

    def __init__(self, chunks, **structures):
        self.chunks = {c.id: c for c in chunks}
        self.structures = structures

    def structure(self, name):
        return self.structures[name]

    def chunk(self, chunk_id):
        return self.chunks[chunk_id]


@pytest.fixture(scope="module")
def resources(tmp_path_factory):
    return Resources(embedder={"model": "minilm", "cache_dir": str(tmp_path_factory.mktemp("cache"))})


def test_structures_and_retrievers_share_names_in_separate_namespaces():
    assert get_spec("bm25", "structure").cls is BM25Index
    assert get_spec("dense", "structure").cls is DenseIndex
    assert get_spec("bm25", "retriever").kind == "retriever"
    assert get_spec("dense", ("retriever", "step")).kind == "retriever"
    assert get_spec("rrf", "merge").kind == "merge"
    with pytest.raises(Exception, match="not a merge operator"):
        get_spec("bm25", "merge")


@pytest.mark.parametrize("method", ["robertson", "bm25plus"])
def test_sparse_bm25_scores_equal_rank_bm25(method):
    chunks = make_chunks()
    fast, reference = BM25Index(method=method, k1=1.5, b=0.75), BM25Index(method=method, k1=1.5, b=0.75,
                                                                            backend="rank_bm25")
    fast.add(chunks, None)
    reference.add(chunks, None)
    for query in ["cat in the park", "running dogs", "vector search with faiss", "nothing matches zzz"]:
        np.testing.assert_allclose(fast.scores(query), reference.scores(query), rtol=1e-5, atol=1e-6)
        assert fast.search(query, 3)[0].tolist() == reference.search(query, 3)[0].tolist()


def test_bm25_analyzer_stems_and_drops_stopwords():
    index = BM25Index()
    assert index.analyzer("The running dogs are chasing") == ["run", "dog", "chase"]
    index.add(make_chunks(), None)
    rows, _ = index.search("run", 5)
    assert index.ids_[rows[0]] == "runners#0"


words = st.sampled_from("cat dog park run fox vector graph bm25 green quiet morning lazy".split())
docs = st.lists(st.lists(words, min_size=1, max_size=8).map(" ".join), min_size=3, max_size=12)


@settings(max_examples=40, deadline=None)
@given(docs=docs, extra=docs, data=st.data())
def test_bm25_incremental_add_delete_equals_rebuild(docs, extra, data):
    first = [Chunk(f"a{i}#0", f"a{i}", t, 0, len(t), 1) for i, t in enumerate(docs)]
    second = [Chunk(f"b{i}#0", f"b{i}", t, 0, len(t), 1) for i, t in enumerate(extra)]
    gone = set(data.draw(st.lists(st.sampled_from([c.id for c in first]), max_size=len(first) - 1)))
    incremental = BM25Index(method=data.draw(st.sampled_from(["lucene", "robertson", "bm25l", "bm25plus"])))
    incremental.add(first, None)
    incremental.search("cat", 2)  # build the weights once, so the update really is incremental
    incremental.delete(gone)
    incremental.add(second, None)
    rebuilt = BM25Index(**incremental.params.model_dump())
    rebuilt.add([c for c in first if c.id not in gone] + second, None)
    for query in ["cat dog", "park run green", "bm25 vector vector"]:
        a_rows, a_scores = incremental.search(query, 5)
        b_rows, b_scores = rebuilt.search(query, 5)
        assert [incremental.ids_[r] for r in a_rows] == [rebuilt.ids_[r] for r in b_rows]
        assert a_scores.tolist() == b_scores.tolist()


def _persisted_files_are_plain_data(directory):
    for path in directory.rglob("*"):
        assert path.suffix in {".json", ".npy", ".faiss"}, path
        if path.suffix == ".npy":
            np.load(path, allow_pickle=False)


def test_bm25_round_trips_through_save_and_load(tmp_path):
    index = BM25Index(method="bm25plus")
    index.add(make_chunks(), None)
    index.delete(["fox#0"])
    index.save(tmp_path)
    _persisted_files_are_plain_data(tmp_path)
    loaded = BM25Index(method="bm25plus")
    loaded.load(tmp_path, None)
    assert len(loaded) == len(index) == len(TEXTS) - 1
    for query in ["cat", "dense vectors", "park morning"]:
        assert [a.tolist() for a in loaded.search(query, 4)] == [a.tolist() for a in index.search(query, 4)]


def test_bm25_load_refuses_an_index_built_with_another_analyzer(tmp_path):
    from rag.errors import IndexStoreError

    index = BM25Index()
    index.add(make_chunks(), None)
    index.save(tmp_path)
    with pytest.raises(IndexStoreError, match="rebuild"):
        BM25Index(analyzer={"stemmer": None}).load(tmp_path, None)


def test_bm25_retriever_applies_filters_before_top_k():
    chunks = make_chunks()
    index = BM25Index()
    index.add(chunks, None)
    ctx = RunContext(ChunkStore(chunks, bm25=index), Resources())
    retriever = create("bm25", {"top_k": 2}, kinds="retriever")
    state = retriever(QueryState("park morning cats", filters={"topic": ["city", "ir"]}), ctx)
    assert len(state.hits) == 2
    assert {h.chunk.metadata["topic"] for h in state.hits} == {"city"}
    assert all(h.source == "bm25" for h in state.hits)
    unfiltered = retriever(QueryState("park morning cats"), ctx)
    assert unfiltered.hits[0].chunk.metadata["topic"] == "pets"


def test_dense_retrieves_by_meaning_and_filters(resources):
    chunks = make_chunks()
    index = DenseIndex()
    index.add(chunks, resources)
    ctx = RunContext(ChunkStore(chunks, dense=index), resources)
    retriever = create("dense", {"top_k": 3}, kinds="retriever")
    state = retriever(QueryState("approximate nearest neighbour search over embeddings"), ctx)
    assert state.hits[0].chunk.doc_id in {"faiss", "dense"}
    assert [h.score for h in state.hits] == sorted((h.score for h in state.hits), reverse=True)
    filtered = retriever(QueryState("approximate nearest neighbour search", filters={"topic": "pets"}), ctx)
    assert len(filtered.hits) == 2 and all(h.chunk.metadata["topic"] == "pets" for h in filtered.hits)


def test_reindexing_unchanged_text_makes_no_model_calls(resources):
    DenseIndex().add(make_chunks(), resources)
    calls = resources.embedder.model_calls
    DenseIndex().add(make_chunks(), resources)
    assert resources.embedder.model_calls == calls


@pytest.mark.parametrize("factory", ["Flat", "HNSW16"])
def test_dense_incremental_add_delete_equals_rebuild(factory, resources, tmp_path):
    chunks = make_chunks()
    vectors = resources.embedder.embed([c.text for c in chunks])
    incremental = DenseIndex(factory=factory)
    incremental.add(chunks[:5], None, embeddings=vectors[:5])
    incremental.delete(["dogs#0", "fox#0"])
    incremental.add(chunks[5:], None, embeddings=vectors[5:])
    keep = [i for i, c in enumerate(chunks) if c.id not in {"dogs#0", "fox#0"}]
    rebuilt = DenseIndex(factory=factory)
    rebuilt.add([chunks[i] for i in keep], None, embeddings=vectors[keep])
    assert len(incremental) == len(rebuilt) == 6
    queries = resources.embedder.embed_queries(["pets playing", "vector search", "morning in the city"])
    _same_hits(incremental.search_vectors(queries, 6), rebuilt.search_vectors(queries, 6))
    incremental.save(tmp_path)
    _persisted_files_are_plain_data(tmp_path)
    loaded = DenseIndex(factory=factory)
    loaded.load(tmp_path, None)
    _same_hits(loaded.search_vectors(queries, 6), rebuilt.search_vectors(queries, 6))


def _same_hits(found, expected):
    """Same ids in the same order per query; scores equal up to float rounding (faiss's HNSW may sum a distance in
    a different order in a graph built another way)."""
    assert [ids for ids, _ in found] == [ids for ids, _ in expected]
    for (_, scores), (_, expected_scores) in zip(found, expected):
        assert scores == pytest.approx(expected_scores, abs=1e-5)


def test_dense_uses_given_embeddings_for_late_chunking():
    chunks = make_chunks()[:3]
    index = DenseIndex()
    index.add(chunks, None, embeddings=np.eye(3, 4, dtype=np.float32) * 5)
    ids, scores = index.search_vectors(np.array([[0, 1, 0, 0]], dtype=np.float32), 1)[0]
    assert ids == [chunks[1].id] and scores == pytest.approx([1.0])


def test_of_identical_chunks_the_first_indexed_wins():
    # QA: a document repeating a passage gave copies with identical vectors, which FAISS's blocked products score a
    # few bits apart: the later copy won about half the time (recursive 200 on chroma-chunking lost 0.006 recall)
    from rag.types import Chunk

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(2110, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    copies = {5: 1500, 100: 2000, 7: 1031}
    for first, copy in copies.items():
        vectors[copy] = vectors[first]
    index = DenseIndex()
    index.add([Chunk(f"d#{i}", "d", "x", i, i + 1, 1) for i in range(2110)], None, embeddings=vectors)
    originals = np.repeat(list(copies), 160)
    queries = vectors[originals] + 0.02 * rng.normal(size=(len(originals), 384)).astype(np.float32)
    found = index.search_vectors(queries, 1)
    assert [ids[0] for ids, _ in found] == [f"d#{i}" for i in originals]


def _hits(ids, scores=None, source="x"):
    scores = scores or [1.0 / (i + 1) for i in range(len(ids))]
    return [Hit(Chunk(i, i, i, 0, len(i), 1), s, source) for i, s in zip(ids, scores)]


def test_rrf_sums_reciprocal_ranks_and_deduplicates():
    fused = reciprocal_rank_fusion([_hits(["a", "b", "c"]), _hits(["b", "d", "b"])], k=60)
    assert [h.id for h in fused] == ["b", "a", "d", "c"]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert len({h.id for h in fused}) == len(fused)


def test_weighted_rrf_follows_the_heavier_list():
    fused = reciprocal_rank_fusion([_hits(["a", "b"]), _hits(["b", "a"])], k=60, weights=[1.0, 3.0])
    assert [h.id for h in fused] == ["b", "a"]


@pytest.mark.parametrize("normalization", ["minmax", "zscore", "dbsf"])
def test_convex_combination_of_one_list_keeps_its_order(normalization):
    hits = _hits(["a", "b", "c", "d"], [9.0, 7.5, 3.0, 1.0])
    assert [h.id for h in convex_combination([hits], normalization)] == ["a", "b", "c", "d"]


def test_rrf_merge_operator_fuses_branch_states():
    merge = create("rrf", {"k": 1, "top_k": 2}, kinds="merge")
    start = QueryState("q")
    fused = merge.merge([start.evolve(hits=tuple(_hits(["a", "b"]))), start.evolve(hits=tuple(_hits(["c", "a"])))],
                        start, None)
    assert [h.id for h in fused.hits] == ["a", "c"] and all(h.source == "rrf" for h in fused.hits)


def test_multi_query_fuses_the_lists_of_every_variant():
    chunks = make_chunks()
    index = BM25Index()
    index.add(chunks, None)
    ctx = RunContext(ChunkStore(chunks, bm25=index), Resources())
    multi = create("multi_query", {"retrievers": [{"op": "bm25", "top_k": 2}], "merge": {"op": "rrf", "k": 60}},
                   kinds="retriever")
    alone = create("bm25", {"top_k": 2}, kinds="retriever")(QueryState("purring cat"), ctx)
    state = multi(QueryState("purring cat", variants=("faiss vectors",)), ctx)
    ids = {h.id for h in state.hits}
    assert {h.id for h in alone.hits} <= ids and "faiss#0" in ids
    assert len(ids) == len(state.hits) and all(h.source == "rrf" for h in state.hits)


def test_multi_query_rejects_a_nested_step_without_op():
    from rag.errors import ConfigError

    with pytest.raises(ConfigError, match="retrievers\\[0\\]"):
        create("multi_query", {"retrievers": [{"top_k": 3}]}, kinds="retriever")


def test_confidence_weighting_follows_the_list_with_a_clear_winner():
    flat = _hits(["a", "b", "c", "d", "e"], [5.0, 4.9, 4.8, 4.7, 4.6])  # no clear winner: weight 0 → ...
    peaked = _hits(["e", "d", "c", "b", "a"], [9.0, 1.0, 0.9, 0.8, 0.7])  # ... one standout hit
    fixed = convex_combination([flat, peaked], "zscore")
    weighted = convex_combination([flat, peaked], "zscore", weighting="confidence")
    assert fixed[0].id != "e"
    assert weighted[0].id == "e"


def test_bm25_with_split_identifiers_matches_parts_of_code_names():
    code = [("reader", "def readFileLines(path):\n    return open(path).read_lines()", "code"),
            ("writer", "def write_bytes(out, data):\n    out.write(data)", "code")]
    chunks = make_chunks(code + TEXTS)
    plain, split = BM25Index(), BM25Index(analyzer={"split_identifiers": True})
    plain.add(chunks, None)
    split.add(chunks, None)

    def top(index, query):
        return [index.ids_[r] for r in index.search(query, 3)[0]]

    assert "reader#0" not in top(plain, "read file lines")
    assert top(split, "read file lines")[0] == "reader#0"
    assert top(split, "write bytes")[0] == "writer#0"


def test_anchor_agreement_leans_on_the_anchor_when_the_lists_disagree():
    lexical = _hits(["x", "y", "z", "w", "v", "u"], [9.0, 2.0, 1.9, 1.8, 1.7, 1.6])
    dense = _hits(["a", "b", "c", "d", "e", "f"], [0.7, 0.6, 0.55, 0.5, 0.45, 0.4])
    assert convex_combination([lexical, dense], "zscore", weights=[3, 1])[0].id == "x"
    assert convex_combination([lexical, dense], "zscore", weights=[3, 1], anchor=1)[0].id == "a"
    # full agreement (same top chunk at depth 1) leaves the weights as they are
    agreeing = _hits(["a", "x", "b", "c", "y", "z"], [9.0, 2.0, 1.9, 1.8, 1.7, 1.6])
    assert [h.id for h in convex_combination([agreeing, dense], "zscore", anchor=1, agreement_depth=1)] == \
        [h.id for h in convex_combination([agreeing, dense], "zscore")]


def test_convex_merge_rejects_an_anchor_that_names_no_branch():
    from rag.errors import ConfigError

    merge = create("convex", {"normalization": "zscore", "anchor": 2}, kinds="merge")
    start = QueryState("q")
    with pytest.raises(ConfigError, match="anchor"):
        merge.merge([start.evolve(hits=tuple(_hits(["a"]))), start.evolve(hits=tuple(_hits(["b"])))], start, None)
