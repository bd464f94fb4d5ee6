"""A read-only matrix view of the entity graph for fast queries: node order, sparse transition matrix,
entity/passage vectors, specificity, and Personalized PageRank by power iteration.

Edge weights in the view:

- passage–entity: ``mention_weight`` × mention share × number of entities in the passage (so the mean mention
  weight of a passage is ``mention_weight`` whatever its length);
- passage–title entity: in addition, ``title_weight`` × the passage's total mention weight, for the entities
  naming the passage's topic (its title, and the title without a disambiguation qualifier), wherever they are
  mentioned — so a walk reaching the entity ``Two Dollar Radio`` from another passage goes on to *the* passage
  about it, as a hyperlink would (the page-title nodes of encyclopaedic graphs; for 2-hop "bridge" questions);
- entity–entity: ``cooccur_weight`` × NPMI of sentence co-occurrence (Bouma 2009; negative values dropped),
  ``relation_weight`` per LLM relation label, and ``synonym_weight`` × cosine for synonym links.

Hub entities — mentioned in more than ``max(hub_min_passages, hub_share × passages)`` passages — are left out
of the view (their counts stay in the store, so provenance stays exact).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from graph.normalize import normalize_entity
from graph.store import EntityGraph


@dataclass(frozen=True)
class GraphWeights:
    mention_weight: float = 1.0
    cooccur_weight: float = 1.0
    relation_weight: float = 1.0
    synonym_weight: float = 1.0
    title_weight: float = 1.0
    hub_share: float = 0.05
    hub_min_passages: int = 20


class CompiledGraph:
    """Nodes ``0..P-1`` are passages, ``P..P+E-1`` entities. ``transition`` is column-stochastic."""

    def __init__(self, store: EntityGraph, weights: GraphWeights):
        graph = store.graph
        self.version = store.version
        self.passage_ids = store.passage_ids
        n_passages = len(self.passage_ids)
        limit = max(weights.hub_min_passages, weights.hub_share * n_passages)
        all_entities = store.entity_keys
        self.hubs = [k for k in all_entities if graph.nodes[f"e:{k}"]["passages"] > limit]
        hubs = set(self.hubs)
        self.entity_keys = [k for k in all_entities if k not in hubs]
        self.passage_index = {p: i for i, p in enumerate(self.passage_ids)}
        self.entity_index = {k: i for i, k in enumerate(self.entity_keys)}
        n_entities = len(self.entity_keys)
        self.n_passages, self.n_entities = n_passages, n_entities
        self.document_frequency = np.array([graph.nodes[f"e:{k}"]["passages"] for k in self.entity_keys], np.float64)
        self.specificity = 1.0 / np.maximum(self.document_frequency, 1.0)

        rows, cols, vals = [], [], []
        m_rows, m_cols, m_vals = [], [], []  # entity × passage mention shares
        e_src, e_dst, e_w = [], [], []
        n_sentences = max(store.n_sentences, 1)
        for u, v, data in graph.edges(data=True):
            if data["kind"] == "mention":
                passage, entity = (u, v) if u.startswith("p:") else (v, u)
                j = self.entity_index.get(entity[2:])
                if j is None:
                    continue
                i = self.passage_index[passage[2:]]
                degree = graph.degree(passage)
                weight = weights.mention_weight * data["share"] * degree
                rows += [i, n_passages + j]
                cols += [n_passages + j, i]
                vals += [weight, weight]
                m_rows.append(j)
                m_cols.append(i)
                m_vals.append(data["share"])
                continue
            a, b = self.entity_index.get(u[2:]), self.entity_index.get(v[2:])
            if a is None or b is None:
                continue
            weight = weights.synonym_weight * data["synonym"] + weights.relation_weight * sum(data["relations"].values())
            if data["cooccur"] > 0:
                weight += weights.cooccur_weight * _npmi(data["cooccur"], graph.nodes[u]["sentences"],
                                                         graph.nodes[v]["sentences"], n_sentences)
            if weight > 0:
                rows += [n_passages + a, n_passages + b]
                cols += [n_passages + b, n_passages + a]
                vals += [weight, weight]
                e_src.append(a)
                e_dst.append(b)
                e_w.append(weight)
        if weights.title_weight > 0:
            for passage, i in self.passage_index.items():
                node = f"p:{passage}"
                strength = weights.title_weight * weights.mention_weight * graph.degree(node)
                for key in graph.nodes[node].get("titles", ()):
                    j = self.entity_index.get(key)
                    if j is not None and strength > 0:
                        rows += [i, n_passages + j]
                        cols += [n_passages + j, i]
                        vals += [strength, strength]
        n = n_passages + n_entities
        adjacency = sp.csr_matrix((vals, (rows, cols)), shape=(n, n), dtype=np.float64)
        out = np.asarray(adjacency.sum(axis=0)).ravel()
        self.dangling = out == 0
        self.adjacency = adjacency
        self.transition = (adjacency @ sp.diags(np.where(out > 0, 1.0 / np.maximum(out, 1e-300), 0.0))).tocsr()
        self.mentions = sp.csr_matrix((m_vals, (m_rows, m_cols)), shape=(n_entities, n_passages), dtype=np.float64)
        self.edge_src = np.asarray(e_src, np.int64)
        self.edge_dst = np.asarray(e_dst, np.int64)
        self.edge_weight = np.asarray(e_w, np.float64)

        self._edge_cosines: np.ndarray | None = None
        self._fact_vectors: np.ndarray | None = None
        self.entity_vectors = _stack([store.entity_vectors.get(k) for k in self.entity_keys])
        self.passage_vectors = _stack([store.passage_vectors.get(p) for p in self.passage_ids])
        self.aliases: dict[str, int] = {}
        for key, j in self.entity_index.items():
            self.aliases[key] = j
            for surface in graph.nodes[f"e:{key}"]["surfaces"]:
                self.aliases.setdefault(normalize_entity(surface), j)
        self.aliases.pop("", None)

    def edge_cosines(self) -> np.ndarray:
        """Cosine between the two entity vectors of each entity–entity edge (cached)."""
        if self._edge_cosines is None:
            vectors = self.entity_vectors
            self._edge_cosines = (np.einsum("ij,ij->i", vectors[self.edge_src], vectors[self.edge_dst])
                                  if vectors is not None and len(self.edge_src) else np.zeros(len(self.edge_src)))
        return self._edge_cosines

    def fact_vectors(self) -> np.ndarray | None:
        """One unit vector per entity–entity edge, the normalised sum of its two entity vectors: a model-free
        stand-in for embedding the fact text "A B" (HippoRAG 2's query-to-triple matching), cached."""
        if self._fact_vectors is None and self.entity_vectors is not None:
            summed = self.entity_vectors[self.edge_src] + self.entity_vectors[self.edge_dst]
            norms = np.linalg.norm(summed, axis=1, keepdims=True)
            self._fact_vectors = (summed / np.maximum(norms, 1e-12)).astype(np.float32)
        return self._fact_vectors

    def personalized_pagerank(self, reset: np.ndarray, damping: float = 0.5, max_iter: int = 50,
                              tol: float = 1e-8) -> np.ndarray:
        """Stationary distribution of a walk that follows an edge with probability ``damping`` and jumps back to
        ``reset`` otherwise (Haveliwala 2002; HippoRAG, Gutiérrez et al. 2024 uses damping 0.5). Mass reaching
        a node without edges returns to ``reset``. A 2-D ``reset`` (nodes × k) runs k walks at once, one per
        column; ``tol`` bounds the L1 change summed over all of them."""
        reset = reset / reset.sum(axis=0)
        scores = reset.copy()
        buffer = np.empty_like(reset)  # in place: (nodes × k) temporaries would cost more than the arithmetic
        for _ in range(max_iter):
            updated = self.transition @ scores
            updated *= damping
            # the columns of ``transition`` sum to 1 except at dangling nodes, so the mass not walked is
            # 1 − damping plus what the walk left at dangling nodes
            np.multiply(reset, 1.0 - damping + damping * scores[self.dangling].sum(axis=0), out=buffer)
            updated += buffer
            np.subtract(scores, updated, out=buffer)
            if np.abs(buffer, out=buffer).sum() < tol:
                return updated
            scores = updated
        return scores


def _npmi(joint: float, count_a: float, count_b: float, total: float) -> float:
    """Normalised pointwise mutual information in [-1, 1], clipped at 0."""
    p_ab = min(joint / total, 1.0)
    p_a, p_b = max(count_a, joint) / total, max(count_b, joint) / total
    if p_ab >= 1.0:
        return 1.0
    return max(0.0, math.log(p_ab / (p_a * p_b)) / -math.log(p_ab))


def _stack(vectors: list) -> np.ndarray | None:
    if not vectors or any(v is None for v in vectors):
        return None
    return np.stack(vectors).astype(np.float32, copy=False)
