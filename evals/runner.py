"""Run an experiment: every pipeline on every dataset, one query at a time, resumable.

Per-query records are appended (and flushed) to ``OUT/per_query.jsonl`` as they are computed, keyed by a run
key (hash of the resolved pipeline config, the corpus fingerprint, the metric names, span settings and a
fingerprint of the code that runs queries), so an interrupted run continues where it stopped and neither a
changed pipeline nor changed operator code ever reuses stale results. Indexes come
from :class:`evals.index_cache.IndexCache`, so pipelines that share an index section share one index.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from evals import metrics as M
from evals.datasets import Dataset, Query, read_dataset
from evals.experiment import Experiment, PipelineSpec, RankingSettings
from evals.index_cache import IndexCache, corpus_fingerprint, run_code_fingerprint
from rag.config import parse_config
from rag.errors import ConfigError, InputError, RagloomError
from rag.jsonl import json_line, write_jsonl_atomically
from rag.state import Result

log = logging.getLogger(__name__)

DEFAULT_RANKING_METRICS = ("nDCG@10", "R@1", "R@2", "R@5", "R@10", "R@100", "P@5", "MRR@10", "MAP", "Hit@5",
                           "AllGold@5")
RECALL_CURVE_KS = (1, 2, 3, 5, 10, 20, 50, 100)
RANKING_DEPTH_SAVED = 100  # documents per query kept in per_query.jsonl and the TREC run file


@dataclass
class RunOutcome:
    """One pipeline × dataset: its aggregated metrics and its per-query records."""

    pipeline: str
    dataset: str
    config: dict[str, Any]
    records: list[dict[str, Any]]
    metrics: dict[str, float | int]
    chunk_tokens: list[int] = field(default_factory=list)
    chunk_chars: list[int] = field(default_factory=list)
    embedding_model_calls: int = 0
    #: what building the run's index cost (:attr:`rag.index.store.Index.build_seconds`), measured when it was built:
    #: by this invocation (``index_built``) or by the one that cached it
    build_seconds: dict[str, float] = field(default_factory=dict)
    index_built: bool = False
    documents: int = 0  # in the run's index

    @property
    def index_summary(self) -> dict[str, Any]:
        """The run's chunks: count, mean tokens and characters, largest in tokens, and the index's build times."""
        count = len(self.chunk_tokens)  # (None, not NaN, where there is nothing to measure: metrics.json is JSON)
        return {"documents": self.documents, "chunks": count,
                "mean_tokens": sum(self.chunk_tokens) / count if count else None,
                "mean_chars": sum(self.chunk_chars) / count if count else None,
                "max_tokens": max(self.chunk_tokens, default=0),
                "chunking_seconds": self.build_seconds.get("chunk"),
                "build_seconds": self.build_seconds, "built_by_this_invocation": self.index_built}

    def to_json(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "dataset": self.dataset, "metrics": self.metrics,
                "index": self.index_summary, "config": self.config}


@dataclass
class ExperimentOutcome:
    experiment: Experiment
    runs: list[RunOutcome]
    embedding_model_calls: int
    indexes_built: list[str]
    indexes_loaded: list[str]
    seconds: float


def metric_names_for(experiment: Experiment, dataset: Dataset) -> list[str]:
    """The metrics to report on ``dataset``: the experiment's list, or defaults by what the dataset has."""
    requested = [m for m in experiment.metrics if m not in M.COST_METRICS]  # costs are always reported
    names: list[str] = []
    ranking = [m for m in requested if M.parse_metric(m)[0] in (*M.RANKING_METRICS, "MAP")]
    if dataset.qrels:
        names += ranking if requested else list(DEFAULT_RANKING_METRICS)
    elif ranking:  # QA: dropped without a word, while span metrics said so
        log.warning("dataset %s has no qrels: the ranking metrics asked for (%s) are not reported", dataset.name,
                    ", ".join(ranking))
    if dataset.has_references and (not requested or any(m in M.SPAN_METRICS for m in requested)):
        names += list(M.SPAN_METRICS)
    elif any(m in M.SPAN_METRICS for m in requested):
        log.warning("dataset %s has no character-span references: the span metrics asked for (%s) are not reported",
                    dataset.name, ", ".join(m for m in requested if m in M.SPAN_METRICS))
    if dataset.has_answers and (not requested or any(m in M.ANSWER_METRICS for m in requested)):
        names += list(M.ANSWER_METRICS)
    if requested and not names:  # the report would be empty, and the run would still succeed
        raise InputError(f"dataset {dataset.name}: none of the metrics asked for ({', '.join(requested)}) can be "
                         "scored on it: ranking metrics need qrels, span metrics 'references' on its queries, "
                         "answer metrics 'answers'")
    return names


def run_key(config: dict[str, Any], fingerprint: str, metric_names: Iterable[str], experiment: Experiment,
            ranking: RankingSettings | None = None) -> str:
    key = {"config": config, "corpus": fingerprint, "metrics": list(metric_names),
           "span": [experiment.span.k, experiment.span.source, experiment.span.union_retrieved],
           "code": run_code_fingerprint(config)}
    ranking = ranking or experiment.ranking
    if ranking.source != "hits":  # the default leaves the keys of earlier runs unchanged
        key["ranking"] = ranking.source
    blob = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def query_key(query: Query, qrels: dict[str, int] | None) -> str:
    """What a query's record is scored against: its text, answers, reference spans and qrels. A record is reused
    only for the same run key, dataset and query key, so an edited question or gold, another split's qrels or
    another dataset over the same corpus is run again, never given another query's scores."""
    blob = json.dumps([query.id, query.text, list(query.answers), [list(r) for r in query.references],
                       sorted((qrels or {}).items())], default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


RecordKey = tuple[str, str, str]  # (run key, dataset name, query key)


def record_key(record: dict[str, Any]) -> RecordKey:
    return record["run"], record["dataset"], record["query_key"]


def _on_context(source: str, result: Result) -> bool:
    """Whether a ranking or span ``source`` setting scores the flow's selected context rather than its hits:
    'context' always, 'auto' when the flow selected one, 'hits' never."""
    return source == "context" or (source == "auto" and result.state.context is not None)


def score_query(query: Query, qrels: dict[str, int] | None, result: Result, names: list[str],
                experiment: Experiment, ranking: RankingSettings | None = None) -> dict[str, Any]:
    """Everything recorded for one query: scores, the document ranking, spans, answer, cost and trace."""
    ranking_source = (ranking or experiment.ranking).source
    on_context = _on_context(ranking_source, result)
    doc_best: dict[str, float] = {}
    for hit in (result.state.context or ()) if on_context else result.hits:
        doc_best.setdefault(hit.chunk.doc_id, float(hit.score))
    ranked_docs = list(doc_best)
    scores: dict[str, float] = {}
    curve: dict[str, float] = {}
    if qrels:
        scores.update(M.ranking_scores(ranked_docs, qrels, [n for n in names if "@" in n or n == "MAP"]))
        curve = {str(k): M.recall_at_k(ranked_docs, qrels, k) for k in RECALL_CURVE_KS}

    if experiment.span.source == "context" and result.state.context is None and query.references:
        # scored as an empty context, every span metric would be a silent 0
        raise ConfigError("is 'context' but the flow selects no context (add a selector such as {op: select}, or "
                          "use span.source: auto or hits)", "span.source", experiment.source)
    use_context = _on_context(experiment.span.source, result)
    evidence = list(result.contexts) if use_context else [h.chunk for h in result.hits[:experiment.span.k]]
    spans = [(c.doc_id, c.start, c.end) for c in evidence]
    if query.references and any(n in M.SPAN_METRICS for n in names):
        scores.update(M.span_scores(spans, list(query.references), experiment.span.union_retrieved).as_metrics())
    if query.answers and any(n in M.ANSWER_METRICS for n in names):
        if result.state.answer is not None:  # EM / F1 only for flows that generate an answer
            scores["EM"] = M.exact_match(result.answer, query.answers)
            scores["F1"] = M.token_f1(result.answer, query.answers)
        scores["answer_in_context"] = M.answer_in_context(query.answers, [c.text for c in evidence])

    stages: dict[str, float] = {}
    for event in result.trace:
        stages[event.name] = stages.get(event.name, 0.0) + float(event.seconds)
    answer = result.state.answer
    return {
        "query_id": query.id,
        "query": query.text,
        "scores": scores,
        "recall_curve": curve,
        "ranking": [[d, round(doc_best[d], 6)] for d in ranked_docs[:RANKING_DEPTH_SAVED]],
        "evidence": [[c.id, c.doc_id, c.start, c.end] for c in evidence],
        "context_tokens": int(sum(c.token_count for c in evidence)),
        "answer": result.answer,
        "generator_model_calls": int(answer.model_calls) if answer else 0,
        "seconds": round(result.seconds, 6),
        "stages": {k: round(v, 6) for k, v in stages.items()},
        "trace": [e.to_json() for e in result.trace],
    }


def aggregate(records: list[dict[str, Any]], names: list[str]) -> dict[str, float | int]:
    """Means over the queries each metric applies to, plus cost means (latency in ms, context tokens)."""
    out: dict[str, float] = {}
    for name in names:
        values = [r["scores"][name] for r in records if name in r["scores"]]
        if values:
            out[name] = M.mean(values)
    if records:
        out["context_tokens"] = M.mean(r["context_tokens"] for r in records)
        out["latency_ms"] = 1000 * M.mean(r["seconds"] for r in records)
        out["generator_model_calls"] = int(sum(r["generator_model_calls"] for r in records))
        out["queries"] = len(records)
        if "span_recall" in out:  # the span means are over the queries with references only
            out["span_queries"] = sum("span_recall" in r["scores"] for r in records)
    return out


def chunker_llm_costs(chunker, built: bool) -> dict[str, int]:
    """``chunker_model_calls`` (LLM calls) and ``chunker_unusable_answers`` of a chunker that asks an LLM for its
    boundaries (``llm``, also as late chunking's ``boundaries``), made while building the index in this
    invocation: 0 for an index loaded from the cache or built for an earlier pipeline; {} for other chunkers."""
    counted = getattr(chunker, "boundary_chunker_", chunker)
    if not hasattr(counted, "unusable_answers"):
        return {}
    return {"chunker_model_calls": counted.model_calls if built else 0,
            "chunker_unusable_answers": counted.unusable_answers if built else 0}


class ResultLog:
    """``per_query.jsonl``: append-only while running, rewritten to the current runs at the end."""

    def __init__(self, path: Path):
        self.path = path
        self.done: dict[RecordKey, dict[str, Any]] = {}
        if path.exists():
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    try:
                        rec = json.loads(line)
                        self.done[record_key(rec)] = rec
                    except (json.JSONDecodeError, KeyError, TypeError):
                        # a line cut short by an interruption, or a record of a version without query keys: that
                        # query is simply re-run
                        continue
        self._write(self.done.values())
        self._fh = path.open("a", encoding="utf-8")

    def _write(self, records: Iterable[dict[str, Any]]) -> None:
        write_jsonl_atomically(self.path, records)

    def append(self, record: dict[str, Any]) -> None:
        self._fh.write(json_line(record) + "\n")
        self._fh.flush()
        self.done[record_key(record)] = record

    def finish(self, keep: list[RecordKey] | None) -> None:
        """Close the log, rewritten to the records ``keep`` in that order (those of a complete experiment), or to
        every record when ``keep`` is None (an interrupted one: the records of runs it did not reach yet are
        still valid, and a rerun resumes from them)."""
        self._fh.close()
        self._write(self.done.values() if keep is None else [self.done[k] for k in dict.fromkeys(keep)])


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="q", disable=not enabled, leave=True,
                dynamic_ncols=True)


def run_experiment(experiment: Experiment, out_dir: str | Path, limit: int | None = None,
                   cache_dir: str | Path | None = None, progress: bool = True,
                   on_run: Callable[[RunOutcome], None] | None = None) -> ExperimentOutcome:
    """Run every pipeline on every dataset; writes per_query.jsonl into ``out_dir`` as it goes."""
    started = time.perf_counter()
    out = Path(out_dir)
    held = _experiment_held_by(out)
    if held is not None and held != experiment.name:
        raise RagloomError(f"{out} holds the results of experiment {held!r}, not {experiment.name!r}: give this one "
                           "another --out (or delete that folder)")
    limit = limit or experiment.limit
    # every dataset read (and its references checked) before anything runs: a bad second dataset is not found
    # after hours on the first, and no run folder is left behind for an experiment that cannot run
    datasets = [read_dataset(dspec.ref, experiment.source, split=dspec.split).limited(limit)
                for dspec in experiment.datasets]
    for dspec, dataset in zip(experiment.datasets, datasets):
        dataset.name = dspec.name
    # and their metrics, once (QA: a run stopped by this check left an empty run folder)
    metric_names = [metric_names_for(experiment, dataset) for dataset in datasets]
    try:
        out.mkdir(parents=True, exist_ok=True)
        if held is None:
            (out / EXPERIMENT_FILE).write_text(experiment.name + "\n", encoding="utf-8")
    except OSError as exc:
        reason = "it is a file" if out.is_file() or out.parent.is_file() else exc.strerror or exc
        raise RagloomError(f"cannot create the output directory {out}: {reason}") from None
    with _only_run_in(out):
        return _run_all(experiment, datasets, metric_names, out, cache_dir, progress, on_run, started)


@contextlib.contextmanager
def _only_run_in(out: Path):
    """Holds ``out``'s lock file while an experiment runs there: a second ``ragloom eval`` into the same folder
    is refused (both appending to per_query.jsonl and rewriting it would lose records). No lock on Windows."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(out / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RagloomError(f"{out} is in use by another ragloom eval (give this one another --out, or wait "
                               "for that one to end)") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_all(experiment: Experiment, datasets: list[Dataset], metric_names: list[list[str]], out: Path, cache_dir,
             progress: bool, on_run, started: float) -> ExperimentOutcome:
    from rag.pipeline import Pipeline

    cache = IndexCache(cache_dir or experiment.cache_dir)
    log_file = ResultLog(out / "per_query.jsonl")
    runs: list[RunOutcome] = []
    used: list[RecordKey] = []  # the records of this experiment, in order
    complete = False
    try:
        for dspec, dataset, names in zip(experiment.datasets, datasets, metric_names):
            fingerprint = corpus_fingerprint(dataset.documents)
            for pspec in (p for p in experiment.pipelines if p.runs_on(dspec.name)):
                runs.append(_run_one(pspec, dataset, fingerprint, names, experiment, cache, log_file, used,
                                     progress, Pipeline))
                if on_run:
                    on_run(runs[-1])
        complete = True
    finally:
        log_file.finish(used if complete else None)  # interrupted: later runs' records are kept
    return ExperimentOutcome(experiment, runs, cache.model_calls, cache.built, cache.loaded,
                             time.perf_counter() - started)


#: in a run folder, the name of the experiment whose results it holds
EXPERIMENT_FILE = "experiment_name.txt"


def _experiment_held_by(out: Path) -> str | None:
    """The name of the experiment whose results the run folder ``out`` holds (None: none recorded). Running
    another one there would prune its per-query records and replace its reports."""
    try:
        return (out / EXPERIMENT_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):  # no such file (or folder), or not one of ours
        return None


def _run_one(pspec: PipelineSpec, dataset: Dataset, fingerprint: str, names: list[str], experiment: Experiment,
             cache: IndexCache, log_file: ResultLog, used: list[RecordKey], progress: bool, pipeline_cls) -> RunOutcome:
    config = parse_config(json.loads(json.dumps(pspec.config)), pspec.source)
    resolved = config.to_dict()
    key = run_key(resolved, fingerprint, names, experiment, pspec.ranking)
    keys = {q.id: (key, dataset.name, query_key(q, dataset.qrels.get(q.id))) for q in dataset.queries}
    calls_before, built_before = cache.model_calls, len(cache.built)
    index = cache.get(config, dataset.documents, fingerprint, progress=progress)
    pipe = pipeline_cls(config, index=index)
    todo = [q for q in dataset.queries if keys[q.id] not in log_file.done]
    if todo:  # untimed: loads the models the flow uses, so the first query's latency is not their loading
        pipe.run(todo[0].text)
    bar = _progress(len(dataset.queries), len(dataset.queries) - len(todo), f"{pspec.name} × {dataset.name}",
                    progress)
    span_k = experiment.span.k if any(n in M.SPAN_METRICS for n in names) else 0
    short = 0  # queries whose span metrics, scored on hits, saw fewer than span.k chunks
    try:
        for query in todo:
            result = pipe.run(query.text)
            record = score_query(query, dataset.qrels.get(query.id), result, names, experiment, pspec.ranking)
            log_file.append({"run": key, "pipeline": pspec.name, "dataset": dataset.name,
                             "query_key": keys[query.id][2], **record})
            on_hits = not _on_context(experiment.span.source, result)
            short += bool(span_k and query.references and on_hits and len(result.hits) < span_k)
            bar.update(1)
    finally:
        bar.close()
    if short:
        log.warning("%s × %s: %d of %d queries returned fewer than span.k = %d chunks (the flow's top_k?); their "
                    "span metrics score the chunks there were", pspec.name, dataset.name, short, len(todo), span_k)
    records = [log_file.done[keys[q.id]] for q in dataset.queries]
    used.extend(keys[q.id] for q in dataset.queries)
    metrics = aggregate(records, names)
    calls = cache.model_calls - calls_before
    metrics["embedding_model_calls"] = calls  # texts sent to an embedding model by this invocation
    metrics.update(chunker_llm_costs(index.chunker, built=len(cache.built) > built_before))
    built = cache.built_here(config, fingerprint)  # by this invocation, maybe for an earlier run
    chunks = list(index.chunks.values())
    shown = {**resolved, "index": {**resolved["index"],  # QA: metrics.json said `embedder: {}` for the default
                                   "embedder": {"model": config.index.embedder.model, **resolved["index"]["embedder"]}}}
    return RunOutcome(pspec.name, dataset.name, shown, records, metrics,
                      [c.token_count for c in chunks], [c.end - c.start for c in chunks], calls,
                      dict(index.build_seconds), built, len(index.documents))
