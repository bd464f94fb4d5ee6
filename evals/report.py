"""Write a finished experiment to its run folder.

``metrics.json`` (one record per pipeline × dataset, the contract other tools read), ``runs/*.trec`` (TREC run
files on documents), ``significance.json``, ``report.md`` and ``report.html`` with the PNG plots beside them,
and a rich summary table for the terminal.
"""
from __future__ import annotations

import dataclasses
import html
import itertools
import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

from evals import plots
from evals.metrics import COST_METRICS
from evals.runner import ExperimentOutcome, RunOutcome
from evals.significance import PairedComparison, compare

#: The costs every cost table shows (the others of :data:`evals.metrics.COST_METRICS` where some run has them).
COST_COLUMNS = ("context_tokens", "latency_ms", "embedding_model_calls")
#: Costs only runs whose chunker calls an LLM record (``evals.runner.chunker_llm_costs``).
CHUNKER_COST_COLUMNS = ("chunker_model_calls", "chunker_unusable_answers")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=,-]+", "_", name).strip("_") or "run"


#: Decimals of columns that are not scores, whatever their size (QA: 0.8 ms printed as a score, "0.8000")
DECIMALS = {"latency_ms": 2, "chunking_seconds": 3, "mean_tokens": 1, "mean_chars": 1}


def _fmt(value: Any, column: str = "") -> str:
    """Scores with 4 decimals; counts as integers; times and sizes as :data:`DECIMALS` says; larger quantities
    (tokens) with one decimal; "–" for none."""
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if column in DECIMALS:
            return f"{value:.{DECIMALS[column]}f}"
        if abs(value) <= 1:
            return f"{value:.4f}"
        return str(int(value)) if value.is_integer() else f"{value:.1f}"
    return str(value)


def quality_metrics(runs: Sequence[RunOutcome]) -> list[str]:
    names: list[str] = []
    for run in runs:
        for name in run.metrics:
            if name not in names and name not in (*COST_METRICS, *CHUNKER_COST_COLUMNS, "queries", "span_queries"):
                names.append(name)
    return names


def chunker_cost_columns(runs: Sequence[RunOutcome]) -> list[str]:
    """The :data:`CHUNKER_COST_COLUMNS` some run recorded (none when no pipeline's chunker calls an LLM)."""
    return [c for c in CHUNKER_COST_COLUMNS if any(c in r.metrics for r in runs)]


def write_metrics_json(outcome: ExperimentOutcome, out: Path) -> Path:
    """Each run's metrics and config; with span metrics, the span settings they were scored with."""
    path = out / "metrics.json"
    span = dataclasses.asdict(outcome.experiment.span)
    runs = [{**r.to_json(), **({"span": span} if "span_recall" in r.metrics else {})} for r in outcome.runs]
    path.write_text(json.dumps(runs, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def span_protocol_note(outcome: ExperimentOutcome) -> str:
    """How the span metrics were scored, and over how many queries of each dataset ("" without span metrics)."""
    runs = [r for r in outcome.runs if "span_recall" in r.metrics]
    if not runs:
        return ""
    span = outcome.experiment.span
    source = {"hits": "the top hits", "context": "the selected context",
              "auto": "the selected context where the flow selects one, else the top hits"}[span.source]
    counted = "counted once" if span.union_retrieved else "summed over the chunks (as Chroma's evaluation)"
    covered = "; ".join(sorted({f"{r.dataset}: {r.metrics['span_queries']} of {r.metrics['queries']} queries"
                                for r in runs}))
    return (f"Span metrics (Chroma's protocol): character recall / precision / IoU of the top {span.k} chunks per "
            f"query, from {source}; retrieved characters {counted}. Means over the queries with references ("
            f"{covered}).")


def write_trec_runs(outcome: ExperimentOutcome, out: Path) -> list[Path]:
    """``qid Q0 docid rank score tag`` per line, one file per pipeline × dataset (documents, best rank first);
    run files of pipelines no longer in the experiment are removed."""
    folder = out / "runs"
    folder.mkdir(exist_ok=True)
    paths = []
    for run in outcome.runs:
        tag = _safe(run.pipeline)
        path = folder / f"{tag}__{_safe(run.dataset)}.trec"
        with path.open("w", encoding="utf-8") as fh:
            for rec in run.records:
                for rank, (doc, score) in enumerate(rec["ranking"], start=1):
                    fh.write(f"{rec['query_id']} Q0 {doc} {rank} {score} {tag}\n")
        paths.append(path)
    for stale in set(folder.glob("*.trec")) - set(paths):  # runs of this folder no longer in the experiment
        stale.unlink()
    return paths


def primary_metrics(runs: Sequence[RunOutcome]) -> list[str]:
    """Metrics the significance tests are run on: the first ranking metric, span IoU / recall, F1."""
    names = quality_metrics(runs)
    chosen = [n for n in names if "@" in n][:1]
    chosen += [n for n in ("span_recall", "span_iou", "F1") if n in names]
    return chosen


def comparisons(outcome: ExperimentOutcome, rounds: int = 10_000) -> list[PairedComparison]:
    """Every pair of pipelines on the same dataset, on each primary metric."""
    found = []
    by_dataset: dict[str, list[RunOutcome]] = {}
    for run in outcome.runs:
        by_dataset.setdefault(run.dataset, []).append(run)
    for runs in by_dataset.values():
        for metric in primary_metrics(runs):
            for a, b in itertools.combinations(runs, 2):
                sa = {r["query_id"]: r["scores"][metric] for r in a.records if metric in r["scores"]}
                sb = {r["query_id"]: r["scores"][metric] for r in b.records if metric in r["scores"]}
                result = compare(metric, a.pipeline, sa, b.pipeline, sb, rounds)
                if result is not None:
                    found.append(result)
    return found


def write_plots(outcome: ExperimentOutcome, out: Path) -> dict[str, Path]:
    runs = outcome.runs
    drawn = {
        "metrics": plots.metric_bars(runs, quality_metrics(runs)[:10], out / "metrics.png"),
        "recall@k": plots.recall_curves(runs, out / "recall_at_k.png"),
        "chunk sizes": plots.chunk_size_histograms(runs, out / "chunk_sizes.png"),
        "latency": plots.latency_breakdown(runs, out / "latency.png"),
    }
    return {k: v for k, v in drawn.items() if v is not None}


def _table(runs: Sequence[RunOutcome], columns: list[str]) -> tuple[list[str], list[list[str]]]:
    header = ["pipeline", "dataset", *columns]
    rows = [[r.pipeline, r.dataset, *(_fmt(r.metrics.get(c, float("nan")), c) for c in columns)] for r in runs]
    return header, rows


INDEX_COLUMNS = ("documents", "chunks", "mean_tokens", "mean_chars", "max_tokens", "chunking_seconds")


def _index_table(runs: Sequence[RunOutcome]) -> tuple[list[str], list[list[str]]]:
    """Each run's chunks (:attr:`RunOutcome.index_summary`) and whether this invocation built its index."""
    header = ["pipeline", "dataset", *INDEX_COLUMNS, "index"]
    rows = []
    for run in runs:
        summary = run.index_summary
        rows.append([run.pipeline, run.dataset, *(_fmt(summary[c], c) for c in INDEX_COLUMNS),
                     "built" if run.index_built else "from the cache"])
    return header, rows


def _sig_rows(tests: Sequence[PairedComparison]) -> tuple[list[str], list[list[str]]]:
    header = ["metric", "A", "B", "queries", "mean A", "mean B", "A − B", "95% CI", "p (randomisation)",
              "p (bootstrap)"]
    rows = [[t.metric, t.a, t.b, str(t.queries), f"{t.mean_a:.4f}", f"{t.mean_b:.4f}", f"{t.difference:+.4f}",
             f"[{t.ci_low:+.4f}, {t.ci_high:+.4f}]", f"{t.p_randomisation:.4f}", f"{t.p_bootstrap:.4f}"]
            for t in tests]
    return header, rows


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


COST_NOTE = ("Latency: the flow's wall time per query, after one untimed query that loads its models; every query "
             "is embedded anew (not served from the embedding cache), so a pipeline's latency does not depend on "
             "what ran before it. The untimed query's embedding is counted in the embedding model calls; its "
             "generator calls, if the flow generates, are not counted.")
INDEX_TITLE = "Chunks and index"
INDEX_NOTE = ("Chunks in the run's index: count, mean size in tokens and characters, the largest in tokens, and the "
              "seconds chunking took when the index was built — by this invocation, or by the earlier one whose "
              "index was loaded from the cache. Chunkers that embed (semantic, late) read the document embedding "
              "cache: where their vectors were cached, their time is mostly a cache read, and the first to embed may "
              "include loading the model.")


def write_reports(outcome: ExperimentOutcome, out: Path, command: str = "", rounds: int = 10_000) -> dict[str, Path]:
    """Every output file of a run folder; returns their paths by kind."""
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {"metrics.json": write_metrics_json(outcome, out)}
    write_trec_runs(outcome, out)
    tests = comparisons(outcome, rounds)
    (out / "significance.json").write_text(json.dumps([dataclasses.asdict(t) for t in tests], indent=2) + "\n", encoding="utf-8")
    figures = write_plots(outcome, out)
    quality = quality_metrics(outcome.runs)
    q_header, q_rows = _table(outcome.runs, quality)
    chunker_costs = chunker_cost_columns(outcome.runs)
    # generator calls where a flow generates with a model, or when asked for (QA: accepted and shown nowhere)
    generator = [c for c in ("generator_model_calls",)
                 if c in outcome.experiment.metrics or any(r.metrics.get(c) for r in outcome.runs)]
    c_header, c_rows = _table(outcome.runs, [*COST_COLUMNS, *generator, *chunker_costs, "queries"])
    i_header, i_rows = _index_table(outcome.runs)
    s_header, s_rows = _sig_rows(tests)
    exp = outcome.experiment
    llm_chunking = ""
    if chunker_costs:
        calls, unusable = (sum(r.metrics.get(c, 0) for r in outcome.runs) for c in CHUNKER_COST_COLUMNS)
        llm_chunking = f"; chunker LLM calls this run: {calls} (unusable answers: {unusable})"
    intro = (f"{len(outcome.runs)} runs in {outcome.seconds:.1f} s; embedding model calls this run: "
             f"{outcome.embedding_model_calls}{llm_chunking}; indexes built: {len(outcome.indexes_built)}, "
             f"loaded from cache: {len(outcome.indexes_loaded)}.")
    sig_note = ("Paired tests over the queries both pipelines were scored on: sign-flip randomisation and "
                f"bootstrap ({rounds:,} rounds each), two-sided; CI is the bootstrap 95% interval of A − B.")

    span_note = span_protocol_note(outcome)
    if span_note:
        intro += " " + span_note
    md = [f"# {exp.name}", "", intro, ""]
    if command:
        md += ["```", command, "```", ""]
    cost_title = "Cost (context tokens and latency: means per query; model calls and queries: totals)"
    if chunker_costs:
        cost_title = ("Cost (context tokens and latency: means per query; embedding model calls, chunker LLM calls "
                      "and unusable answers, and queries: totals; calls made by this invocation, a chunker's while "
                      "building the run's index: 0 when it was loaded from the cache or built for an earlier run)")
    md += ["## Quality", "", _md_table(q_header, q_rows), "", f"## {cost_title}", "", COST_NOTE, "",
           _md_table(c_header, c_rows), "", f"## {INDEX_TITLE}", "", INDEX_NOTE, "", _md_table(i_header, i_rows), ""]
    if s_rows:
        md += ["## Significance", "", sig_note, "", _md_table(s_header, s_rows), ""]
    md += ["## Plots", ""] + [f"![{k}]({p.name})" for k, p in figures.items()] + [""]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    paths["report.md"] = out / "report.md"

    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}"
             "td:first-child,td:nth-child(2){text-align:left}img{max-width:100%;margin:1em 0}")
    body = [f"<h1>{html.escape(exp.name)}</h1>", f"<p>{html.escape(intro)}</p>"]
    if command:
        body.append(f"<pre>{html.escape(command)}</pre>")
    body += ["<h2>Quality</h2>", _html_table(q_header, q_rows), f"<h2>{html.escape(cost_title)}</h2>",
             f"<p>{html.escape(COST_NOTE)}</p>", _html_table(c_header, c_rows), f"<h2>{html.escape(INDEX_TITLE)}</h2>",
             f"<p>{html.escape(INDEX_NOTE)}</p>", _html_table(i_header, i_rows)]
    if s_rows:
        body += ["<h2>Significance</h2>", f"<p>{html.escape(sig_note)}</p>", _html_table(s_header, s_rows)]
    body += ["<h2>Plots</h2>"] + [f'<figure><img src="{p.name}" alt="{html.escape(k)}"><figcaption>'
                                  f"{html.escape(k)}</figcaption></figure>" for k, p in figures.items()]
    (out / "report.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(exp.name)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n", encoding="utf-8")
    paths["report.html"] = out / "report.html"
    return paths


def print_summary(outcome: ExperimentOutcome, console=None) -> None:
    """A rich table of the quality metrics and costs, one row per pipeline × dataset."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
        console = Console(width=200)
    columns = (quality_metrics(outcome.runs)[:9] + ["latency_ms", "embedding_model_calls"]
               + [c for c in chunker_cost_columns(outcome.runs) if c == "chunker_model_calls"])
    chunk_columns = ("chunks", "mean_tokens", "chunking_seconds")
    table = Table(title=outcome.experiment.name, show_lines=False)
    table.add_column("pipeline", style="bold")
    table.add_column("dataset")
    short = {"embedding_model_calls": "emb calls", "chunker_model_calls": "chunker LLM calls",
             "mean_tokens": "mean tokens", "chunking_seconds": "chunking s"}
    for c in (*columns, *chunk_columns):
        table.add_column(short.get(c, c), justify="right")
    for run in outcome.runs:
        summary = run.index_summary
        table.add_row(escape(run.pipeline), escape(run.dataset),
                      *(_fmt(run.metrics.get(c, float("nan")), c) for c in columns),
                      *(_fmt(summary[c], c) for c in chunk_columns))
    console.print(table)
