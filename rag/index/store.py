"""The index: documents, their chunks, and every configured retrieval structure, kept consistent.

Adding a document chunks it and adds its chunks to every structure; re-adding a document with changed
text replaces its chunks; deleting removes them everywhere. ``save``/``load`` go through
:mod:`rag.index.persistence` (atomic, checksummed, no pickle).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from rag.config import IndexConfig, parse_index_config
from rag.errors import ConfigError, IndexStoreError, InputError
from rag.index import persistence
from rag.index.structure import IndexStructure
from rag.jsonl import json_line, read_jsonl_objects
from rag.registry import create
from rag.resources import Resources
from rag.types import Chunk, Document

log = logging.getLogger(__name__)


class Index:
    """Chunks and retrieval structures for a set of documents, built from an :class:`IndexConfig`."""

    def __init__(self, config: IndexConfig, resources: Resources | None = None):
        self.config = config
        self.resources = resources or Resources(embedder=config.embedder.model_dump())
        self.chunker = create(config.chunker.op, dict(config.chunker.params), "chunker", "index.chunker")
        self.structures: dict[str, IndexStructure] = {
            s.op: create(s.op, dict(s.params), "structure", s.path or f"index.structures.{s.op}")
            for s in config.structures
        }
        self.documents: dict[str, Document] = {}
        self.chunks: dict[str, Chunk] = {}
        self._doc_chunks: dict[str, list[str]] = {}
        #: seconds :meth:`add_documents` spent chunking (``chunk``; late chunking's embedding included) and building
        #: each structure (by name), summed over its calls; saved with the index, so a loaded index still tells what
        #: it cost
        self.build_seconds: dict[str, float] = {}

    # ------------------------------------------------------------ lookups
    def structure(self, name: str) -> IndexStructure:
        try:
            return self.structures[name]
        except KeyError:
            built = ", ".join(self.structures) or "none"
            raise ConfigError(f"the flow needs the index structure {name!r}, but index.structures builds: {built}; "
                              f"add {name!r} to index.structures and re-index") from None

    def chunk(self, chunk_id: str) -> Chunk:
        return self.chunks[chunk_id]

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        return [self.chunks[c] for c in self._doc_chunks.get(doc_id, [])]

    def __len__(self) -> int:
        return len(self.chunks)

    # ------------------------------------------------------------ updates
    def add_documents(self, documents: Iterable[Document], progress: bool = False) -> dict[str, int]:
        """Chunk and index ``documents``; unchanged ones are skipped, changed ones replaced."""
        documents = list(documents)
        ids = [d.id for d in documents]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise InputError(f"document id {dup!r} appears more than once in the input")
        fresh = [d for d in documents if d.id not in self.documents or self.documents[d.id].text != d.text
                 or dict(self.documents[d.id].metadata) != dict(d.metadata)]
        replaced = [d.id for d in fresh if d.id in self.documents]
        if replaced:
            self.delete_documents(replaced)
        self.resources.progress = progress
        started = time.perf_counter()
        new_chunks, vectors = self._chunk(fresh, progress)
        self._add_seconds("chunk", started)
        for name, structure in self.structures.items():
            started = time.perf_counter()
            structure.add(new_chunks, self.resources, vectors)
            self._add_seconds(name, started)
        for doc in fresh:
            self.documents[doc.id] = doc
        for chunk in new_chunks:
            self.chunks[chunk.id] = chunk
            self._doc_chunks.setdefault(chunk.doc_id, []).append(chunk.id)
        return {"added": len(fresh) - len(replaced), "replaced": len(replaced),
                "unchanged": len(documents) - len(fresh), "chunks": len(new_chunks)}

    def _add_seconds(self, step: str, started: float) -> None:
        self.build_seconds[step] = round(self.build_seconds.get(step, 0.0) + time.perf_counter() - started, 6)

    #: Documents handed to ``Chunker.chunk_documents`` at once (chunkers that embed can batch across them).
    CHUNK_BATCH = 256

    def _chunk(self, documents: Sequence[Document], progress: bool) -> tuple[list[Chunk], np.ndarray | None]:
        chunks: list[Chunk] = []
        vectors: list[np.ndarray] = []
        bar = None
        if progress and len(documents) > 1:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(documents), desc="chunking", unit="doc")
        for begin in range(0, len(documents), self.CHUNK_BATCH):
            batch = documents[begin:begin + self.CHUNK_BATCH]
            try:
                if self.chunker.embeds_chunks:
                    batch_chunks, batch_vectors = self.chunker.chunk_documents_with_embeddings(batch, self.resources)
                    vectors.append(np.asarray(batch_vectors, dtype=np.float32).reshape(len(batch_chunks), -1))
                else:
                    batch_chunks = self.chunker.chunk_documents(batch)
            except ConfigError as exc:  # a param found wrong only now (late chunking's window_overlap for a model
                if not exc.path or exc.path.startswith("index."):  # known once loaded): name it as in the config
                    raise
                raise ConfigError(exc.message, f"index.chunker.{exc.path}", exc.source, exc.line) from None
            text_of = {doc.id: doc.text for doc in batch}
            for c in batch_chunks:
                if text_of[c.doc_id][c.start:c.end] != c.text:
                    raise IndexStoreError(f"chunker {self.chunker.name!r} produced chunk {c.id} whose offsets do "
                                          "not match its text; this is a bug in the chunker")
            chunks.extend(batch_chunks)
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        if self.chunker.embeds_chunks:
            return chunks, (np.concatenate(vectors) if vectors else None)
        return chunks, None

    def delete_documents(self, doc_ids: Iterable[str]) -> int:
        """Remove documents and their chunks from every structure; unknown ids are an error."""
        doc_ids = list(dict.fromkeys(doc_ids))
        unknown = [d for d in doc_ids if d not in self.documents]
        if unknown:
            raise InputError(f"not in the index: {', '.join(map(repr, unknown[:5]))}")
        chunk_ids = [c for d in doc_ids for c in self._doc_chunks.get(d, [])]
        for structure in self.structures.values():
            structure.delete(chunk_ids)
        for c in chunk_ids:
            del self.chunks[c]
        for d in doc_ids:
            del self.documents[d]
            self._doc_chunks.pop(d, None)
        return len(chunk_ids)

    # ------------------------------------------------------------ persistence
    def save(self, directory: str | Path, pipeline_config: dict | None = None) -> Path:
        """Write the index atomically; the previous version stays live until this one is complete."""

        def write(tmp: Path) -> dict:
            with (tmp / "documents.jsonl").open("w", encoding="utf-8") as out:
                for doc in self.documents.values():
                    out.write(json_line({"id": doc.id, "text": doc.text, "metadata": dict(doc.metadata)}) + "\n")
            with (tmp / "chunks.jsonl").open("w", encoding="utf-8") as out:
                for chunk in self.chunks.values():
                    data = chunk.to_json()
                    del data["text"]  # recovered exactly from the document and the offsets
                    out.write(json_line(data) + "\n")
            identities = {}
            for name, structure in self.structures.items():
                sub = tmp / "structures" / name
                sub.mkdir(parents=True)
                structure.save(sub)
                identities[name] = structure.identity(self.resources)
            return {
                "index": self.config.to_dict(),
                "pipeline": pipeline_config,
                "structures": identities,
                "counts": {"documents": len(self.documents), "chunks": len(self.chunks),
                           **{n: len(s) for n, s in self.structures.items()}},
                "build_seconds": self.build_seconds,
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }

        return persistence.write_version(Path(directory), write)

    @classmethod
    def load(cls, directory: str | Path, resources: Resources | None = None,
             verify: bool = True) -> tuple["Index", dict]:
        """Load the live version of an index directory; returns the index and its manifest."""
        version, manifest = persistence.read_manifest(Path(directory), verify)
        config = parse_index_config(manifest["index"], str(version / persistence.MANIFEST))
        index = cls(config, resources)
        index.build_seconds = dict(manifest.get("build_seconds") or {})  # absent in indexes saved before
        for line_no, doc in read_jsonl_objects(version / "documents.jsonl", IndexStoreError):
            index.documents[doc["id"]] = Document(doc["id"], doc["text"], doc.get("metadata") or {})
        for line_no, data in read_jsonl_objects(version / "chunks.jsonl", IndexStoreError):
            doc = index.documents.get(data["doc_id"])
            if doc is None:
                raise IndexStoreError(f"{version}/chunks.jsonl:{line_no}: chunk of unknown document {data['doc_id']!r}")
            chunk = Chunk.from_json({**data, "text": doc.text[data["start"]:data["end"]]})
            index.chunks[chunk.id] = chunk
            index._doc_chunks.setdefault(chunk.doc_id, []).append(chunk.id)
        for name, structure in index.structures.items():
            structure.load(version / "structures" / name, index.resources)
            if len(structure) != manifest["counts"].get(name, len(structure)):
                raise IndexStoreError(f"{version}: structure {name!r} holds {len(structure)} entries, "
                                      f"the manifest says {manifest['counts'][name]}")
        return index, manifest
