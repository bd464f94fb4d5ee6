"""Specification of the selection pool's redundancy: the sparse pair finders equal their all-pairs definitions."""
from __future__ import annotations

import zlib
from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from retrievers.selection import pool
from retrievers.selection.knapsack import discounted_values
from retrievers.selection.pool import (_MINHASH_SEEDS, _PRIME, _WORD, build_pool, near_duplicate_pairs,
                                       span_overlap_pairs, touching_pairs, word_signatures)
from rag.types import Chunk, Hit

spans = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 60), st.integers(0, 30)), min_size=0, max_size=30)


def as_arrays(items):
    doc = np.array([d for d, _, _ in items], dtype=np.int64)
    starts = np.array([s for _, s, _ in items], dtype=np.int64)
    ends = starts + np.array([n for _, _, n in items], dtype=np.int64)
    return doc, starts, ends


@settings(max_examples=200, deadline=None)
@given(items=spans)
def test_touching_pairs_are_exactly_the_same_document_pairs_that_overlap_or_touch(items):
    doc, starts, ends = as_arrays(items)
    rows, cols = touching_pairs(doc, starts, ends)
    expected = {(i, j) for i in range(len(items)) for j in range(i + 1, len(items))
                if doc[i] == doc[j] and starts[i] <= ends[j] and starts[j] <= ends[i]}
    assert sorted(zip(rows.tolist(), cols.tolist())) == sorted(expected)


@settings(max_examples=200, deadline=None)
@given(items=spans)
def test_span_overlap_is_the_shared_characters_over_the_shorter_chunk(items):
    doc, starts, ends = as_arrays(items)
    rows, cols, ratio = span_overlap_pairs(doc, starts, ends)
    found = {(i, j): r for i, j, r in zip(rows.tolist(), cols.tolist(), ratio.tolist())}
    expected = {}
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            overlap = min(ends[i], ends[j]) - max(starts[i], starts[j])
            if doc[i] == doc[j] and overlap > 0:
                expected[i, j] = overlap / max(min(ends[i] - starts[i], ends[j] - starts[j]), 1)
    assert found == expected


def test_word_signatures_are_the_minhash_of_each_texts_distinct_words():
    texts = ["The cat sat on the mat", "", "!!!", "the THE The", "mat cat on sat the"]
    rows = word_signatures(texts)
    a, b = _MINHASH_SEEDS
    for text, row in zip(texts, rows):
        words = set(_WORD.findall(text.lower()))
        if not words:
            assert (row == np.iinfo(np.uint64).max).all()
            continue
        hashes = np.array([zlib.crc32(w.encode()) for w in words], dtype=np.uint64)
        assert (row == ((hashes[:, None] * a + b) % _PRIME).min(axis=0)).all()
    assert (rows[0] == rows[4]).all()  # same word set, same signature


def reference_signature(text: str) -> np.ndarray:
    """The definition, word by word: min over the text's distinct lower-cased words of each permuted CRC-32."""
    words = set(_WORD.findall(text.lower()))
    if not words:
        return np.full(64, np.iinfo(np.uint64).max, dtype=np.uint64)
    hashes = np.array([zlib.crc32(w.encode()) for w in words], dtype=np.uint64)
    a, b = _MINHASH_SEEDS
    return ((hashes[:, None] * a + b) % _PRIME).min(axis=0)


# Case mappings that change length or depend on context, non-ASCII and astral word characters, word characters
# that are not letters, lone surrogates, words around the 64-byte table limit of the vectorised CRC.
PIECES = ["The", " cat", "İstanbul", "ΑΣ ", "ΌΣΟΣ", "STRASSE straße", "ǅ", "ﬁ", "日本語のテキスト", "😀", "𝐀𝐁", "e\u0301",
          "x_y", "3²", "٣", "\u07ff\u0800", "\uffff", "\U00010000", "\ud800", "\udfff", "\n", " ", "!!", "-", "a" * 63, "b" * 64, "c" * 65, "é" * 32, "é" * 33,
          "語" * 30, "w" * 200]
signature_texts = st.lists(st.one_of(st.text(max_size=60), st.lists(st.sampled_from(PIECES), max_size=12).map("".join)),
                           max_size=12)


@settings(max_examples=300, deadline=None)
@given(texts=signature_texts, few_wide=st.sampled_from([0, 256, 10**9]))
def test_vectorised_word_signatures_equal_the_word_by_word_definition(texts, few_wide):
    with mock.patch.object(pool, "_FEW_WIDE", few_wide):  # all words from UTF-8, the default, non-ASCII by zlib
        rows = word_signatures(texts)
    assert rows.shape == (len(texts), 64) and rows.dtype == np.uint64
    for text, row in zip(texts, rows):
        assert (row == reference_signature(text)).all(), text


def test_word_signatures_equal_the_definition_over_every_code_point():
    """Every code point once, in words mixing neighbours (so UTF-8 widths 1–4 and every \\w class meet)."""
    points = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000 or c % 97 == 0]
    texts = ["".join(chr(c) + (" " if i % 3 == 2 else "") for i, c in enumerate(points[k:k + 6000]))
             for k in range(0, len(points), 6000)]
    rows = word_signatures(texts)
    for text, row in zip(texts, rows):
        assert (row == reference_signature(text)).all()


texts = st.lists(st.lists(st.sampled_from("alpha beta gamma delta epsilon zeta eta theta".split()), min_size=0,
                          max_size=8).map(" ".join), min_size=0, max_size=25)


@settings(max_examples=100, deadline=None)
@given(texts=texts, threshold=st.sampled_from([0.2, 0.5, 0.8, 1.0, 1.5]))
def test_near_duplicate_pairs_equal_the_all_pairs_screen_and_estimate(texts, threshold):
    signatures = word_signatures(texts).astype(np.uint32)
    rows, cols, jaccard = near_duplicate_pairs(signatures, threshold)
    found = {(i, j): r for i, j, r in zip(rows.tolist(), cols.tolist(), jaccard.tolist())}
    expected = {}
    if threshold <= 1.0:
        need = max(1, int(threshold * 16) - 4)
        for i in range(len(texts)):
            for j in range(i + 1, len(texts)):
                if (signatures[i, :16] == signatures[j, :16]).sum() >= need:
                    estimate = (signatures[i] == signatures[j]).mean()
                    if estimate >= threshold:
                        expected[i, j] = estimate
    assert found == expected


def test_knapsack_discount_is_the_largest_penalty_against_a_more_relevant_candidate():
    text = "alpha beta gamma delta"
    hits = [Hit(Chunk(f"d{i}#0", f"d{i}", t, 0, len(t), 4), s, "t")
            for i, (t, s) in enumerate([(text, 0.9), ("other words here", 0.8), (text, 0.5), (text, 0.5)])]
    pool = build_pool(hits, [4, 4, 4, 4], normalization="rank", near_duplicate=0.8)
    values, penalty = pool.values, pool.penalty
    expected = [max([0.0] + [penalty[i, j] for i in range(4) if values[i] > values[j] or (values[i] == values[j]
                                                                                          and i < j)])
                for j in range(4)]
    assert np.allclose(discounted_values(pool), np.clip(values - np.array(expected), 0.0, None), atol=0)
    assert discounted_values(pool)[0] == values[0] and discounted_values(pool)[2] < values[2]
