"""Pipeline configs: validation errors name the key path and line; load(dump(config)) == config."""
from __future__ import annotations

import pytest

from rag.config import load_config, loads_config, parse_config
from rag.errors import ConfigError

INDEX = """
index:
  chunker: {op: token, chunk_size: 64}
  structures: [t_terms]
"""


def config(flow: str, index: str = INDEX):
    return loads_config(f"name: t\n{index}\nflow:\n{flow}", "p.yaml")


def error_of(flow: str, index: str = INDEX) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        config(flow, index)
    return info.value


def test_every_flow_kind_round_trips_through_yaml():
    original = config("""
  - parallel:
      - {op: t_match, top_k: 3}
      - [{op: t_append, word: x}, {op: t_match}]
    merge: {op: t_concat}
  - route:
      by: {op: t_length}
      cases:
        long: [{op: t_match, top_k: 2}]
      default: []
  - loop:
      max_iters: 3
      until: {op: t_after, n: 2}
      body: [{op: t_append}, {op: t_match}]
""")
    again = loads_config(original.dump(), "dumped.yaml")
    assert again == original
    assert again.dump() == original.dump()


def test_loop_without_max_iters_is_rejected_with_path_and_line():
    err = error_of("""
  - {op: t_match}
  - loop:
      body: [{op: t_match}]
""")
    assert err.path == "flow[1].loop.max_iters"
    assert "bounded" in err.message
    assert err.source == "p.yaml" and err.line == 10
    assert str(err).startswith("p.yaml:10: flow[1].loop.max_iters")


def test_unknown_operator_lists_valid_names():
    err = error_of("  - {op: bm26}\n")
    assert err.path == "flow[0].op"
    assert "unknown" in err.message and "t_match" in err.message


def test_mistyped_parameter_names_the_key_and_valid_keys():
    err = error_of("  - op: t_match\n    topk: 3\n")
    assert err.path == "flow[0].topk"
    assert "top_k" in err.message
    assert err.line == 9


def test_wrong_parameter_type_names_the_key():
    err = error_of("  - {op: t_match, top_k: many}\n")
    assert err.path == "flow[0].top_k"


def test_chunker_param_error_is_under_index_chunker():
    err = error_of("  - {op: t_match}\n", "index:\n  chunker: {op: token, chunk_size: 10, overlap: 10}\n  structures: [t_terms]\n")
    assert err.path == "index.chunker.overlap"


def test_route_without_default_and_missing_case_fails_validation():
    err = error_of("""
  - route:
      by: {op: t_length}
      cases:
        long: [{op: t_match}]
""")
    assert err.path == "flow[0].route" and "short" in err.message


def test_route_case_the_router_never_returns_is_rejected():
    err = error_of("""
  - route:
      by: {op: t_length}
      cases:
        lengthy: [{op: t_match}]
      default: []
""")
    assert err.path == "flow[0].route.cases.lengthy"


def test_route_with_undeclared_labels_needs_a_default():
    err = error_of("""
  - route:
      by: {op: t_free_router}
      cases:
        a: [{op: t_match}]
""")
    assert err.path == "flow[0].route.default"


def test_merge_operator_cannot_stand_as_a_step():
    err = error_of("  - {op: t_concat}\n")
    assert "merge operator" in err.message


def test_step_with_two_kinds_is_rejected():
    err = error_of("  - {op: t_match, loop: {max_iters: 2, body: [{op: t_match}]}}\n")
    assert "exactly one" in err.message


def test_unknown_top_level_key_is_rejected():
    with pytest.raises(ConfigError, match="unknown key 'flwo'"):
        parse_config({"name": "x", "flwo": []})


def test_duplicate_yaml_key_is_reported_with_line():
    with pytest.raises(ConfigError) as info:
        loads_config("name: a\nname: b\nflow: [{op: t_match}]\n", "dup.yaml")
    assert info.value.line == 2 and "duplicate" in info.value.message


def test_invalid_yaml_reports_line():
    with pytest.raises(ConfigError) as info:
        loads_config("name: a\nflow: [\n  - x: : :\n", "bad.yaml")
    assert info.value.source == "bad.yaml" and info.value.line is not None


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_embedder_unknown_key_is_rejected():
    err = error_of("  - {op: t_match}\n", "index:\n  embedder: {modle: minilm}\n  structures: [t_terms]\n")
    assert err.path == "index.embedder.modle"


def test_index_key_changes_with_the_chunker_only():
    a = config("  - {op: t_match}\n")
    b = config("  - {op: t_match, top_k: 1}\n")
    c = config("  - {op: t_match}\n", INDEX.replace("64", "65"))
    assert a.index.key == b.index.key != c.index.key


def test_generator_options_are_validated_with_the_key_path():
    with pytest.raises(ConfigError) as info:
        loads_config("name: t\ngenerator: {name: extractive, max_sentence: 2}\nflow: [{op: t_match}]\n", "g.yaml")
    assert info.value.path.startswith("generator.max_sentence") and info.value.line == 2
    with pytest.raises(ConfigError, match="unknown generator"):
        loads_config("name: t\ngenerator: gpt\nflow: [{op: t_match}]\n")


@pytest.mark.parametrize("key, shown", [("1", "1"), ("true", "True"), ("null", "None")])
def test_a_key_yaml_reads_as_no_name_is_a_config_error_with_its_line(key, shown):
    # QA: `{op: token, 1: 2}` ended in a raw TypeError ("keywords must be strings")
    with pytest.raises(ConfigError) as info:
        config("  - {op: t_match}\n", f"index:\n  chunker: {{op: token, chunk_size: 64, {key}: 2}}\n  structures: [t_terms]\n")
    assert info.value.path == f"index.chunker.{shown}" and info.value.line == 3
    assert f"unknown key {shown}" in info.value.message and "valid keys: chunk_size" in info.value.message


def test_a_merge_key_brings_in_keys_the_mapping_may_override():
    # QA: `<<: {..., chunk_size: 256}` then `chunk_size: 100` was reported as a duplicate key
    merged = config("  - {op: t_match}\n", "index:\n  chunker:\n    <<: {op: token, chunk_size: 256}\n"
                                           "    chunk_size: 100\n  structures: [t_terms]\n")
    assert merged.index.chunker.op == "token" and merged.index.chunker.params == {"chunk_size": 100}
    with pytest.raises(ConfigError) as info:  # a key written twice in the mapping itself still is one
        config("  - {op: t_match}\n", "index:\n  chunker:\n    <<: {op: token}\n    chunk_size: 100\n"
                                      "    chunk_size: 90\n  structures: [t_terms]\n")
    assert info.value.line == 6 and "duplicate key 'chunk_size'" in info.value.message


def test_a_step_reading_a_structure_the_index_does_not_build_is_a_config_error():
    # QA: `ragloom validate` passed it; `ragloom run` chunked and indexed everything, then failed
    with pytest.raises(ConfigError) as info:
        loads_config("name: t\nindex:\n  chunker: {op: token}\n  structures: []\nflow:\n  - {op: bm25}\n", "n.yaml")
    assert info.value.path == "flow[0].structure" and info.value.line == 6
    assert "reads the index structure 'bm25', but index.structures builds: none" in info.value.message


def test_an_empty_config_and_a_list_for_a_mapping_say_so_in_yaml_terms():
    # QA: "got NoneType None" for an empty file and "got LocatedList ['token']" (an internal class) for a list
    with pytest.raises(ConfigError, match="the file is empty"):
        loads_config("# nothing yet\n", "e.yaml")
    with pytest.raises(ConfigError, match=r"index.chunker: must be a mapping with 'op', got list \['token'\]"):
        loads_config("name: x\nindex:\n  chunker: [token]\nflow:\n  - {op: t_match}\n", "l.yaml")


def test_an_experiment_given_as_a_pipeline_config_is_named_as_one():
    # QA: `ragloom chunk --config configs/eval/chunkers.yaml` said "unknown key 'datasets'"
    with pytest.raises(ConfigError, match=r"this file is an experiment \(datasets, pipelines\), which `ragloom eval` runs"):
        loads_config("name: e\ndatasets: [scifact]\npipelines:\n  - configs/linear.yaml\n", "e.yaml")


def test_plain_scalars_are_read_as_yaml_1_2_has_them():
    # YAML 1.1 (PyYAML's default) read `chunk_size: 10:00` as 600 and an answer `no` as False
    from rag.yaml_io import loads_yaml

    data = loads_yaml("a: 10:00\nb: [no, yes, on, off, true, False]\nc: 010\nd: 1e3\ne: 0o17\nf: 0x1F\ng: 1_000\n"
                      "h: .inf\ni: ~\n")
    assert data == {"a": "10:00", "b": ["no", "yes", "on", "off", True, False], "c": 10, "d": 1000.0, "e": 15,
                    "f": 31, "g": 1000, "h": float("inf"), "i": None}
    with pytest.raises(ConfigError) as info:
        config("  - {op: t_match}\n", "index:\n  chunker: {op: token, chunk_size: 10:00}\n  structures: [t_terms]\n")
    assert info.value.path == "index.chunker.chunk_size" and info.value.line == 3


def test_written_yaml_quotes_strings_either_yaml_version_would_convert():
    from rag.yaml_io import dump_yaml, loads_yaml

    strings = {key: key for key in ("no", "yes", "on", "True", "10:00", "010", "1e3", "0o7", "0x1F", "1_000", ".nan")}
    written = dump_yaml(strings)
    assert loads_yaml(written) == strings
    import yaml

    assert yaml.safe_load(written) == strings  # and a YAML 1.1 reader too
