"""Fusion of several ranked hit lists into one (merge operators for ``parallel`` branches).

- ``rrf``: reciprocal rank fusion, score(d) = Σ_r w_r / (k + rank_r(d)) (Cormack, Clarke & Büttcher, SIGIR 2009);
  ``weights`` make it weighted RRF.
- ``convex``: convex combination Σ_r w_r · norm_r(score_r(d)) of per-list normalised scores (Bruch, Gai &
  Ingber 2023, "An analysis of fusion functions for hybrid retrieval"), with ``normalization``:
  ``minmax``, ``zscore``, or ``dbsf`` (distribution-based score fusion: min-max between mean ± 3 σ of the list,
  Mazzeschi 2023). A chunk missing from a list gets that list's lowest normalised score.
  ``weighting: confidence`` multiplies each list's weight, per query, by how far its best score stands out from
  the rest of its list — the z-score of its top score, (s₁ − μ) / σ, a score-distribution query-performance
  predictor in the spirit of NQC (Shtok et al. 2012): a retriever that has no clear winner for this query
  (e.g. BM25 on a natural-language query against code) then weighs less than one that has.
  ``anchor: i`` further scales every other list's weight, per query, by its agreement with branch ``i``:
  ``floor + (1 − floor) · overlap``, where overlap is the share of the list's top ``agreement_depth`` chunks
  that are also in the anchor's top ``agreement_depth`` (agreement among retrieval systems as a predictor of
  query difficulty: Aslam & Pavlu, ECIR 2007). When the two disagree the fused ranking leans on the anchor —
  for BM25 + dense the dense branch, whose ranking degrades least when the query's words are not the
  document's (natural language against code); when they agree both count fully.

Chunks are de-duplicated by id; the fused hit keeps the chunk and reports the merge operator as its source.

YAML::

    - parallel:
        - {op: bm25, top_k: 100}
        - {op: dense, top_k: 100}
      merge: {op: rrf, k: 60}            # or {op: convex, normalization: dbsf, weights: [0.3, 0.7]}

    # the default hybrid merge (configs/pipelines/hybrid.yaml): per-query confidence and agreement weights
    merge: {op: convex, normalization: zscore, weighting: confidence, anchor: 1}
"""
from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
from pydantic import Field

from rag.errors import ConfigError
from rag.operators import MergeOperator, RunContext
from rag.registry import OperatorParams, operator
from rag.state import QueryState
from rag.types import Chunk, Hit


def _check_weights(weights: Sequence[float] | None, n_lists: int) -> np.ndarray:
    if weights is None:
        return np.ones(n_lists)
    if len(weights) != n_lists:
        raise ConfigError(f"{len(weights)} weights for {n_lists} branches; give one weight per branch", "weights")
    return np.asarray(weights, dtype=np.float64)


def _collect(rankings: Sequence[Sequence[Hit]]) -> tuple[list[Chunk], dict[str, int]]:
    """Every distinct chunk across the lists, in first-seen order, and its column."""
    chunks: list[Chunk] = []
    column: dict[str, int] = {}
    for hits in rankings:
        for hit in hits:
            if hit.chunk.id not in column:
                column[hit.chunk.id] = len(chunks)
                chunks.append(hit.chunk)
    return chunks, column


def _ranked(chunks: list[Chunk], fused: np.ndarray, top_k: int | None, source: str) -> tuple[Hit, ...]:
    order = sorted(range(len(chunks)), key=lambda i: (-fused[i], chunks[i].id))
    if top_k is not None:
        order = order[:top_k]
    return tuple(Hit(chunks[i], float(fused[i]), source) for i in order)


def _deduplicated(hits: Sequence[Hit]) -> list[Hit]:
    """The first (best) hit of each chunk id."""
    seen: set[str] = set()
    kept = []
    for hit in hits:
        if hit.chunk.id not in seen:
            seen.add(hit.chunk.id)
            kept.append(hit)
    return kept


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Hit]], k: float = 60.0,
                           weights: Sequence[float] | None = None, top_k: int | None = None,
                           source: str = "rrf") -> tuple[Hit, ...]:
    """Fuse ranked lists by Σ w / (k + rank), ranks starting at 1."""
    rankings = [_deduplicated(r) for r in rankings]
    w = _check_weights(weights, len(rankings))
    chunks, column = _collect(rankings)
    fused = np.zeros(len(chunks))
    for weight, hits in zip(w, rankings):
        for rank, hit in enumerate(hits, start=1):
            fused[column[hit.chunk.id]] += weight / (k + rank)
    return _ranked(chunks, fused, top_k, source)


def normalise_scores(scores: np.ndarray, method: str) -> np.ndarray:
    """Scores of one list mapped to a comparable scale (see module docstring)."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return scores
    if method == "minmax":
        low, high = scores.min(), scores.max()
    elif method == "zscore":
        std = scores.std()
        return (scores - scores.mean()) / std if std > 0 else np.zeros_like(scores)
    elif method == "dbsf":
        mean, std = scores.mean(), scores.std()
        low, high = mean - 3 * std, mean + 3 * std
    else:
        raise ConfigError(f"unknown normalization {method!r}; use minmax, zscore or dbsf", "normalization")
    return (scores - low) / (high - low) if high > low else np.ones_like(scores)


def head_confidence(scores: np.ndarray) -> float:
    """How far a list's top score stands out from the list: (s₁ − μ) / σ, 0 for flat or tiny lists."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) < 2 or scores.std() == 0:
        return 0.0
    return float((scores.max() - scores.mean()) / scores.std())


def top_overlap(hits: Sequence[Hit], reference: Sequence[Hit], depth: int) -> float:
    """Share of the first ``depth`` chunks of ``hits`` that are among the first ``depth`` of ``reference``."""
    head = [h.chunk.id for h in hits[:depth]]
    if not head:
        return 0.0
    others = {h.chunk.id for h in reference[:depth]}
    return sum(cid in others for cid in head) / len(head)


def convex_combination(rankings: Sequence[Sequence[Hit]], normalization: str = "minmax",
                       weights: Sequence[float] | None = None, top_k: int | None = None,
                       source: str = "convex", weighting: str = "fixed", anchor: int | None = None,
                       agreement_depth: int = 20, agreement_floor: float = 0.2) -> tuple[Hit, ...]:
    """Fuse by the weighted sum of each list's normalised scores; absent chunks get the list's minimum.
    ``weighting="confidence"`` scales each weight by :func:`head_confidence` of the list, per query;
    ``anchor`` scales every other list's weight by its :func:`top_overlap` with the anchor list (see the
    module docstring)."""
    rankings = [_deduplicated(r) for r in rankings]
    w = _check_weights(weights, len(rankings))
    if weighting == "confidence":
        confidence = np.array([head_confidence([h.score for h in hits]) for hits in rankings])
        if confidence.sum() > 0:
            w = w * confidence
    elif weighting != "fixed":
        raise ConfigError(f"unknown weighting {weighting!r}; use fixed or confidence", "weighting")
    if anchor is not None:
        if not -len(rankings) <= anchor < len(rankings):
            raise ConfigError(f"anchor {anchor} names no branch; there are {len(rankings)} (0-based)", "anchor")
        anchor %= len(rankings)
        agreement = np.array([1.0 if i == anchor else
                              agreement_floor + (1 - agreement_floor) *
                              top_overlap(hits, rankings[anchor], agreement_depth)
                              for i, hits in enumerate(rankings)])
        w = w * agreement
    chunks, column = _collect(rankings)
    fused = np.zeros(len(chunks))
    for weight, hits in zip(w, rankings):
        if not hits:
            continue
        norm = normalise_scores(np.array([h.score for h in hits]), normalization)
        contribution = np.full(len(chunks), norm.min())
        contribution[[column[h.chunk.id] for h in hits]] = norm
        fused += weight * contribution
    return _ranked(chunks, fused, top_k, source)


@operator("rrf", kind="merge")
class ReciprocalRankFusion(MergeOperator):
    """Reciprocal rank fusion of the branches' hits (weighted when ``weights`` is given)."""

    class Params(OperatorParams):
        k: float = Field(60.0, gt=0)
        weights: list[float] | None = None
        top_k: int | None = Field(None, ge=1)

    def merge(self, branches: Sequence[QueryState], state: QueryState, ctx: RunContext) -> QueryState:
        p = self.params
        hits = reciprocal_rank_fusion([b.hits for b in branches], p.k, p.weights, p.top_k, self.name)
        return state.evolve(hits=hits)


@operator("convex", kind="merge")
class ConvexCombination(MergeOperator):
    """Weighted sum of the branches' normalised scores (minmax, zscore or dbsf)."""

    class Params(OperatorParams):
        normalization: Literal["minmax", "zscore", "dbsf"] = "minmax"
        weights: list[float] | None = None
        weighting: Literal["fixed", "confidence"] = "fixed"
        anchor: int | None = Field(None, description="branch the others are weighted by agreement with")
        agreement_depth: int = Field(20, ge=1)
        agreement_floor: float = Field(0.2, ge=0, le=1)
        top_k: int | None = Field(None, ge=1)

    def merge(self, branches: Sequence[QueryState], state: QueryState, ctx: RunContext) -> QueryState:
        p = self.params
        hits = convex_combination([b.hits for b in branches], p.normalization, p.weights, p.top_k, self.name,
                                  p.weighting, p.anchor, p.agreement_depth, p.agreement_floor)
        return state.evolve(hits=hits)
