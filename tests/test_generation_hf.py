"""The hf generator with a tiny random Llama saved to tmp_path (the real loading code, no download)."""
from __future__ import annotations

import pytest

from rag.errors import ConfigError
from rag.generation import HFGenerator, create_generator
from rag.types import Chunk

pytest.importorskip("transformers")

from tests.test_lm import build_tiny_llama  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return str(build_tiny_llama(tmp_path_factory.mktemp("tiny-llama-gen")))


CHUNKS = [Chunk("cat#0", "cat", "the cat sat on the mat .", 0, 24, 7),
          Chunk("paris#2", "paris", "paris is the capital of france .", 5, 37, 7)]


def test_hub_names_are_rejected_at_creation_with_the_key_path():
    with pytest.raises(ConfigError, match="never downloads") as err:
        create_generator({"name": "hf", "model": "Qwen/Qwen2.5-0.5B-Instruct"})
    assert err.value.path == "generator.model"


def test_a_missing_model_is_a_config_error_with_line_and_key_when_the_config_is_read():
    from rag.config import loads_config

    chunker = "{op: llm, answer: choose, generator: {name: hf, model: /nonexistent/model}}"
    with pytest.raises(ConfigError) as err:
        loads_config(f"name: x\nindex:\n  chunker: {chunker}\n  structures: [bm25]\nflow:\n  - {{op: bm25}}\n",
                     "p.yaml")
    assert err.value.line == 3 and err.value.path == "index.chunker.generator.model"
    assert str(err.value).startswith("p.yaml:3: index.chunker.generator.model: model '/nonexistent/model' is not")


def test_complete_generates_at_most_max_tokens_and_counts_calls(tiny_model):
    generator = create_generator({"name": "hf", "model": tiny_model})
    assert isinstance(generator, HFGenerator)
    text = generator.complete("the cat", max_tokens=4)
    assert text == generator.complete("the cat", max_tokens=4)  # greedy by default
    assert len(generator.lm.encode(text)) <= 4
    assert generator.model_calls == 2


def test_answer_prompts_the_local_model_and_returns_its_text(tiny_model):
    generator = create_generator({"name": "hf", "model": tiny_model, "max_tokens": 3, "max_context_chars": 200})
    answer = generator.answer("where is paris ?", CHUNKS)
    assert answer.generator == "hf" and answer.model_calls == 1
    # a random model cannot be expected to cite; any citation it happens to write must name a context chunk
    assert {c.chunk_id for c in answer.citations} <= {"cat#0", "paris#2"}


def test_sampling_with_a_seed_is_reproducible(tiny_model):
    spec = {"name": "hf", "model": tiny_model, "temperature": 0.9, "seed": 7}
    assert create_generator(spec).complete("the dog", max_tokens=5) == create_generator(spec).complete("the dog", max_tokens=5)


def test_stop_strings_cut_the_completion(tiny_model):
    generator = create_generator({"name": "hf", "model": tiny_model})
    full = generator.complete("the", max_tokens=6)
    first_word = full.split()[0]
    assert first_word not in generator.complete("the", max_tokens=6, stop=[first_word])


def test_a_model_without_chat_template_cannot_be_forced_into_chat_mode(tiny_model):
    generator = create_generator({"name": "hf", "model": tiny_model, "chat": True})
    with pytest.raises(ConfigError, match="no chat template"):
        generator.complete("hi", max_tokens=2)
