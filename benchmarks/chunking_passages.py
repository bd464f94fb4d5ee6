"""Late chunking off chroma-chunking: span gold derived from passage-retrieval datasets.

chroma-chunking is the only dataset here with character-span gold. To check that late chunking's gains (and its
``context_weight``, chosen on chroma-chunking) are not specific to it, this script derives span gold from a BEIR
dataset: passages (title + text) are shuffled with a fixed seed and concatenated, ``--group`` at a time and
separated by a blank line, into long documents; a query's gold spans are the character spans of its relevant
passages. Then the Chroma protocol as in benchmarks/chunking_quality.py: chunk, embed every chunk with MiniLM,
top 5 by cosine over the whole pool, character recall / IoU. Neighbouring passages are unrelated, which is the
hard case for late chunking (a chunk's context is another passage).

For each boundary chunker it compares the same chunks embedded independently, the paper's pooled vectors
alone (context_weight 1) and the mix at several weights (0.5 is the default), plus a paired randomisation test
of mix 0.5 against independent embedding on per-query recall.

    HF_HUB_OFFLINE=1 python benchmarks/chunking_passages.py --dataset scifact --passages 1000
    HF_HUB_OFFLINE=1 python benchmarks/chunking_passages.py --dataset hotpotqa-100
"""
from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chunkers import get_chunker  # noqa: E402
from evals.datasets import load_beir  # noqa: E402
from evals.metrics import top_k_span_scores  # noqa: E402
from evals.significance import randomisation_test  # noqa: E402
from rag.resources import Resources  # noqa: E402
from rag.types import Document  # noqa: E402

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
TOP_K = 5
BOUNDARIES = {
    "recursive 100": {"op": "recursive", "chunk_size": 100},
    "recursive 200": {"op": "recursive", "chunk_size": 200},
    "token 200": {"op": "token", "chunk_size": 200},
}
WEIGHTS = (0.0, 0.3, 0.5, 0.7, 1.0)


def concatenated_documents(dataset, passages: int, group: int, seed: int = 0):
    """``(documents, queries)``: every relevant passage plus random others up to ``passages``, shuffled and
    joined ``group`` at a time; queries as ``(text, [(doc_id, start, end), ...])``."""
    by_id = {d.id: d for d in dataset.documents}
    gold = {q.id: sorted(d for d, grade in dataset.qrels.get(q.id, {}).items() if grade > 0 and d in by_id)
            for q in dataset.queries}
    relevant = {doc for docs in gold.values() for doc in docs}
    rng = random.Random(seed)
    others = sorted(set(by_id) - relevant)
    rng.shuffle(others)
    chosen = sorted(relevant) + others[:max(0, passages - len(relevant))]
    rng.shuffle(chosen)
    where: dict[str, tuple[str, int, int]] = {}
    documents = []
    for g in range(0, len(chosen), group):
        parts, offset, doc_id = [], 0, f"group{g // group}"
        for passage_id in chosen[g:g + group]:
            passage = by_id[passage_id]
            title = passage.metadata.get("title") or ""
            text = f"{title}\n{passage.text}" if title else passage.text
            where[passage_id] = (doc_id, offset, offset + len(text))
            parts.append(text)
            offset += len(text) + 2
        documents.append(Document(doc_id, "\n\n".join(parts)))
    queries = [(q.text, [where[d] for d in gold[q.id]]) for q in dataset.queries if gold[q.id]]
    return documents, queries


def load_joined(dataset: str, passages: int, group: int, names: tuple[str, str]):
    """``(documents, queries, resources, query_vectors)``: ``dataset``'s passages joined into documents
    (:func:`concatenated_documents`), MiniLM, and the queries embedded; exits when the dataset is missing.
    ``names`` says what the documents and the passages are, for the summary line."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = DATASETS / dataset
    if not path.exists():
        sys.exit(f"dataset not found: {path}")
    documents, queries = concatenated_documents(load_beir(path), passages, group)
    print(f"{dataset}: {len(documents)} {names[0]} of {group} {names[1]} "
          f"({sum(len(d.text) for d in documents) / 1e6:.2f} M characters), {len(queries)} queries", flush=True)
    resources = Resources(embedder={"model": "minilm"})
    return documents, queries, resources, resources.embedder.embed_queries([text for text, _ in queries])


def per_query_scores(chunks, matrix, query_vectors, queries):
    return top_k_span_scores(chunks, matrix, query_vectors, [gold for _, gold in queries], TOP_K)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--passages", type=int, default=1000, help="relevant passages plus random others, in all")
    parser.add_argument("--group", type=int, default=50, help="passages per concatenated document")
    parser.add_argument("--only", nargs="*", choices=list(BOUNDARIES), help="boundary chunkers to run")
    args = parser.parse_args()
    documents, queries, resources, query_vectors = load_joined(args.dataset, args.passages, args.group,
                                                               ("documents", "passages"))
    embedder = resources.embedder
    print("| boundaries | chunks | independent | " + " | ".join(
        f"late, context_weight {w}" for w in WEIGHTS if w > 0) + " | mix 0.5 − independent (p) |")
    print("|---|---|---|" + "---|" * (len(WEIGHTS) - 1) + "---|")
    for name, spec in BOUNDARIES.items():
        if args.only and name not in args.only:
            continue
        late = get_chunker("late", boundaries=spec, context_weight=1.0)
        chunks, pooled = late.chunk_documents_with_embeddings(documents, resources)
        own = embedder.embed([c.text for c in chunks])
        scores = {w: per_query_scores(chunks, unit_rows(w * pooled + (1 - w) * own), query_vectors, queries)
                  for w in WEIGHTS}
        cells = [f"{np.mean([s.recall for s in scores[w]]):.3f} / {np.mean([s.iou for s in scores[w]]):.4f}"
                 for w in WEIGHTS]
        independent = [s.recall for s in scores[0.0]]
        mixed = [s.recall for s in scores[0.5]]
        p = randomisation_test(mixed, independent)
        print(f"| {name} | {len(chunks)} | " + " | ".join(cells)
              + f" | {np.mean(mixed) - np.mean(independent):+.3f} (p = {p:.3f}) |", flush=True)
    print("\ncells: recall / IoU (mean over queries); independent = context_weight 0 (each chunk embedded alone)")


if __name__ == "__main__":
    main()
