"""MinHash word signatures of every chunk, computed at index time (``structure: minhash``) for ``op: select``.

``op: select`` finds near-duplicate candidates (``near_duplicate``; used by ``density``, ``knapsack`` and ``mcts``)
on MinHash signatures of their words (:func:`retrievers.selection.pool.word_signatures`). Without this structure
it computes the signature of every candidate it has not seen before — most of a query's candidates over a large
index: ~2 ms per 100 chunks of 128 tokens, twice that for 250-token abstracts. With it, select reads the
signatures the index computed when it added the chunks (the same values, so selections do not change); a hit
whose chunk is not the index's chunk of that id (other text) is still computed. Cost: 256 bytes per chunk in
memory and on disk, ~20–40 µs per chunk at index time.

YAML::

    index:
      structures: [dense, minhash]
    flow:
      - {op: dense, top_k: 100}
      - {op: select, budget_tokens: 1000, strategy: knapsack}
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Sequence

import numpy as np

from rag.errors import IndexStoreError
from rag.index.structure import IndexStructure
from rag.registry import OperatorParams, operator
from rag.types import Chunk
from retrievers.selection.pool import SIGNATURE_DEFINITION, SIGNATURE_SIZE, word_signatures

if TYPE_CHECKING:
    from rag.resources import Resources

_FORMAT = 1
_BATCH = 1024  # chunks hashed together (bounds the temporary arrays of word_signatures)


@operator("minhash", kind="structure")
class MinHashSignatures(IndexStructure):
    """Chunk id → MinHash signature row (uint32, :data:`SIGNATURE_SIZE` values) of the chunk's text."""

    class Params(OperatorParams):
        pass

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.ids_: list[str] = []
        self.table_ = np.zeros((0, SIGNATURE_SIZE), dtype=np.uint32)  # rows ``[0, len(ids_))`` are live
        self._rows: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.ids_)

    def add(self, chunks: Sequence[Chunk], resources: "Resources" | None = None,
            embeddings: np.ndarray | None = None) -> None:
        """Hash ``chunks`` (a chunk whose id is already held replaces the old one)."""
        replaced = [c.id for c in chunks if c.id in self._rows]
        if replaced:
            self.delete(replaced)
        first, table = len(self.ids_), self.table_
        if first + len(chunks) > len(table):  # grow by doubling: adding one document at a time stays O(1) per row
            grown = np.empty((max(2 * len(table), first + len(chunks)), SIGNATURE_SIZE), dtype=np.uint32)
            grown[:first] = table[:first]
            self.table_ = table = grown
        for start in range(0, len(chunks), _BATCH):
            batch = chunks[start:start + _BATCH]
            table[first + start:first + start + len(batch)] = word_signatures([c.text for c in batch])
        for i, chunk in enumerate(chunks):
            self._rows[chunk.id] = first + i
        self.ids_.extend(c.id for c in chunks)

    def delete(self, chunk_ids: Collection[str]) -> None:
        gone = set(chunk_ids)
        keep = np.fromiter((i not in gone for i in self.ids_), dtype=bool, count=len(self.ids_))
        if keep.all():
            return
        self.table_ = self.table_[:len(self.ids_)][keep]
        self.ids_ = [i for i, k in zip(self.ids_, keep) if k]
        self._rows = {chunk_id: row for row, chunk_id in enumerate(self.ids_)}

    def rows_of(self, chunk_ids: Sequence[str]) -> list[int | None]:
        """The row of ``table_`` of each id, ``None`` for ids not held."""
        rows = self._rows
        return [rows.get(i) for i in chunk_ids]

    def identity(self, resources: "Resources" | None = None) -> dict[str, Any]:
        return {"signature": SIGNATURE_DEFINITION}

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"format": _FORMAT, "signature": SIGNATURE_DEFINITION, "count": len(self.ids_)}
        (directory / "minhash.json").write_text(json.dumps(meta, sort_keys=True))
        (directory / "ids.json").write_text(json.dumps(self.ids_))
        np.save(directory / "signatures.npy", self.table_[:len(self.ids_)], allow_pickle=False)

    def load(self, directory: Path, resources: "Resources" | None = None) -> None:
        directory = Path(directory)
        try:
            meta = json.loads((directory / "minhash.json").read_text())
            ids = json.loads((directory / "ids.json").read_text())
            table = np.load(directory / "signatures.npy", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexStoreError(f"{directory}: cannot read the minhash signatures ({exc})") from None
        if meta.get("format") != _FORMAT or meta.get("signature") != SIGNATURE_DEFINITION:
            raise IndexStoreError(f"{directory}: minhash signatures of format {meta.get('format')!r} / "
                                  f"{meta.get('signature')!r}, this ragloom computes {_FORMAT!r} / "
                                  f"{SIGNATURE_DEFINITION!r}; rebuild the index")
        if table.shape != (len(ids), SIGNATURE_SIZE) or table.dtype != np.uint32:
            raise IndexStoreError(f"{directory}: signatures of shape {table.shape} ({table.dtype}) do not match "
                                  f"{len(ids)} ids")
        self.ids_, self.table_ = ids, table
        self._rows = {chunk_id: row for row, chunk_id in enumerate(ids)}
