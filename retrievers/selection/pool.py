"""The candidates a budgeted selector chooses from, as numpy arrays: value, token cost and redundancy.

Every strategy optimises the same set utility (CORAG, Wang et al. 2024, "relevance minus redundancy")::

    U(S) = Σ_{i∈S} v_i  −  λ · Σ_{i<j∈S} R_ij · (v_i + v_j) / 2

``v`` is the hit score rescaled to [0, 1] over the candidates, ``R_ij`` ∈ [0, 1] is the redundancy of a pair:
the share of the shorter chunk covered by the other when two chunks of one document overlap, or the word-set
Jaccard similarity (MinHash estimate) of two chunks when it reaches ``near_duplicate`` (near-duplicate text in different places).
With ``λ ≥ 1`` the utility is non-monotone: adding a chunk redundant with several selected ones lowers it.
``R`` is sparse (few pairs overlap or are near-duplicates), so it is found as a list of pairs, never by comparing
every pair of chunks in Python or on their full signatures.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

from rag.types import Chunk, Hit

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


SIGNATURE_SIZE = 64
#: What :func:`word_signatures` computes; signatures stored by an index (``structure: minhash``) are only read back
#: under the same definition. Change it with any change to the words, hash, seeds or size.
SIGNATURE_DEFINITION = "minhash64/crc32-utf8/lower-re-w+/seed20240607/mod-2^31-1"
_MINHASH_SEEDS = np.random.default_rng(20240607).integers(1, (1 << 31) - 1, size=(2, SIGNATURE_SIZE),
                                                          dtype=np.uint64)
_PRIME = np.uint64((1 << 31) - 1)
_EMPTY = np.iinfo(np.uint64).max


def word_signatures(texts: Sequence[str]) -> np.ndarray:
    """One 64-value MinHash signature per text (rows), of its distinct lower-cased words (Broder 1997): the share
    of equal positions between two signatures estimates the Jaccard similarity of their word sets.

    A word is a maximal run of ``\\w`` characters (``re.findall(r"\\w+", text.lower())``) hashed with
    ``zlib.crc32`` of its UTF-8 bytes, then permuted 64 times (``(a·h + b) mod (2³¹ − 1)``); a text's signature is
    the minimum of each permutation over its words, and a text without words gets ``2⁶⁴ − 1`` everywhere. All
    texts go through numpy together: words are found with a table of the ``\\w`` code points, their CRC-32s are
    XORs of per-byte table entries (CRC is affine in the message bytes; words longer than 64 bytes, and the words
    of a few non-ASCII characters in ASCII text, go through ``zlib``), each distinct word is permuted once and
    the minima are one ``minimum.reduceat``. Equal, value for value, to hashing word by word
    (tests/test_select_pool.py keeps that reference); about twice as fast on English text."""
    out = np.full((len(texts), SIGNATURE_SIZE), _EMPTY, dtype=np.uint64)
    if not len(texts):
        return out
    lowered = [t.lower() for t in texts]
    joined = "\n".join(lowered)  # "\n" is not a word character: no word spans two texts
    points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    marks = np.zeros(len(points) + 2, dtype=np.int8)
    marks[1:-1] = _word_characters()[points]
    edges = np.flatnonzero(marks[1:] != marks[:-1])
    if not edges.size:
        return out
    starts, ends = edges[0::2], edges[1::2]  # code point offsets of every word (occurrence) in ``joined``
    lengths = ends - starts
    characters = points[marks[1:-1].view(bool)]  # the words' code points back to back
    wide = np.flatnonzero(characters >= 0x80)  # positions of non-ASCII word characters
    if wide.size > _FEW_WIDE:  # hash every word on its UTF-8 bytes
        width = 1 + (points >= 0x80).astype(np.int64) + (points >= 0x800) + (points >= 0x10000)
        utf8 = np.frombuffer(joined.encode("utf-8", "surrogatepass"), dtype=np.uint8)
        offsets = np.concatenate(([0], np.cumsum(width)))
        hashes = _crc32_of_words(utf8[np.repeat(marks[1:-1].view(bool), width)], offsets[ends] - offsets[starts])
    else:  # ASCII words (a code point is its byte) by table, the few others by zlib
        hashes = _crc32_of_words(characters.astype(np.uint8), lengths)
        if wide.size:
            for w in np.unique(np.searchsorted(np.cumsum(lengths) - lengths, wide, side="right") - 1).tolist():
                hashes[w] = zlib.crc32(joined[starts[w]:ends[w]].encode())
    text_starts = np.cumsum([0] + [len(t) + 1 for t in lowered[:-1]])
    words_per_text = np.bincount(np.searchsorted(text_starts, starts, side="right") - 1, minlength=len(texts))
    filled = np.flatnonzero(words_per_text)
    distinct, where = np.unique(hashes, return_inverse=True)  # texts of one corpus share most of their words
    permuted = _permute(distinct.astype(np.uint64))  # (64, distinct words), values < 2³¹
    occurrences = np.take(permuted, where.ravel(), axis=1)  # (64, words), each row contiguous
    first = np.cumsum(words_per_text[filled]) - words_per_text[filled]  # first word of each filled text
    segments = (first[None, :] + occurrences.shape[1] * np.arange(SIGNATURE_SIZE)[:, None]).ravel()
    minima = np.minimum.reduceat(occurrences.ravel(), segments).reshape(SIGNATURE_SIZE, len(filled))
    out[filled] = minima.T
    return out


_CRC_SPAN = 64  # words up to this many UTF-8 bytes are hashed by table; longer ones (rare) by zlib
_FEW_WIDE = 256  # up to this many non-ASCII word characters, zlib hashes their words faster than converting all
#                 the text to UTF-8


@lru_cache(maxsize=1)
def _word_characters() -> np.ndarray:
    """``table[c]``: whether code point ``c`` is a ``\\w`` character for :data:`_WORD` (built from ``re`` itself,
    once: ~30 ms)."""
    everything = np.arange(0x110000, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
    table = np.zeros(0x110000, dtype=bool)
    for match in _WORD.finditer(everything):
        table[match.start():match.end()] = True
    return table


@lru_cache(maxsize=1)
def _crc_tables() -> tuple[np.ndarray, np.ndarray]:
    """``(zeros, byte)``: ``zeros[n] = crc32(n zero bytes)`` and ``byte[j·256 + b]`` = what byte ``b`` followed by
    ``j`` more bytes adds to a CRC (``crc32(b·0ʲ) ^ crc32(0ʲ⁺¹)``), so that ``crc32(m) = zeros[len(m)] ^
    XOR_i byte[(len(m) − 1 − i)·256 + m_i]``."""
    zeros = np.array([zlib.crc32(bytes(n)) for n in range(_CRC_SPAN + 1)], dtype=np.uint32)
    byte = np.array([[zlib.crc32(bytes([b]) + bytes(j)) ^ zlib.crc32(bytes(j + 1)) for b in range(256)]
                     for j in range(_CRC_SPAN)], dtype=np.uint32)
    return zeros, byte.ravel()


def _crc32_of_words(data: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``zlib.crc32`` of consecutive words: ``data`` holds their bytes back to back, ``lengths`` (all ≥ 1) their
    sizes."""
    lengths = lengths.astype(np.int32)
    zeros, byte = _crc_tables()
    first = np.cumsum(lengths) - lengths
    after = np.repeat(first + lengths - 1, lengths) - np.arange(len(data), dtype=np.int32)  # bytes after it
    np.minimum(after, _CRC_SPAN - 1, out=after)
    hashes = np.bitwise_xor.reduceat(byte[after * 256 + data], first) ^ zeros[np.minimum(lengths, _CRC_SPAN)]
    for w in np.flatnonzero(lengths > _CRC_SPAN).tolist():
        hashes[w] = zlib.crc32(data[first[w]:first[w] + lengths[w]].tobytes())
    return hashes


def _permute(hashes: np.ndarray) -> np.ndarray:
    """``(a·h + b) mod (2³¹ − 1)`` for every seed pair (rows) and uint64 hash ``h < 2³²`` (columns; the product
    fits in 64 bits), as uint32, computed in place."""
    a, b = _MINHASH_SEEDS
    permuted = np.multiply.outer(a, hashes)
    permuted += b[:, None]
    np.remainder(permuted, _PRIME, out=permuted)
    return permuted.astype(np.uint32)


def touching_pairs(doc_codes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(i, j)``, ``i < j``, of chunks of one document whose spans overlap or touch
    (``start_i <= end_j`` and ``start_j <= end_i``).

    Sorted by (document, start), the chunks a chunk touches among those after it are the next few, up to the
    first that starts past its end, so the scan costs the longest such run, not n²."""
    order = np.lexsort((starts, doc_codes))
    doc, start, end = doc_codes[order], starts[order], ends[order]
    rows, cols = [], []
    for d in range(1, len(order)):
        near = np.flatnonzero((doc[d:] == doc[:-d]) & (start[d:] <= end[:-d]))
        if near.size == 0:
            break
        rows.append(order[near])
        cols.append(order[near + d])
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    a, b = np.concatenate(rows), np.concatenate(cols)
    a, b = np.minimum(a, b), np.maximum(a, b)
    touching = (starts[a] <= ends[b]) & (starts[b] <= ends[a])  # exact test (spans with start > end aside)
    return a[touching], b[touching]


def span_overlap_pairs(doc_codes: np.ndarray, starts: np.ndarray, ends: np.ndarray):
    """Same-document pairs ``(i, j, R_ij)``, ``i < j``, whose spans overlap; ``R_ij`` = overlapping characters /
    length of the shorter chunk."""
    rows, cols = touching_pairs(doc_codes, starts, ends)
    overlap = np.minimum(ends[rows], ends[cols]) - np.maximum(starts[rows], starts[cols])
    lengths = ends - starts
    shorter = np.maximum(np.minimum(lengths[rows], lengths[cols]), 1)
    keep = overlap > 0
    return rows[keep], cols[keep], overlap[keep] / shorter[keep]


_SCREEN = 16  # signature values a pair is screened on before being estimated on all 64


def near_duplicate_pairs(signatures: np.ndarray, threshold: float):
    """Pairs ``(i, j, J_ij)``, ``i < j``, whose MinHash-estimated word Jaccard ``J_ij`` (all 64 values) is at
    least ``threshold``, among the pairs agreeing on ``max(1, ⌊16·threshold⌋ − 4)`` of the first 16 values (a pair
    at the threshold agrees on about threshold·16 of them). The screen counts agreements one signature position
    at a time into an n × n byte matrix (16 flat comparisons, not one n × n × 16 array)."""
    empty = np.zeros(0, dtype=np.int64)
    n = len(signatures)
    if n < 2 or threshold > 1.0:
        return empty, empty, np.zeros(0)
    matrix = np.asarray(signatures).astype(np.uint32, copy=False)
    agree = np.zeros((n, n), dtype=np.uint8)
    for column in np.ascontiguousarray(matrix[:, :_SCREEN].T):
        agree += column[:, None] == column[None, :]
    rows, cols = np.nonzero(np.triu(agree >= max(1, int(threshold * _SCREEN) - 4), k=1))
    estimate = (matrix[rows] == matrix[cols]).mean(axis=1)
    keep = estimate >= threshold
    return rows[keep], cols[keep], estimate[keep]


@dataclass
class CandidatePool:
    """Hits (deduplicated, best first) with their values, exact token costs and pairwise penalties.

    ``pairs_of`` gives the redundant pairs ``(i, j, R_ij)`` (``i < j``, each pair once); they are found on first
    use, so a strategy that never looks at redundancy (``topk``, ``gradient``) never pays for them."""

    hits: tuple[Hit, ...]
    values: np.ndarray
    costs: np.ndarray
    redundancy_weight: float = 1.0
    pairs_of: Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
    _penalty: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.hits)

    def redundancy_of(self) -> np.ndarray:
        """``R`` as a dense symmetric matrix (zero diagonal)."""
        n = len(self.hits)
        redundancy = np.zeros((n, n))
        if self.pairs_of is not None:
            rows, cols, r = self.pairs_of()
            redundancy[rows, cols] = redundancy[cols, rows] = r
        return redundancy

    @property
    def penalty(self) -> np.ndarray:
        """``P_ij = λ · R_ij · (v_i + v_j) / 2`` (zero diagonal), computed on first use."""
        if self._penalty is None:
            n = len(self.hits)
            penalty = np.zeros((n, n))
            if self.pairs_of is not None and self.redundancy_weight:
                rows, cols, r = self.pairs_of()
                penalty[rows, cols] = penalty[cols, rows] = (
                    self.redundancy_weight * r * (self.values[rows] + self.values[cols]) / 2.0)
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


def neighbour_propagated(values: np.ndarray, doc_codes: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                         weight: float) -> np.ndarray:
    """``v_j = max(v_j, weight · v_i)`` for chunks ``i`` touching or overlapping ``j`` in the same document:
    evidence is contiguous, so the neighbour of a very relevant chunk is likely relevant too (the idea behind
    relevant segment extraction and small-to-big retrieval). One step, from the original values."""
    if weight <= 0 or len(values) < 2:
        return values
    rows, cols = touching_pairs(doc_codes, starts, ends)
    lifted = np.zeros_like(values)
    np.maximum.at(lifted, cols, weight * values[rows])
    np.maximum.at(lifted, rows, weight * values[cols])
    return np.maximum(values, lifted)


def build_pool(hits: Sequence[Hit], costs: Sequence[int], *, normalization: str = "minmax",
               redundancy_weight: float = 1.0, near_duplicate: float = 0.8, neighbour_weight: float = 0.0,
               signatures_of: Callable[[Sequence[Chunk]], np.ndarray] | None = None) -> CandidatePool:
    """A :class:`CandidatePool` over ``hits`` (already deduplicated) with ``costs`` in generator tokens;
    ``signatures_of(chunks)`` gives the MinHash signature rows of the hits' chunks (default: :func:`word_signatures`
    of their texts; a cache or an index's stored signatures can stand in)."""
    hits = tuple(hits)
    chunks = [h.chunk for h in hits]
    codes: dict[str, int] = {}
    doc_codes = np.array([codes.setdefault(c.doc_id, len(codes)) for c in chunks], dtype=np.int64)
    starts = np.array([c.start for c in chunks], dtype=np.int64)
    ends = np.array([c.end for c in chunks], dtype=np.int64)
    values = normalized_values(np.array([h.score for h in hits], dtype=np.float64), normalization)
    values = neighbour_propagated(values, doc_codes, starts, ends, neighbour_weight)
    found: list = []

    def pairs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not found:
            rows, cols, r = span_overlap_pairs(doc_codes, starts, ends)
            if near_duplicate <= 1.0:
                signatures = (signatures_of(chunks) if signatures_of is not None
                              else word_signatures([c.text for c in chunks]))
                dup_rows, dup_cols, jaccard = near_duplicate_pairs(signatures, near_duplicate)
                n = max(len(hits), 1)
                both = np.concatenate((rows * n + cols, dup_rows * n + dup_cols))
                merged, where = np.unique(both, return_inverse=True)
                r_max = np.zeros(merged.size)
                np.maximum.at(r_max, where, np.concatenate((r, jaccard)))  # R = max(overlap, Jaccard)
                rows, cols, r = merged // n, merged % n, r_max
            found.append((rows, cols, r))
        return found[0]

    return CandidatePool(hits, values, np.asarray(costs, dtype=np.int64), redundancy_weight, pairs)
