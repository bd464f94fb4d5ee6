"""Is pipeline A really better than pipeline B on these queries? Paired tests on per-query scores.

- Paired randomisation (permutation) test (Fisher; Smucker, Allan & Carterette 2007, "A comparison of
  statistical significance tests for information retrieval evaluation"): under H0 the sign of each per-query
  difference d_i = a_i − b_i is exchangeable; p = (1 + #{|mean(s·d)| ≥ |mean(d)|}) / (1 + R) over R random
  sign vectors s ∈ {−1, +1}^n (two-sided).
- Paired bootstrap (Efron & Tibshirani 1993; Sakai 2006): resample queries with replacement, giving a 95%
  percentile interval for mean(d) and p = share of resamples whose mean difference has the opposite sign
  (two-sided: doubled, capped at 1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True, slots=True)
class PairedComparison:
    metric: str
    a: str
    b: str
    queries: int
    mean_a: float
    mean_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_randomisation: float
    p_bootstrap: float


def randomisation_test(a: Sequence[float], b: Sequence[float], rounds: int = 10_000, seed: int = 0) -> float:
    """Two-sided paired sign-flip randomisation test p-value for mean(a − b) = 0."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.size == 0 or not np.any(d):
        return 1.0
    observed = abs(d.mean())
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, rounds, 1000):  # chunks keep memory at 1000 × n
        n = min(1000, rounds - start)
        signs = rng.integers(0, 2, size=(n, d.size), dtype=np.int8) * 2 - 1
        hits += int(np.count_nonzero(np.abs(signs @ d) / d.size >= observed - 1e-12))
    return (1 + hits) / (1 + rounds)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], rounds: int = 10_000,
                     seed: int = 0) -> tuple[float, float, float]:
    """(p-value, 2.5th percentile, 97.5th percentile) of the bootstrapped mean difference mean(a − b)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.size == 0:
        return 1.0, 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = np.empty(rounds)
    for start in range(0, rounds, 1000):
        n = min(1000, rounds - start)
        idx = rng.integers(0, d.size, size=(n, d.size))
        means[start:start + n] = d[idx].mean(axis=1)
    observed = d.mean()
    if observed == 0:
        p = 1.0
    else:
        opposite = np.count_nonzero(means <= 0) if observed > 0 else np.count_nonzero(means >= 0)
        p = min(1.0, 2 * (opposite + 1) / (rounds + 1))
    low, high = np.percentile(means, [2.5, 97.5])
    return float(p), float(low), float(high)


def compare(metric: str, name_a: str, scores_a: dict[str, float], name_b: str, scores_b: dict[str, float],
            rounds: int = 10_000) -> PairedComparison | None:
    """Compare two pipelines on the queries both were scored on; None if they share no query."""
    shared = [q for q in scores_a if q in scores_b]
    if not shared:
        return None
    a = np.array([scores_a[q] for q in shared])
    b = np.array([scores_b[q] for q in shared])
    p_boot, low, high = paired_bootstrap(a, b, rounds)
    return PairedComparison(metric, name_a, name_b, len(shared), float(a.mean()), float(b.mean()),
                            float((a - b).mean()), low, high, randomisation_test(a, b, rounds), p_boot)
