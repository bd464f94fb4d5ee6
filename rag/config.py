"""Pipeline configs: parsed from YAML into small frozen specs, validated before anything runs.

A config has ``name``, ``index`` (chunker, embedder, structures), ``generator`` and ``flow``. A flow is a
list of steps; a step is one of::

    {op: NAME, ...params}                                       # an operator
    {parallel: [step | [steps], ...], merge: {op: rrf, k: 60}}  # branches, then a merge (fusion)
    {route: {by: {op: ROUTER}, cases: {LABEL: [steps]}, default: [steps]}}
    {loop: {max_iters: N, until: {op: JUDGE}, body: [steps], accumulate: true}}

Errors name the key path (``flow[2].loop.max_iters``) and, for files, the line. ``load(dump(c)) == c``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Mapping, Union

from pydantic import AfterValidator, Field, ValidationError

from rag.embedding import check_model_directory
from rag.errors import ConfigError, field_check
from rag.registry import STEP_KINDS, StrictModel, get_spec, validate_params
from rag.yaml_io import dump_yaml, line_at, line_of, load_yaml, loads_yaml, plain

MAX_LOOP_ITERS = 100


class EmbedderConfig(StrictModel):
    """``index.embedder``: which sentence-transformers model embeds chunks and queries."""

    model: Annotated[str, AfterValidator(field_check(check_model_directory))] = "minilm"
    batch_size: int = Field(64, gt=0)
    device: str = "cpu"
    normalize: bool = True
    cache: bool = True
    cache_dir: str | None = None
    query_prefix: str = ""
    document_prefix: str = ""


@dataclass(frozen=True)
class OpStep:
    op: str
    params: Mapping[str, Any] = field(default_factory=dict)
    path: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, **plain(dict(self.params))}


@dataclass(frozen=True)
class ParallelStep:
    branches: tuple[tuple["Step", ...], ...]
    merge: OpStep
    path: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        branches = [b[0].to_dict() if len(b) == 1 else [s.to_dict() for s in b] for b in self.branches]
        return {"parallel": branches, "merge": self.merge.to_dict()}


@dataclass(frozen=True)
class RouteStep:
    by: OpStep
    cases: Mapping[str, tuple["Step", ...]]
    default: tuple["Step", ...] | None = None
    path: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"by": self.by.to_dict(),
                                "cases": {k: [s.to_dict() for s in v] for k, v in self.cases.items()}}
        if self.default is not None:
            body["default"] = [s.to_dict() for s in self.default]
        return {"route": body}


@dataclass(frozen=True)
class LoopStep:
    max_iters: int
    body: tuple["Step", ...]
    until: OpStep | None = None
    accumulate: bool = True
    path: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"max_iters": self.max_iters}
        if self.until is not None:
            body["until"] = self.until.to_dict()
        body["accumulate"] = self.accumulate
        body["body"] = [s.to_dict() for s in self.body]
        return {"loop": body}


Step = Union[OpStep, ParallelStep, RouteStep, LoopStep]


@dataclass(frozen=True)
class IndexConfig:
    chunker: OpStep
    embedder: EmbedderConfig
    structures: tuple[OpStep, ...]

    def to_dict(self) -> dict[str, Any]:
        structures = [s.op if not s.params else {"name": s.op, **plain(dict(s.params))} for s in self.structures]
        return {"chunker": self.chunker.to_dict(),
                "embedder": self.embedder.model_dump(exclude_defaults=True),
                "structures": structures}

    @property
    def key(self) -> str:
        """A stable hash of everything that decides the index's content."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PipelineConfig:
    name: str
    index: IndexConfig
    flow: tuple[Step, ...]
    generator: Any = "extractive"
    description: str = ""
    source: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        data["index"] = self.index.to_dict()
        data["generator"] = plain(self.generator)
        data["flow"] = [s.to_dict() for s in self.flow]
        return data

    def dump(self) -> str:
        return dump_yaml(self.to_dict())

    def with_flow_of(self, other: "PipelineConfig") -> "PipelineConfig":
        return PipelineConfig(other.name, self.index, other.flow, other.generator, other.description, other.source)


# ---------------------------------------------------------------- parsing

_TOP_KEYS = ("name", "description", "index", "generator", "flow")
_INDEX_KEYS = ("chunker", "embedder", "structures")
_DEFAULT_INDEX = {"chunker": {"op": "token", "chunk_size": 256, "overlap": 32}, "structures": ["bm25", "dense"]}


class _Parser:
    def __init__(self, source: str | None):
        self.source = source
        #: (path, structure name, container, key) of each flow step whose operator reads an index structure (its
        #: ``structure`` param, e.g. bm25's "bm25"): checked against index.structures once both are read
        self.structures_read: list[tuple[str, str, Any, Any]] = []

    def error(self, message: str, path: str, container: Any = None, key: Any = None) -> ConfigError:
        return ConfigError(message, path, self.source, line_of(container, key) if container is not None else None)

    def expect(self, value: Any, kind: type | tuple[type, ...], what: str, path: str, container: Any, key: Any) -> Any:
        if not isinstance(value, kind):
            if value is None and not path:
                raise self.error("the file is empty (or only comments): a pipeline is a mapping with keys name, "
                                 "index, flow", path, container, key)
            raise self.error(f"must be {what}, got {_type_name(value)} {_short(plain(value))}", path, container, key)
        return value

    def keys(self, data: Mapping, allowed: tuple[str, ...], path: str) -> None:
        for key in data:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                raise self.error(f"unknown key {key!r}; valid keys: {', '.join(allowed)}", where, data, key)

    def pipeline(self, data: Any) -> PipelineConfig:
        self.expect(data, dict, "a mapping with keys name, index, flow", "", data, None)
        if is_experiment(data):
            raise self.error("this file is an experiment (datasets, pipelines), which `ragloom eval` runs; a pipeline "
                             "config has name, index and flow", "", data, "pipelines")
        self.keys(data, _TOP_KEYS, "")
        name = data.get("name", Path(self.source).stem if self.source else "pipeline")
        self.expect(name, str, "a string", "name", data, "name")
        if "flow" not in data:
            raise self.error("is required (a list of steps)", "flow", data, None)
        index = self.index(data.get("index", _DEFAULT_INDEX), data)
        generator = data.get("generator", "extractive")
        self.expect(generator, (str, dict), "a generator name or a mapping with 'name'", "generator", data, "generator")
        from rag.generation import parse_generator_spec

        try:
            parse_generator_spec(plain(generator), "generator")
        except ConfigError as exc:
            raise exc.located(self.source, line_of(data, "generator")) from None
        flow = self.steps(data["flow"], "flow", data, "flow")
        built = [s.op for s in index.structures]
        for path, structure, container, key in self.structures_read:
            if structure not in built:
                # found now, not after the documents are indexed (Index.structure says the same at run time)
                raise self.error(f"reads the index structure {structure!r}, but index.structures builds: "
                                 f"{', '.join(built) or 'none'}; add {structure!r} to index.structures",
                                 f"{path}.structure", container, key)
        return PipelineConfig(name, index, flow, plain(generator), str(data.get("description", "")), self.source)

    def index(self, data: Any, parent: Any) -> IndexConfig:
        self.expect(data, dict, "a mapping", "index", parent, "index")
        self.keys(data, _INDEX_KEYS, "index")
        chunker = self.op(data.get("chunker", _DEFAULT_INDEX["chunker"]), "index.chunker", ("chunker",), data, "chunker")
        raw_embedder = data.get("embedder") or {}
        self.expect(raw_embedder, dict, "a mapping like {model: minilm}", "index.embedder", data, "embedder")
        try:
            embedder = EmbedderConfig(**raw_embedder)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            msg = (f"unknown key; valid keys: {', '.join(EmbedderConfig.model_fields)}"
                   if err["type"] == "extra_forbidden" else str(err.get("ctx", {}).get("error") or err["msg"]))
            raise self.error(msg, f"index.embedder.{key}", raw_embedder, err["loc"][0]) from None
        try:  # a chunker that runs the embedder's model (late chunking) checks its params against it
            get_spec(chunker.op, "chunker").cls.check_embedder(dict(chunker.params), embedder)
        except ConfigError as exc:
            raw_chunker = data.get("chunker")
            line = line_at(raw_chunker, exc.path.split(".")) if isinstance(raw_chunker, dict) else None
            raise ConfigError(exc.message, f"index.chunker.{exc.path}" if exc.path else "index.chunker",
                              self.source, line or line_of(data, "chunker")) from None
        raw_structures = data.get("structures", _DEFAULT_INDEX["structures"])
        self.expect(raw_structures, list, "a list of structure names", "index.structures", data, "structures")
        structures = []
        for i, item in enumerate(raw_structures):
            path = f"index.structures[{i}]"
            if isinstance(item, str):
                item = {"name": item}
            self.expect(item, dict, "a structure name or a mapping with 'name'", path, raw_structures, i)
            if "name" not in item:
                raise self.error("needs a 'name' (e.g. bm25, dense)", f"{path}.name", raw_structures, i)
            params = {k: v for k, v in item.items() if k != "name"}
            structures.append(self._validated(item["name"], params, path, ("structure",), raw_structures, i))
        names = [s.op for s in structures]
        if len(set(names)) != len(names):
            raise self.error(f"names a structure twice: {names}", "index.structures", data, "structures")
        return IndexConfig(chunker, embedder, tuple(structures))

    def _validated(self, name: Any, params: dict, path: str, kinds: tuple[str, ...], container: Any, key: Any) -> OpStep:
        if not isinstance(name, str):
            raise self.error(f"operator name must be a string, got {_short(name)}", f"{path}.op", container, key)
        try:
            spec = get_spec(name, kinds, f"{path}.op")
            validated = validate_params(spec.cls, params, path)
        except ConfigError as exc:
            inner = exc.path[len(path) + 1:].split(".") if exc.path.startswith(f"{path}.") else []
            line = line_at(params, inner)  # the nested key's own line (boundaries.chunk_size)
            raise exc.located(self.source, line or line_of(container, key)) from None
        structure = getattr(validated, "structure", None)
        if isinstance(structure, str) and "structure" not in kinds:
            self.structures_read.append((path, structure, container, key))
        return OpStep(name, plain(params), path)

    def op(self, data: Any, path: str, kinds: tuple[str, ...], container: Any, key: Any) -> OpStep:
        if isinstance(data, str):
            data = {"op": data}
        self.expect(data, dict, "a mapping with 'op'", path, container, key)
        if "op" not in data:
            raise self.error("needs an 'op' key naming the operator", f"{path}.op", container, key)
        params = {k: v for k, v in data.items() if k != "op"}
        if isinstance(data, dict) and hasattr(data, "lines"):
            from rag.yaml_io import LocatedDict

            located = LocatedDict(params)
            located.lines = {k: data.lines.get(k) for k in params}
            located.line = data.line
            params = located
        return self._validated(data["op"], params, path, kinds, container, key)

    def steps(self, data: Any, path: str, container: Any, key: Any) -> tuple[Step, ...]:
        self.expect(data, list, "a list of steps", path, container, key)
        if not data:
            raise self.error("must have at least one step", path, container, key)
        return tuple(self.step(item, f"{path}[{i}]", data, i) for i, item in enumerate(data))

    def step(self, data: Any, path: str, container: Any, key: Any) -> Step:
        self.expect(data, dict, "a step: {op: ...}, {parallel: ...}, {route: ...} or {loop: ...}", path, container, key)
        kinds = [k for k in ("op", "parallel", "route", "loop") if k in data]
        if len(kinds) != 1:
            raise self.error("a step has exactly one of 'op', 'parallel', 'route', 'loop'"
                             + (f" (found {', '.join(kinds)})" if kinds else f" (found keys {', '.join(map(str, data))})"),
                             path, container, key)
        kind = kinds[0]
        if kind == "op":
            return self.op(data, path, STEP_KINDS, container, key)
        if kind == "parallel":
            return self.parallel(data, path)
        if kind == "route":
            self.keys(data, ("route",), path)
            return self.route(data["route"], f"{path}.route", data)
        self.keys(data, ("loop",), path)
        return self.loop(data["loop"], f"{path}.loop", data)

    def parallel(self, data: Mapping, path: str) -> ParallelStep:
        self.keys(data, ("parallel", "merge"), path)
        raw = self.expect(data["parallel"], list, "a list of branches", f"{path}.parallel", data, "parallel")
        if len(raw) < 2:
            raise self.error("needs at least two branches", f"{path}.parallel", data, "parallel")
        branches = []
        for i, item in enumerate(raw):
            bpath = f"{path}.parallel[{i}]"
            branches.append(self.steps(item, bpath, raw, i) if isinstance(item, list) else (self.step(item, bpath, raw, i),))
        merge = self.op(data.get("merge", {"op": "rrf"}), f"{path}.merge", ("merge",), data, "merge")
        return ParallelStep(tuple(branches), merge, path)

    def route(self, data: Any, path: str, parent: Mapping) -> RouteStep:
        self.expect(data, dict, "a mapping with by, cases and default", path, parent, "route")
        self.keys(data, ("by", "cases", "default"), path)
        if "by" not in data:
            raise self.error("is required (a router operator)", f"{path}.by", data, None)
        by = self.op(data["by"], f"{path}.by", ("router",), data, "by")
        raw_cases = self.expect(data.get("cases", {}), dict, "a mapping of label → steps", f"{path}.cases", data, "cases")
        cases = {str(label): self.steps(steps, f"{path}.cases.{label}", raw_cases, label) if steps else ()
                 for label, steps in raw_cases.items()}
        default = None
        if "default" in data:
            default = self.steps(data["default"], f"{path}.default", data, "default") if data["default"] else ()
        labels = get_spec(by.op, "router").cls.labels
        if labels:
            unknown = [c for c in cases if c not in labels]
            if unknown:
                raise self.error(f"router {by.op!r} never returns {unknown[0]!r}; its labels: {', '.join(labels)}",
                                 f"{path}.cases.{unknown[0]}", raw_cases, unknown[0])
            missing = [label for label in labels if label not in cases]
            if missing and default is None:
                raise self.error(f"has no case for label(s) {', '.join(missing)} of router {by.op!r} and no default",
                                 path, parent, "route")
        elif default is None:
            raise self.error(f"router {by.op!r} does not declare its labels, so the route needs a default",
                             f"{path}.default", parent, "route")
        return RouteStep(by, cases, default, path)

    def loop(self, data: Any, path: str, parent: Mapping) -> LoopStep:
        self.expect(data, dict, "a mapping with max_iters, until and body", path, parent, "loop")
        self.keys(data, ("max_iters", "until", "body", "accumulate"), path)
        if "max_iters" not in data:
            raise self.error("is required (loops must be bounded)", f"{path}.max_iters", parent, "loop")
        max_iters = data["max_iters"]
        if not isinstance(max_iters, int) or isinstance(max_iters, bool) or not 1 <= max_iters <= MAX_LOOP_ITERS:
            raise self.error(f"must be an integer from 1 to {MAX_LOOP_ITERS}, got {_short(max_iters)}",
                             f"{path}.max_iters", data, "max_iters")
        until = self.op(data["until"], f"{path}.until", ("judge",), data, "until") if "until" in data else None
        if "body" not in data:
            raise self.error("is required (the steps to repeat)", f"{path}.body", parent, "loop")
        body = self.steps(data["body"], f"{path}.body", data, "body")
        accumulate = self.expect(data.get("accumulate", True), bool, "true or false", f"{path}.accumulate", data, "accumulate")
        return LoopStep(max_iters, body, until, accumulate, path)


def is_experiment(data: Any) -> bool:
    """Whether YAML ``data`` is an experiment (``ragloom eval``'s input: it has ``pipelines``), not a pipeline
    config (which has ``flow``)."""
    return isinstance(data, dict) and "pipelines" in data and "flow" not in data


def _type_name(value: Any) -> str:
    """The YAML-level type of a value: a mapping read with its lines is a dict, a sequence a list."""
    return "dict" if isinstance(value, dict) else "list" if isinstance(value, list) else type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_config(data: Any, source: str | None = None) -> PipelineConfig:
    """Validate a config mapping (as read from YAML or written in Python)."""
    return _Parser(source).pipeline(data)


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline YAML file."""
    return parse_config(load_yaml(path), str(path))


def loads_config(text: str, source: str = "<string>") -> PipelineConfig:
    return parse_config(loads_yaml(text, source), source)


def parse_index_config(data: Any, source: str | None = None) -> IndexConfig:
    """Validate just an ``index`` section (as stored in an index manifest)."""
    return _Parser(source).index(data, {"index": data})
