"""MoC chunk-quality metrics (Boundary Clarity, Chunk Stickiness) and size statistics."""
from __future__ import annotations

import math

import numpy as np
import pytest

from evals.chunk_quality import (boundary_clarity, boundary_clarity_pairs, chunk_quality, chunk_stickiness,
                                 size_statistics, structural_entropy)
from rag.types import Chunk


def make_chunks(texts, doc_id="d"):
    chunks, position = [], 0
    for i, text in enumerate(texts):
        chunks.append(Chunk(f"{doc_id}#{i}", doc_id, text, position, position + len(text), len(text.split()), {}))
        position += len(text)
    return chunks


class PlantedLM:
    """Perplexities from tables: ``alone[text]`` and ``given[(context, text)]`` (default: same as alone)."""

    def __init__(self, alone, given=None):
        self.alone, self.given = alone, given or {}
        self.pairs = []  # (context, text) of every pair scored

    def perplexity_ratios(self, texts, contexts):
        self.pairs.extend(zip(contexts, texts))
        return np.array([self.given.get((c, t), self.alone[t]) / self.alone[t] for t, c in zip(texts, contexts)])


def test_boundary_clarity_is_conditional_over_plain_perplexity_of_the_next_chunk():
    chunks = make_chunks(["a", "b", "c"]) + make_chunks(["x", "y"], doc_id="e")
    lm = PlantedLM({"a": 10, "b": 8, "c": 4, "x": 5, "y": 6}, {("a", "b"): 4, ("b", "c"): 4, ("x", "y"): 3})
    np.testing.assert_allclose(boundary_clarity_pairs(lm, chunks), [0.5, 1.0, 0.5])
    assert boundary_clarity(lm, chunks) == pytest.approx(2 / 3)
    assert math.isnan(boundary_clarity(lm, make_chunks(["a"])))


def test_structural_entropy_of_known_graphs():
    assert structural_entropy(4, [(0, 1), (2, 3)]) == pytest.approx(2.0)
    star = -(0.5 * math.log2(0.5) + 3 * (1 / 6) * math.log2(1 / 6))
    assert structural_entropy(4, [(0, 1), (0, 2), (0, 3)]) == pytest.approx(star)
    assert structural_entropy(5, []) == 0.0


def test_stickiness_links_chunks_that_make_each_other_predictable():
    chunks = make_chunks(["a", "b", "c", "d"])
    alone = {"a": 10, "b": 10, "c": 10, "d": 10}
    # a makes b and c predictable (K = 0.8 > 0.5); c given b only a little (K = 0.1); nothing else.
    lm = PlantedLM(alone, {("a", "b"): 2, ("a", "c"): 2, ("b", "c"): 9})
    star = structural_entropy(4, [(0, 1), (0, 2)])
    assert chunk_stickiness(lm, chunks, threshold=0.5) == pytest.approx(star)
    assert chunk_stickiness(lm, chunks, threshold=0.9) == 0.0
    # the incomplete graph never conditions on a later chunk: a link planted backwards is ignored
    backwards = PlantedLM(alone, {("d", "a"): 1})
    assert chunk_stickiness(backwards, chunks, graph="incomplete") == 0.0
    assert chunk_stickiness(backwards, chunks, graph="complete") == pytest.approx(1.0)
    # a window of 1 only scores neighbours: the a-c link is not seen
    assert chunk_stickiness(lm, chunks, window=1) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="graph"):
        chunk_stickiness(lm, chunks, graph="dense")


def test_size_statistics_describe_token_and_character_sizes():
    chunks = make_chunks(["one two", "three four five six", "seven"])
    stats = size_statistics(chunks, limit=3)
    assert stats["chunks"] == 3 and stats["documents"] == 1
    assert stats["tokens"]["max"] == 4 and stats["tokens"]["mean"] == pytest.approx(7 / 3)
    assert stats["over_limit"] == pytest.approx(1 / 3)
    assert stats["chars"]["min"] == 5
    assert size_statistics([])["tokens"] == {}


def test_fragments_are_short_chunks_before_a_documents_end_and_whitespace_only_chunks_are_counted():
    long = " ".join(["word"] * 8)
    chunks = make_chunks([long, "a few", "  \n", long, "end"]) + make_chunks([long, "tail"], doc_id="e")
    stats = size_statistics(chunks)
    assert stats["fragments"] == 2  # "a few" and the whitespace; each document's last chunk is not a fragment
    assert stats["whitespace_only"] == 1


def test_metrics_with_a_real_tiny_causal_lm(tiny_causal_lm):
    lm = tiny_causal_lm
    chunks = make_chunks(["the cat sat on the mat . ", "the dog chased the cat . ",
                          "paris is the capital of france . ", "a chunk is a span of a document ."])
    result = chunk_quality(chunks, lm=lm, limit=8, threshold=0.0, graph="complete")
    assert np.isfinite(result["boundary_clarity"]) and result["boundary_clarity"] > 0
    assert 0.0 <= result["chunk_stickiness"] <= math.log2(2 * 6)
    assert result["size"]["chunks"] == 4
    assert "boundary_clarity" not in chunk_quality(chunks)


def test_each_pair_is_scored_once_for_both_metrics_and_settings_are_reported():
    chunks = make_chunks(["a", "b", "c"])
    lm = PlantedLM({"a": 10, "b": 8, "c": 4}, {("a", "b"): 4})
    result = chunk_quality(chunks, lm=lm, threshold=0.4)
    assert sorted(lm.pairs) == [("a", "b"), ("a", "c"), ("b", "c")]  # the consecutive pairs were not scored twice
    assert result["boundary_clarity"] == pytest.approx((0.5 + 1.0) / 2)
    assert result["chunk_stickiness"] == pytest.approx(1.0)  # one edge, a -> b (K = 0.5)
    assert result["quality"] == {"threshold": 0.4, "graph": "incomplete", "window": None, "scored_pairs": 3,
                                 "unscored_pairs": 0}


def test_the_complete_graph_counts_each_direction_as_an_edge():
    # as the MoC authors' code (relation_eval.py) counts them: a -> b and b -> a are two edges
    chunks = make_chunks(["a", "b", "c"])
    lm = PlantedLM({"a": 10, "b": 10, "c": 10}, {("a", "b"): 1, ("b", "a"): 1, ("b", "c"): 1})
    assert chunk_stickiness(lm, chunks, graph="complete") == pytest.approx(
        structural_entropy(3, [(0, 1), (1, 0), (1, 2)]))
    assert structural_entropy(3, [(0, 1), (1, 0), (1, 2)]) != pytest.approx(structural_entropy(3, [(0, 1), (1, 2)]))


def test_scores_over_nothing_are_nan_and_bad_settings_are_errors():
    # QA: with no document of two chunks stickiness was 0.0, the best score, though nothing was scored
    lm = PlantedLM({"a": 10, "x": 5})
    one_each = make_chunks(["a"]) + make_chunks(["x"], doc_id="e")
    assert math.isnan(chunk_stickiness(lm, one_each)) and math.isnan(boundary_clarity(lm, one_each))
    assert math.isnan(chunk_stickiness(lm, []))
    chunks = make_chunks(["a", "x"])
    # QA: window 0 or below and thresholds of nan or >= 1 (K is at most 1) returned 0.0
    for window in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="window"):
            chunk_stickiness(lm, chunks, window=window)
    for threshold in (float("nan"), 1, 1.5, "0.5"):
        with pytest.raises(ValueError, match="threshold"):
            chunk_stickiness(lm, chunks, threshold=threshold)
        with pytest.raises(ValueError, match="threshold"):
            chunk_quality(chunks, lm=lm, threshold=threshold)


def test_fragments_do_not_depend_on_the_order_of_the_chunks():
    # QA: the last chunk of a document was the last in the list: out of order, the true last one was a fragment
    chunks = make_chunks([" ".join(["word"] * 8), "end"])
    assert size_statistics(chunks[::-1])["fragments"] == size_statistics(chunks)["fragments"] == 0


def test_a_pair_with_a_chunk_of_no_tokens_is_left_out_not_scored_as_a_clean_boundary(tiny_causal_lm):
    # QA: a whitespace-only context has no tokens, so ppl(q | d) = ppl(q) and the pair scored BC = 1.0
    chunks = make_chunks(["the cat sat on the mat . ", "   ", "the dog chased the cat . "])
    ratios = boundary_clarity_pairs(tiny_causal_lm, chunks)
    assert np.isnan(ratios).all()
    result = chunk_quality(chunks, lm=tiny_causal_lm)
    assert math.isnan(result["boundary_clarity"])  # both consecutive pairs hold the whitespace
    assert result["quality"]["unscored_pairs"] == 2 and result["quality"]["scored_pairs"] == 1  # chunk 2 given 0


def test_a_chunk_filling_the_window_keeps_half_a_window_of_its_context(tiny_causal_lm):
    # QA: the context was cut to what the window had left after the chunk: a chunk of a window's length or more
    # had none, ppl(q | d) = ppl(q), and BC = 1.0 exactly, the best score, for every long chunk
    lm = tiny_causal_lm  # a window of 48 tokens, with a BOS token
    context = "paris is the capital of france . the cat sat on the mat ."
    text = " ".join(["the dog chased the cat ."] * 12)  # 72 tokens
    ratio = lm.perplexity_ratios([text], [context])[0]
    assert np.isfinite(ratio) and ratio != pytest.approx(1.0, abs=1e-9)
    # the same, by hand: the first 48 - 1 - 14 tokens of the text, alone and after the whole 14-token context
    bos, d, q = lm._bos, lm.encode(context), lm.encode(text)
    assert len(d) == 14 and len(q) == 72
    n = 48 - 1 - len(d)
    given = lm._score_sequences([bos + d + q[:n]], [n])[0]
    alone = lm._score_sequences([bos + q[:n]], [n])[0]
    assert ratio == pytest.approx(math.exp(alone.mean() - given.mean()), rel=1e-6)


def test_without_a_bos_token_both_perplexities_leave_the_first_token_out(tmp_path):
    # QA: alone, a chunk's first token cannot be scored (nan, dropped); given its context it was: ppl(q) and
    # ppl(q | d) averaged different tokens
    from rag.lm import CausalLM
    from tests.test_lm import build_tiny_llama

    lm = CausalLM(str(build_tiny_llama(tmp_path, with_bos=False)), max_context_tokens=48)
    context, text = "the cat sat on the mat .", "the dog chased the cat ."
    d, q = lm.encode(context), lm.encode(text)
    given = lm._score_sequences([d + q], [len(q)])[0][1:]
    alone = lm._score_sequences([q], [len(q) - 1])[0]
    assert lm.perplexity_ratios([text], [context])[0] == pytest.approx(math.exp(alone.mean() - given.mean()),
                                                                        rel=1e-6)
    assert np.isnan(lm.perplexity_ratios(["cat"], [context])[0])  # one token: nothing to compare
