"""The contract every retrieval structure (bm25, dense, graph, ...) fulfils so the index can build,
update, persist and reload it uniformly.

Structures are registered operators of kind ``structure``; the YAML ``index.structures`` list names them
(``[bm25, dense]`` or ``[{name: dense, factory: "HNSW32"}]``). A retriever operator finds its structure
with ``ctx.index.structure("dense")``.

Persistence rules (checked by tests): ``save`` writes only JSON, ``.npy`` (saved with
``allow_pickle=False``), FAISS index files or other plain data into the directory it is given; ``load`` never
unpickles or executes anything.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Sequence

import numpy as np

from rag.registry import Operator
from rag.types import Chunk

if TYPE_CHECKING:
    from rag.resources import Resources


class IndexStructure(Operator):
    """A retrieval structure over chunks, updatable in place.

    ``add`` receives chunks in index order. ``embeddings`` (aligned with ``chunks``) is given when the
    chunker produced its own chunk vectors (late chunking); a dense structure uses them instead of
    embedding the chunk texts.
    """

    def add(self, chunks: Sequence[Chunk], resources: "Resources", embeddings: np.ndarray | None = None) -> None:
        raise NotImplementedError

    def delete(self, chunk_ids: Collection[str]) -> None:
        raise NotImplementedError

    def save(self, directory: Path) -> None:
        raise NotImplementedError

    def load(self, directory: Path, resources: "Resources") -> None:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def identity(self, resources: "Resources") -> dict[str, Any]:
        """What this structure depends on beyond its params (e.g. the embedding model), for the manifest."""
        return {}
