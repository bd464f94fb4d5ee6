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
        self.calls = 0

    def perplexities(self, texts, contexts=None):
        self.calls += 1
        if contexts is None:
            return np.array([self.alone[t] for t in texts])
        return np.array([self.given.get((c, t), self.alone[t]) for t, c in zip(texts, contexts)])


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
