"""YAML reading that remembers where each key came from, so errors can name file and line.

Plain scalars are read as YAML 1.2 has them (its core schema), not as PyYAML's YAML 1.1: ``no``, ``yes``, ``on``
and ``off`` are strings (a question's answer "no" stays "no", not ``False``), ``10:00`` is a string (YAML 1.1
reads a sexagesimal 600), ``010`` is ten and ``1e3`` a number. Only ``true`` / ``false`` are booleans. Written
YAML quotes a string that either version would read as something else.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import yaml

from rag.errors import ConfigError, undecodable


class LocatedDict(dict):
    """A dict from YAML that also knows the line of each key (``lines[key]``) and its own line."""

    __slots__ = ("lines", "line")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lines: dict[Any, int] = {}
        self.line: int | None = None


class LocatedList(list):
    __slots__ = ("lines", "line")

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.lines: list[int] = []
        self.line: int | None = None


_BOOL, _INT, _FLOAT = (f"tag:yaml.org,2002:{kind}" for kind in ("bool", "int", "float"))
#: YAML 1.2 core schema scalars (https://yaml.org/spec/1.2.2/#1033-core-schema); ``1_000`` is still an integer
_CORE_SCALARS = [
    (_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")),
    (_INT, re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")),
    (_FLOAT, re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
                        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+.0123456789")),
]


def _core_resolvers(base: type, keep_base_types: bool) -> dict:
    """``base``'s implicit resolvers with the YAML 1.2 core scalars added; its own booleans, integers and floats
    (YAML 1.1) dropped unless ``keep_base_types`` (a writer keeps them, to quote what a 1.1 reader would convert)."""
    resolvers = {first: [(tag, pattern) for tag, pattern in entries
                         if keep_base_types or tag not in (_BOOL, _INT, _FLOAT)]
                 for first, entries in base.yaml_implicit_resolvers.items()}
    for tag, pattern, firsts in _CORE_SCALARS:
        for first in firsts:
            resolvers.setdefault(first, []).append((tag, pattern))
    return resolvers


def _construct_core_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    value = loader.construct_scalar(node).replace("_", "")
    if value.startswith(("0o", "0x")):
        return int(value[2:], 8 if value[1] == "o" else 16)
    return int(value, 10)


class _LocatingLoader(yaml.SafeLoader):
    yaml_implicit_resolvers = _core_resolvers(yaml.SafeLoader, keep_base_types=False)


class _QuotingDumper(yaml.SafeDumper):
    yaml_implicit_resolvers = _core_resolvers(yaml.SafeDumper, keep_base_types=True)


def _construct_mapping(loader: _LocatingLoader, node: yaml.MappingNode) -> LocatedDict:
    """A mapping with the line of each key; a key written twice is an error. Keys a merge (``<<: *defaults``)
    brings in come first, and the mapping's own keys may override them, as YAML has it."""
    own = sum(key_node.tag != "tag:yaml.org,2002:merge" for key_node, _ in node.value)
    loader.flatten_mapping(node)  # the merged pairs, then the mapping's own, in node.value
    merged = len(node.value) - own
    result = LocatedDict()
    result.line = node.start_mark.line + 1
    written: set = set()
    for position, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        if position >= merged:
            if key in written:
                raise ConfigError(f"duplicate key {key!r}", line=key_node.start_mark.line + 1)
            written.add(key)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _LocatingLoader, node: yaml.SequenceNode) -> LocatedList:
    result = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    result.lines = [child.start_mark.line + 1 for child in node.value]
    result.line = node.start_mark.line + 1
    return result


_LocatingLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LocatingLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_LocatingLoader.add_constructor(_INT, _construct_core_int)


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file safely (no object construction), keeping line numbers on dicts and lists."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not a config file")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{undecodable(data, exc, 'UTF-8')}; save the config as UTF-8", source=str(path),
                          line=line) from None
    return loads_yaml(text, str(path))


def loads_yaml(text: str, source: str = "<string>") -> Any:
    try:
        return yaml.load(text, Loader=_LocatingLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise exc.located(source, exc.line) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"invalid YAML: {getattr(exc, 'problem', None) or exc}", source=source, line=line) from None


def line_of(container: Any, key: Any) -> int | None:
    """The line of ``container[key]`` if the container came from YAML, else None."""
    if isinstance(container, LocatedDict):
        return container.lines.get(key, container.line)
    if isinstance(container, LocatedList) and isinstance(key, int) and key < len(container.lines):
        return container.lines[key]
    return getattr(container, "line", None)


def line_at(data: Any, keys: Sequence[Any]) -> int | None:
    """The line of the deepest key of the key path ``keys`` (``["flow", 0, "top_k"]``) found in YAML ``data``."""
    line = None
    for key in keys:
        found = key in data if isinstance(data, dict) else (
            isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data))
        if not found:
            break
        line = line_of(data, key) or line
        data = data[key]
    return line


def plain(value: Any) -> Any:
    """The same data as plain dicts and lists (for dumping and comparison)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def dump_yaml(data: Any) -> str:
    return yaml.dump(plain(data), Dumper=_QuotingDumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=None, width=110)
