"""Rerankers on top of hybrid retrieval (BEIR qrels): nDCG@10 / R@10 of a hybrid first stage alone vs + the
late_interaction reranker (MaxSim over MiniLM tokens) in its default setting and with one setting changed at a
time, vs + mmr; a paired randomisation test of each reranked row against its first stage; reranking time per query.

Two first stages, both ragloom's own operators over whole documents (``title + " " + text`` indexed, top 100 per
retriever; the runs are those of benchmarks/retrieval_quality.py, cached in runs/retrieval_quality/):
- reference hybrid: bm25 + dense fused by RRF k = 60 (REFERENCE.md's protocol),
- default hybrid (configs/pipelines/hybrid.yaml): bm25 with identifier splitting + dense, convex zscore fusion
  with confidence weighting and anchor = dense.
A dataset with gold spans (chroma-chunking) is instead chunked (token chunker 128, overlap 0), retrieved by
MiniLM exact cosine over the chunk texts (top 100; REFERENCE.md's chunking protocol) and scored by span recall /
IoU of the top 5 chunks.

    HF_HUB_OFFLINE=1 python benchmarks/selection_rerank.py --datasets scifact hotpotqa-100 cosqa chroma-chunking
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
from chunkers.token import TokenChunker  # noqa: E402
from evals.metrics import dedupe_ranking, ndcg_at_k, recall_at_k, span_scores  # noqa: E402
from rag.embedding import Embedder  # noqa: E402
from evals.significance import randomisation_test  # noqa: E402
from rag.operators import RunContext  # noqa: E402
from rag.registry import create  # noqa: E402
from rag.resources import Resources  # noqa: E402
from rag.state import QueryState  # noqa: E402
from rag.types import Hit  # noqa: E402
from retrieval_quality import DATASETS, document_chunks, runs_for  # noqa: E402
from retrievers.fusion import convex_combination, reciprocal_rank_fusion  # noqa: E402

RUNS = Path(__file__).resolve().parents[1] / "runs" / "retrieval_quality"

#: first stage label → (lexical run, fusion of [lexical hits, dense hits])
FIRST_STAGES = {
    "reference hybrid (bm25 + dense, RRF k 60)": ("bm25", lambda lists: reciprocal_rank_fusion(lists, 60)),
    "default hybrid (bm25 split + dense, convex zscore confidence anchor=dense)": (
        "bm25 split", lambda lists: convex_combination(lists, "zscore", weighting="confidence", anchor=1)),
}

#: row label → late_interaction params changed from the defaults (candidates is added from --candidates)
LATE_INTERACTION = {
    "+ late_interaction (default: title, windows, fuse zscore 0.5)": {},
    "  … fuse rrf": {"fuse": "rrf"},
    "  … fuse replace (MaxSim alone)": {"fuse": "replace"},
    "  … with_title false": {"with_title": False},
    "  … long_chunks truncate": {"long_chunks": "truncate"},
    "+ late_interaction as before (no title, truncate, fuse rrf)": {"with_title": False, "long_chunks": "truncate",
                                                                     "fuse": "rrf"},
}


def first_stage_hits(dataset, queries, lexical: str, fuse) -> list[tuple[Hit, ...]]:
    """Each query's fused top 100, as hits on the real document chunks (text and title metadata)."""
    runs = runs_for(dataset.name, RUNS)["runs"]
    chunk_of = {c.doc_id: c for c in document_chunks(dataset)}
    out = []
    for query in queries:
        lists = [[Hit(chunk_of[doc], score, run) for doc, score in runs[run][query.id]]
                 for run in (lexical, "dense")]
        out.append(tuple(Hit(chunk_of[h.chunk.doc_id], h.score, h.source) for h in fuse(lists)[:100]))
    return out


def chunk_first_stage(dataset, queries, chunk_size: int = 128) -> list[tuple[Hit, ...]]:
    """MiniLM exact-cosine top 100 over token chunks of the chunk texts (the chunking protocol)."""
    chunks = TokenChunker(chunk_size=chunk_size, overlap=0).chunk_documents(dataset.documents)
    embedder = Embedder("minilm")
    scores = embedder.embed_queries([q.text for q in queries]) @ embedder.embed([c.text for c in chunks]).T
    return [tuple(Hit(chunks[j], float(row[j]), "dense") for j in np.argsort(-row)[:100]) for row in scores]


def per_query_scores(dataset, queries, rankings) -> tuple[np.ndarray, np.ndarray]:
    """(nDCG@10, R@10) of the documents per query — or, for gold spans, (span recall, IoU) of the top 5 chunks."""
    first, second = [], []
    for query, hits in zip(queries, rankings):
        if query.references:
            spans = span_scores([(h.chunk.doc_id, h.chunk.start, h.chunk.end) for h in hits[:5]], query.references)
            first.append(spans.recall)
            second.append(spans.iou)
            continue
        qrels = dataset.qrels.get(query.id, {})
        docs = dedupe_ranking(h.chunk.doc_id for h in hits)
        first.append(ndcg_at_k(docs, qrels, 10))
        second.append(recall_at_k(docs, qrels, 10))
    return np.array(first), np.array(second)


def timed_rerank(op, queries, candidates, ctx) -> tuple[list, list[float]]:
    """Rankings and ms/query of two passes (cold: chunk token embeddings not yet cached; warm: cached)."""
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        rankings = [op(QueryState(q.text, hits=hits), ctx).hits for q, hits in zip(queries, candidates)]
        timings.append(1000 * (time.perf_counter() - started) / len(queries))
    return rankings, timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["scifact", "hotpotqa-100", "cosqa"])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--candidates", type=int, default=30, help="hits each reranker rescores")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads (1: on a 2-core machine shared with other jobs, more threads "
                             "spin against each other — a one-query forward pass took ~1 s with 2, ~20 ms with 1)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.torch_threads)
    ctx = RunContext(None, Resources())
    shared = create("late_interaction")  # one token-embedding cache for every row: its keys name the settings
    for name in args.datasets:
        dataset = load_beir(DATASETS / name)
        queries = [q for q in dataset.queries if dataset.qrels.get(q.id) or q.references][: args.limit]
        spans = all(q.references for q in queries)
        metric, second = ("span recall@5", "IoU@5") if spans else ("nDCG@10", "R@10")
        print(f"\n{name}: {len(queries)} queries, first stage top 100, rerankers rescore the top {args.candidates}\n")
        print(f"| pipeline | {metric} | {second} | Δ {metric} | p (randomisation) | rerank ms/query (cold) "
              "| rerank ms/query (warm) |")
        print("|---|---|---|---|---|---|---|")
        stages = ({"dense MiniLM (token chunks 128)": None} if spans else FIRST_STAGES)
        for stage, spec in stages.items():
            candidates = (chunk_first_stage(dataset, queries) if spec is None
                          else first_stage_hits(dataset, queries, *spec))
            base, base_recall = per_query_scores(dataset, queries, candidates)
            print(f"| {stage} | {base.mean():.3f} | {base_recall.mean():.3f} | – | – | – | – |", flush=True)
            rows = {label: ("late_interaction", {**params, "candidates": args.candidates})
                    for label, params in LATE_INTERACTION.items()}
            rows["+ mmr (λ 0.7)"] = ("mmr", {"lambda": 0.7, "candidates": args.candidates})
            for label, (op_name, params) in rows.items():
                op = create(op_name, params)
                if op_name == "late_interaction":
                    op.cache, op._st = shared.cache, shared._model(ctx)
                rankings, (cold, warm) = timed_rerank(op, queries, candidates, ctx)
                ndcg, recall = per_query_scores(dataset, queries, rankings)
                p = randomisation_test(ndcg, base)
                print(f"| {label} | {ndcg.mean():.3f} | {recall.mean():.3f} | {ndcg.mean() - base.mean():+.3f} "
                      f"| {p:.3f} | {cold:.1f} | {warm:.1f} |", flush=True)


if __name__ == "__main__":
    main()
