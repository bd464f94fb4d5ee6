"""The candidates a budgeted selector chooses from, as numpy arrays: value, token cost and redundancy.

Every strategy optimises the same set utility (CORAG, Wang et al. 2024, "relevance minus redundancy")::

    U(S) = Σ_{i∈S} v_i  −  λ · Σ_{i<j∈S} R_ij · (v_i + v_j) / 2

``v`` is the hit score rescaled to [0, 1] over the candidates, ``R_ij`` ∈ [0, 1] is the redundancy of a pair:
the share of the shorter chunk covered by the other when two chunks of one document overlap, or the word-set
Jaccard similarity (MinHash estimate) of two chunks when it reaches ``near_duplicate`` (near-duplicate text in different places).
With ``λ ≥ 1`` the utility is non-monotone: adding a chunk redundant with several selected ones lowers it.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from rag.types import Hit

_WORD = re.compile(r"\w+")


def normalized_values(scores: np.ndarray, how: str = "minmax") -> np.ndarray:
    """Hit scores as values in [0, 1]: ``minmax`` over the candidates, ``rank`` = 1/(1+rank)
    (scores assumed best first), ``raw`` = the scores themselves (must be ≥ 0)."""
    scores = np.asarray(scores, dtype=np.float64)
    if how == "raw":
        return np.clip(scores, 0.0, None)
    if how == "rank":
        order = np.argsort(-scores, kind="stable")
        values = np.empty_like(scores)
        values[order] = 1.0 / (1.0 + np.arange(len(scores)))
        return values
    if scores.size == 0:
        return scores
    low, high = float(scores.min()), float(scores.max())
    if high - low <= 1e-12:
        return np.ones_like(scores)
    return (scores - low) / (high - low)


_MINHASH_SEEDS = np.random.default_rng(20240607).integers(1, (1 << 31) - 1, size=(2, 64), dtype=np.uint64)
_PRIME = np.uint64((1 << 31) - 1)


def word_signature(text: str) -> np.ndarray:
    """A 64-value MinHash signature of the distinct lower-cased words of ``text`` (Broder 1997): the share of
    equal positions between two signatures estimates the Jaccard similarity of their word sets."""
    words = set(_WORD.findall(text.lower()))
    if not words:
        return np.full(_MINHASH_SEEDS.shape[1], np.iinfo(np.uint64).max, dtype=np.uint64)
    hashes = np.fromiter((zlib.crc32(w.encode()) for w in words), dtype=np.uint64, count=len(words))
    a, b = _MINHASH_SEEDS
    return ((hashes[:, None] * a[None, :] + b[None, :]) % _PRIME).min(axis=0)


def span_overlap_redundancy(doc_ids: Sequence[str], starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``R_ij`` = overlapping characters / length of the shorter chunk, for chunks of the same document."""
    codes: dict[str, int] = {}
    doc_codes = np.array([codes.setdefault(d, len(codes)) for d in doc_ids], dtype=np.int64)
    same_doc = doc_codes[:, None] == doc_codes[None, :]
    overlap = np.minimum(ends[:, None], ends[None, :]) - np.maximum(starts[:, None], starts[None, :])
    shorter = np.maximum(np.minimum((ends - starts)[:, None], (ends - starts)[None, :]), 1)
    return np.where(same_doc & (overlap > 0), overlap / shorter, 0.0)


def jaccard_redundancy(signatures: Sequence[np.ndarray], threshold: float) -> np.ndarray:
    """Pairwise (MinHash-estimated) word-set Jaccard similarity, zeroed below ``threshold``."""
    n = len(signatures)
    if n == 0 or threshold > 1.0:
        return np.zeros((n, n))
    matrix = np.stack(signatures).astype(np.uint32)
    # screen on the first 16 values (a pair at the threshold agrees on about threshold·16 of them), then
    # estimate only the surviving pairs on all 64
    screen = (matrix[:, None, :16] == matrix[None, :, :16]).sum(axis=2) >= max(1, int(threshold * 16) - 4)
    rows, cols = np.nonzero(np.triu(screen, k=1))
    jaccard = np.zeros((n, n))
    if rows.size:
        estimate = (matrix[rows] == matrix[cols]).mean(axis=1)
        jaccard[rows, cols] = jaccard[cols, rows] = estimate
    return np.where(jaccard >= threshold, jaccard, 0.0)


@dataclass
class CandidatePool:
    """Hits (deduplicated, best first) with their values, exact token costs and pairwise penalties."""

    hits: tuple[Hit, ...]
    values: np.ndarray
    costs: np.ndarray
    redundancy_weight: float = 1.0
    redundancy_of: Callable[[], np.ndarray] | None = None
    _penalty: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.hits)

    @property
    def penalty(self) -> np.ndarray:
        """``P_ij = λ · R_ij · (v_i + v_j) / 2`` (zero diagonal), computed on first use."""
        if self._penalty is None:
            n = len(self.hits)
            redundancy = self.redundancy_of() if (self.redundancy_of and self.redundancy_weight) else np.zeros((n, n))
            penalty = self.redundancy_weight * redundancy * (self.values[:, None] + self.values[None, :]) / 2.0
            np.fill_diagonal(penalty, 0.0)
            self._penalty = penalty
        return self._penalty

    def marginal_gains(self, selected: np.ndarray) -> np.ndarray:
        """``U(S ∪ {j}) − U(S)`` for every ``j`` (meaningless for ``j`` already in ``S``)."""
        return self.values - self.penalty @ selected.astype(np.float64)

    def utility(self, indices: Sequence[int]) -> float:
        idx = np.asarray(list(indices), dtype=np.int64)
        if idx.size == 0:
            return 0.0
        return float(self.values[idx].sum() - self.penalty[np.ix_(idx, idx)].sum() / 2.0)


def neighbour_propagated(values: np.ndarray, hits: Sequence[Hit], weight: float) -> np.ndarray:
    """``v_j = max(v_j, weight · v_i)`` for chunks ``i`` touching or overlapping ``j`` in the same document:
    evidence is contiguous, so the neighbour of a very relevant chunk is likely relevant too (the idea behind
    relevant segment extraction and small-to-big retrieval). One step, from the original values."""
    if weight <= 0 or len(hits) < 2:
        return values
    codes: dict[str, int] = {}
    doc = np.array([codes.setdefault(h.chunk.doc_id, len(codes)) for h in hits])
    starts = np.array([h.chunk.start for h in hits])
    ends = np.array([h.chunk.end for h in hits])
    near = (doc[:, None] == doc[None, :]) & (starts[:, None] <= ends[None, :]) & (starts[None, :] <= ends[:, None])
    np.fill_diagonal(near, False)
    lifted = np.where(near, weight * values[:, None], 0.0).max(axis=0)
    return np.maximum(values, lifted)


def build_pool(hits: Sequence[Hit], costs: Sequence[int], *, normalization: str = "minmax",
               redundancy_weight: float = 1.0, near_duplicate: float = 0.8, neighbour_weight: float = 0.0,
               signature_of: Callable[[str], np.ndarray] = word_signature) -> CandidatePool:
    """A :class:`CandidatePool` over ``hits`` (already deduplicated) with ``costs`` in generator tokens."""
    hits = tuple(hits)
    values = normalized_values(np.array([h.score for h in hits], dtype=np.float64), normalization)
    values = neighbour_propagated(values, hits, neighbour_weight)

    def redundancy() -> np.ndarray:
        doc_ids = [h.chunk.doc_id for h in hits]
        starts = np.array([h.chunk.start for h in hits], dtype=np.int64)
        ends = np.array([h.chunk.end for h in hits], dtype=np.int64)
        overlap = span_overlap_redundancy(doc_ids, starts, ends)
        if near_duplicate > 1.0:
            return overlap
        return np.maximum(overlap, jaccard_redundancy([signature_of(h.chunk.text) for h in hits], near_duplicate))

    return CandidatePool(hits, values, np.asarray(costs, dtype=np.int64), redundancy_weight, redundancy)
