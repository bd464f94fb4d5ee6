"""Does ragloom's eval runner reproduce the Chroma span protocol? Same chunk boundaries, two implementations.

Reference side (in this process, independent of ``evals``): chonkie's TokenChunker (cl100k, 200 tokens, no
overlap — the boundaries of Chroma's FixedTokenChunker, per ../shared/REFERENCE.md), all chunks embedded with
all-MiniLM-L6-v2 (normalised), the top 5 chunks per question by exact cosine over the whole pool, and
recall / precision / IoU counted on boolean character masks (retrieved characters summed over chunks, as the
Chroma code does). ragloom side: the ``token-200`` pipeline of configs/eval/chroma-chunking.yaml through
``evals.runner.run_experiment``. Prints both, their difference, and REFERENCE.md's row.

    HF_HUB_OFFLINE=1 python benchmarks/eval_span_protocol.py [--out /tmp/span-run]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_ROW = {"span_recall": 0.772, "span_precision": 0.046, "span_iou": 0.045, "chunks": 1644}


def reference_protocol(dataset, chunk_size: int = 200, k: int = 5) -> dict[str, float]:
    from chonkie import TokenChunker

    from rag.embedding import Embedder
    from rag.tokens import get_tokenizer

    chunker = TokenChunker(tokenizer=get_tokenizer().encoding, chunk_size=chunk_size, chunk_overlap=0)
    spans, texts = [], []
    for doc in dataset.documents:
        cursor = 0
        for chunk in chunker.chunk(doc.text):
            start = chunk.start_index
            if doc.text[start:start + len(chunk.text)] != chunk.text:  # locate it, as Chroma's search does
                start = doc.text.find(chunk.text, max(0, cursor - 10))
                assert start >= 0, "chunk text not found in its document"
            spans.append((doc.id, start, start + len(chunk.text)))
            texts.append(chunk.text)
            cursor = start + len(chunk.text)
    embedder = Embedder("minilm")
    chunk_vecs = embedder.embed(texts)
    query_vecs = embedder.embed_queries([q.text for q in dataset.queries])
    top = np.argsort(-(query_vecs @ chunk_vecs.T), axis=1, kind="stable")[:, :k]
    lengths = {d.id: len(d.text) for d in dataset.documents}
    recall, precision, iou = [], [], []
    for qi, query in enumerate(dataset.queries):
        gold = {doc: np.zeros(n, bool) for doc, n in lengths.items()}
        hit = {doc: np.zeros(n, bool) for doc, n in lengths.items()}
        gold_total = 0
        for doc, s, e in query.references:
            gold[doc][s:e] = True
            gold_total += e - s
        retrieved_total = 0
        for ci in top[qi]:
            doc, s, e = spans[ci]
            hit[doc][s:e] = True
            retrieved_total += e - s
        covered = sum(int(np.count_nonzero(gold[d] & hit[d])) for d in lengths)
        recall.append(covered / gold_total)
        precision.append(covered / retrieved_total)
        iou.append(covered / (retrieved_total + gold_total - covered))
    return {"span_recall": float(np.mean(recall)), "span_precision": float(np.mean(precision)),
            "span_iou": float(np.mean(iou)), "chunks": len(spans)}


def ragloom_protocol(out: Path) -> dict[str, float]:
    from evals.experiment import load_experiment
    from evals.runner import run_experiment

    experiment = load_experiment(ROOT / "configs" / "eval" / "chroma-chunking.yaml")
    experiment = type(experiment)(**{**experiment.__dict__,
                                     "pipelines": tuple(p for p in experiment.pipelines if p.name == "token-200")})
    run = run_experiment(experiment, out, progress=False).runs[0]
    return {**{k: run.metrics[k] for k in ("span_recall", "span_precision", "span_iou")},
            "chunks": len(run.chunk_tokens)}


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="/tmp/ragloom-span-protocol")
    args = parser.parse_args()
    from evals.datasets import read_dataset

    dataset = read_dataset("chroma-chunking", ROOT / "configs" / "eval" / "chroma-chunking.yaml")
    t = time.perf_counter()
    ref = reference_protocol(dataset)
    t_ref = time.perf_counter() - t
    t = time.perf_counter()
    ours = ragloom_protocol(Path(args.out))
    t_ours = time.perf_counter() - t
    print(f"{'':28s} {'recall':>8s} {'precision':>10s} {'IoU':>8s} {'chunks':>7s}")
    for label, row in (("REFERENCE.md (Chroma Fixed 200)", REFERENCE_ROW), (f"chonkie + masks ({t_ref:.0f} s)", ref),
                       (f"ragloom eval ({t_ours:.0f} s)", ours)):
        print(f"{label:28s} {row['span_recall']:8.4f} {row['span_precision']:10.4f} {row['span_iou']:8.4f} "
              f"{row['chunks']:7d}")
    diff = {k: ours[k] - ref[k] for k in ("span_recall", "span_precision", "span_iou")}
    print("ragloom − reference protocol:", {k: round(v, 4) for k, v in diff.items()})
    print("ragloom − REFERENCE.md:", {k: round(ours[k] - REFERENCE_ROW[k], 4) for k in diff})


if __name__ == "__main__":
    main()
