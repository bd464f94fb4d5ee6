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
from retrievers.rerank_late_interaction import maxsim, rrf_scores, standardised_fusion
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


def test_standardised_fusion_weighs_the_z_scores_of_both_lists():
    first, late = [3.0, 2.0, 1.0], [0.0, 0.0, 6.0]
    z_first = np.array([1.0, 0.0, -1.0]) * np.sqrt(1.5)
    z_late = np.array([-1.0, -1.0, 2.0]) / np.sqrt(2.0)
    assert standardised_fusion(first, late, 0.25) == pytest.approx(0.75 * z_first + 0.25 * z_late)
    assert list(np.argsort(-standardised_fusion(first, late, 0.0))) == [0, 1, 2]
    assert int(np.argmax(standardised_fusion(first, late, 1.0))) == 2
    assert standardised_fusion([1.0, 1.0, 1.0], late, 0.5) == pytest.approx(0.5 * z_late), "a flat list adds 0"


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


PLANT_TEXTS = ["The stock market fell sharply on Monday.", "The recipe needs two cups of flour.",
               "Photosynthesis converts sunlight into chemical energy in plants.", "The train leaves at noon."]


def test_fuse_zscore_scores_hits_by_the_standardised_mix_of_first_stage_and_maxsim(resources):
    first = [1.0, 0.99, 0.98, 0.0]
    state = QueryState("how do plants turn light into energy", hits=hits_of(PLANT_TEXTS, first))
    op = create("late_interaction", {"weight": 0.5})
    ctx = RunContext(None, resources)
    out = op(state, ctx)
    query = op.token_embeddings([state.search_query], ctx)[0]
    late = [maxsim(query, d.astype(np.float32)) for d in op.chunk_embeddings(PLANT_TEXTS, ctx)]
    expected = standardised_fusion(first, late, 0.5)
    assert [h.chunk.text for h in out.hits] == [PLANT_TEXTS[i] for i in np.argsort(-expected, kind="stable")]
    assert [h.score for h in out.hits] == pytest.approx(sorted(expected, reverse=True), abs=1e-6)


def test_fuse_zscore_reads_first_stage_margins_where_rrf_reads_only_ranks(resources):
    query, ctx = "how do plants turn light into energy", RunContext(None, resources)
    close = QueryState(query, hits=hits_of(PLANT_TEXTS, [1.0, 0.99, 0.98, 0.0]))  # top three nearly tied
    apart = QueryState(query, hits=hits_of(PLANT_TEXTS, [1.0, 0.02, 0.01, 0.0]))  # a clear first-stage winner
    zscore, rrf = create("late_interaction", {"weight": 0.3}), create("late_interaction", {"fuse": "rrf"})
    assert zscore(close, ctx).hits[0].chunk.text == PLANT_TEXTS[2], "MaxSim breaks the near tie"
    assert zscore(apart, ctx).hits[0].chunk.text == PLANT_TEXTS[0], "a clear first-stage lead survives"
    assert [h.chunk.id for h in rrf(close, ctx).hits] == [h.chunk.id for h in rrf(apart, ctx).hits]


@pytest.mark.parametrize("fuse", ["zscore", "rrf", "replace"])
def test_late_interaction_keeps_hits_beyond_candidates_after_the_reranked_ones(resources, fuse):
    texts = ["a cat", "a dog", "a fish", "a bird"]
    out = create("late_interaction", {"candidates": 2, "fuse": fuse})(QueryState("cat", hits=hits_of(texts)),
                                                                       RunContext(None, resources))
    assert [h.chunk.text for h in out.hits[2:]] == ["a fish", "a bird"]
    assert {h.chunk.text for h in out.hits[:2]} == {"a cat", "a dog"}


def test_late_interaction_scores_the_title_with_the_text_like_the_index(resources):
    text = "It is described in detail in the paragraphs below."
    hits = tuple(Hit(Chunk(f"d{i}#0", f"d{i}", text, 0, len(text), 9, {"title": title}), 1.0, "first")
                 for i, title in enumerate(["Stock market crash", "Photosynthesis in plants"]))
    state = QueryState("photosynthesis", hits=hits)
    ctx = RunContext(None, resources)
    with_title = create("late_interaction", {"fuse": "replace"})(state, ctx)
    assert with_title.hits[0].chunk.metadata["title"] == "Photosynthesis in plants"
    text_only = create("late_interaction", {"fuse": "replace", "with_title": False})(state, ctx)
    assert text_only.hits[0].score == pytest.approx(text_only.hits[1].score)
    assert text_only.hits[0].chunk.metadata["title"] == "Stock market crash", "equal scores keep the input order"


LONG_TEXT = " ".join(["The committee met again to discuss the annual budget of the town."] * 45 +
                     ["Photosynthesis converts sunlight into chemical energy."])


def test_windows_give_every_word_piece_of_a_long_chunk_one_token_embedding(resources):
    op = create("late_interaction", {"long_chunks": "windows"})
    ctx = RunContext(None, resources)
    rows = op.token_embeddings([LONG_TEXT], ctx)[0]
    model = op._model(ctx)
    word_pieces = model.tokenizer(LONG_TEXT, add_special_tokens=False)["input_ids"]
    assert len(word_pieces) > 2 * model.max_seq_length, "the text spans more than two windows"
    assert len(rows) == len(word_pieces)
    assert np.linalg.norm(rows, axis=1) == pytest.approx(np.ones(len(rows)), abs=1e-5)


def test_windows_let_maxsim_see_text_beyond_the_models_window(resources):
    ctx = RunContext(None, resources)
    windows = create("late_interaction", {"long_chunks": "windows"})
    truncate = create("late_interaction", {"long_chunks": "truncate"})
    query = windows.token_embeddings(["photosynthesis sunlight chemical energy"], ctx)[0]
    seen = maxsim(query, windows.token_embeddings([LONG_TEXT], ctx)[0])
    cut = maxsim(query, truncate.token_embeddings([LONG_TEXT], ctx)[0])
    assert seen > cut + 0.1


def test_truncate_is_the_first_window_and_matches_sentence_transformers_token_embeddings(resources):
    ctx = RunContext(None, resources)
    truncate = create("late_interaction", {"long_chunks": "truncate"})
    texts = ["Plants turn light into energy.", LONG_TEXT]
    ours = truncate.token_embeddings(texts, ctx)
    model = truncate._model(ctx)
    for mine, theirs in zip(ours, model.encode(texts, output_value="token_embeddings", convert_to_numpy=False)):
        theirs = theirs.float().numpy()[1:-1]
        assert mine == pytest.approx(theirs / np.linalg.norm(theirs, axis=1, keepdims=True), abs=1e-5)
    first_window = create("late_interaction").token_embeddings([LONG_TEXT], ctx)[0][: len(ours[1])]
    assert first_window == pytest.approx(ours[1], abs=1e-5)


def test_a_cache_shared_by_operators_with_different_encodings_never_serves_the_other_ones_tokens(resources):
    ctx = RunContext(None, resources)
    windows = create("late_interaction", {"long_chunks": "windows"})
    truncate = create("late_interaction", {"long_chunks": "truncate"})
    truncate.cache = windows.cache
    long_rows = windows.chunk_embeddings([LONG_TEXT], ctx)[0]
    short_rows = truncate.chunk_embeddings([LONG_TEXT], ctx)[0]
    assert truncate.encoded == 1 and len(short_rows) < len(long_rows)


def test_the_docstring_yaml_examples_are_valid_late_interaction_params():
    import yaml

    from retrievers import rerank_late_interaction

    examples = [line.strip()[2:].split("#")[0] for line in rerank_late_interaction.__doc__.splitlines()
                if line.strip().startswith("- {op: late_interaction")]
    assert len(examples) == 3
    for example in examples:
        params = yaml.safe_load(example)
        assert params.pop("op") == "late_interaction"
        create("late_interaction", params)


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
