"""The logic of benchmarks/chunk_quality_moc.py that is not ragloom's: the slice, the random-cut baseline, the
perplexity memo and the exact permutation p-values."""
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from evals.chunk_quality import boundary_clarity, chunk_stickiness
from rag.types import Document

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "chunk_quality_moc.py"
_spec = importlib.util.spec_from_file_location("chunk_quality_moc", _SCRIPT)
moc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(moc)


class WordTokenizer:
    identity = "words"

    def count(self, text):
        return len(text.split())


TEXT = " ".join(f"Sentence number {i} says something about topic {i % 7}." for i in range(120))


def test_random_cut_chunks_cover_the_text_exactly_with_sizes_near_the_target():
    document = Document("doc", TEXT, {"source": "x"})
    chunks = moc.random_cut_chunks(document, WordTokenizer(), chunk_tokens=40, spread=0.25, seed=3)
    assert "".join(c.text for c in chunks) == TEXT
    assert chunks[0].start == 0 and chunks[-1].end == len(TEXT)
    assert all(a.end == b.start for a, b in zip(chunks, chunks[1:]))
    assert all(TEXT[c.start:c.end] == c.text and c.doc_id == "doc" and c.tokenizer == "words" for c in chunks)
    assert all(c.token_count == len(c.text.split()) for c in chunks)
    chars_per_token = len(TEXT) / len(TEXT.split())
    lengths = [len(c.text) for c in chunks[:-1]]  # the last chunk is what remains
    assert min(lengths) >= math.floor(0.75 * 40 * chars_per_token)
    assert max(lengths) <= math.ceil(1.25 * 40 * chars_per_token)
    assert len(set(lengths)) > 1  # sizes vary
    # cuts land inside words, not only at spaces
    assert any(TEXT[c.end - 1] != " " and TEXT[c.end] != " " for c in chunks[:-1])


def test_random_cut_chunks_depend_on_the_seed_and_document_only():
    tokenizer = WordTokenizer()

    def cuts(doc_id, seed):
        return [c.end for c in moc.random_cut_chunks(Document(doc_id, TEXT), tokenizer, 40, seed=seed)]

    assert cuts("a", 0) == cuts("a", 0)
    assert cuts("a", 0) != cuts("a", 1)
    assert cuts("a", 0) != cuts("b", 0)
    assert moc.random_cut_chunks(Document("e", ""), tokenizer) == []


def test_slice_keeps_queries_whose_gold_spans_all_lie_inside_the_slices():
    documents = [Document("a", "x" * 100), Document("b", "y" * 30)]
    queries = [
        {"_id": "inside", "references": [{"doc_id": "a", "start": 10, "end": 50},
                                         {"doc_id": "b", "start": 0, "end": 30}]},
        {"_id": "ends at the cut", "references": [{"doc_id": "a", "start": 40, "end": 50}]},
        {"_id": "straddles", "references": [{"doc_id": "a", "start": 45, "end": 51}]},
        {"_id": "one span outside", "references": [{"doc_id": "b", "start": 0, "end": 5},
                                                   {"doc_id": "a", "start": 60, "end": 70}]},
        {"_id": "no gold", "references": []},
    ]
    sliced, kept = moc.slice_corpus(documents, queries, 50)
    assert [d.text for d in sliced] == ["x" * 50, "y" * 30]
    assert [q["_id"] for q in kept] == ["inside", "ends at the cut"]


class CountingLM:
    """ppl(text) = len(text); given a context, halved when the context shares the text's first letter."""

    def __init__(self):
        self.requests = 0

    def perplexity_ratios(self, texts, contexts):
        self.requests += len(texts)
        return np.array([0.5 if c[0] == t[0] else 1.0 for t, c in zip(texts, contexts)], float)

    def count_tokens(self, text):
        return len(text)


def test_memo_scores_each_pair_once_and_leaves_the_metrics_unchanged():
    from tests.test_chunk_quality import make_chunks

    chunks = make_chunks(["apple pie", "apricot", "banana", "avocado"])
    lm = CountingLM()
    memo = moc.MemoizedRatios(lm)
    assert boundary_clarity(memo, chunks) == pytest.approx(boundary_clarity(CountingLM(), chunks))
    after_bc = lm.requests
    assert after_bc == 3  # the 3 consecutive pairs
    for threshold in (0.2, 0.5, 0.8):
        expected = chunk_stickiness(CountingLM(), chunks, threshold)
        assert chunk_stickiness(memo, chunks, threshold) == pytest.approx(expected)
    assert lm.requests == after_bc + 3  # the 3 non-consecutive pairs; thresholds are free
    ratios = {(i, j): r for _, i, j, r in moc.pair_ratios(memo, chunks)}
    assert ratios[(0, 1)] == 0.5 and ratios[(0, 2)] == 1.0 and ratios[(1, 3)] == 0.5


def test_authors_rule_links_chunks_that_do_not_help_each_other():
    from tests.test_chunk_quality import make_chunks

    chunks = make_chunks(["apple pie", "apricot", "banana"])
    memo = moc.MemoizedRatios(CountingLM())
    chunk_stickiness(memo, chunks, 0.5)
    # ratios: (0,1) 0.5, (0,2) 1.0, (1,2) 1.0 -> the rule keeps (0,2) and (1,2): a star around node 2
    ratios = moc.pair_ratios(memo, chunks)
    expected = -(0.5 * math.log2(0.5) + 2 * 0.25 * math.log2(0.25))
    assert moc.authors_rule_stickiness(chunks, ratios) == pytest.approx(expected)


def test_rank_correlations_and_exact_permutation_p_values():
    x = [1, 2, 3, 4, 5]
    assert moc.spearman(x, [10, 20, 30, 40, 50]) == pytest.approx(1.0)
    assert moc.kendall(x, [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    # a perfect ranking of 5 is one ordering of 120 each way: two-sided p = 2 / 120
    assert moc.permutation_p(moc.spearman, x, [10, 20, 30, 40, 50]) == pytest.approx(2 / 120)
    assert math.isnan(moc.spearman(x, [1, 1, 1, 1, 1]))
    assert math.isnan(moc.permutation_p(moc.kendall, x, [3, 3, 3, 3, 3]))
