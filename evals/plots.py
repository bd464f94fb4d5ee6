"""PNG figures for the report (matplotlib, Agg backend: no display needed).

Each function takes run outcomes and a target path, draws one figure, and returns the path (or None when the
runs have nothing to draw, e.g. no recall curve on a span-only dataset).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from evals.runner import RECALL_CURVE_KS, RunOutcome


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def metric_bars(runs: Sequence[RunOutcome], metrics: Sequence[str], path: Path) -> Path | None:
    """Grouped bars: one group per metric, one bar per pipeline × dataset."""
    metrics = [m for m in metrics if any(m in r.metrics for r in runs)]
    if not metrics:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(metrics) + 2), 4))
    width = 0.8 / max(1, len(runs))
    x = np.arange(len(metrics))
    for i, run in enumerate(runs):
        values = [run.metrics.get(m, np.nan) for m in metrics]
        bars = ax.bar(x + i * width - 0.4 + width / 2, values, width, label=f"{run.pipeline} · {run.dataset}")
        ax.bar_label(bars, fmt="%.3f", fontsize=6, rotation=90, padding=2)
    ax.set_xticks(x, metrics)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("score")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    ax.set_title("metrics per pipeline")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def recall_curve_ks(documents: int) -> list[int]:
    """The k of :data:`RECALL_CURVE_KS` worth drawing for a corpus of ``documents``: those below it and the first
    at or above it (0: unknown, all of them)."""
    ks = [k for k in RECALL_CURVE_KS if not documents or k < documents]
    return ks + [k for k in RECALL_CURVE_KS if k not in ks][:1]


def recall_curves(runs: Sequence[RunOutcome], path: Path) -> Path | None:
    """Mean recall@k against k (log scale), one line per pipeline × dataset; k up to the first that reaches
    every document of the largest corpus (beyond it recall cannot change: QA, k = 100 drawn on 5 documents)."""
    drawable = [r for r in runs if any(rec["recall_curve"] for rec in r.records)]
    if not drawable:
        return None
    ks = recall_curve_ks(max(r.documents for r in drawable))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for run in drawable:
        curves = [rec["recall_curve"] for rec in run.records if rec["recall_curve"]]
        means = [float(np.mean([c[str(k)] for c in curves])) for k in ks]
        ax.plot(ks, means, marker="o", label=f"{run.pipeline} · {run.dataset}")
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("k (documents)")
    ax.set_ylabel("recall@k")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("recall@k")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def chunk_size_histograms(runs: Sequence[RunOutcome], path: Path) -> Path | None:
    """Histogram of chunk sizes in tokens, one per distinct index (pipelines sharing an index drawn once)."""
    seen: dict[tuple, str] = {}
    for run in runs:
        key = (run.dataset, tuple(run.chunk_tokens[:50]), len(run.chunk_tokens))
        if run.chunk_tokens and key not in seen:
            seen[key] = run.pipeline
    if not seen:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    series = [(f"{p} · {d}", next(r.chunk_tokens for r in runs if r.pipeline == p and r.dataset == d))
              for (d, _, _), p in seen.items()]
    bins = np.histogram_bin_edges(np.concatenate([s for _, s in series]), bins=50)  # shared bins: comparable bars
    for label, sizes in series:
        ax.hist(sizes, bins=bins, alpha=0.5, label=f"{label} (n={len(sizes)})")
    ax.set_xlabel("chunk size (tokens)")
    ax.set_ylabel("chunks")
    ax.legend(fontsize=7)
    ax.set_title("chunk sizes")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def latency_breakdown(runs: Sequence[RunOutcome], path: Path) -> Path | None:
    """Stacked horizontal bars: mean milliseconds per query spent in each top-level flow step."""
    if not any(rec["stages"] for run in runs for rec in run.records):
        return None
    plt = _pyplot()
    stages = list(dict.fromkeys(s for run in runs for rec in run.records for s in rec["stages"]))
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(runs) + 1.8))
    labels = [f"{r.pipeline} · {r.dataset}" for r in runs]
    left = np.zeros(len(runs))
    for stage in stages:
        ms = np.array([1000 * np.mean([rec["stages"].get(stage, 0.0) for rec in r.records]) if r.records else 0.0
                       for r in runs])
        ax.barh(labels, ms, left=left, label=stage)
        left += ms
    ax.set_xlabel("mean ms per query")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    ax.set_title("latency by step")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
