"""The candidates a budgeted selector chooses from, as numpy arrays: value, token cost and redundancy.

Every strategy optimises the same set utility (CORAG, Wang et al. 2024, "relevance minus redundancy")::

    U(S) = Σ_{i∈S} v_i  −  λ · Σ_{i<j∈S} R_ij · (v_i + v_j) / 2

``v`` is the hit score rescaled to [0, 1] over the candidates, ``R_ij`` ∈ [0, 1] is the redundancy of a pair:
the share of the shorter chunk covered by the other when two chunks of one document overlap, or the word-set
Jaccard similarity of two chunks when it reaches ``near_duplicate`` (near-duplicate text in different places).
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


def word_hashes(text: str) -> np.ndarray:
    """The distinct lower-cased words of ``text`` as stable 32-bit hashes (for near-duplicate detection)."""
    words = set(_WORD.findall(text.lower()))
    return np.fromiter((zlib.crc32(w.encode()) for w in words), dtype=np.uint32, count=len(words))


def span_overlap_redundancy(doc_ids: Sequence[str], starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``R_ij`` = overlapping characters / length of the shorter chunk, for chunks of the same document."""
    same_doc = np.asarray(doc_ids, dtype=object)[:, None] == np.asarray(doc_ids, dtype=object)[None, :]
    overlap = np.minimum(ends[:, None], ends[None, :]) - np.maximum(starts[:, None], starts[None, :])
    shorter = np.maximum(np.minimum((ends - starts)[:, None], (ends - starts)[None, :]), 1)
    return np.where(same_doc & (overlap > 0), overlap / shorter, 0.0)


def jaccard_redundancy(hash_sets: Sequence[np.ndarray], threshold: float) -> np.ndarray:
    """Pairwise word-set Jaccard similarity, zeroed below ``threshold`` (sparse product, no Python pair loop)."""
    from scipy.sparse import csr_matrix

    n = len(hash_sets)
    if n == 0 or threshold > 1.0:
        return np.zeros((n, n))
    sizes = np.array([len(h) for h in hash_sets], dtype=np.float64)
    flat = np.concatenate(hash_sets) if n else np.zeros(0, dtype=np.uint32)
    _, columns = np.unique(flat, return_inverse=True)
    rows = np.repeat(np.arange(n), sizes.astype(np.int64))
    matrix = csr_matrix((np.ones(len(columns), dtype=np.float32), (rows, columns.ravel())),
                        shape=(n, int(columns.max()) + 1 if len(columns) else 1))
    shared = (matrix @ matrix.T).toarray()
    union = sizes[:, None] + sizes[None, :] - shared
    jaccard = np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)
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


def build_pool(hits: Sequence[Hit], costs: Sequence[int], *, normalization: str = "minmax",
               redundancy_weight: float = 1.0, near_duplicate: float = 0.8,
               hashes_of: Callable[[str], np.ndarray] = word_hashes) -> CandidatePool:
    """A :class:`CandidatePool` over ``hits`` (already deduplicated) with ``costs`` in generator tokens."""
    hits = tuple(hits)
    values = normalized_values(np.array([h.score for h in hits], dtype=np.float64), normalization)

    def redundancy() -> np.ndarray:
        doc_ids = [h.chunk.doc_id for h in hits]
        starts = np.array([h.chunk.start for h in hits], dtype=np.int64)
        ends = np.array([h.chunk.end for h in hits], dtype=np.int64)
        overlap = span_overlap_redundancy(doc_ids, starts, ends)
        if near_duplicate > 1.0:
            return overlap
        return np.maximum(overlap, jaccard_redundancy([hashes_of(h.chunk.text) for h in hits], near_duplicate))

    return CandidatePool(hits, values, np.asarray(costs, dtype=np.int64), redundancy_weight, redundancy)
