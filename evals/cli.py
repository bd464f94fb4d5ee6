"""``ragloom eval EXPERIMENT.yaml [--out DIR] [--limit N]``: run an experiment and write its report."""
from __future__ import annotations

import argparse
import os
import shlex
import time
from pathlib import Path
from typing import Sequence

from rag.errors import RagloomError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ragloom eval",
        description="Run every pipeline of an experiment on every dataset and write metrics.json, "
                    "per_query.jsonl, TREC run files, report.md / report.html and plots into --out.")
    parser.add_argument("experiment", help="experiment YAML (name, datasets, pipelines, metrics, limit)")
    parser.add_argument("--out", help="run folder (default: runs/<experiment name>); an interrupted run in the "
                                      "same folder resumes; a folder holding another experiment's results is "
                                      "refused")
    parser.add_argument("--limit", type=int, help="only the first N queries of each dataset (quick run)")
    parser.add_argument("--cache-dir", help="where built indexes are kept (default $RAGLOOM_CACHE/eval-indexes)")
    parser.add_argument("--rounds", type=int, default=10_000, help="randomisation / bootstrap rounds")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str]) -> int:
    """Entry point used by ``rag.cli`` for the ``eval`` subcommand; returns the exit code."""
    args = build_parser().parse_args(list(argv))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.limit is not None and args.limit < 1:
        raise RagloomError("--limit must be a positive number of queries")
    if args.rounds < 1:
        raise RagloomError(f"--rounds must be a positive number of randomisation / bootstrap rounds, got {args.rounds}")
    from evals.experiment import load_experiment
    from evals.report import print_summary, write_reports
    from evals.runner import run_experiment

    experiment = load_experiment(args.experiment)
    out = Path(args.out or Path("runs") / experiment.name)
    started = time.perf_counter()
    outcome = run_experiment(experiment, out, limit=args.limit, cache_dir=args.cache_dir,
                             progress=not args.no_progress)
    command = "ragloom eval " + " ".join(shlex.quote(a) for a in argv)
    paths = write_reports(outcome, out, command=command, rounds=args.rounds)
    print_summary(outcome)
    print(f"wrote {', '.join(str(p) for p in paths.values())} ({time.perf_counter() - started:.1f} s)")
    return 0
