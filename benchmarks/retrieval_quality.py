"""Retrieval quality of ragloom's bm25 / dense retrievers and fusion merges on the shared BEIR sets.

Uses the operators directly (one chunk per document, ``title + " " + text`` indexed, exact search, top 100
per retriever) and the metrics of ``evals.metrics``. Each retriever's runs are computed once per dataset and
kept in ``--cache`` (JSON), so fusion variants are compared on identical inputs.

    HF_HUB_OFFLINE=1 python benchmarks/retrieval_quality.py --datasets scifact hotpotqa-100 cosqa
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from evals.datasets import load_beir  # noqa: E402
from evals.metrics import mean, ranking_scores  # noqa: E402
from rag.operators import RunContext  # noqa: E402
from rag.resources import Resources  # noqa: E402
from rag.state import QueryState  # noqa: E402
from rag.types import Chunk, Hit, chunk_id  # noqa: E402
from retrievers.bm25 import BM25Index  # noqa: E402
from retrievers.dense import DenseIndex  # noqa: E402
from retrievers.fusion import convex_combination, reciprocal_rank_fusion  # noqa: E402

DATASETS = Path("/work/shared/datasets")
METRICS = ["nDCG@10", "R@2", "R@5", "R@10", "R@100", "MRR@10"]


class ChunkStore:
    def __init__(self, chunks, **structures):
        self.chunks = {c.id: c for c in chunks}
        self.structures = structures

    def structure(self, name):
        return self.structures[name]

    def chunk(self, cid):
        return self.chunks[cid]


def document_chunks(dataset) -> list[Chunk]:
    return [Chunk(chunk_id(d.id, 0), d.id, d.text, 0, len(d.text), 0, dict(d.metadata)) for d in dataset.documents]


#: run name -> (structure / retriever name, structure params). "bm25 split" also indexes the parts of
#: snake_case / camelCase identifiers (the analyzer's ``split_identifiers``), which matters for code.
RETRIEVERS = {
    "bm25": ("bm25", {}),
    "bm25 split": ("bm25", {"analyzer": {"split_identifiers": True}}),
    "dense": ("dense", {}),
}


def runs_for(name: str, cache: Path, top_k: int = 100) -> dict:
    """{"runs": {run name: {query id: [[doc id, score], ...]}}, "qrels", "timing"} for every run of
    :data:`RETRIEVERS`; computed once per run and kept in ``cache/<name>.json`` (missing runs are added)."""
    path = cache / f"{name}.json"
    data = json.loads(path.read_text()) if path.exists() else {"runs": {}, "qrels": None, "timing": {}}
    missing = [r for r in RETRIEVERS if r not in data["runs"]]
    if not missing:
        return data
    from rag.registry import create

    dataset = load_beir(DATASETS / name)
    chunks = document_chunks(dataset)
    resources = Resources(embedder={"model": "minilm"})
    for run in missing:
        retriever, params = RETRIEVERS[run]
        structure = (BM25Index if retriever == "bm25" else DenseIndex)(**params)
        start = time.perf_counter()
        structure.add(chunks, resources)
        data["timing"][f"{run}_index_s"] = time.perf_counter() - start
        ctx = RunContext(ChunkStore(chunks, **{retriever: structure}), resources)
        op = create(retriever, {"top_k": top_k}, kinds="retriever")
        if retriever == "dense":  # one batched call fills the query-embedding cache the operator reads
            resources.embedder.embed_queries([q.text for q in dataset.queries])
        start = time.perf_counter()
        data["runs"][run] = {q.id: [[h.chunk.doc_id, h.score] for h in op(QueryState(q.text), ctx).hits]
                             for q in dataset.queries}
        data["timing"][f"{run}_query_s"] = time.perf_counter() - start
    data["qrels"] = dataset.qrels
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return data


def as_hits(ranked: list, source: str) -> list[Hit]:
    return [Hit(Chunk(doc, doc, "", 0, 0, 0), score, source) for doc, score in ranked]


def evaluate(ranked_by_query: dict[str, list[str]], qrels: dict) -> dict[str, float]:
    per_query = [ranking_scores(ranked_by_query.get(q, []), rel, METRICS) for q, rel in qrels.items()]
    return {m: mean(s[m] for s in per_query) for m in METRICS}


def fusion_variants() -> dict:
    """name → function(list of hit lists: [lexical, dense]) → fused hits. The last one is the default merge of
    configs/pipelines/hybrid.yaml."""

    return {
        "rrf k=60": lambda lists: reciprocal_rank_fusion(lists, 60),
        "convex minmax": lambda lists: convex_combination(lists, "minmax"),
        "convex zscore": lambda lists: convex_combination(lists, "zscore"),
        "convex dbsf": lambda lists: convex_combination(lists, "dbsf"),
        "convex minmax confidence": lambda lists: convex_combination(lists, "minmax", weighting="confidence"),
        "convex zscore confidence": lambda lists: convex_combination(lists, "zscore", weighting="confidence"),
        "convex zscore anchor=dense": lambda lists: convex_combination(lists, "zscore", anchor=1),
        "convex zscore confidence anchor=dense": lambda lists: convex_combination(
            lists, "zscore", weighting="confidence", anchor=1),
    }


#: lexical run fused with dense, and the prefix of its fused rows
LEXICAL_RUNS = {"bm25": "", "bm25 split": "split + "}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["scifact", "hotpotqa-100", "cosqa"])
    parser.add_argument("--cache", type=Path, default=Path("runs/retrieval_quality"))
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()

    try:
        variants = fusion_variants()
    except ImportError:
        variants = {}
    rows = []
    for name in args.datasets:
        data = runs_for(name, args.cache)
        runs, qrels = data["runs"], data["qrels"]
        systems = {r: {q: [d for d, _ in ranked] for q, ranked in runs[r].items()} for r in runs}
        for lexical, prefix in LEXICAL_RUNS.items():
            for label, fuse in variants.items():
                systems[prefix + label] = {
                    q: [h.chunk.doc_id for h in fuse([as_hits(runs[lexical][q], "bm25"),
                                                      as_hits(runs["dense"][q], "dense")])]
                    for q in runs[lexical]}
        for label, ranked in systems.items():
            scores = evaluate(ranked, qrels)
            rows.append((name, label, scores))
            print(f"{name:13s} {label:45s} " + " ".join(f"{m}={scores[m]:.3f}" for m in METRICS), flush=True)
        print(f"{name:13s} timing " + json.dumps({k: round(v, 2) for k, v in data["timing"].items()}))
    if args.markdown:
        print("\n| dataset | system | " + " | ".join(METRICS) + " |")
        print("|---|---|" + "---|" * len(METRICS))
        for name, label, scores in rows:
            print(f"| {name} | {label} | " + " | ".join(f"{scores[m]:.3f}" for m in METRICS) + " |")


if __name__ == "__main__":
    main()
