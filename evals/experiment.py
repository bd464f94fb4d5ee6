"""Experiment files: which pipelines to run on which datasets, scored how.

::

    name: scifact-retrieval
    datasets: [scifact]                 # names (looked up like evals.datasets.resolve_dataset) or paths,
                                        # or {path: ..., name: ..., split: test}
    metrics: [nDCG@10, R@5, R@100, MRR@10]   # optional; defaults depend on what the dataset has
    limit: 50                           # optional: only the first N queries of each dataset
    span: {k: 5, source: auto}          # optional: span metrics on the top-k hits (hits), the selected
                                        # context (context) or whichever the flow has (auto);
                                        # union_retrieved: true counts overlapping chunks' characters once
    ranking: {source: hits}             # optional: ranking metrics (nDCG@k, R@k, ...) on the documents of the
                                        # hits (default), of the selected context in its order (context), or
                                        # of the context when the flow selects one (auto)
    pipelines:
      - ../pipelines/bm25.yaml          # a pipeline file (relative to this file)
      - {path: ../pipelines/dense.yaml, name: dense-2}   # a file, renamed
      - name: hybrid                    # an inline pipeline config
        index: {...}
        flow: [...]
      - path: ../pipelines/hybrid.yaml  # a parameter grid: every combination of the listed values
        grid:
          flow[0].merge.k: [20, 60]
          index.chunker.chunk_size: [128, 256]
      - {path: ../pipelines/rerank_mmr.yaml, datasets: [scifact]}   # only on these datasets (default: all)
      - {path: ../pipelines/rerank_late_interaction.yaml, ranking: {source: hits}}   # overrides `ranking`

**Grid syntax.** ``grid`` maps a key path inside the pipeline config to a *list* of values; the pipeline is
expanded into the cartesian product of all lists (in file order), each named
``NAME[key=value,...]`` with the last path component as the key. Paths are dot-separated keys with ``[i]`` for
list positions (``flow[0].parallel[1].top_k``); every step of the path must exist except the last key, which
may add a parameter to an existing mapping. A value that is itself a list must be written as a list of lists.
"""
from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.metrics import parse_metric
from rag.errors import ConfigError
from rag.yaml_io import line_at, line_of, load_yaml, plain

_TOP_KEYS = ("name", "description", "datasets", "pipelines", "metrics", "limit", "span", "ranking", "cache_dir")
_PIPELINE_ENTRY_KEYS = ("path", "name", "grid", "datasets", "ranking")
_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True)
class DatasetSpec:
    ref: str
    name: str
    split: str = "test"


@dataclass(frozen=True)
class PipelineSpec:
    """One concrete pipeline of the experiment (grids already expanded): a plain config dict with a name."""

    name: str
    config: dict[str, Any]
    source: str | None = None
    datasets: tuple[str, ...] = ()  # names of the experiment's datasets it runs on; empty: all
    ranking: RankingSettings | None = None  # overrides the experiment's ranking settings

    def runs_on(self, dataset: str) -> bool:
        return not self.datasets or dataset in self.datasets


@dataclass(frozen=True)
class SpanSettings:
    k: int = 5
    source: str = "auto"  # auto: the selected context if the flow selects one, else the top-k hits
    union_retrieved: bool = False  # True: overlapping retrieved characters count once (Chroma: summed)


@dataclass(frozen=True)
class RankingSettings:
    source: str = "hits"  # hits | context | auto (the context if the flow selects one, else the hits)


@dataclass(frozen=True)
class Experiment:
    name: str
    datasets: tuple[DatasetSpec, ...]
    pipelines: tuple[PipelineSpec, ...]
    metrics: tuple[str, ...] = ()
    limit: int | None = None
    span: SpanSettings = field(default_factory=SpanSettings)
    source: str | None = None
    cache_dir: str | None = None
    ranking: RankingSettings = field(default_factory=RankingSettings)


def _error(message: str, path: str, source: str | None, container: Any = None, key: Any = None) -> ConfigError:
    return ConfigError(message, path, source, line_of(container, key) if container is not None else None)


def parse_key_path(path: str) -> list[str | int]:
    """``"flow[0].merge.k"`` → ``["flow", 0, "merge", "k"]``."""
    tokens: list[str | int] = []
    pos = 0
    for m in _PATH_TOKEN.finditer(path):
        gap = path[pos:m.start()]
        if gap not in ("", "."):
            raise ValueError(f"bad key path {path!r}")
        tokens.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not tokens or path[pos:]:
        raise ValueError(f"bad key path {path!r}; write keys with dots and list positions as [i]: flow[0].top_k")
    return tokens


def set_key_path(config: dict, path: str, value: Any) -> None:
    """Set ``value`` at ``path`` in ``config`` (in place); every step but the last must exist."""
    tokens = parse_key_path(path)
    node: Any = config
    for depth, token in enumerate(tokens[:-1]):
        try:
            node = node[token]
        except (KeyError, IndexError, TypeError):
            done = _render(tokens[:depth + 1])
            raise KeyError(f"{done} does not exist in the pipeline config") from None
    last = tokens[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise KeyError(f"{path}: list position {last} does not exist")
    elif not isinstance(node, dict):
        raise KeyError(f"{_render(tokens[:-1])} is not a mapping, cannot set {last!r}")
    node[last] = value


def _render(tokens: list[str | int]) -> str:
    out = ""
    for t in tokens:
        out += f"[{t}]" if isinstance(t, int) else (f".{t}" if out else t)
    return out


def expand_grid(name: str, config: dict, grid: dict[str, list], where: str, source: str | None) -> list[PipelineSpec]:
    """One PipelineSpec per combination of the grid's values (cartesian product, file order)."""
    keys = list(grid)
    for key in keys:
        values = grid[key]
        if not isinstance(values, list) or not values:
            raise _error("grid values must be a non-empty list (a list value expands into the grid)",
                         f"{where}.grid.{key}", source, grid, key)
        try:
            parse_key_path(key)
        except ValueError as exc:
            raise _error(str(exc), f"{where}.grid.{key}", source, grid, key) from None
    specs = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        variant = copy.deepcopy(config)
        for key, value in zip(keys, combo):
            try:
                set_key_path(variant, key, plain(value))
            except KeyError as exc:
                raise _error(str(exc.args[0]), f"{where}.grid.{key}", source, grid, key) from None
        label = ",".join(f"{str(parse_key_path(k)[-1])}={_short(v)}" for k, v in zip(keys, combo))
        specs.append(PipelineSpec(f"{name}[{label}]" if keys else name, variant, source))
    return specs


def _grid_key_of(path: str | None, grid: dict[str, list]) -> str | None:
    """The grid key whose value a config error at key path ``path`` is about: the key itself, a key inside the
    value it set, or the mapping holding it (such as a chunker whose overlap the grid made too big)."""
    if not path:
        return None
    for key in grid:
        if path == key or path.startswith((key + ".", key + "[")) or key.startswith((path + ".", path + "[")):
            return key
    return None


def _short(value: Any) -> str:
    return value if isinstance(value, str) else str(plain(value)).replace(" ", "")


def _ranking(raw: Any, where: str, source: str | None, container: Any, key: Any) -> RankingSettings:
    if not isinstance(raw, dict) or set(raw) - {"source"} or raw.get("source", "hits") not in ("hits", "context",
                                                                                              "auto"):
        raise _error("must be a mapping {source: hits | context | auto}", where, source, container, key)
    return RankingSettings(str(raw.get("source", "hits")))


def _entry_datasets(entry: dict, where: str, source: str | None, known: list[str]) -> tuple[str, ...]:
    raw = entry.get("datasets")
    if raw is None:
        return ()
    raw = [raw] if isinstance(raw, str) else raw
    if not isinstance(raw, list) or not raw:
        raise _error("must be a non-empty list of the experiment's dataset names", f"{where}.datasets", source,
                     entry, "datasets")
    for i, name in enumerate(raw):
        if name not in known:
            raise _error(f"{name!r} is not one of the experiment's datasets ({', '.join(known)})",
                         f"{where}.datasets[{i}]", source, raw, i)
    return tuple(str(n) for n in raw)


def _pipeline_entries(raw: Any, source: str | None, base: Path, dataset_names: list[str]) -> list[PipelineSpec]:
    from rag.config import parse_config

    if not isinstance(raw, list) or not raw:
        raise _error("must be a non-empty list of pipeline files or inline configs", "pipelines", source)
    specs: list[PipelineSpec] = []
    for i, entry in enumerate(raw):
        where = f"pipelines[{i}]"
        at = (entry, "path")  # where a bad path is reported: the entry's `path` key, or the list item itself
        if isinstance(entry, str):
            entry, at = {"path": entry}, (raw, i)
        if not isinstance(entry, dict):
            raise _error("must be a path or a mapping", where, source, raw, i)
        grid = entry.get("grid") or {}
        only = _entry_datasets(entry, where, source, dataset_names)
        ranking = _ranking(entry["ranking"], f"{where}.ranking", source, entry, "ranking") if "ranking" in entry \
            else None
        if not isinstance(grid, dict):
            raise _error("must map key paths to lists of values", f"{where}.grid", source, entry, "grid")
        if "path" in entry:
            for key in entry:
                if key not in _PIPELINE_ENTRY_KEYS:
                    raise _error(f"unknown key {key!r} next to 'path'; valid keys: {', '.join(_PIPELINE_ENTRY_KEYS)}",
                                 f"{where}.{key}", source, entry, key)
            file = Path(str(entry["path"]))
            file = file if file.is_absolute() else base / file
            if not file.is_file():
                raise _error(f"pipeline file not found: {file}", f"{where}.path", source, *at)
            located = load_yaml(file)
            config = plain(located)
            pipe_source = str(file)
            name = str(entry.get("name") or config.get("name") or file.stem)
        else:
            located = entry
            config = plain({k: v for k, v in entry.items() if k not in ("grid", "datasets", "ranking")})
            if "name" not in config:
                raise _error("an inline pipeline needs a 'name'", f"{where}.name", source, raw, i)
            pipe_source = f"{source}:{where}" if source else where
            name = str(config["name"])
        config["name"] = name
        for spec in expand_grid(name, config, grid, where, source):
            spec.config["name"] = spec.name
            try:
                parse_config(copy.deepcopy(spec.config), pipe_source)  # validate before anything runs
            except ConfigError as exc:
                grid_key = _grid_key_of(exc.path, grid)
                if grid_key is not None:  # a value the grid set: located at the grid's line of the experiment
                    raise _error(f"{spec.name}: {exc.message}", f"{where}.grid.{grid_key}", source, grid,
                                 grid_key) from None
                # located in the pipeline's own YAML: its file, or the experiment's lines of an inline one
                in_file = "path" in entry
                try:
                    line = line_at(located, parse_key_path(exc.path)) if exc.path else None
                except ValueError:
                    line = None
                line = line or exc.line or (None if in_file else line_of(raw, i))
                path = (f"{where}:{exc.path}" if in_file else f"{where}.{exc.path}") if exc.path else where
                raise ConfigError(f"{spec.name}: {exc.message}", path, pipe_source if in_file else source,
                                  line) from None
            specs.append(PipelineSpec(spec.name, spec.config, pipe_source, only, ranking))
    names = [s.name for s in specs]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise _error(f"two pipelines are named {dup!r}; give one a different 'name'", "pipelines", source)
    return specs


def parse_experiment(data: Any, source: str | None = None) -> Experiment:
    if not isinstance(data, dict):
        raise _error("an experiment is a mapping with name, datasets, pipelines", "", source)
    for key in data:
        if key not in _TOP_KEYS:
            raise _error(f"unknown key {key!r}; valid keys: {', '.join(_TOP_KEYS)}", str(key), source, data, key)
    base = Path(source).resolve().parent if source and Path(source).exists() else Path.cwd()
    name = str(data.get("name") or (Path(source).stem if source else "experiment"))

    raw_datasets = data.get("datasets")
    if isinstance(raw_datasets, str):
        raw_datasets = [raw_datasets]
    if not isinstance(raw_datasets, list) or not raw_datasets:
        raise _error("is required: a list of dataset names or paths", "datasets", source, data, "datasets")
    datasets = []
    for i, item in enumerate(raw_datasets):
        if isinstance(item, str):
            datasets.append(DatasetSpec(item, Path(item).name))
        elif isinstance(item, dict) and isinstance(item.get("path"), str):
            unknown = set(item) - {"path", "name", "split"}
            if unknown:
                raise _error(f"unknown keys {sorted(unknown)}; valid: path, name, split", f"datasets[{i}]",
                             source, raw_datasets, i)
            datasets.append(DatasetSpec(item["path"], str(item.get("name") or Path(item["path"]).name),
                                        str(item.get("split", "test"))))
        else:
            raise _error("must be a dataset name/path or {path, name, split}", f"datasets[{i}]", source, raw_datasets, i)

    raw_metrics = data.get("metrics") or []
    if not isinstance(raw_metrics, list):
        raise _error("must be a list of metric names like nDCG@10", "metrics", source, data, "metrics")
    for i, metric in enumerate(raw_metrics):
        try:
            parse_metric(str(metric))
        except ValueError as exc:
            raise _error(str(exc), f"metrics[{i}]", source, raw_metrics, i) from None

    limit = data.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise _error("must be a positive integer (number of queries per dataset)", "limit", source, data, "limit")

    raw_span = data.get("span") or {}
    if not isinstance(raw_span, dict):
        raise _error("must be a mapping with k, source and/or union_retrieved", "span", source, data, "span")
    for key in raw_span:
        if key not in ("k", "source", "union_retrieved"):
            raise _error(f"unknown key {key!r} (valid: k, source, union_retrieved)", f"span.{key}", source,
                         raw_span, key)
    k, union = raw_span.get("k", 5), raw_span.get("union_retrieved", False)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:  # int() read 'five' as a crash and 2.7 as 2
        raise _error(f"must be a positive integer (chunks scored per query), got {k!r}", "span.k", source, raw_span, "k")
    if not isinstance(union, bool):  # bool() read "false" as True
        raise _error(f"must be true or false, got {union!r}", "span.union_retrieved", source, raw_span,
                     "union_retrieved")
    span = SpanSettings(k, str(raw_span.get("source", "auto")), union)
    if span.source not in ("auto", "hits", "context"):
        raise _error("must be auto, hits or context", "span.source", source, raw_span, "source")

    ranking = _ranking(data.get("ranking") or {}, "ranking", source, data, "ranking")

    pipelines = _pipeline_entries(data.get("pipelines"), source, base, [d.name for d in datasets])
    return Experiment(name, tuple(datasets), tuple(pipelines), tuple(str(m) for m in raw_metrics), limit, span,
                      source, data.get("cache_dir"), ranking)


def load_experiment(path: str | Path) -> Experiment:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"experiment file not found: {path}")
    return parse_experiment(load_yaml(path), str(path))
