"""Paired significance tests between two pipelines' per-query scores."""
from __future__ import annotations

import numpy as np
import pytest

from evals.significance import compare, paired_bootstrap, randomisation_test


def test_identical_systems_are_not_significantly_different():
    a = [0.1, 0.5, 0.9, 0.3]
    assert randomisation_test(a, a) == 1.0
    assert paired_bootstrap(a, a)[0] == 1.0


def test_a_consistent_improvement_is_significant_and_its_interval_excludes_zero():
    rng = np.random.default_rng(1)
    b = rng.uniform(0, 0.5, size=40)
    a = b + rng.uniform(0.05, 0.15, size=40)
    assert randomisation_test(a, b, rounds=2000) < 0.01
    p, low, high = paired_bootstrap(a, b, rounds=2000)
    assert p < 0.01 and 0 < low < high


def test_randomisation_p_value_matches_exact_enumeration_on_few_queries():
    # with 4 queries all 16 sign vectors can be enumerated exactly
    d = np.array([0.3, 0.1, -0.05, 0.2])
    signs = np.array(np.meshgrid(*[[-1, 1]] * 4)).reshape(4, -1).T
    exact = np.mean(np.abs(signs @ d) >= abs(d.sum()) - 1e-12)
    assert randomisation_test(d, np.zeros(4), rounds=20_000) == pytest.approx(exact, abs=0.02)


def test_compare_uses_only_queries_scored_for_both():
    result = compare("nDCG@10", "A", {"q1": 1.0, "q2": 0.0, "q3": 1.0}, "B", {"q1": 0.0, "q2": 0.0}, rounds=500)
    assert result.queries == 2 and result.difference == pytest.approx(0.5)
    assert compare("m", "A", {"q1": 1.0}, "B", {"q2": 1.0}) is None
