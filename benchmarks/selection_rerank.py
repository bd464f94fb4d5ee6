"""Rerankers on top of hybrid retrieval (BEIR qrels): nDCG@10 / R@10 of hybrid alone vs + late_interaction
(MaxSim over MiniLM tokens, fused by RRF or alone) vs + mmr, and the reranking time per query.

Hybrid first stage, as in /work/shared/REFERENCE.md: bm25s (k1 0.9, b 0.4, English stopwords + PyStemmer) and
MiniLM (title + " " + text, exact cosine), each top 100, fused by RRF k = 60; whole documents are the chunks.

    HF_HUB_OFFLINE=1 python benchmarks/selection_rerank.py --dataset scifact
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from evals.datasets import load_beir  # noqa: E402
from evals.metrics import dedupe_ranking, mean, ndcg_at_k, recall_at_k  # noqa: E402
from rag.embedding import Embedder  # noqa: E402
from rag.operators import RunContext  # noqa: E402
from rag.registry import create  # noqa: E402
from rag.resources import Resources  # noqa: E402
from rag.state import QueryState  # noqa: E402
from rag.types import Hit  # noqa: E402
from selection_budget import DATASETS, document_chunks  # noqa: E402


def hybrid_candidates(dataset, queries, top_k: int = 100):
    import bm25s
    import Stemmer

    chunks, texts = document_chunks(dataset.documents)
    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25(k1=0.9, b=0.4)
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    bm_ids, _ = retriever.retrieve(bm25s.tokenize([q.text for q in queries], stopwords="en", stemmer=stemmer,
                                                  show_progress=False), k=top_k, show_progress=False)
    embedder = Embedder("minilm")
    vectors = embedder.embed(texts)
    scores = embedder.embed_queries([q.text for q in queries]) @ vectors.T
    dense_ids = np.argsort(-scores, axis=1)[:, :top_k]
    out = []
    for bm_row, dense_row in zip(bm_ids, dense_ids):
        fused: dict[int, float] = {}
        for row in (bm_row, dense_row):
            for rank, j in enumerate(row):
                fused[int(j)] = fused.get(int(j), 0.0) + 1.0 / (60 + rank + 1)
        best = sorted(fused, key=lambda j: -fused[j])[:top_k]
        out.append(tuple(Hit(chunks[j], fused[j], "rrf") for j in best))
    return out


def scores_of(dataset, queries, rankings) -> dict[str, float]:
    rows = []
    for query, hits in zip(queries, rankings):
        qrels = dataset.qrels.get(query.id, {})
        docs = dedupe_ranking(h.chunk.doc_id for h in hits)
        rows.append((ndcg_at_k(docs, qrels, 10), recall_at_k(docs, qrels, 10)))
    return {"nDCG@10": mean(r[0] for r in rows), "R@10": mean(r[1] for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--candidates", type=int, default=30, help="hits each reranker rescores")
    args = parser.parse_args()
    dataset = load_beir(DATASETS / args.dataset)
    queries = [q for q in dataset.queries if dataset.qrels.get(q.id)][: args.limit]
    candidates = hybrid_candidates(dataset, queries)
    ctx = RunContext(None, Resources())
    rerankers = {
        "hybrid (bm25s + MiniLM, RRF)": None,
        f"+ late_interaction (fuse rrf, top {args.candidates})": ("late_interaction", {"candidates": args.candidates}),
        f"+ late_interaction (fuse replace, top {args.candidates})": ("late_interaction",
                                                                     {"candidates": args.candidates, "fuse": "replace"}),
        f"+ mmr (λ 0.7, top {args.candidates})": ("mmr", {"lambda": 0.7, "candidates": args.candidates}),
    }
    print(f"\n{args.dataset}: {len(queries)} queries, hybrid top 100\n")
    print("| pipeline | nDCG@10 | R@10 | rerank ms/query (cold) | rerank ms/query (warm) |")
    print("|---|---|---|---|---|")
    shared_op = {}
    for label, spec in rerankers.items():
        if spec is None:
            m = scores_of(dataset, queries, candidates)
            print(f"| {label} | {m['nDCG@10']:.3f} | {m['R@10']:.3f} | – | – |", flush=True)
            continue
        name, params = spec
        op = create(name, params)
        if name in shared_op:  # same model: share the chunk token-embedding cache (its "cold" pass is warm)
            op.cache, op._st = shared_op[name].cache, shared_op[name]._st
        shared_op.setdefault(name, op)
        timings = []
        for passno in range(2):
            started = time.perf_counter()
            rankings = [op(QueryState(q.text, hits=hits), ctx).hits for q, hits in zip(queries, candidates)]
            timings.append(1000 * (time.perf_counter() - started) / len(queries))
        m = scores_of(dataset, queries, rankings)
        print(f"| {label} | {m['nDCG@10']:.3f} | {m['R@10']:.3f} | {timings[0]:.1f} | {timings[1]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
