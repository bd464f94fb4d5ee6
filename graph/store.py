"""The entity graph with exact provenance: passages, entities and the edges between them, reference-counted.

Nodes are ``p:<chunk id>`` (kind ``passage``) and ``e:<entity key>`` (kind ``entity``). Edges:

- passage–entity (``mention``): ``count`` mentions, ``share`` = count / all mentions in the passage;
- the passage node keeps the keys of its ``titles`` (title, title without a qualifier), from which the
  compiled view derives title links (nothing to reference-count: they live and die with the passage);
- entity–entity: ``cooccur`` = number of sentences (or triples) the two share, summed over passages, with the
  ``relations`` labels of LLM triples; ``synonym`` = embedding cosine when the names are near-duplicates.

Every count is a sum of per-passage contributions recorded on the passage node (``pairs``, ``sentence_counts``),
so deleting a passage subtracts exactly what adding it added; an entity lives while some passage mentions it
and an edge while some passage (or a synonym link between two live entities) supports it. The graph persists
as node-link JSON (the networkx schema) plus ``.npy`` vectors, never pickle.
"""
from __future__ import annotations

import json
from collections import Counter
from itertools import combinations
from pathlib import Path

import networkx as nx
import numpy as np

from graph.extraction import ChunkEntities
from rag.errors import IndexStoreError

FORMAT_VERSION = 1
#: Sentences naming more entities than this contribute pairs among their first entities only (lists, tables).
MAX_ENTITIES_PER_SENTENCE = 40


def passage_node(chunk_id: str) -> str:
    return f"p:{chunk_id}"


def entity_node(key: str) -> str:
    return f"e:{key}"


class EntityGraph:
    """Passage and entity nodes with reference-counted edges; entity and passage vectors kept alongside."""

    def __init__(self) -> None:
        self.graph = nx.Graph()
        self.entity_vectors: dict[str, np.ndarray] = {}
        self.passage_vectors: dict[str, np.ndarray] = {}
        self.n_sentences = 0
        self.version = 0

    # -- reading -------------------------------------------------------------------------------------------
    @property
    def passage_ids(self) -> list[str]:
        return [n[2:] for n, d in self.graph.nodes(data=True) if d["kind"] == "passage"]

    @property
    def entity_keys(self) -> list[str]:
        return [n[2:] for n, d in self.graph.nodes(data=True) if d["kind"] == "entity"]

    def has_passage(self, chunk_id: str) -> bool:
        return passage_node(chunk_id) in self.graph

    def entity(self, key: str) -> dict:
        return self.graph.nodes[entity_node(key)]

    def display_name(self, key: str) -> str:
        surfaces = self.entity(key)["surfaces"]
        return max(surfaces.items(), key=lambda kv: (kv[1], -len(kv[0])))[0] if surfaces else key

    # -- updating ------------------------------------------------------------------------------------------
    def add_passage(self, chunk_id: str, found: ChunkEntities) -> list[str]:
        """Adds one passage with what extraction found in it; returns entity keys that are new to the graph."""
        if self.has_passage(chunk_id):
            self.delete_passage(chunk_id)
        sentence_counts: Counter = Counter()
        pair_counts: Counter = Counter()
        for sentence in found.sentences:
            keys = sorted(sentence)[:MAX_ENTITIES_PER_SENTENCE]
            sentence_counts.update(keys)
            pair_counts.update(combinations(keys, 2))
        pair_relations: dict[tuple[str, str], list[str]] = {}
        for subject, relation, obj in found.triples:
            if subject != obj and relation:
                pair_relations.setdefault(tuple(sorted((subject, obj))), []).append(relation)
        pair_rows = [[a, b, pair_counts.get((a, b), 0), sorted(pair_relations.get((a, b), []))]
                     for a, b in sorted(set(pair_counts) | set(pair_relations))
                     if a in found.mentions and b in found.mentions]
        node = passage_node(chunk_id)
        self.graph.add_node(node, kind="passage", sentences=len(found.sentences), pairs=pair_rows,
                            titles=list(found.titles),
                            sentence_counts=dict(sentence_counts),
                            surfaces={k: dict(v) for k, v in found.surfaces.items()})
        self.n_sentences += len(found.sentences)
        total = sum(found.mentions.values()) or 1
        new_keys = []
        for key, count in found.mentions.items():
            enode = entity_node(key)
            if enode not in self.graph:
                self.graph.add_node(enode, kind="entity", passages=0, sentences=0, surfaces={})
                new_keys.append(key)
            data = self.graph.nodes[enode]
            data["passages"] += 1
            data["sentences"] += sentence_counts.get(key, 0)
            for surface, n in found.surfaces.get(key, {}).items():
                data["surfaces"][surface] = data["surfaces"].get(surface, 0) + n
            self.graph.add_edge(node, enode, kind="mention", count=count, share=count / total)
        for a, b, count, relations in pair_rows:
            u, v = entity_node(a), entity_node(b)
            if not self.graph.has_edge(u, v):
                self.graph.add_edge(u, v, kind="entity", cooccur=0, relations={}, synonym=0.0)
            edge = self.graph.edges[u, v]
            edge["cooccur"] += count
            for relation in relations:
                edge["relations"][relation] = edge["relations"].get(relation, 0) + 1
        self.version += 1
        return new_keys

    def delete_passage(self, chunk_id: str) -> None:
        """Subtracts exactly what :meth:`add_passage` added; unknown ids are ignored."""
        node = passage_node(chunk_id)
        if node not in self.graph:
            return
        data = self.graph.nodes[node]
        for a, b, count, relations in data["pairs"]:
            u, v = entity_node(a), entity_node(b)
            edge = self.graph.edges[u, v]
            edge["cooccur"] -= count
            for relation in relations:
                edge["relations"][relation] -= 1
                if edge["relations"][relation] <= 0:
                    del edge["relations"][relation]
            if edge["cooccur"] <= 0 and not edge["relations"] and not edge["synonym"]:
                self.graph.remove_edge(u, v)
        sentence_counts, surfaces = data["sentence_counts"], data["surfaces"]
        self.n_sentences -= data["sentences"]
        entities = list(self.graph.neighbors(node))
        self.graph.remove_node(node)
        for enode in entities:
            key = enode[2:]
            entity = self.graph.nodes[enode]
            entity["passages"] -= 1
            entity["sentences"] -= sentence_counts.get(key, 0)
            if entity["passages"] <= 0:
                self.graph.remove_node(enode)
                self.entity_vectors.pop(key, None)
                continue
            for surface, n in surfaces.get(key, {}).items():
                left = entity["surfaces"].get(surface, 0) - n
                if left > 0:
                    entity["surfaces"][surface] = left
                else:
                    entity["surfaces"].pop(surface, None)
        self.passage_vectors.pop(chunk_id, None)
        self.version += 1

    def link_synonyms(self, new_keys: list[str], threshold: float, max_per_node: int) -> int:
        """Adds synonym edges from each new entity to at most ``max_per_node`` entities with cosine ≥ threshold
        (HippoRAG's synonymy edges); only new nodes are compared, against all live entities."""
        new_keys = [k for k in new_keys if k in self.entity_vectors]
        if not new_keys or max_per_node <= 0:
            return 0
        keys = list(self.entity_vectors)
        matrix = np.stack([self.entity_vectors[k] for k in keys])
        position = {k: i for i, k in enumerate(keys)}
        added = 0
        for start in range(0, len(new_keys), 1024):
            block = new_keys[start:start + 1024]
            sims = np.stack([self.entity_vectors[k] for k in block]) @ matrix.T
            for row, key in enumerate(block):
                sims[row, position[key]] = -1.0
                if max_per_node < sims.shape[1]:
                    top = np.argpartition(-sims[row], max_per_node)[:max_per_node]
                else:
                    top = np.arange(sims.shape[1])
                for j in top:
                    if sims[row, j] >= threshold:
                        u, v = entity_node(key), entity_node(keys[j])
                        if not self.graph.has_edge(u, v):
                            self.graph.add_edge(u, v, kind="entity", cooccur=0, relations={}, synonym=0.0)
                        self.graph.edges[u, v]["synonym"] = float(sims[row, j])
                        added += 1
        self.version += 1
        return added

    # -- persistence ---------------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        data = {
            "directed": False,
            "multigraph": False,
            "graph": {"format_version": FORMAT_VERSION, "n_sentences": self.n_sentences},
            "nodes": [{"id": n, **d} for n, d in self.graph.nodes(data=True)],
            "edges": [{"source": u, "target": v, **d} for u, v, d in self.graph.edges(data=True)],
        }
        (directory / "graph.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        for name, vectors in (("entity", self.entity_vectors), ("passage", self.passage_vectors)):
            keys = list(vectors)
            (directory / f"{name}_vector_keys.json").write_text(json.dumps(keys, ensure_ascii=False), encoding="utf-8")
            matrix = np.stack([vectors[k] for k in keys]).astype(np.float32) if keys else np.zeros((0, 0), np.float32)
            np.save(directory / f"{name}_vectors.npy", matrix, allow_pickle=False)

    @classmethod
    def load(cls, directory: Path) -> "EntityGraph":
        path = directory / "graph.json"
        if not path.exists():
            raise IndexStoreError(f"graph structure file {path} is missing")
        data = json.loads(path.read_text(encoding="utf-8"))
        version = data.get("graph", {}).get("format_version")
        if version != FORMAT_VERSION:
            raise IndexStoreError(f"{path}: graph format version {version!r} is not supported ({FORMAT_VERSION})")
        store = cls()
        store.n_sentences = int(data["graph"]["n_sentences"])
        for node in data["nodes"]:
            attrs = dict(node)
            store.graph.add_node(attrs.pop("id"), **attrs)
        for edge in data["edges"]:
            attrs = dict(edge)
            store.graph.add_edge(attrs.pop("source"), attrs.pop("target"), **attrs)
        for name, target in (("entity", store.entity_vectors), ("passage", store.passage_vectors)):
            keys = json.loads((directory / f"{name}_vector_keys.json").read_text(encoding="utf-8"))
            matrix = np.load(directory / f"{name}_vectors.npy", allow_pickle=False)
            target.update({k: matrix[i] for i, k in enumerate(keys)})
        return store
