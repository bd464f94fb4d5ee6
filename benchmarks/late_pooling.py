"""Late chunking of overlapping chunks: whole-span pooling against centre pooling (the rule that made `centre` the
default, docs/results/chunking.md, ninth session).

For each overlapping boundary set, the same chunks scored five ways under the Chroma span protocol (MiniLM, top 5
by cosine, character recall / IoU): each chunk embedded alone ("independent"), the pooled vector over the chunk's
whole span or over its centre (``chunkers.late.centre_spans``), and each pooled vector mixed half and half with the
independent one (the late chunker's default ``context_weight: 0.5``). p values: paired randomisation test on
per-query recall. The token embeddings of the corpus are computed once and reused for every set.

    HF_HUB_OFFLINE=1 python benchmarks/late_pooling.py chroma-chunking   # the six overlapping sets of the table
    HF_HUB_OFFLINE=1 python benchmarks/late_pooling.py scifact           # 1,000 passages joined 50 per document
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chunkers import get_chunker  # noqa: E402
from chunkers.late import centre_spans, pool_spans, token_embeddings_many  # noqa: E402
from evals.metrics import top_k_span_scores  # noqa: E402
from evals.significance import randomisation_test  # noqa: E402
from rag.resources import Resources  # noqa: E402

CHROMA_SETS = {"token 400 / overlap 200": {"op": "token", "chunk_size": 400, "overlap": 200},
               "token 400 / overlap 300": {"op": "token", "chunk_size": 400, "overlap": 300},
               "recursive 400 / overlap 200": {"op": "recursive", "chunk_size": 400, "overlap": 200},
               "sentence 200 / overlap 1": {"op": "sentence", "chunk_size": 200, "overlap_sentences": 1},
               "sentence 400 / overlap 6": {"op": "sentence", "chunk_size": 400, "overlap_sentences": 6},
               "sentence 400 / overlap 8": {"op": "sentence", "chunk_size": 400, "overlap_sentences": 8},
               "token 200 (control: no overlap)": {"op": "token", "chunk_size": 200}}
PASSAGE_SETS = {"token 400 / overlap 200": {"op": "token", "chunk_size": 400, "overlap": 200},
                "recursive 200 / overlap 100": {"op": "recursive", "chunk_size": 200, "overlap": 100},
                "sentence 200 / overlap 1": {"op": "sentence", "chunk_size": 200, "overlap_sentences": 1}}


def load(dataset: str, resources: Resources):
    """``(documents, gold spans per query, query vectors, boundary sets, stable tie-breaking)``."""
    if dataset == "chroma-chunking":
        from chunking_quality import DATASET, read_dataset

        documents, queries = read_dataset(DATASET)
        golds = [[(r["doc_id"], r["start"], r["end"]) for r in q["references"]] for q in queries]
        texts = [q["text"] for q in queries]
        return documents, golds, resources.embedder.embed_queries(texts), CHROMA_SETS, False  # as the table
    from chunking_passages import DATASETS, concatenated_documents
    from evals.datasets import load_beir

    documents, queries = concatenated_documents(load_beir(DATASETS / dataset), 1000, 50)
    return (documents, [gold for _, gold in queries], resources.embedder.embed_queries([t for t, _ in queries]),
            PASSAGE_SETS, True)


def unit(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", choices=["chroma-chunking", "scifact", "hotpotqa-100"])
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    resources = Resources(embedder={"model": "minilm"})
    embedder = resources.embedder
    documents, golds, query_vectors, sets, stable = load(args.dataset, resources)
    tokens = token_embeddings_many(embedder.st, [d.text for d in documents], 64, 16)
    print("| boundaries | chunks | independent | late, whole spans | late, centre | pooled only: whole / centre "
          "| centre − whole (p) | centre − independent (p) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, spec in sets.items():
        spec = dict(spec)
        chunker = get_chunker(spec.pop("op"), **spec)
        chunks, whole, centre = [], [], []
        for document, (embeddings, offsets) in zip(documents, tokens):
            document_chunks = chunker.chunk(document)
            spans = [(c.start, c.end) for c in document_chunks]
            for out, pooled_spans in ((whole, spans), (centre, centre_spans(spans))):
                vectors, empty = pool_spans(embeddings, offsets, pooled_spans)
                if empty:  # no word piece in the span: the chunk's own text
                    vectors[empty] = embedder.embed([document_chunks[i].text for i in empty])
                out.append(unit(vectors))
            chunks.extend(document_chunks)
        whole, centre = np.vstack(whole), np.vstack(centre)
        own = embedder.embed([c.text for c in chunks])
        variants = {"independent": own, "whole": unit(0.5 * whole + 0.5 * own),
                    "centre": unit(0.5 * centre + 0.5 * own), "whole pooled": whole, "centre pooled": centre}
        scores = {k: top_k_span_scores(chunks, v, query_vectors, golds, 5, stable=stable) for k, v in variants.items()}
        recall = {k: [s.recall for s in v] for k, v in scores.items()}
        cell = {k: f"{np.mean(recall[k]):.4f} / {np.mean([s.iou for s in scores[k]]):.5f}" for k in scores}
        gain = np.mean(recall["centre"]) - np.mean(recall["whole"])
        over = np.mean(recall["centre"]) - np.mean(recall["independent"])
        print(f"| {name} | {len(chunks)} | {cell['independent']} | {cell['whole']} | {cell['centre']} | "
              f"{np.mean(recall['whole pooled']):.4f} / {np.mean(recall['centre pooled']):.4f} | "
              f"{gain:+.4f} ({randomisation_test(recall['centre'], recall['whole']):.3f}) | "
              f"{over:+.4f} ({randomisation_test(recall['centre'], recall['independent']):.3f}) |", flush=True)
    print("\ncells: recall / IoU (means over queries); late = pooled vector mixed 0.5 with the chunk's own embedding")
    print(json.dumps({"dataset": args.dataset, "documents": len(documents), "queries": len(golds)}))


if __name__ == "__main__":
    main()
