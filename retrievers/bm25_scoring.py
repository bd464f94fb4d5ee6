"""BM25 term weights, computed for every (document, term) pair at once with numpy ("eager" scoring).

Following bm25s (Lù, 2024, "BM25S: Orders of magnitude faster lexical search via eager sparse scoring"),
the score a term contributes to a document is precomputed into a sparse matrix, so a query is a sum of
a few sparse columns. Variants (Kamphuis et al. 2020, "Which BM25 do you mean?"):

- ``lucene``:    idf = ln(1 + (N − df + 0.5) / (df + 0.5)),  tf part = tf·(k1+1) / (tf + k1·(1 − b + b·dl/avgdl))
- ``robertson``: idf = ln((N − df + 0.5) / (df + 0.5)), negative idfs floored to ε·mean(idf) — rank-bm25's
  ``BM25Okapi``; same tf part as lucene
- ``atire``:     idf = ln(N / df); same tf part
- ``bm25l``:     idf = ln((N + 1) / (df + 0.5)), c = tf / (1 − b + b·dl/avgdl), tf part = (k1+1)(c+δ) / (k1+c+δ)
  (Lv & Zhai 2011)
- ``bm25plus``:  idf = ln((N + 1) / df), tf part = δ + tf·(k1+1) / (k1·(1 − b + b·dl/avgdl) + tf) (Lv & Zhai 2011)

BM25L and BM25+ give a non-zero weight to absent terms (tf = 0); that weight does not depend on the document,
so the matrix stores ``weight − absent weight`` and :func:`absent_term_weight` supplies the per-term constant.
"""
from __future__ import annotations

import math

import numpy as np

METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25plus")
DEFAULT_DELTA = {"bm25l": 0.5, "bm25plus": 1.0}


def inverse_document_frequency(df: np.ndarray, n_docs: int, method: str, epsilon: float = 0.25) -> np.ndarray:
    """Per-term idf (float64); terms that occur in no document get 0."""
    df = df.astype(np.float64)
    present = df > 0
    safe = np.where(present, df, 1.0)
    n = float(n_docs)
    if method == "lucene":
        idf = np.log1p((n - safe + 0.5) / (safe + 0.5))
    elif method == "robertson":
        idf = np.log(n - safe + 0.5) - np.log(safe + 0.5)
        if present.any():
            # rank-bm25: the floor is epsilon times the average idf over the vocabulary
            floor = epsilon * math.fsum(idf[present].tolist()) / int(present.sum())
            idf = np.where(idf < 0, floor, idf)
    elif method == "atire":
        idf = np.log(n / safe)
    elif method == "bm25l":
        idf = np.log((n + 1.0) / (safe + 0.5))
    elif method == "bm25plus":
        idf = np.log((n + 1.0) / safe)
    else:
        raise ValueError(f"unknown BM25 method {method!r}; methods: {', '.join(METHODS)}")
    return np.where(present, idf, 0.0)


def term_frequency_weight(tf: np.ndarray, doc_len: np.ndarray, avgdl: float, method: str, k1: float, b: float,
                          delta: float) -> np.ndarray:
    """The tf part of each (document, term) entry; ``doc_len`` is aligned with ``tf``."""
    tf = tf.astype(np.float64)
    norm = 1.0 - b + b * doc_len.astype(np.float64) / avgdl
    if method in ("lucene", "robertson", "atire"):
        return tf * (k1 + 1.0) / (tf + k1 * norm)
    if method == "bm25l":
        c = tf / norm
        return (k1 + 1.0) * (c + delta) / (k1 + c + delta) - absent_tf_weight(method, k1, delta)
    if method == "bm25plus":
        return tf * (k1 + 1.0) / (k1 * norm + tf)  # + delta − delta: the absent weight cancels
    raise ValueError(f"unknown BM25 method {method!r}; methods: {', '.join(METHODS)}")


def absent_tf_weight(method: str, k1: float, delta: float) -> float:
    """The tf part a document gets for a query term it does not contain (0 except BM25L / BM25+)."""
    if method == "bm25l":
        return (k1 + 1.0) * delta / (k1 + delta)
    if method == "bm25plus":
        return delta
    return 0.0


def average_length(doc_len: np.ndarray) -> float:
    """Mean document length (integer sum: exact, so independent of document order)."""
    return int(doc_len.astype(np.int64).sum()) / max(len(doc_len), 1) or 1.0
