"""ragloom evals: turn an experiment YAML into numbers people can trust and pictures they can read.

- :mod:`evals.metrics` — every metric, defined once with its formula (ranking, span, answer);
- :mod:`evals.datasets` — BEIR folders and users' own document folders, validated on load;
- :mod:`evals.experiment` — experiment files and parameter grids;
- :mod:`evals.index_cache` — indexes shared across pipelines and kept on disk between runs;
- :mod:`evals.runner` — runs pipelines × datasets query by query, resumable;
- :mod:`evals.significance` — paired randomisation and bootstrap tests;
- :mod:`evals.report`, :mod:`evals.plots` — metrics.json, TREC runs, report.md / report.html, PNG plots;
- :mod:`evals.cli` — ``ragloom eval EXPERIMENT.yaml [--out DIR] [--limit N]``.
"""
