"""Shared fixtures. Tests use real components on small data; the embedding cache lives in a temp dir."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test session shares one embedding cache of its own, never the user's."""
    cache = tmp_path_factory.getbasetemp() / "ragloom-cache"
    monkeypatch.setenv("RAGLOOM_CACHE", str(cache))


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory):
    """One tiny random Llama per test session (building and loading it is the slow part), in pytest's temp dir."""
    pytest.importorskip("transformers")
    from rag.lm import CausalLM
    from tests.test_lm import build_tiny_llama

    return CausalLM(str(build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))), max_context_tokens=48)


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip("../shared/datasets is not present")
    return SHARED_DATASETS
import tests.flow_ops  # noqa: F401  (registers the t_* operators)
