"""The Python API: a pipeline is a validated config, an index, and a compiled flow.

    from rag import Pipeline
    pipe = Pipeline.from_yaml("configs/quickstart.yaml")
    pipe.index("docs/")                 # or Pipeline.load(index_dir)
    result = pipe.run("What does late chunking do?")
    result.answer, result.contexts, result.trace
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from rag.config import PipelineConfig, load_config, parse_config
from rag.errors import ConfigError, RagloomError
from rag.flow import compile_flow, run_flow
from rag.index.store import Index
from rag.operators import RunContext
from rag.resources import Resources
from rag.state import QueryState, Result
from rag.types import Document


class Pipeline:
    """A configured RAG pipeline. ``index_`` holds the built index (``None`` until indexed or loaded)."""

    def __init__(self, config: PipelineConfig, index: Index | None = None, resources: Resources | None = None):
        self.config = config
        self.resources = resources or (index.resources if index is not None else Resources(
            embedder=config.index.embedder.model_dump(), generator=config.generator))
        self.resources.generator_config = config.generator
        self.index_ = index
        self._nodes = None

    # ------------------------------------------------------------ construction
    @classmethod
    def from_yaml(cls, path: str | Path) -> "Pipeline":
        return cls(load_config(path))

    @classmethod
    def from_config(cls, config: PipelineConfig | Mapping[str, Any]) -> "Pipeline":
        return cls(config if isinstance(config, PipelineConfig) else parse_config(dict(config)))

    @classmethod
    def load(cls, directory: str | Path, config: PipelineConfig | Mapping[str, Any] | str | Path | None = None,
             verify: bool = True) -> "Pipeline":
        """Open a saved index. Its own pipeline config is used unless ``config`` is given, whose ``index``
        section must then match the index on disk (only the flow and generator may differ)."""
        index, manifest = Index.load(directory, verify=verify)
        if config is None:
            if not manifest.get("pipeline"):
                raise RagloomError(f"{directory}: the index was saved without a pipeline config; pass one")
            loaded = parse_config(manifest["pipeline"], f"{directory} (manifest)")
        elif isinstance(config, (str, Path)):
            loaded = load_config(config)
        else:
            loaded = config if isinstance(config, PipelineConfig) else parse_config(dict(config))
        if loaded.index != index.config:
            raise ConfigError(f"the config's index section differs from the index in {directory} "
                              "(chunker, embedder or structures changed); re-index with this config", "index",
                              loaded.source)
        return cls(loaded, index)

    @property
    def index_key(self) -> str:
        """A hash of the index section: equal keys mean the same chunks, vectors and structures."""
        return self.config.index.key

    # ------------------------------------------------------------ indexing
    def index(self, source: str | Path | Iterable[Document], progress: bool = False) -> dict[str, int]:
        """Build (or update) the index from a folder, a file, a JSONL file, or Documents."""
        if isinstance(source, (str, Path)):
            from rag.documents import read_documents

            documents = read_documents(source)
        else:
            documents = list(source)
        if self.index_ is None:
            self.index_ = Index(self.config.index, self.resources)
        return self.index_.add_documents(documents, progress=progress)

    def add(self, documents: Iterable[Document]) -> dict[str, int]:
        return self.index(documents)

    def delete(self, doc_ids: Iterable[str]) -> int:
        return self._require_index().delete_documents(doc_ids)

    def save(self, directory: str | Path) -> Path:
        return self._require_index().save(directory, self.config.to_dict())

    def _require_index(self) -> Index:
        if self.index_ is None:
            raise RagloomError("the pipeline has no index yet: call pipe.index(documents) or Pipeline.load(dir)")
        return self.index_

    # ------------------------------------------------------------ querying
    @property
    def nodes(self):
        if self._nodes is None:
            self._nodes = compile_flow(self.config.flow)
        return self._nodes

    def run(self, query: str, filters: Mapping[str, Any] | None = None) -> Result:
        """Answer one query; the result carries the answer, the selected contexts, the hits and the trace."""
        if not isinstance(query, str) or not query.strip():
            raise RagloomError("the query is empty")
        index = self._require_index()
        if len(index) == 0:
            raise RagloomError("the index has no chunks: index some documents first")
        started = time.perf_counter()
        state = QueryState(query=query, filters=dict(filters or {}))
        final, trace = run_flow(self.nodes, state, RunContext(index, self.resources))
        answer = final.answer
        return Result(
            query=query,
            answer=answer.text if answer else "",
            citations=list(answer.citations) if answer else [],
            contexts=[h.chunk for h in (final.context or ())],
            hits=list(final.hits),
            trace=trace,
            state=final,
            seconds=time.perf_counter() - started,
        )
