"""Metric definitions, cross-checked against trec_eval (pytrec_eval)."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evals import metrics as M

DOCS = [f"d{i}" for i in range(12)]


@st.composite
def ranked_and_qrels(draw, graded=False):
    ranked = draw(st.lists(st.sampled_from(DOCS), min_size=1, max_size=12, unique=True))
    rel = st.integers(1, 3) if graded else st.just(1)
    judged = draw(st.dictionaries(st.sampled_from(DOCS), rel, min_size=1, max_size=6))
    return ranked, judged


def _run_dict(ranked):
    # strictly decreasing scores so every tool keeps our order
    return {doc: float(len(ranked) - i) for i, doc in enumerate(ranked)}


@settings(max_examples=60, deadline=None)
@given(ranked_and_qrels())
def test_ranking_metrics_match_trec_eval(case):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    ranked, qrels = case
    ev = pytrec_eval.RelevanceEvaluator({"q": qrels}, {"ndcg_cut.5,10", "recall.5,10", "P.5,10", "map", "recip_rank", "success.1,5"})
    ref = ev.evaluate({"q": _run_dict(ranked)})["q"]
    assert M.ndcg_at_k(ranked, qrels, 10) == pytest.approx(ref["ndcg_cut_10"], abs=1e-9)
    assert M.ndcg_at_k(ranked, qrels, 5) == pytest.approx(ref["ndcg_cut_5"], abs=1e-9)
    assert M.recall_at_k(ranked, qrels, 5) == pytest.approx(ref["recall_5"], abs=1e-9)
    assert M.precision_at_k(ranked, qrels, 10) == pytest.approx(ref["P_10"], abs=1e-9)
    assert M.average_precision(ranked, qrels) == pytest.approx(ref["map"], abs=1e-9)
    assert M.mrr_at_k(ranked, qrels, 100) == pytest.approx(ref["recip_rank"], abs=1e-9)
    assert M.hit_rate_at_k(ranked, qrels, 5) == ref["success_5"]
    assert M.hit_rate_at_k(ranked, qrels, 1) == ref["success_1"]


@settings(max_examples=60, deadline=None)
@given(ranked_and_qrels(graded=True))
def test_graded_ndcg_uses_exponential_gain(case):
    # trec_eval's ndcg uses the judgement itself as the gain, so judgements 2^rel − 1 give exponential gains
    pytrec_eval = pytest.importorskip("pytrec_eval")
    ranked, qrels = case
    ev = pytrec_eval.RelevanceEvaluator({"q": {d: 2 ** r - 1 for d, r in qrels.items()}}, {"ndcg_cut.10"})
    ref = ev.evaluate({"q": _run_dict(ranked)})["q"]["ndcg_cut_10"]
    assert M.ndcg_at_k(ranked, qrels, 10) == pytest.approx(ref, abs=1e-9)


def test_ndcg_of_single_relevant_document_at_rank_two():
    assert M.ndcg_at_k(["x", "g"], {"g": 1}, 10) == pytest.approx(1 / math.log2(3))


def test_all_gold_requires_every_relevant_document_in_top_k():
    qrels = {"a": 1, "b": 1}
    assert M.all_gold_at_k(["a", "x", "b"], qrels, 2) == 0.0
    assert M.all_gold_at_k(["a", "x", "b"], qrels, 3) == 1.0
    assert M.hit_rate_at_k(["x", "a"], qrels, 1) == 0.0


def test_ranking_scores_keep_each_documents_first_rank():
    # two chunks of doc a: the second must not push b down
    scores = M.ranking_scores(["a", "a", "b"], {"b": 1}, ["MRR@10", "R@2"])
    assert scores == {"MRR@10": 0.5, "R@2": 1.0}


def test_unknown_metric_name_is_rejected_with_the_known_names():
    with pytest.raises(ValueError, match="nDCG@k"):
        M.parse_metric("ndcg10")
    with pytest.raises(ValueError, match="cutoff"):
        M.parse_metric("R@")


def test_span_scores_follow_chroma_formulas():
    gold = [("d", 10, 20)]
    retrieved = [("d", 0, 15), ("d", 12, 30), ("e", 0, 100)]
    s = M.span_scores(retrieved, gold)
    # covered chars 10..20 once (=10); retrieved summed in full 15 + 18 + 100 = 133
    assert (s.covered, s.retrieved, s.gold) == (10, 133, 10)
    assert s.recall == 1.0
    assert s.precision == pytest.approx(10 / 133)
    assert s.iou == pytest.approx(10 / (133 + 10 - 10))
    union = M.span_scores(retrieved, gold, union_retrieved=True)
    assert union.retrieved == 30 + 100


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), max_size=6),
       st.lists(st.tuples(st.integers(0, 50), st.integers(1, 20)), min_size=1, max_size=3))
def test_span_scores_are_fractions_and_match_a_character_set_count(raw_retrieved, raw_gold):
    retrieved = [("d", min(a, b), max(a, b)) for a, b in raw_retrieved]
    gold = [("d", s, s + n) for s, n in raw_gold]
    s = M.span_scores(retrieved, gold)
    gold_chars = set().union(*(range(a, b) for _, a, b in gold))
    ret_chars = set().union(*(range(a, b) for _, a, b in retrieved)) if retrieved else set()
    assert s.covered == len(gold_chars & ret_chars)
    assert s.gold == len(gold_chars)  # overlapping gold spans counted once (QA: recall stayed below 1)
    assert (s.recall == 1.0) == (gold_chars <= ret_chars)
    for value in (s.recall, s.precision, s.iou):
        assert 0.0 <= value <= 1.0 + 1e-12
    assert s.iou <= min(s.recall, s.precision) + 1e-12


def test_squad_normalisation_ignores_case_punctuation_and_articles():
    assert M.normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert M.exact_match("the Latin", ["Latin"]) == 1.0
    assert M.exact_match("Latin language", ["Latin"]) == 0.0


def test_token_f1_takes_the_best_gold_answer():
    assert M.token_f1("a spirit of the air", ["a spirit"]) == pytest.approx(2 * (1 / 3) * 1 / (1 / 3 + 1))
    assert M.token_f1("yes", ["no", "yes"]) == 1.0
    assert M.token_f1("", ["x"]) == 0.0


def test_answer_in_context_matches_normalised_substrings():
    assert M.answer_in_context(["Stephen King"], ["... directed by stephen king, in 1986"]) == 1.0
    assert M.answer_in_context(["Stephen King"], ["directed by Stephen Hawking"]) == 0.0


def test_mean_of_nothing_is_nan():
    assert math.isnan(M.mean([]))
    assert M.mean([1.0, 0.0]) == 0.5


def test_top_k_span_scores_score_each_querys_best_chunks_and_break_ties_by_chunk_order():
    import numpy as np

    from evals.metrics import span_scores, top_k_span_scores
    from rag.types import Chunk

    chunks = [Chunk(f"d#{i}", "d", "x", 10 * i, 10 * i + 10, 1) for i in range(4)]
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])  # chunks 0 and 1 tie for query 0
    queries = np.array([[1.0, 0.0], [0.0, 1.0]])
    golds = [[("d", 10, 20)], [("d", 20, 30)]]
    first, second = top_k_span_scores(chunks, vectors, queries, golds, k=1)
    assert first == span_scores([("d", 0, 10)], golds[0])  # the tie goes to the first chunk: gold missed
    assert second.recall == 1.0 and second.iou == 1.0
    two = top_k_span_scores(chunks, vectors, queries, golds, k=2)
    assert two[0].recall == 1.0 and two[0].precision == 0.5
