"""Variants of the late_interaction reranker's scoring, one change at a time from its default, on cached token
embeddings: query-token weighting (IDF, dropping punctuation / stopwords, keeping [CLS]/[SEP]), centring the
token vectors, unnormalised vectors, ColBERT's [MASK] query augmentation, and the rerank depth; each scored with
the three ways of combining MaxSim with the first stage (replace, rrf, zscore 0.5).

Token embeddings are the operator's own (``LateInteractionReranker.token_embeddings``: title + text, long chunks
as windows), computed once for every chunk in any query's top 100 and kept in ``runs/late_interaction_variants/``.
First stages as in benchmarks/selection_rerank.py.

    HF_HUB_OFFLINE=1 python benchmarks/late_interaction_variants.py --datasets scifact hotpotqa-100 cosqa
"""
from __future__ import annotations

import argparse
import os
import string
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from evals.datasets import load_beir  # noqa: E402
from rag.registry import create  # noqa: E402
from retrieval_quality import DATASETS  # noqa: E402
from retrievers.analysis import STOPWORDS_EN  # noqa: E402
from retrievers.filtering import indexed_text  # noqa: E402
from retrievers.rerank_late_interaction import rrf_scores, standardised_fusion  # noqa: E402
from selection_rerank import FIRST_STAGES, first_stage_hits, per_query_scores  # noqa: E402

CACHE = Path(__file__).resolve().parents[1] / "runs" / "late_interaction_variants"

#: variant → settings changed from the default scoring (uniform weights over the query's word pieces, special
#: tokens dropped on both sides, normalised vectors, no centring)
VARIANTS = {
    "default": {},
    "query keeps [CLS]/[SEP]": {"query_special": True},
    "query drops punctuation": {"drop_punctuation": True},
    "query drops punctuation + stopwords": {"drop_punctuation": True, "drop_stopwords": True},
    "query tokens weighted by IDF": {"idf": True},
    "IDF + punctuation dropped (query and chunk)": {"idf": True, "drop_punctuation": True, "chunk_punctuation": True},
    "centred on the corpus mean token": {"centre": "corpus"},
    "centred on the candidates' mean token": {"centre": "candidates"},
    "unnormalised (dot product)": {"normalise": False},
    "query [MASK]-augmented to 32 (ColBERT)": {"augment": True},
}
COMBINATIONS = ["replace", "rrf", "zscore 0.5"]


def encoded(op, texts: list[str], ctx=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(word-piece ids, unnormalised token rows) per text, special tokens included, windows as the operator
    makes them (the ids are re-derived with the same tokenizer call and checked against the rows)."""
    model = op._model(ctx)
    rows = op.token_embeddings(texts, ctx, normalise=False)
    enc = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length, return_overflowing_tokens=True)
    ids: list[list[int]] = [[] for _ in texts]
    for window, owner in zip(enc["input_ids"], enc["overflow_to_sample_mapping"]):
        ids[owner].extend(window)
    out = []
    for i, matrix in zip(ids, rows):
        assert len(i) == len(matrix), "ids and token rows out of step"
        out.append((np.asarray(i, dtype=np.int32), matrix.astype(np.float16)))
    return out


def cached_tokens(name: str, key: str, texts: dict[str, str], op) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """id → (ids, rows) for every text, from ``CACHE/<name>.<key>.npz`` where present."""
    path = CACHE / f"{name}.{key}.npz"
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if path.exists():
        z = np.load(path)
        keys, offsets, ids, rows = list(z["keys"]), z["offsets"], z["ids"], z["rows"]
        found = {k: (ids[offsets[i]:offsets[i + 1]], rows[offsets[i]:offsets[i + 1]]) for i, k in enumerate(keys)}
    missing = [k for k in texts if k not in found]
    for start in range(0, len(missing), 256):
        part = missing[start:start + 256]
        found.update(zip(part, encoded(op, [texts[k] for k in part])))
        print(f"# {name} {key}: {min(start + 256, len(missing))}/{len(missing)} encoded", file=sys.stderr, flush=True)
    if missing:
        CACHE.mkdir(parents=True, exist_ok=True)
        keys = list(found)
        offsets = np.cumsum([0] + [len(found[k][0]) for k in keys])
        np.savez(path, keys=np.array(keys), offsets=offsets, ids=np.concatenate([found[k][0] for k in keys]),
                 rows=np.concatenate([found[k][1] for k in keys]))
    return found


def augmented_queries(op, queries) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """ColBERT query augmentation: the query's word pieces padded with [MASK] to 32 tokens, attended to."""
    import torch

    model = op._model(None)
    tok = model.tokenizer
    out = {}
    for q in queries:
        ids = tok(q.text, truncation=True, max_length=32)["input_ids"]
        ids = ids + [tok.mask_token_id] * (32 - len(ids))
        tensor = torch.tensor([ids])
        with torch.inference_mode():
            rows = model.forward({"input_ids": tensor, "attention_mask": torch.ones_like(tensor),
                                  "token_type_ids": torch.zeros_like(tensor)})["token_embeddings"][0]
        out[q.id] = (np.asarray(ids, dtype=np.int32), rows.float().numpy())
    return out


class Scorer:
    """MaxSim of one variant; word-piece IDF and the corpus mean token come from the cached candidate chunks."""

    def __init__(self, tokenizer, chunks: dict[str, tuple[np.ndarray, np.ndarray]]):
        vocab = tokenizer.convert_ids_to_tokens(list(range(tokenizer.vocab_size)))
        self.special = np.zeros(tokenizer.vocab_size, dtype=bool)  # what the operator drops ([MASK] is kept)
        self.special[[tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id]] = True
        self.punctuation = np.array([all(c in string.punctuation for c in t) for t in vocab]) & ~self.special
        self.stopword = np.array([t in STOPWORDS_EN for t in vocab])
        df = np.zeros(tokenizer.vocab_size)
        for ids, _ in chunks.values():
            df[np.unique(ids)] += 1
        n = len(chunks)
        self.idf = np.log(1 + (n - df + 0.5) / (df + 0.5))  # BM25's idf over the word pieces of the chunks
        plain = [rows[~self.special[ids]].astype(np.float64) for ids, rows in chunks.values()]
        self.corpus_mean = (sum(r.sum(axis=0) for r in plain) / sum(len(r) for r in plain)).astype(np.float32)

    def _rows(self, ids, rows, keep_special: bool, drop_punctuation: bool, centre, normalise: bool):
        keep = np.ones(len(ids), dtype=bool) if keep_special else ~self.special[ids]
        if drop_punctuation:
            keep &= ~self.punctuation[ids]
        if not keep.any():
            keep[:] = True
        ids, rows = ids[keep], rows[keep].astype(np.float32)
        if centre is not None:
            rows = rows - centre
        if normalise:
            rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        return ids, rows

    def __call__(self, query, docs, v: dict) -> np.ndarray:
        centre = None
        if v.get("centre") == "corpus":
            centre = self.corpus_mean
        elif v.get("centre") == "candidates":
            centre = np.concatenate([r[~self.special[i]] for i, r in docs]).astype(np.float32).mean(axis=0)
        normalise = v.get("normalise", True)
        qi, qr = self._rows(*query, v.get("query_special", False), v.get("drop_punctuation", False), centre, normalise)
        weights = np.ones(len(qi))
        if v.get("drop_stopwords"):
            weights *= ~self.stopword[qi]
        if v.get("idf"):
            weights *= self.idf[qi]
        weights = weights / weights.sum() if weights.sum() > 0 else np.full(len(qi), 1 / len(qi))
        scores = []
        for ids, rows in docs:
            _, dr = self._rows(ids, rows, False, v.get("chunk_punctuation", False), centre, normalise)
            scores.append(float(weights @ (qr @ dr.T).max(axis=1)) if len(dr) else 0.0)
        return np.array(scores)


def combined(first: np.ndarray, late: np.ndarray, how: str) -> np.ndarray:
    if how == "replace":
        return late
    if how == "rrf":
        return rrf_scores(late, -np.arange(len(late), dtype=np.float64))
    return standardised_fusion(first, late, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["scifact", "hotpotqa-100", "cosqa"])
    parser.add_argument("--candidates", type=int, default=30)
    parser.add_argument("--depths", type=int, nargs="+", default=[10, 20, 30, 50, 100])
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.torch_threads)
    op = create("late_interaction", {"skip_special_tokens": False})
    for name in args.datasets:
        dataset = load_beir(DATASETS / name)
        queries = [q for q in dataset.queries if dataset.qrels.get(q.id)]
        stages = {stage: first_stage_hits(dataset, queries, *spec) for stage, spec in FIRST_STAGES.items()}
        depth = max([args.candidates, *args.depths])
        texts = {h.chunk.id: indexed_text(h.chunk, True)
                 for candidates in stages.values() for hits in candidates for h in hits[:depth]}
        chunks = cached_tokens(name, "chunks", texts, op)
        plain_queries = cached_tokens(name, "queries", {q.id: q.text for q in queries}, op)
        masked = augmented_queries(op, queries)
        scorer = Scorer(op._model(None).tokenizer, chunks)

        def reranked_means(candidates, variant: dict, top: int) -> list[float]:
            """Mean nDCG@10 after reranking the top ``top`` with each of COMBINATIONS."""
            rankings: dict[str, list] = {how: [] for how in COMBINATIONS}
            for q, hits in zip(queries, candidates):
                head, tail = list(hits[:top]), list(hits[top:])
                query = (masked if variant.get("augment") else plain_queries)[q.id]
                late = scorer(query, [chunks[h.chunk.id] for h in head], variant)
                for how in COMBINATIONS:
                    fused = combined(np.array([h.score for h in head]), late, how)
                    rankings[how].append([head[i] for i in np.argsort(-fused, kind="stable")] + tail)
            return [per_query_scores(dataset, queries, rankings[how])[0].mean() for how in COMBINATIONS]

        for stage, candidates in stages.items():
            base = per_query_scores(dataset, queries, candidates)[0].mean()
            print(f"\n{name}, {stage}: {base:.3f} nDCG@10 alone; rerank the top {args.candidates}\n")
            print("| variant | " + " | ".join(COMBINATIONS) + " |")
            print("|---|" + "---|" * len(COMBINATIONS))
            for label, variant in VARIANTS.items():
                cells = reranked_means(candidates, variant, args.candidates)
                print(f"| {label} | " + " | ".join(f"{c:.3f}" for c in cells) + " |", flush=True)
            print("\n| rerank depth | " + " | ".join(COMBINATIONS) + " |")
            print("|---|" + "---|" * len(COMBINATIONS))
            for top in args.depths:
                cells = reranked_means(candidates, {}, top)
                print(f"| {top} | " + " | ".join(f"{c:.3f}" for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
