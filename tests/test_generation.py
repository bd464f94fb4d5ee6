"""Generators: the factory validates specs, the extractive generator only quotes its context, citations parse."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.errors import ConfigError, RagloomError
from rag.generation import (NO_CONTEXT_ANSWER, ExtractiveGenerator, GenerationError, completion_generators,
                            create_generator, parse_generator_spec)
from rag.generation.extractive import context_sentences
from rag.generation.prompts import answer_prompt, format_context, parse_citations
from rag.resources import Resources
from rag.types import Chunk


def make_chunk(chunk_id: str, text: str) -> Chunk:
    return Chunk(chunk_id, chunk_id.split("#")[0], text, 0, len(text), len(text.split()))


LATE = make_chunk("late#0", "Late chunking embeds the whole document with a long-context model first. "
                            "Then it pools the token embeddings of each chunk span into one vector. "
                            "The authors report gains on BEIR retrieval tasks.")
BM25 = make_chunk("bm25#0", "BM25 is a lexical ranking function. It scores documents by term frequency "
                            "and inverse document frequency, with length normalisation.")
PARIS = make_chunk("paris#3", "Paris is the capital and most populous city of France. It hosts the Louvre.")


@pytest.fixture(scope="module")
def resources():
    return Resources()


# -- the factory --------------------------------------------------------------------------------------
def test_default_spec_is_the_extractive_generator():
    assert isinstance(create_generator(None), ExtractiveGenerator)
    assert isinstance(create_generator("extractive"), ExtractiveGenerator)
    assert create_generator({"name": "extractive", "max_sentences": 2}).params.max_sentences == 2


def test_unknown_option_is_a_config_error_naming_the_key_and_listing_valid_ones():
    with pytest.raises(ConfigError) as err:
        create_generator({"name": "extractive", "max_sentence": 2})
    assert err.value.path == "generator.max_sentence"
    assert "'max_sentence'" in str(err.value) and "max_sentences" in str(err.value)


def test_a_typo_is_reported_before_a_missing_required_option():
    with pytest.raises(ConfigError, match="unknown key 'modle'.*valid keys: name,.*model"):
        create_generator({"name": "openai", "modle": "llama3", "base_url": "http://x"})


def test_unknown_generator_name_lists_the_valid_names():
    with pytest.raises(ConfigError, match="unknown generator 'gpt'; valid: extractive, hf, openai"):
        create_generator("gpt")
    with pytest.raises(ConfigError, match="needs a 'name'"):
        create_generator({"model": "x"})
    with pytest.raises(ConfigError, match="must be a generator name"):
        create_generator(3)  # type: ignore[arg-type]


def test_badly_typed_option_names_the_key():
    with pytest.raises(ConfigError) as err:
        parse_generator_spec({"name": "extractive", "max_sentences": 0}, path="flow[3].generator")
    assert err.value.path == "flow[3].generator.max_sentences"


def test_extractive_generator_cannot_complete_and_says_which_generators_can():
    with pytest.raises(GenerationError, match="hf, openai") as err:
        create_generator("extractive").complete("Say hi")
    assert isinstance(err.value, RagloomError)
    assert {"hf", "openai"} <= set(completion_generators()) and "extractive" not in completion_generators()


# -- the extractive generator -------------------------------------------------------------------------
def test_empty_context_gives_a_no_context_answer_without_citations():
    answer = create_generator("extractive").answer("What is late chunking?", [])
    assert answer.text == NO_CONTEXT_ANSWER and answer.citations == ()
    blank = create_generator("extractive").answer("What is late chunking?", [make_chunk("e#0", "  \n ")])
    assert blank.citations == ()


def test_extractive_answer_quotes_the_relevant_sentences_with_their_chunk_ids(resources):
    generator = create_generator("extractive", resources)
    answer = generator.answer("How does late chunking pool token embeddings?", [BM25, LATE, PARIS])
    assert answer.generator == "extractive"
    cited = {c.chunk_id for c in answer.citations}
    assert cited == {"late#0"}
    assert any("pools the token embeddings" in c.text for c in answer.citations)
    for citation in answer.citations:
        assert f"{citation.text} [{citation.chunk_id}]" in answer.text


def test_extractive_answer_uses_the_embedder_for_paraphrases(resources):
    # no content word of the question occurs in the right sentence: only meaning can find it
    generator = create_generator({"name": "extractive", "max_sentences": 1}, resources)
    answer = generator.answer("Which French city is the seat of government?", [BM25, PARIS])
    assert answer.citations[0].text.startswith("Paris is the capital")


def test_extractive_answer_respects_max_sentences_and_skips_repeated_text(resources):
    duplicate = make_chunk("late-copy#0", LATE.text)
    generator = create_generator({"name": "extractive", "max_sentences": 2, "min_relative_score": 0.0}, resources)
    answer = generator.answer("late chunking token embeddings", [LATE, duplicate, BM25])
    texts = [c.text for c in answer.citations]
    assert len(texts) == 2 and len(set(texts)) == 2


def test_context_order_lists_sentences_by_chunk_rank_then_position(resources):
    generator = create_generator({"name": "extractive", "max_sentences": 3, "min_relative_score": 0.0,
                                  "semantic_weight": 0.0}, resources)
    answer = generator.answer("late chunking embeddings BM25 term frequency", [BM25, LATE])
    ranks = [0 if c.chunk_id == "bm25#0" else 1 for c in answer.citations]
    assert ranks == sorted(ranks)


def test_lexical_only_scoring_loads_no_model():
    resources = Resources()
    generator = create_generator({"name": "extractive", "semantic_weight": 0.0}, resources)
    answer = generator.answer("capital of France", [BM25, PARIS])
    assert answer.citations[0].chunk_id == "paris#3"
    assert resources._embedder is None


def test_sentences_keep_exact_offsets_into_their_chunk():
    for sentence in context_sentences([LATE, BM25, PARIS]):
        chunk = {c.id: c for c in (LATE, BM25, PARIS)}[sentence.chunk_id]
        assert chunk.text[sentence.start:sentence.end] == sentence.text


def test_hard_wrapped_lines_are_read_as_whole_sentences_and_headings_are_skipped():
    text = ("# Late chunking\n\nLate chunking embeds the whole document first and only\nafterwards pools "
            "the token embeddings of each span.\n- a list item stays on its own line\n")
    chunk = make_chunk("wrap#0", text)
    sentences = [s.text for s in context_sentences([chunk])]
    assert ("Late chunking embeds the whole document first and only\nafterwards pools the token embeddings "
            "of each span.") in sentences
    assert "- a list item stays on its own line" in sentences
    answer = create_generator({"name": "extractive", "semantic_weight": 0.0}).answer("late chunking", [chunk])
    assert all(not c.text.startswith("#") for c in answer.citations)


def test_a_code_block_too_long_for_a_sentence_is_read_line_by_line():
    # its lines start with lower-case letters, which the sentence rules read as a wrapped sentence
    code = "".join(f"value_{i} = compute(value_{i - 1}, step={i})\n" for i in range(1, 20))
    chunk = make_chunk("code#0", "Example:\n" + code)
    sentences = [s.text for s in context_sentences([chunk])]
    assert sentences == ["Example:", *code.splitlines()]


words = st.sampled_from("late chunking pools token embeddings BM25 scores the a Paris capital city of "
                        "France model document vector # - . . , ? !\n \n\n".split(" "))
texts = st.lists(words, min_size=0, max_size=40).map(" ".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=texts, bodies=st.lists(texts, min_size=0, max_size=5),
       max_sentences=st.integers(1, 4), order=st.sampled_from(["context", "score"]))
def test_every_answer_sentence_is_a_verbatim_substring_of_the_chunk_it_cites(question, bodies, max_sentences, order):
    contexts = [make_chunk(f"d{i}#0", body) for i, body in enumerate(bodies)]
    generator = create_generator({"name": "extractive", "semantic_weight": 0.0, "max_sentences": max_sentences,
                                  "order": order, "cite_inline": False})
    answer = generator.answer(question, contexts)
    by_id = {c.id: c for c in contexts}
    assert len(answer.citations) <= max_sentences
    for citation in answer.citations:
        assert citation.text and citation.text in by_id[citation.chunk_id].text
    if answer.citations:
        assert answer.text == " ".join(c.text for c in answer.citations)
    else:
        assert answer.text == NO_CONTEXT_ANSWER


# -- prompts and citation parsing ---------------------------------------------------------------------
def test_answer_prompt_shows_each_passage_with_its_id_and_ends_with_the_question():
    prompt = answer_prompt("What is BM25?", [BM25, LATE])
    assert "Passage 1 [bm25#0]:\nBM25 is a lexical" in prompt and "Passage 2 [late#0]:" in prompt
    assert prompt.endswith("Question: What is BM25?\nAnswer:")


def test_context_is_cut_to_the_character_budget():
    context = format_context([BM25, LATE, PARIS], max_chars=200)
    assert len(context) <= 200 and "bm25#0" in context and "paris#3" not in context


@pytest.mark.parametrize("reply, expected", [
    ("BM25 ranks by term frequency [bm25#0]. Late chunking pools spans [late#0].",
     [("bm25#0", "BM25 ranks by term frequency."), ("late#0", "Late chunking pools spans.")]),
    ("Both are retrieval ideas [bm25#0, late#0].",
     [("bm25#0", "Both are retrieval ideas."), ("late#0", "Both are retrieval ideas.")]),
    ("Pooling happens per span. [late#0] Paris is French [3][paris#3].",
     [("late#0", "Pooling happens per span."), ("paris#3", "Paris is French.")]),
    ("It is [Passage 2] late chunking.", [("late#0", "It is late chunking.")]),
    ("Unknown ids are ignored [nope#9] [7].", []),
    ("No citations at all.", []),
])
def test_citations_are_parsed_back_from_the_answer(reply, expected):
    got = parse_citations(reply, [BM25, LATE, PARIS])
    assert [(c.chunk_id, c.text) for c in got] == expected
