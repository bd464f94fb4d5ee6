"""The operator registry: one lookup per YAML name, third-party operators via entry points."""
from __future__ import annotations

import pytest

from rag import registry
from rag.errors import ConfigError
from rag.operators import StepOperator
from rag.registry import OperatorParams, create, get_spec, operator


def test_builtin_operators_of_every_flow_kind_are_registered():
    names = {s.name: s.kind for s in registry.registered()}
    assert names["query_kind"] == "router" and names["enough_context"] == "judge"
    assert names["generate"] == "step" and names["token"] == "chunker"


def test_unknown_name_lists_valid_names_of_the_wanted_kind():
    with pytest.raises(ConfigError) as info:
        get_spec("nope", "router")
    assert "query_kind" in info.value.message and "generate" not in info.value.message


def test_create_validates_params_and_names_the_key():
    with pytest.raises(ConfigError) as info:
        create("t_match", {"top_k": "x"}, path="flow[0]")
    assert info.value.path == "flow[0].top_k"


@pytest.mark.parametrize("op, key, value", [("recursive", "chunk_size", True), ("ast", "max_chars", True),
                                           ("late", "context_weight", False)])
def test_a_number_given_as_a_boolean_is_an_error_naming_the_key(op, key, value):
    # pydantic reads true / false as 1 / 0: `--set max_chars=true` ran with one character per chunk
    with pytest.raises(ConfigError, match="expected a number") as info:
        create(op, {key: value}, kinds="chunker", path="chunker")
    assert info.value.path == f"chunker.{key}"


@pytest.mark.parametrize("value", ["no", "off", "yes", "1", 0, 1])
def test_a_boolean_given_as_a_string_or_a_number_is_an_error_naming_the_key(value):
    # QA: `--set markdown=no` and `markdown: "off"` ran as false and `markdown: 1` as true, while the README says
    # plain values are read as YAML 1.2 reads them (`no` a string) and a number given as true is refused
    with pytest.raises(ConfigError, match="expected true or false") as info:
        create("recursive", {"markdown": value}, kinds="chunker", path="chunker")
    assert info.value.path == "chunker.markdown"


def test_the_embedder_config_reads_booleans_and_numbers_as_strictly_as_operator_params():
    from pydantic import ValidationError

    from rag.config import EmbedderConfig

    for bad in ({"cache": "no"}, {"normalize": 0}, {"batch_size": True}):
        with pytest.raises(ValidationError, match="expected (true or false|a number)"):
            EmbedderConfig(**bad)
    assert EmbedderConfig(cache=False, cache_dir=None).cache is False


def test_a_boolean_param_still_takes_booleans_and_an_optional_number_takes_none():
    assert create("recursive", {"markdown": False}, kinds="chunker").params.markdown is False
    assert create("ast", {"language": None}, kinds="chunker").params.language is None


def test_third_party_operators_register_through_entry_points(monkeypatch):
    class FakeEntryPoint:
        def load(self):
            def register():
                @operator("third_party_echo", kind="step")
                class Echo(StepOperator):
                    class Params(OperatorParams):
                        word: str = "hi"

                    def __call__(self, state, ctx):
                        return state.evolve(search_query=self.params.word)

            return register

    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(registry, "entry_points", lambda group: [FakeEntryPoint()] if group == registry.ENTRY_POINT_GROUP else [])
    assert get_spec("third_party_echo", "step").cls.Params().word == "hi"


def test_a_name_cannot_be_taken_twice_by_different_classes():
    @operator("t_unique_name", kind="step")
    class First(StepOperator):
        pass

    with pytest.raises(ValueError, match="already registered"):
        @operator("t_unique_name", kind="step")
        class Second(StepOperator):
            pass


def test_a_chunker_lookup_imports_the_chunkers_only_and_an_unknown_one_lists_every_chunker():
    # Every built-in package used to be imported on the first lookup: a program that only chunks imported
    # networkx and scipy (0.25 s, and ~50,000 more objects for every full garbage collection to walk).
    import subprocess
    import sys

    probe = ("import sys; from chunkers import get_chunker; get_chunker('recursive', chunk_size=50); "
             "print(sorted({'networkx', 'scipy', 'graph', 'retrievers'} & set(sys.modules)))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-500:]
    assert run.stdout.strip() == "[]"
    with pytest.raises(ConfigError) as info:
        get_spec("no_such_chunker", "chunker")
    assert "recursive" in info.value.message and "late" in info.value.message


CHUNKER_MODULES = ("token", "recursive", "sentence", "semantic", "late", "ast", "perplexity", "llm")


@pytest.mark.parametrize("module", CHUNKER_MODULES)
def test_a_chunkers_yaml_example_loads_and_validates_and_so_does_each_commented_alternative(module, tmp_path):
    # QA: the ast and semantic examples gave `chunker:` twice under one `index:`, which the YAML loader refuses
    import importlib
    import re
    import textwrap

    from rag.config import parse_index_config
    from rag.yaml_io import load_yaml

    doc = importlib.import_module(f"chunkers.{module}").__doc__
    block = re.search(r"YAML[^\n]*::\n\n((?:    .*\n|[ \t]*\n)+)", doc)
    assert block, f"chunkers/{module}.py has no YAML:: example"
    example = textwrap.dedent(block.group(1))
    alternatives = [line.split("# ", 1)[1] for line in example.splitlines() if line.lstrip().startswith("# chunker:")]
    texts = [example] + [f"index:\n  {line}\n" for line in alternatives]
    for k, text in enumerate(texts):
        path = tmp_path / f"example{k}.yaml"
        path.write_text(text, encoding="utf-8")
        index = load_yaml(path)["index"]
        index.setdefault("embedder", {"model": "minilm"})
        config = parse_index_config(index, str(path))
        assert config.chunker.op == module
