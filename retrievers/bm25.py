"""BM25: a persistent, incrementally updatable lexical index (``structure: bm25``) and its retriever (``op: bm25``).

The index keeps raw term frequencies as a CSR matrix (documents × terms) and derives the BM25 weight matrix
from them on first query after a change (see :mod:`retrievers.bm25_scoring`, after bm25s' eager scoring), so
adding or deleting chunks never re-analyses text and gives exactly the scores of a from-scratch build.
``backend: rank_bm25`` scores with rank-bm25 itself (the slow reference; ``method`` robertson/bm25l/bm25plus
select ``BM25Okapi``/``BM25L``/``BM25Plus``). The sparse backend matches rank-bm25 for robertson and bm25plus;
for bm25l it follows Lv & Zhai's formula, whereas rank-bm25's ``BM25L`` multiplies each term's weight by tf once
more (and so gives absent terms no weight).

YAML::

    index:
      structures: [{name: bm25, method: lucene, k1: 0.9, b: 0.4, analyzer: {stemmer: english, stopwords: en}}]
    flow:
      - {op: bm25, top_k: 100}
"""
from __future__ import annotations

import json
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Literal, Sequence

import numpy as np
from pydantic import Field, model_validator

from rag.errors import ConfigError, IndexStoreError
from rag.index.structure import IndexStructure
from rag.operators import RunContext, StepOperator
from rag.registry import OperatorParams, operator
from rag.state import QueryState
from rag.types import Chunk, Hit
from retrievers.analysis import Analyzer, AnalyzerParams
from retrievers.bm25_scoring import (DEFAULT_DELTA, absent_tf_weight, average_length, inverse_document_frequency,
                                     term_frequency_weight)
from retrievers.filtering import FilterMasks, indexed_text

if TYPE_CHECKING:
    from rag.resources import Resources

_RANK_BM25_CLASSES = {"robertson": "BM25Okapi", "bm25l": "BM25L", "bm25plus": "BM25Plus"}
_FORMAT = 1


@operator("bm25", kind="structure")
class BM25Index(IndexStructure):
    """Lexical index with BM25 scoring over analysed ``title + text`` of each chunk."""

    class Params(OperatorParams):
        backend: Literal["sparse", "rank_bm25"] = "sparse"
        method: Literal["lucene", "robertson", "atire", "bm25l", "bm25plus"] = "lucene"
        k1: float = Field(0.9, ge=0)
        b: float = Field(0.4, ge=0, le=1)
        delta: float | None = Field(None, ge=0, description="BM25L / BM25+ delta (default 0.5 / 1.0)")
        epsilon: float = Field(0.25, ge=0, description="robertson: floor of negative idfs, times mean idf")
        with_title: bool = True
        analyzer: AnalyzerParams = AnalyzerParams()

        @model_validator(mode="after")
        def _backend_supports_method(self):
            if self.backend == "rank_bm25" and self.method not in _RANK_BM25_CLASSES:
                raise ValueError(f"backend rank_bm25 implements methods {', '.join(_RANK_BM25_CLASSES)}, "
                                 f"not {self.method!r}")
            return self

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.analyzer = Analyzer(self.params.analyzer)
        self.masks = FilterMasks()
        self.ids_: list[str] = []
        self.vocab_: dict[str, int] = {}
        self.indptr_ = np.zeros(1, dtype=np.int64)  # CSR rows = chunks, columns = term ids
        self.term_ids_ = np.zeros(0, dtype=np.int32)
        self.tfs_ = np.zeros(0, dtype=np.int32)
        self._word_ids: dict[str, int] = {}  # analyzer memo: raw word -> term id (-1: dropped)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._weights = None  # (csc indptr, row indices, float32 weights, idf * absent weight), built lazily
        self._id_rank: np.ndarray | None = None
        self._reference = None

    @property
    def delta(self) -> float:
        return self.params.delta if self.params.delta is not None else DEFAULT_DELTA.get(self.params.method, 0.0)

    def __len__(self) -> int:
        return len(self.ids_)

    # -- building ---------------------------------------------------------------------------------------------
    def add(self, chunks: Sequence[Chunk], resources: "Resources" | None = None,
            embeddings: np.ndarray | None = None, batch_size: int = 20_000) -> None:
        """Index ``chunks`` (a chunk whose id is already indexed replaces the old one)."""
        known = set(self.ids_)
        replaced = [c.id for c in chunks if c.id in known]
        if replaced:
            self.delete(replaced)
        for start in range(0, len(chunks), batch_size):
            batch = chunks[start:start + batch_size]
            self._append([indexed_text(c, self.params.with_title) for c in batch])
            self.ids_.extend(c.id for c in batch)
        self._changed()

    def add_texts(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Index raw texts under the given ids (for benchmarks and callers without chunks)."""
        self._append(list(texts))
        self.ids_.extend(ids)
        self._changed()

    def _append(self, texts: list[str]) -> None:
        words = [self.analyzer.words(t) for t in texts]
        word_ids = self._word_ids
        unseen = set(chain.from_iterable(words)).difference(word_ids)
        if unseen:
            vocab = self.vocab_
            for word, term in self.analyzer.terms_of(unseen).items():
                if word in unseen:
                    word_ids[word] = vocab.setdefault(term, len(vocab)) if term else -1
        n_words = sum(map(len, words))
        term_ids = np.fromiter(map(word_ids.__getitem__, chain.from_iterable(words)), dtype=np.int64, count=n_words)
        rows = np.repeat(np.arange(len(texts), dtype=np.int64), [len(w) for w in words])
        kept = term_ids >= 0  # stopwords map to -1
        rows, term_ids = rows[kept], term_ids[kept]
        # one entry per distinct (row, term), with its count
        width = len(self.vocab_) + 1
        keys, counts = np.unique(rows * width + term_ids, return_counts=True)
        entry_rows, entry_terms = np.divmod(keys, width)
        indptr = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(np.bincount(entry_rows, minlength=len(texts)), out=indptr[1:])
        self._pending.append((indptr, entry_terms.astype(np.int32), counts.astype(np.int32)))

    def _flush(self) -> None:
        if not self._pending:
            return
        indptrs, terms, tfs = [self.indptr_], [self.term_ids_], [self.tfs_]
        for indptr, term_ids, counts in self._pending:
            indptrs.append(indptr[1:] + indptrs[-1][-1])
            terms.append(term_ids)
            tfs.append(counts)
        self.indptr_ = np.concatenate(indptrs)
        self.term_ids_ = np.concatenate(terms)
        self.tfs_ = np.concatenate(tfs)
        self._pending.clear()

    def delete(self, chunk_ids: Collection[str]) -> None:
        self._flush()
        gone = set(chunk_ids)
        keep = np.fromiter((i not in gone for i in self.ids_), dtype=bool, count=len(self.ids_))
        if keep.all():
            return
        row_of_entry = np.repeat(np.arange(len(self.ids_)), np.diff(self.indptr_))
        kept_entries = keep[row_of_entry]
        self.term_ids_ = self.term_ids_[kept_entries]
        self.tfs_ = self.tfs_[kept_entries]
        self.indptr_ = np.concatenate([[0], np.cumsum(np.diff(self.indptr_)[keep])]).astype(np.int64)
        self.ids_ = [i for i, k in zip(self.ids_, keep) if k]
        self._changed()

    def _changed(self) -> None:
        self._weights = None
        self._id_rank = None
        self._reference = None
        self.masks.clear()

    # -- scoring ----------------------------------------------------------------------------------------------
    def _weight_matrix(self):
        if self._weights is None:
            import scipy.sparse as sp

            self._flush()
            p = self.params
            n_docs, n_terms = len(self.ids_), len(self.vocab_)
            row_of_entry = np.repeat(np.arange(n_docs), np.diff(self.indptr_))
            doc_len = np.bincount(row_of_entry, weights=self.tfs_, minlength=n_docs).astype(np.int64)
            df = np.bincount(self.term_ids_, minlength=n_terms)
            idf = inverse_document_frequency(df, n_docs, p.method, p.epsilon)
            tf_part = term_frequency_weight(self.tfs_, doc_len[row_of_entry], average_length(doc_len), p.method, p.k1, p.b,
                                            self.delta)
            weights = (idf[self.term_ids_] * tf_part).astype(np.float32)
            csc = sp.csr_matrix((weights, self.term_ids_, self.indptr_), shape=(n_docs, n_terms)).tocsc()
            absent = idf * absent_tf_weight(p.method, p.k1, self.delta)
            self._weights = (csc.indptr, csc.indices, csc.data, absent)
        return self._weights

    def query_terms(self, query: str) -> list[int]:
        return [self.vocab_[t] for t in self.analyzer(query) if t in self.vocab_]

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk (row order) for ``query``; repeated query terms count again (as in
        rank-bm25)."""
        terms = self.query_terms(query)
        if self.params.backend == "rank_bm25":
            return self._reference_scores(terms)
        scores, offset = self._sparse_scores(terms)
        return scores + np.float32(offset) if offset else scores

    def _sparse_scores(self, terms: list[int]) -> tuple[np.ndarray, float]:
        """Scores without the document-independent absent-term weight, and that weight."""
        indptr, rows, data, absent = self._weight_matrix()
        scores = np.zeros(len(self.ids_), dtype=np.float32)
        for t in terms:  # in query order, so sums are identical however the index was built
            s, e = indptr[t], indptr[t + 1]
            scores[rows[s:e]] += data[s:e]
        return scores, float(sum(absent[t] for t in terms))

    def search(self, query: str, top_k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores of the best ``top_k`` chunks containing at least one query term, best first
        (ties broken by chunk id); ``allowed`` is a boolean row mask (metadata filters)."""
        terms = self.query_terms(query)
        indptr, rows, _, _ = self._weight_matrix()
        matched = np.zeros(len(self.ids_), dtype=bool)
        for t in terms:
            matched[rows[indptr[t]:indptr[t + 1]]] = True
        if self.params.backend == "rank_bm25":
            scores = self._reference_scores(terms)
        else:
            scores, offset = self._sparse_scores(terms)
            if offset:
                scores += np.float32(offset)
        if allowed is not None:
            matched &= allowed
        candidates = np.flatnonzero(matched)
        if len(candidates) > top_k:
            cut = np.partition(scores[candidates], len(candidates) - top_k)[len(candidates) - top_k]
            candidates = candidates[scores[candidates] >= cut]
        order = np.lexsort((self._ranks()[candidates], -scores[candidates]))[:top_k]
        return candidates[order], scores[candidates[order]]

    def _ranks(self) -> np.ndarray:
        if self._id_rank is None:
            rank = np.empty(len(self.ids_), dtype=np.int64)
            rank[np.argsort(np.array(self.ids_, dtype=object), kind="stable")] = np.arange(len(self.ids_))
            self._id_rank = rank
        return self._id_rank

    def _reference_scores(self, terms: list[int]) -> np.ndarray:
        if self._reference is None:
            import rank_bm25

            self._flush()
            cls = getattr(rank_bm25, _RANK_BM25_CLASSES[self.params.method])
            docs = [np.repeat(self.term_ids_[s:e], self.tfs_[s:e]).tolist()
                    for s, e in zip(self.indptr_[:-1], self.indptr_[1:])]
            kwargs = {"k1": self.params.k1, "b": self.params.b}
            kwargs.update({"epsilon": self.params.epsilon} if self.params.method == "robertson" else {"delta": self.delta})
            self._reference = cls(docs, **kwargs)
        return np.asarray(self._reference.get_scores(terms), dtype=np.float32)

    # -- persistence ------------------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._flush()
        meta = {"format": _FORMAT, "params": self.params.model_dump(mode="json"), "count": len(self.ids_)}
        (directory / "bm25.json").write_text(json.dumps(meta, sort_keys=True))
        (directory / "ids.json").write_text(json.dumps(self.ids_))
        (directory / "vocab.json").write_text(json.dumps(list(self.vocab_)))
        for name in ("indptr_", "term_ids_", "tfs_"):
            np.save(directory / f"{name.rstrip('_')}.npy", getattr(self, name), allow_pickle=False)

    def load(self, directory: Path, resources: "Resources" | None = None) -> None:
        directory = Path(directory)
        try:
            meta = json.loads((directory / "bm25.json").read_text())
            if meta.get("format") != _FORMAT:
                raise IndexStoreError(f"{directory}: bm25 format {meta.get('format')!r} is not {_FORMAT}")
            if meta["params"] != self.params.model_dump(mode="json"):
                raise IndexStoreError(f"{directory}: the bm25 index was built with params {meta['params']}, "
                                      f"but the config asks for {self.params.model_dump(mode='json')}; rebuild it")
            ids = json.loads((directory / "ids.json").read_text())
            terms = json.loads((directory / "vocab.json").read_text())
            arrays = {n: np.load(directory / f"{n}.npy", allow_pickle=False) for n in ("indptr", "term_ids", "tfs")}
        except (OSError, ValueError, KeyError) as exc:
            raise IndexStoreError(f"{directory}: cannot read the bm25 index ({exc})") from None
        if len(arrays["indptr"]) != len(ids) + 1 or len(arrays["term_ids"]) != len(arrays["tfs"]):
            raise IndexStoreError(f"{directory}: bm25 arrays do not match {len(ids)} ids")
        self.ids_, self.vocab_ = ids, {t: i for i, t in enumerate(terms)}
        self._word_ids = {}
        self.indptr_, self.term_ids_, self.tfs_ = arrays["indptr"], arrays["term_ids"], arrays["tfs"]
        self._pending.clear()
        self._changed()


def hits_from_rows(structure: Any, rows: np.ndarray, scores: np.ndarray, ctx: RunContext, source: str) -> tuple[Hit, ...]:
    return tuple(Hit(ctx.index.chunk(structure.ids_[r]), float(s), source) for r, s in zip(rows.tolist(), scores.tolist()))


@operator("bm25", kind="retriever")
class BM25Retriever(StepOperator):
    """Top-k chunks by BM25 for ``state.search_query``, restricted to ``state.filters``."""

    class Params(OperatorParams):
        top_k: int = Field(100, ge=1)
        structure: str = "bm25"

    def __call__(self, state: QueryState, ctx: RunContext) -> QueryState:
        index = ctx.index.structure(self.params.structure)
        if not isinstance(index, BM25Index):
            raise ConfigError(f"structure {self.params.structure!r} is not a bm25 index", "structure")
        allowed = index.masks.mask(index.ids_, state.filters, ctx.index.chunk) if state.filters else None
        rows, scores = index.search(state.search_query, self.params.top_k, allowed)
        return state.evolve(hits=hits_from_rows(index, rows, scores, ctx, self.name))
