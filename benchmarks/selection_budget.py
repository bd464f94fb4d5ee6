"""Budgeted selection vs topk: span recall / nDCG of the selected context at several token budgets, and the
cost of each strategy per query at 100 candidates.

First stage (identical for every strategy): token chunker, bundled MiniLM, exact cosine, top 100 chunks.
chroma-chunking is scored on characters (gold spans, evals.metrics.span_scores); BEIR datasets with qrels on
the documents of the context (nDCG@10 of the context's document order, and the share of gold documents in it).

    HF_HUB_OFFLINE=1 python benchmarks/selection_budget.py --dataset chroma-chunking --chunk-size 128
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

from chunkers.token import TokenChunker  # noqa: E402
from evals.datasets import load_beir  # noqa: E402
from evals.metrics import dedupe_ranking, mean, ndcg_at_k, span_scores  # noqa: E402
from rag.embedding import Embedder  # noqa: E402
from rag.operators import RunContext  # noqa: E402
from rag.registry import create  # noqa: E402
from rag.resources import Resources  # noqa: E402
from rag.tokens import get_tokenizer  # noqa: E402
from rag.types import Chunk, Hit  # noqa: E402
from retrievers.filtering import indexed_text  # noqa: E402
from retrievers.select import STRATEGIES  # noqa: E402

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def document_chunks(documents) -> list[Chunk]:
    """One chunk per document (variable sizes), its token count measured like a chunker's (and so recorded)."""
    tokens = get_tokenizer()
    return [Chunk(f"{d.id}#0", d.id, d.text, 0, len(d.text), tokens.count(d.text), dict(d.metadata), tokens.identity)
            for d in documents]


def first_stage(dataset, chunk_size: int, overlap: int, top_k: int, limit: int | None,
                with_title: bool | None = None):
    """Exact cosine top ``top_k``. Chunks are embedded as ``dense`` embeds them: token chunks as their text only
    (``with_title: false``, the chunking protocol), whole documents as title + " " + text (the BEIR protocol)."""
    if chunk_size > 0:
        chunks = TokenChunker(chunk_size=chunk_size, overlap=overlap).chunk_documents(dataset.documents)
    else:
        chunks = document_chunks(dataset.documents)
    with_title = chunk_size == 0 if with_title is None else with_title
    texts = [indexed_text(c, with_title=with_title) for c in chunks]
    embedder = Embedder("minilm")
    started = time.perf_counter()
    vectors = embedder.embed(texts, show_progress=False)
    queries = dataset.queries[:limit] if limit else dataset.queries
    qvecs = embedder.embed_queries([q.text for q in queries])
    print(f"# {len(chunks)} chunks, {len(queries)} queries, embedding {time.perf_counter() - started:.1f}s",
          file=sys.stderr)
    scores = qvecs @ vectors.T
    top = np.argsort(-scores, axis=1)[:, :top_k]
    return queries, [tuple(Hit(chunks[j], float(scores[i, j]), "dense") for j in row) for i, row in enumerate(top)]


def evaluate(dataset, queries, candidates, strategy: str, budget: int, params: dict) -> dict[str, float]:
    op = create("select", {"budget_tokens": budget, "strategy": strategy, "when_nothing_fits": "empty", **params})
    ctx = RunContext(None, Resources())
    started = time.perf_counter()
    for hits in candidates:  # first pass: token counts of every candidate computed once (cold)
        op.select(hits, ctx)
    cold = time.perf_counter() - started
    rows, seconds, tokens = [], 0.0, []
    for query, hits in zip(queries, candidates):  # second pass (warm caches), timed per call
        started = time.perf_counter()
        context, summary = op.select(hits, ctx)
        seconds += time.perf_counter() - started
        tokens.append(summary["tokens"])
        if query.references:
            spans = span_scores([(h.chunk.doc_id, h.chunk.start, h.chunk.end) for h in context], query.references)
            rows.append({"span_recall": spans.recall, "span_precision": spans.precision, "span_iou": spans.iou})
        qrels = dataset.qrels.get(query.id)
        if qrels:
            docs = dedupe_ranking(h.chunk.doc_id for h in context)
            gold = {d for d, r in qrels.items() if r > 0}
            rows.append({"nDCG@10": ndcg_at_k(docs, qrels, 10), "doc_recall": len(gold & set(docs)) / len(gold)})
    metrics = {k: mean(r[k] for r in rows if k in r) for k in {k for r in rows for k in r}}
    metrics["ms_per_query"] = 1000 * seconds / len(queries)
    metrics["cold_ms_per_query"] = 1000 * cold / len(queries)
    metrics["mean_tokens"] = float(np.mean(tokens))
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="chroma-chunking")
    parser.add_argument("--chunk-size", type=int, default=128, help="token chunker size; 0 = whole documents")
    parser.add_argument("--overlap", type=int, default=0)
    parser.add_argument("--title", choices=["auto", "on", "off"], default="auto",
                        help="embed title + text (auto: only for whole documents, like the protocols)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--limit", type=int, default=None, help="first N queries only")
    parser.add_argument("--no-merge", action="store_true")
    parser.add_argument("--neighbour-weight", type=float, default=0.0)
    parser.add_argument("--smoothing", type=float, default=0.3, help="strategy smoothed: neighbour share")
    parser.add_argument("--normalization", default="rank", choices=["rank", "minmax", "raw"])
    args = parser.parse_args()

    dataset = load_beir(DATASETS / args.dataset if not Path(args.dataset).exists() else args.dataset)
    queries, candidates = first_stage(dataset, args.chunk_size, args.overlap, args.candidates, args.limit,
                                     {"auto": None, "on": True, "off": False}[args.title])
    params = {"merge_adjacent": not args.no_merge, "neighbour_weight": args.neighbour_weight,
              "normalization": args.normalization, "smoothing": args.smoothing}
    keys = ["span_recall", "span_iou"] if any(q.references for q in queries) else ["nDCG@10", "doc_recall"]
    chunking = f"token chunker {args.chunk_size} (overlap {args.overlap})" if args.chunk_size else "whole documents"
    print(f"\n{args.dataset}: {chunking}, MiniLM top "
          f"{args.candidates}, merge_adjacent={not args.no_merge}, neighbour_weight={args.neighbour_weight}, "
          f"normalization={args.normalization}, smoothing={args.smoothing}\n")
    print("| budget | strategy | " + " | ".join(keys) + " | Δ " + keys[0] + " vs topk | tokens | ms/query (warm) | ms/query (cold) |")
    print("|---|---|" + "---|" * (len(keys) + 4))
    for budget in args.budgets:
        base = None
        for strategy in args.strategies:
            m = evaluate(dataset, queries, candidates, strategy, budget, params)
            base = m[keys[0]] if strategy == "topk" else base
            delta = f"{m[keys[0]] - base:+.3f}" if base is not None else ""
            cells = " | ".join(f"{m[k]:.3f}" for k in keys)
            print(f"| {budget} | {strategy} | {cells} | {delta} | {m['mean_tokens']:.0f} | {m['ms_per_query']:.2f} | {m['cold_ms_per_query']:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
