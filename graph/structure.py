"""The ``graph`` index structure: an entity graph over the chunks, built without an LLM by default.

YAML::

    index:
      structures: [bm25, dense, {name: graph, phrases: true, synonym_threshold: 0.8}]

``add`` extracts entities per chunk (:mod:`graph.extraction`, or LLM triples with ``extractor: llm``),
records them with exact provenance (:mod:`graph.store`), embeds only the entities new to the graph (and the
chunks, for the passage seeds of PPR), and links new entities to near-duplicate names (synonym edges).
Query operators (``graph_ppr``, ``graph_local``, ``graph_global``, ``graph_hybrid``, ``graph_pcst``) read the
matrix view from :meth:`GraphStructure.compiled`.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Literal, Sequence

import numpy as np

from graph.compiled import CompiledGraph, GraphWeights
from graph.extraction import OfflineEntityExtractor
from graph.store import EntityGraph
from rag.errors import ConfigError
from rag.index.structure import IndexStructure
from rag.registry import OperatorParams, operator
from rag.types import Chunk

if TYPE_CHECKING:
    from rag.resources import Resources


def passage_text(chunk: Chunk, with_title: bool) -> str:
    """The text embedded for a chunk: ``title + " " + text`` when it has a title (the BEIR convention)."""
    title = chunk.metadata.get("title") if with_title else None
    return f"{title} {chunk.text}" if title else chunk.text


@operator("graph", kind="structure")
class GraphStructure(IndexStructure):
    """Entity graph (passages, entities, co-occurrence/relation/synonym edges) for graph retrievers."""

    class Params(OperatorParams):
        extractor: Literal["offline", "llm"] = "offline"
        generator: dict[str, Any] | str | None = None  # for extractor: llm; None = the pipeline's generator
        phrases: bool = True  # lowercase noun-phrase concepts besides named entities
        quoted: bool = True
        yake_top: int = 0  # > 0 adds the top YAKE keyphrases per chunk (needs yake)
        synonyms: bool = True
        synonym_threshold: float = 0.8
        synonym_max_per_node: int = 5
        passage_vectors: bool = True  # embed chunks for PPR passage seeds and dense fallback
        embed_title: bool = True
        mention_weight: float = 1.0
        cooccur_weight: float = 1.0
        relation_weight: float = 1.0
        synonym_weight: float = 1.0
        title_weight: float = 1.0  # passage–title-entity link, × the passage's total mention weight; 0 = off
        hub_share: float = 0.05
        hub_min_passages: int = 20

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        if not 0.0 < p.synonym_threshold <= 1.0:
            raise ConfigError(f"must be in (0, 1], got {p.synonym_threshold}", "synonym_threshold")
        self.store_ = EntityGraph()
        self.extractor_ = OfflineEntityExtractor(phrases=p.phrases, quoted=p.quoted, yake_top=p.yake_top)
        self.weights_ = GraphWeights(p.mention_weight, p.cooccur_weight, p.relation_weight, p.synonym_weight,
                                     p.title_weight, p.hub_share, p.hub_min_passages)
        self._compiled: CompiledGraph | None = None
        self._lock = threading.Lock()

    def chunk_extractor(self, resources: "Resources"):
        if self.params.extractor == "offline":
            return self.extractor_
        from graph.triples import LLMTripleExtractor

        return LLMTripleExtractor(resources.generator(self.params.generator))

    def add(self, chunks: Sequence[Chunk], resources: "Resources", embeddings: np.ndarray | None = None) -> None:
        if embeddings is not None and len(embeddings) != len(chunks):
            raise ConfigError(f"{len(embeddings)} embeddings for {len(chunks)} chunks", "embeddings")
        extractor = self.chunk_extractor(resources)
        new_keys: list[str] = []
        for chunk in chunks:
            title = chunk.metadata.get("title")
            found = extractor.extract(chunk.text, str(title) if title else None)
            new_keys += self.store_.add_passage(chunk.id, found)
        store = self.store_
        new_keys = [k for k in dict.fromkeys(new_keys) if k not in store.entity_vectors and
                    f"e:{k}" in store.graph]
        if new_keys and (self.params.synonyms or self.params.passage_vectors):
            vectors = resources.embedder.embed([store.display_name(k) for k in new_keys])
            store.entity_vectors.update(zip(new_keys, vectors))
        if self.params.passage_vectors and chunks:
            if embeddings is None:
                embeddings = resources.embedder.embed([passage_text(c, self.params.embed_title) for c in chunks])
            store.passage_vectors.update((c.id, np.asarray(v, np.float32)) for c, v in zip(chunks, embeddings))
        if self.params.synonyms:
            store.link_synonyms(new_keys, self.params.synonym_threshold, self.params.synonym_max_per_node)

    def delete(self, chunk_ids: Collection[str]) -> None:
        for chunk_id in chunk_ids:
            self.store_.delete_passage(chunk_id)

    def compiled(self) -> CompiledGraph:
        """The matrix view of the current graph, rebuilt after any change."""
        with self._lock:
            if self._compiled is None or self._compiled.version != self.store_.version:
                self._compiled = CompiledGraph(self.store_, self.weights_)
            return self._compiled

    def save(self, directory: Path) -> None:
        self.store_.save(Path(directory))

    def load(self, directory: Path, resources: "Resources") -> None:
        self.store_ = EntityGraph.load(Path(directory))
        self._compiled = None

    def __len__(self) -> int:
        return sum(1 for _, d in self.store_.graph.nodes(data=True) if d["kind"] == "passage")

    def identity(self, resources: "Resources") -> dict[str, Any]:
        return {"embedder": resources.embedder.identity}
