"""Dense retrieval: a FAISS index of chunk embeddings (``structure: dense``) and its retriever (``op: dense``).

Vectors are L2-normalised and compared by inner product (= cosine). The FAISS index type is a factory
string: ``Flat`` (exact, default), ``HNSW32`` (Malkov & Yashunin 2018), ``IVF1024,PQ32`` (Jégou et al. 2011)...
It is wrapped in ``IndexIDMap2`` with stable sequential ids, so adding never rebuilds; deleting removes the
vectors where the index supports it (Flat, IVF) and otherwise tombstones them (HNSW), and searches then
skip tombstones through a FAISS id selector — the same selector that applies metadata filters inside the search.

Chunk texts are embedded with the pipeline's embedder (``resources.embedder``, cached by text, so re-indexing
unchanged text makes no model calls); when the chunker supplies ``embeddings`` (late chunking) those are used.

YAML::

    index:
      embedder: {model: minilm}
      structures: [{name: dense, factory: "HNSW32", ef_construction: 128, ef_search: 256}]
    flow:
      - {op: dense, top_k: 100}
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Sequence

import numpy as np
from pydantic import Field

from rag.errors import ConfigError, IndexStoreError
from rag.index.structure import IndexStructure
from rag.operators import RunContext, StepOperator
from rag.registry import OperatorParams, operator
from rag.state import QueryState
from rag.types import Chunk, Hit
from retrievers.filtering import FilterMasks, indexed_text

if TYPE_CHECKING:
    from rag.resources import Resources

_FORMAT = 1


def normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


#: scores this close count as tied: FAISS's blocked products give identical vectors (a passage a document repeats)
#: scores that differ in the last bits, so one copy or the other won by chance
SCORE_TIE = 1e-6


def first_indexed_among_ties(found: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """``(score, row)`` pairs best first, each run of scores within :data:`SCORE_TIE` of its best in row order."""
    ordered, run = [], []
    for pair in sorted(found, key=lambda pair: -pair[0]):
        if run and run[0][0] - pair[0] > SCORE_TIE:
            ordered.extend(sorted(run, key=lambda p: p[1]))
            run = []
        run.append(pair)
    return ordered + sorted(run, key=lambda p: p[1])


@operator("dense", kind="structure")
class DenseIndex(IndexStructure):
    """FAISS inner-product index over normalised chunk embeddings, with add/delete in place."""

    class Params(OperatorParams):
        factory: str = Field("Flat", description="FAISS index factory string (Flat, HNSW32, IVF256,PQ32, ...)")
        ef_search: int | None = Field(None, ge=1, description="HNSW: candidates explored per query")
        ef_construction: int | None = Field(None, ge=1, description="HNSW: candidates explored per insertion "
                                            "(graph quality; FAISS default 40)")
        nprobe: int | None = Field(None, ge=1, description="IVF: lists visited per query")
        with_title: bool = True

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.masks = FilterMasks()
        self.index_ = None  # faiss.IndexIDMap2, created on first add (needs the dimension)
        self.ids_: list[str | None] = []  # chunk id per FAISS id; None once deleted
        self.row_of_: dict[str, int] = {}
        self.tombstones_: int = 0  # deleted ids still physically in the index (HNSW)
        self.embedder_identity_: str | None = None

    def __len__(self) -> int:
        return len(self.row_of_)

    def identity(self, resources: "Resources") -> dict[str, Any]:
        return {"embedder": resources.embedder.identity}

    # -- building ---------------------------------------------------------------------------------------------
    def add(self, chunks: Sequence[Chunk], resources: "Resources", embeddings: np.ndarray | None = None) -> None:
        """Index ``chunks``; a chunk id already present is replaced."""
        if not chunks:
            return
        if embeddings is None:
            vectors = resources.embedder.embed([indexed_text(c, self.params.with_title) for c in chunks])
            self.embedder_identity_ = resources.embedder.identity
        else:
            if len(embeddings) != len(chunks):
                raise ValueError(f"{len(embeddings)} embeddings for {len(chunks)} chunks")
            vectors = embeddings
        self.add_vectors([c.id for c in chunks], vectors)

    def add_vectors(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Index precomputed vectors under chunk ids (normalised here)."""
        vectors = normalised(vectors)
        replaced = [i for i in ids if i in self.row_of_]
        if replaced:
            self.delete(replaced)
        if self.index_ is None:
            self.index_ = self._new_index(vectors.shape[1])
        elif self.index_.d != vectors.shape[1]:
            raise ValueError(f"vectors have dimension {vectors.shape[1]}, the dense index has {self.index_.d}")
        if not self.index_.is_trained:
            try:
                self.index_.train(vectors)
            except RuntimeError as exc:
                raise ConfigError(f"cannot train FAISS index {self.params.factory!r} on {len(vectors)} vectors "
                                  f"({str(exc).splitlines()[-1]}); use more chunks or a smaller index",
                                  "factory") from None
        first = len(self.ids_)
        self.index_.add_with_ids(vectors, np.arange(first, first + len(ids), dtype=np.int64))
        self.ids_.extend(ids)
        self.row_of_.update((cid, first + k) for k, cid in enumerate(ids))
        self.masks.clear()

    def _new_index(self, dim: int):
        import faiss

        try:
            base = faiss.index_factory(dim, self.params.factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise ConfigError(f"invalid FAISS factory string {self.params.factory!r}: "
                              f"{str(exc).splitlines()[-1]}", "factory") from None
        if self.params.ef_construction is not None:
            hnsw = faiss.downcast_index(base)
            if not isinstance(hnsw, faiss.IndexHNSW):
                raise ConfigError(f"ef_construction applies to HNSW indexes, not {self.params.factory!r}",
                                  "ef_construction")
            hnsw.hnsw.efConstruction = self.params.ef_construction
        return faiss.IndexIDMap2(base)

    def delete(self, chunk_ids: Collection[str]) -> None:
        rows = [self.row_of_.pop(c) for c in set(chunk_ids) if c in self.row_of_]
        if not rows:
            return
        for r in rows:
            self.ids_[r] = None
        try:
            self.index_.remove_ids(np.asarray(rows, dtype=np.int64))
        except RuntimeError:  # e.g. HNSW cannot remove: skip these ids at search time instead
            self.tombstones_ += len(rows)
        self.masks.clear()

    # -- searching --------------------------------------------------------------------------------------------
    def search_vectors(self, queries: np.ndarray, top_k: int, allowed: np.ndarray | None = None
                       ) -> list[tuple[list[str], list[float]]]:
        """For each query vector: chunk ids and scores of the ``top_k`` nearest chunks, best first; of chunks tied
        on score (within :data:`SCORE_TIE`) the first indexed wins. ``allowed`` is a boolean mask over FAISS ids (see
        :meth:`filter_mask`)."""
        if self.index_ is None or not self.row_of_:
            return [([], []) for _ in range(len(queries))]
        import faiss

        keep = allowed
        if self.tombstones_:
            alive = np.fromiter((i is not None for i in self.ids_), dtype=bool, count=len(self.ids_))
            keep = alive if keep is None else keep & alive
        params, bitmap = self._search_parameters(keep, faiss)
        k = min(top_k, len(self.row_of_))
        # FAISS keeps any of the rows tied at the k-th place: one row more than asked shows whether a tie runs past
        # it, and only then are more fetched, until the last one fetched is below the tie
        queries, fetch = normalised(queries), min(k + 1, len(self.ids_))
        while True:
            scores, rows = self.index_.search(queries, fetch, params=params)
            tied_on = (rows[:, -1] >= 0) & (scores[:, -1] >= scores[:, k - 1] - SCORE_TIE)
            if fetch >= len(self.ids_) or not tied_on.any():
                break
            fetch = min(2 * fetch, len(self.ids_))
        del bitmap  # had to outlive the search: the selector points into it
        results = []
        for row_scores, row_ids in zip(scores.tolist(), rows.tolist()):
            found = first_indexed_among_ties([(s, r) for s, r in zip(row_scores, row_ids) if r >= 0])[:k]
            results.append(([self.ids_[r] for _, r in found], [s for s, _ in found]))
        return results

    def _search_parameters(self, keep: np.ndarray | None, faiss):
        bitmap = None
        options: dict[str, Any] = {}
        if keep is not None:
            bitmap = np.packbits(keep, bitorder="little")
            options["sel"] = faiss.IDSelectorBitmap(len(keep), faiss.swig_ptr(bitmap))
        base = faiss.downcast_index(self.index_.index)
        if isinstance(base, faiss.IndexHNSW):
            if self.params.ef_search:
                options["efSearch"] = self.params.ef_search
            return (faiss.SearchParametersHNSW(**options) if options else None), bitmap
        if self.params.nprobe and "IVF" in self.params.factory:
            return faiss.SearchParametersIVF(nprobe=self.params.nprobe, **options), bitmap
        return (faiss.SearchParameters(**options) if options else None), bitmap

    def filter_mask(self, filters, chunk_of) -> np.ndarray:
        return self.masks.mask(self.ids_, filters, chunk_of)

    # -- persistence ------------------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        import faiss

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"format": _FORMAT, "params": self.params.model_dump(mode="json"), "count": len(self),
                "tombstones": self.tombstones_, "embedder": self.embedder_identity_}
        (directory / "dense.json").write_text(json.dumps(meta, sort_keys=True))
        (directory / "ids.json").write_text(json.dumps(self.ids_))
        if self.index_ is not None:
            faiss.write_index(self.index_, str(directory / "vectors.faiss"))

    def load(self, directory: Path, resources: "Resources" | None = None) -> None:
        import faiss

        directory = Path(directory)
        try:
            meta = json.loads((directory / "dense.json").read_text())
            ids = json.loads((directory / "ids.json").read_text())
            index_path = directory / "vectors.faiss"
            index = faiss.read_index(str(index_path)) if index_path.exists() else None
        except (OSError, ValueError, RuntimeError) as exc:
            raise IndexStoreError(f"{directory}: cannot read the dense index ({exc})") from None
        if meta.get("format") != _FORMAT:
            raise IndexStoreError(f"{directory}: dense format {meta.get('format')!r} is not {_FORMAT}")
        if meta["params"]["factory"] != self.params.factory:
            raise IndexStoreError(f"{directory}: the dense index was built with factory {meta['params']['factory']!r}"
                                  f", but the config asks for {self.params.factory!r}; rebuild it")
        built_with = meta.get("embedder")
        if built_with and resources is not None and resources.embedder_config and \
                built_with != resources.embedder.identity:
            raise IndexStoreError(f"{directory}: the dense index was built with embedder {built_with!r}, the "
                                  f"config uses {resources.embedder.identity!r}; rebuild it")
        self.index_ = faiss.IndexIDMap2(index) if index is not None and not isinstance(index, faiss.IndexIDMap2) \
            else index
        self.ids_ = ids
        self.row_of_ = {cid: r for r, cid in enumerate(ids) if cid is not None}
        self.tombstones_ = int(meta.get("tombstones", 0))
        self.embedder_identity_ = built_with
        self.masks.clear()


@operator("dense", kind="retriever")
class DenseRetriever(StepOperator):
    """Top-k chunks by embedding similarity to ``state.search_query``, restricted to ``state.filters``."""

    class Params(OperatorParams):
        top_k: int = Field(100, ge=1)
        structure: str = "dense"

    def __call__(self, state: QueryState, ctx: RunContext) -> QueryState:
        index = ctx.index.structure(self.params.structure)
        if not isinstance(index, DenseIndex):
            raise ConfigError(f"structure {self.params.structure!r} is not a dense index", "structure")
        allowed = index.filter_mask(state.filters, ctx.index.chunk) if state.filters else None
        query = ctx.resources.embedder.embed_queries([state.search_query])
        ids, scores = index.search_vectors(query, self.params.top_k, allowed)[0]
        return state.evolve(hits=tuple(Hit(ctx.index.chunk(i), s, self.name) for i, s in zip(ids, scores)))
