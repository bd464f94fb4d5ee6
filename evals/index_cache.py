"""Built indexes shared across an experiment's pipelines and kept on disk between runs.

An index is identified by (corpus fingerprint, ``PipelineConfig.index.key``, code fingerprint): the same
documents chunked, embedded and indexed the same way by the same code (a changed chunker or structure module
invalidates the on-disk copy instead of silently serving an index the current code would not build). Pipelines that differ only downstream of the index (retriever depth,
fusion, reranker, selector, generator) reuse one in-memory index, and a later run loads it from disk instead
of re-chunking and re-embedding. Embedders are shared per embedder config, so their ``model_calls`` counters
add up to every text actually sent to a model during the run.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import logging
from pathlib import Path
from typing import Sequence

from rag.config import PipelineConfig
from rag.embedding import default_cache_dir
from rag.errors import IndexStoreError
from rag.index.store import Index
from rag.resources import Resources
from rag.types import Document

log = logging.getLogger(__name__)


def code_fingerprint(config: PipelineConfig) -> str:
    """sha256 over the source of every package that builds this index (the chunker's and each structure's
    top-level package, and ``rag.index``), so editing any of them changes the key (12 hex digits)."""
    from rag.registry import get_spec

    packages = {"rag.index", "rag.embedding"}
    for spec in (get_spec(config.index.chunker.op, "chunker"),
                 *(get_spec(s.op, "structure") for s in config.index.structures)):
        packages.add(spec.cls.__module__.split(".")[0])
    return _source_digest(packages)


#: Packages whose code can change a query's result: the flow engine and values, every builtin operator
#: package, and the metrics.
RUN_PACKAGES = ("rag", "chunkers", "retrievers", "graph", "evals")


def run_code_fingerprint(config: dict) -> str:
    """sha256 over the source of :data:`RUN_PACKAGES` and of the module of every plugin operator the resolved
    pipeline ``config`` names, so per-query results computed by older code are never reused (12 hex digits)."""
    from rag.registry import registered

    named = set()

    def collect(node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("op", "merge") and isinstance(value, str):
                    named.add(value)
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(config)
    modules = {spec.cls.__module__ for spec in registered() if spec.name in named}
    return _source_digest(set(RUN_PACKAGES) | {m for m in modules if m.split(".")[0] not in RUN_PACKAGES})


def _source_digest(names: set[str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(names):
        module = importlib.import_module(name)
        paths = sorted(Path(module.__path__[0]).rglob("*.py")) if hasattr(module, "__path__") else [Path(module.__file__)]
        for path in paths:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def corpus_fingerprint(documents: Sequence[Document]) -> str:
    """sha256 over every document's id, text and metadata, in order (16 hex digits)."""
    digest = hashlib.sha256()
    for doc in documents:
        digest.update(json.dumps([doc.id, doc.text, dict(doc.metadata)], sort_keys=True, ensure_ascii=False,
                                 default=str).encode("utf-8", "surrogatepass"))
        digest.update(b"\n")
    return digest.hexdigest()[:16]


class IndexCache:
    """Load-or-build indexes under ``root`` (default ``$RAGLOOM_CACHE/eval-indexes``)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else default_cache_dir() / "eval-indexes"
        self._indexes: dict[tuple[str, str], Index] = {}
        self._resources: dict[str, Resources] = {}
        self.built: list[str] = []
        self._built_keys: set[tuple[str, str]] = set()  # (corpus fingerprint, index key) of what this cache built
        self.loaded: list[str] = []

    def resources_for(self, config: PipelineConfig) -> Resources:
        key = json.dumps(config.index.embedder.model_dump(), sort_keys=True)
        if key not in self._resources:
            resources = Resources(embedder=config.index.embedder.model_dump())
            resources.cache_queries = False  # queries timed as a service meets them (Embedder.cache_queries)
            self._resources[key] = resources
        return self._resources[key]

    @property
    def model_calls(self) -> int:
        """Texts sent to embedding models so far (cache misses only), over every embedder in use."""
        return sum(r._embedder.model_calls for r in self._resources.values() if r._embedder is not None)

    def built_here(self, config: PipelineConfig, fingerprint: str) -> bool:
        """Whether this cache built (rather than loaded) the index of ``config`` over the corpus ``fingerprint``."""
        return (fingerprint, config.index.key) in self._built_keys

    def directory(self, fingerprint: str, config: PipelineConfig) -> Path:
        return self.root / f"{fingerprint}-{config.index.key}-{code_fingerprint(config)}"

    def get(self, config: PipelineConfig, documents: Sequence[Document], fingerprint: str | None = None,
            progress: bool = False) -> Index:
        """The index of ``documents`` built with ``config.index``: from memory, from disk, or built now."""
        fingerprint = fingerprint or corpus_fingerprint(documents)
        key = (fingerprint, config.index.key)
        if key in self._indexes:
            return self._indexes[key]
        resources = self.resources_for(config)
        folder = self.directory(fingerprint, config)
        index = None
        if (folder / "CURRENT").exists():
            try:
                index, _ = Index.load(folder, resources)
                if index.config != config.index:
                    log.warning("cached index %s has a different config; rebuilding", folder)
                    index = None
                else:
                    self.loaded.append(folder.name)
            except IndexStoreError as exc:
                log.warning("cached index %s is unusable (%s); rebuilding", folder, exc)
                index = None
        if index is None:
            index = Index(config.index, resources)
            index.add_documents(documents, progress=progress)
            index.save(folder)
            self.built.append(folder.name)
            self._built_keys.add(key)
        self._indexes[key] = index
        return index
