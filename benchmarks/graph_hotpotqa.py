"""Graph retrieval on hotpotqa-100: recall@2/5/10 and all-gold@5 of graph flows vs BM25, dense and RRF,
plus graph build time against dense indexing alone and per-query latency.

    HF_HUB_OFFLINE=1 python benchmarks/graph_hotpotqa.py [--no-cache] [--flows ppr,ppr+dense,...]

Baselines follow ../shared/REFERENCE.md: bm25s (title + text, English stopwords, PyStemmer, k1=0.9, b=0.4),
MiniLM (title + text, normalised, exact inner product), RRF (k=60) of their top 100. The graph structure and
ops are called directly through a minimal index (``.chunk``, ``.chunks``, ``.structure``), the same context a
pipeline gives them. ``--no-cache`` disables the embedding cache so build times include all model calls.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag.operators import RunContext  # noqa: E402
from rag.resources import Resources  # noqa: E402
from rag.state import QueryState  # noqa: E402
from rag.types import Chunk  # noqa: E402

DATASET = Path(os.environ.get("HOTPOTQA_100", "/work/shared/datasets/hotpotqa-100"))


class MinimalIndex:
    """What graph operators read from an index: chunks by id and named structures."""

    def __init__(self, chunks: list[Chunk], structures: dict):
        self.chunks = {c.id: c for c in chunks}
        self.structures = structures

    def chunk(self, chunk_id: str) -> Chunk:
        return self.chunks[chunk_id]

    def structure(self, name: str):
        return self.structures[name]


def read_dataset(root: Path):
    chunks = []
    for line in (root / "corpus.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        chunks.append(Chunk(row["_id"], row["_id"], row["text"], 0, len(row["text"]), 0, {"title": row.get("title", "")}))
    queries = {}
    for line in (root / "queries.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        queries[row["_id"]] = row["text"]
    gold: dict[str, set[str]] = {}
    for line in list((root / "qrels" / "test.tsv").open(encoding="utf-8"))[1:]:
        qid, pid, score = line.rstrip("\n").split("\t")
        if int(score) > 0:
            gold.setdefault(qid, set()).add(pid)
    return chunks, {q: t for q, t in queries.items() if q in gold}, gold


def rrf(*rankings: list[str], k: int = 60) -> list[str]:
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, pid in enumerate(ranking):
            scores[pid] = scores.get(pid, 0.0) + 1.0 / (k + rank + 1)
    return sorted(scores, key=lambda p: -scores[p])


def convex(scored_runs: list[list[tuple[str, float]]], chunks: dict[str, Chunk]) -> list[str]:
    """Convex dbsf fusion with per-query confidence weighting (retrievers.fusion), on (id, score) lists."""
    from rag.types import Hit
    from retrievers.fusion import convex_combination

    lists = [[Hit(chunks[pid], score, "run") for pid, score in run] for run in scored_runs]
    return [h.chunk.id for h in convex_combination(lists, "dbsf", weighting="confidence")]


def metrics(runs: dict[str, list[str]], gold: dict[str, set[str]]) -> dict[str, float]:
    out = {}
    for k in (2, 5, 10):
        out[f"R@{k}"] = float(np.mean([len(gold[q] & set(r[:k])) / len(gold[q]) for q, r in runs.items()]))
    out["all@5"] = float(np.mean([gold[q] <= set(r[:5]) for q, r in runs.items()]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-cache", action="store_true", help="embed without the cache (honest build times)")
    parser.add_argument("--flows", default="ppr,ppr+dense,ppr+bm25+dense,local,global,hybrid,pcst,pcst+dense")
    parser.add_argument("--graph", default="{}", help="JSON params for the graph structure")
    parser.add_argument("--ppr", default="{}", help="JSON params for graph_ppr")
    parser.add_argument("--convex", action="store_true",
                        help="also fuse each graph+... flow by convex dbsf with confidence weighting")
    args = parser.parse_args()
    if not DATASET.exists():
        print(f"dataset {DATASET} not found; nothing to measure")
        return

    import bm25s
    import Stemmer

    from graph.structure import GraphStructure, passage_text
    from rag.registry import create

    chunks, queries, gold = read_dataset(DATASET)
    qids = list(queries)
    resources = Resources(embedder={"model": "minilm", "cache": not args.no_cache})
    embedder = resources.embedder
    embedder.embed(["warm up"])  # load the model outside the timings

    t0 = time.perf_counter()
    passage_vectors = embedder.embed([passage_text(c, True) for c in chunks])
    dense_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    graph = GraphStructure(**json.loads(args.graph))
    graph.add(chunks, resources)
    graph.compiled()
    graph_seconds = time.perf_counter() - t0
    compiled = graph.compiled()
    print(f"graph: {compiled.n_passages} passages, {compiled.n_entities} entities "
          f"({len(compiled.hubs)} hubs pruned), {compiled.transition.nnz // 2} edges in the view")

    index = MinimalIndex(chunks, {"graph": graph})
    ctx = RunContext(index, resources)
    ids = [c.id for c in chunks]
    by_id = {c.id: c for c in chunks}

    stemmer = Stemmer.Stemmer("english")
    bm25 = bm25s.BM25(k1=0.9, b=0.4)
    bm25.index(bm25s.tokenize([passage_text(c, True) for c in chunks], stopwords="en", stemmer=stemmer,
                              show_progress=False), show_progress=False)
    q_tokens = bm25s.tokenize([queries[q] for q in qids], stopwords="en", stemmer=stemmer, show_progress=False)
    docs, bm25_scores = bm25.retrieve(q_tokens, k=100, show_progress=False)
    bm25_runs = {q: [ids[i] for i in docs[n]] for n, q in enumerate(qids)}
    bm25_scored = {q: [(ids[i], float(s)) for i, s in zip(docs[n], bm25_scores[n])] for n, q in enumerate(qids)}
    q_vectors = embedder.embed_queries([queries[q] for q in qids])
    dense_scored = {}
    for n, q in enumerate(qids):
        sims = passage_vectors @ q_vectors[n]
        dense_scored[q] = [(ids[i], float(sims[i])) for i in np.argsort(-sims)[:100]]
    dense_runs = {q: [pid for pid, _ in run] for q, run in dense_scored.items()}

    runs = {"bm25s": bm25_runs, "dense (MiniLM)": dense_runs,
            "rrf(bm25, dense)": {q: rrf(bm25_runs[q], dense_runs[q]) for q in qids}}
    if args.convex:
        runs["convex(bm25, dense)"] = {q: convex([bm25_scored[q], dense_scored[q]], by_id) for q in qids}
    latency: dict[str, list[float]] = {}
    flows = args.flows.split(",")
    op_params = {"ppr": json.loads(args.ppr)}
    ops = {name: create(f"graph_{name}", {"top_k": 100, **op_params.get(name, {})})
           for name in dict.fromkeys(f.split("+")[0] for f in flows)}
    for name, op in ops.items():
        ranked, scored, seconds = {}, {}, []
        for q in qids:
            t = time.perf_counter()
            state = op(QueryState(queries[q]), ctx)
            seconds.append(time.perf_counter() - t)
            ranked[q] = [h.chunk.id for h in state.hits]
            scored[q] = [(h.chunk.id, h.score) for h in state.hits]
        latency[name] = seconds
        for flow in flows:
            parts = flow.split("+")
            if parts[0] != name:
                continue
            others = {"dense": dense_runs, "bm25": bm25_runs}
            runs[f"graph {flow}" if len(parts) == 1 else f"rrf(graph {name}, {', '.join(parts[1:])})"] = {
                q: rrf(ranked[q], *(others[o][q] for o in parts[1:])) if len(parts) > 1 else ranked[q] for q in qids}
            if args.convex and len(parts) > 1:
                scored_others = {"dense": dense_scored, "bm25": bm25_scored}
                runs[f"convex(graph {name}, {', '.join(parts[1:])})"] = {
                    q: convex([scored[q], *(scored_others[o][q] for o in parts[1:])], by_id) for q in qids}

    print(f"\n| flow | R@2 | R@5 | R@10 | all-gold@5 |\n|---|---|---|---|---|")
    for name, run in runs.items():
        m = metrics(run, gold)
        print(f"| {name} | {m['R@2']:.3f} | {m['R@5']:.3f} | {m['R@10']:.3f} | {m['all@5']:.3f} |")
    print(f"\nindex build: dense (embed {len(chunks)} passages) {dense_seconds:.2f} s; graph structure "
          f"{graph_seconds:.2f} s (ratio {graph_seconds / max(dense_seconds, 1e-9):.2f}x; "
          f"cache {'off' if args.no_cache else 'on'})")
    for name, seconds in latency.items():
        print(f"query latency {name}: median {1000 * statistics.median(seconds):.1f} ms, "
              f"p95 {1000 * float(np.percentile(seconds, 95)):.1f} ms")


if __name__ == "__main__":
    main()
