"""Specification of the rerankers and context ordering: real models (a tiny saved cross-encoder, the bundled
MiniLM), a fake generator for the LLM filter."""
from __future__ import annotations

import numpy as np
import pytest

from rag.errors import ConfigError
from rag.operators import RunContext
from rag.registry import create
from rag.resources import Resources
from rag.state import QueryState
from rag.types import Chunk, Hit
from retrievers.mmr import mmr_order
from retrievers.ordering import edges_first
from retrievers.rerank_late_interaction import maxsim, rrf_scores
from retrievers.rerank_llm_filter import parse_rating


def hits_of(texts, scores=None) -> tuple[Hit, ...]:
    scores = scores or [1.0 - i / 100 for i in range(len(texts))]
    return tuple(Hit(Chunk(f"d{i}#0", f"d{i}", t, 0, len(t), len(t.split())), s, "first")
                 for i, (t, s) in enumerate(zip(texts, scores)))


@pytest.fixture(scope="module")
def resources(tmp_path_factory) -> Resources:
    return Resources(embedder={"cache_dir": str(tmp_path_factory.mktemp("cache"))})


# ----------------------------------------------------------------------------------------------- cross encoder

@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory) -> str:
    """A randomly initialised 2-layer BERT cross-encoder with a 40-word vocabulary, saved like a real one."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny-cross-encoder")
    words = "cats dogs sleep bark purr the a on mat loud quietly ocean fish swim stars night".split()
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(words) + 5, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_cross_encoder_orders_hits_by_the_models_scores_and_keeps_top_k(tiny_cross_encoder):
    from sentence_transformers import CrossEncoder

    texts = ["cats purr on the mat", "dogs bark loud", "fish swim the ocean", "stars night"]
    state = QueryState("cats sleep", hits=hits_of(texts))
    out = create("cross_encoder", {"model": tiny_cross_encoder, "top_k": 3})(state, RunContext(None, Resources()))
    expected = CrossEncoder(tiny_cross_encoder).predict([("cats sleep", t) for t in texts])
    assert [h.chunk.text for h in out.hits] == [texts[i] for i in np.argsort(-expected)[:3]]
    assert all(h.source == "cross_encoder" for h in out.hits)
    assert [h.score for h in out.hits] == pytest.approx(sorted(expected, reverse=True)[:3], abs=1e-5)


def test_cross_encoder_that_cannot_be_loaded_is_a_config_error_naming_model(tmp_path):
    op = create("cross_encoder", {"model": str(tmp_path / "missing")})
    with pytest.raises(ConfigError) as err:
        op(QueryState("q", hits=hits_of(["text"])), RunContext(None, Resources()))
    assert err.value.path == "model"


# -------------------------------------------------------------------------------------------- late interaction

def test_maxsim_is_the_mean_best_token_cosine():
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    d = np.array([[1.0, 0.0], [0.6, 0.8]])
    assert maxsim(q, d) == pytest.approx((1.0 + 0.8) / 2)


def test_rrf_scores_reward_items_ranked_high_by_both_lists():
    fused = rrf_scores([3.0, 2.0, 1.0], [1.0, 3.0, 2.0], k=60)
    assert fused == pytest.approx([1 / 61 + 1 / 63, 1 / 62 + 1 / 61, 1 / 63 + 1 / 62])
    assert int(np.argmax(fused)) == 1


def test_late_interaction_ranks_the_on_topic_chunk_first_and_caches_chunk_tokens(resources):
    texts = ["The stock market fell sharply on Monday.", "Photosynthesis converts sunlight into chemical energy in "
             "plants.", "The recipe needs two cups of flour."]
    state = QueryState("how do plants turn light into energy", hits=hits_of(texts))
    op = create("late_interaction", {"fuse": "replace"})
    ctx = RunContext(None, resources)
    out = op(state, ctx)
    assert out.hits[0].chunk.text == texts[1]
    assert op.encoded == 3
    op(state, ctx)
    assert op.encoded == 3, "chunk token embeddings are served from the cache the second time"


def test_late_interaction_with_rrf_keeps_hits_beyond_candidates_after_the_reranked_ones(resources):
    texts = ["a cat", "a dog", "a fish", "a bird"]
    out = create("late_interaction", {"candidates": 2})(QueryState("cat", hits=hits_of(texts)),
                                                         RunContext(None, resources))
    assert [h.chunk.text for h in out.hits[2:]] == ["a fish", "a bird"]
    assert {h.chunk.text for h in out.hits[:2]} == {"a cat", "a dog"}


# ---------------------------------------------------------------------------------------------------------- mmr

def test_mmr_with_low_lambda_prefers_a_novel_chunk_over_a_duplicate():
    query = np.array([1.0, 0.0, 0.0])
    docs = np.array([[0.9, 0.436, 0.0], [0.9, 0.436, 0.0], [0.8, 0.0, 0.6]])
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    assert mmr_order(query, docs, lam=1.0, k=3)[0][:2] == [0, 1]
    assert mmr_order(query, docs, lam=0.5, k=3)[0][:2] == [0, 2]


def test_mmr_op_reads_lambda_and_drops_the_duplicate_down_the_list(resources):
    texts = ["Paris is the capital of France.", "Paris is the capital of France.", "Berlin is the capital of Germany."]
    op = create("mmr", {"lambda": 0.3})
    out = op(QueryState("capital of France", hits=hits_of(texts)), RunContext(None, resources))
    assert [h.chunk.id for h in out.hits] == ["d0#0", "d2#0", "d1#0"]


def test_mmr_lambda_outside_zero_one_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        create("mmr", {"lambda": 1.5})
    assert "lambda" in str(err.value)


# -------------------------------------------------------------------------------------------------- llm filter

class FakeGenerator:
    def __init__(self, replies):
        self.replies = replies
        self.model_calls = 0

    def complete(self, prompt, max_tokens=256, stop=None):
        self.model_calls += 1
        return next(reply for word, reply in self.replies.items() if word in prompt.split("Passage:")[1])


class FakeResources:
    def __init__(self, generator):
        self._generator = generator

    def generator(self, spec=None):
        return self._generator


def test_llm_filter_drops_chunks_rated_below_threshold_and_keeps_unparsable_replies():
    generator = FakeGenerator({"apples": "9", "cars": "2 - not relevant", "weather": "I cannot say", "pears": "6/10"})
    state = QueryState("which fruit", hits=hits_of(["apples are red", "cars are fast", "weather is grey", "pears"]))
    out = create("llm_filter", {"threshold": 0.5})(state, RunContext(None, FakeResources(generator)))
    assert [h.chunk.text for h in out.hits] == ["apples are red", "weather is grey", "pears"]
    assert out.notes["llm_filter"] == {"rated": 4, "kept": 3, "unparsed": 1}
    assert generator.model_calls == 4


def test_llm_filter_reorder_sorts_kept_chunks_by_rating():
    generator = FakeGenerator({"first": "6", "second": "10"})
    state = QueryState("q", hits=hits_of(["first", "second"]))
    out = create("llm_filter", {"reorder": True})(state, RunContext(None, FakeResources(generator)))
    assert [h.chunk.text for h in out.hits] == ["second", "first"]


@pytest.mark.parametrize("reply, rating", [("7", 0.7), (" 10.", 1.0), ("score: 3/10", 0.3), ("42", 1.0), ("no", None)])
def test_parse_rating_reads_the_first_number(reply, rating):
    assert parse_rating(reply) == rating


# -------------------------------------------------------------------------------------------- lost in the middle

def test_edges_first_puts_the_best_items_at_both_ends():
    assert edges_first([1, 2, 3, 4, 5, 6]) == [1, 3, 5, 6, 4, 2]
    assert edges_first([1]) == [1] and edges_first([]) == []


def test_lost_in_the_middle_reorders_the_context_when_there_is_one():
    hits = hits_of(["a", "b", "c", "d"], [0.4, 0.3, 0.2, 0.1])
    out = create("lost_in_the_middle")(QueryState("q", hits=hits, context=hits), RunContext(None, Resources()))
    assert [h.chunk.text for h in out.context] == ["a", "c", "d", "b"]
    assert out.hits == hits
