"""``op: late_interaction`` — ColBERT-style MaxSim reranking with the bundled MiniLM's token embeddings.

    - {op: late_interaction, top_k: 20}

score(q, d) = (1/|q|) Σ_{i∈q} max_{j∈d} cos(q_i, d_j) over the (L2-normalised) contextual token embeddings of
query and chunk (Khattab & Zaharia 2020, "ColBERT"), computed with an off-the-shelf sentence encoder — no
ColBERT training, so it is a cheap, offline reranker. ``fuse: rrf`` (default) combines the MaxSim ranking with
the incoming ranking by reciprocal rank fusion (Cormack et al. 2009, k = 60) so first-stage evidence (e.g. BM25's
exact matches) is kept; ``fuse: replace`` ranks by MaxSim alone. Chunk token embeddings are cached in memory
(float16, keyed by model and text), so a chunk is encoded once per process.
"""
from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from typing import Literal, Sequence

import numpy as np
from pydantic import Field

from rag.embedding import resolve_model_path
from rag.operators import RunContext, StepOperator
from rag.registry import OperatorParams, operator
from rag.state import QueryState
from retrievers.rerank_base import reranked


class TokenEmbeddingCache:
    """An LRU map text → float16 (tokens × dim) matrix of normalised token embeddings."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._items: OrderedDict[bytes, np.ndarray] = OrderedDict()

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def get(self, key: bytes) -> np.ndarray | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: bytes, value: np.ndarray) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def maxsim(query_tokens: np.ndarray, doc_tokens: np.ndarray) -> float:
    """Mean over query tokens of the best cosine with any document token (inputs normalised)."""
    if len(query_tokens) == 0 or len(doc_tokens) == 0:
        return 0.0
    return float((query_tokens @ doc_tokens.T).max(axis=1).mean())


def rrf_scores(*rankings_scores: Sequence[float], k: int = 60) -> np.ndarray:
    """Reciprocal rank fusion of several score lists over the same items: Σ 1 / (k + rank)."""
    total = np.zeros(len(rankings_scores[0]))
    for scores in rankings_scores:
        ranks = np.empty(len(scores))
        ranks[np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")] = np.arange(1, len(scores) + 1)
        total += 1.0 / (k + ranks)
    return total


@operator("late_interaction", kind="step")
class LateInteractionReranker(StepOperator):
    """Rerank hits by ColBERT-style MaxSim over MiniLM token embeddings (offline default reranker)."""

    class Params(OperatorParams):
        model: str = Field("minilm", description="sentence-transformers model giving token embeddings")
        top_k: int | None = Field(None, gt=0, description="keep the best N after reranking (default: all)")
        candidates: int = Field(100, gt=0, description="rescore only the best N hits")
        fuse: Literal["rrf", "replace"] = "rrf"
        rrf_k: int = Field(60, gt=0)
        skip_special_tokens: bool = Field(True, description="drop [CLS]/[SEP] from both sides")
        cache_size: int = Field(100_000, gt=0, description="chunks whose token embeddings are kept in memory")
        batch_size: int = Field(32, gt=0)

    def __init__(self, **params):
        super().__init__(**params)
        self._st = None
        self.cache = TokenEmbeddingCache(self.params.cache_size)
        self.encoded = 0  # chunk texts actually sent to the model

    def _model(self, ctx: RunContext | None):
        if self._st is None:
            embedder = getattr(ctx.resources, "embedder", None) if ctx is not None else None
            if embedder is not None and resolve_model_path(embedder.model) == resolve_model_path(self.params.model):
                self._st = embedder.st
            else:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                self._st = SentenceTransformer(resolve_model_path(self.params.model), device="cpu")
        return self._st

    def token_embeddings(self, texts: Sequence[str], ctx: RunContext | None = None) -> list[np.ndarray]:
        """Normalised token embeddings per text (special tokens dropped if configured)."""
        model = self._model(ctx)
        raw = model.encode(list(texts), output_value="token_embeddings", batch_size=self.params.batch_size,
                           convert_to_numpy=False, show_progress_bar=False)
        out = []
        for tensor in raw:
            matrix = tensor.float().cpu().numpy()
            if self.params.skip_special_tokens and len(matrix) > 2:
                matrix = matrix[1:-1]
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            out.append(matrix / np.maximum(norms, 1e-12))
        return out

    def chunk_embeddings(self, texts: Sequence[str], ctx: RunContext | None = None) -> list[np.ndarray]:
        keys = [self.cache.key(t) for t in texts]
        found = {k: self.cache.get(k) for k in keys}
        missing = list(dict.fromkeys(k for k in keys if found[k] is None))
        if missing:
            text_of = dict(zip(keys, texts))
            fresh = self.token_embeddings([text_of[k] for k in missing], ctx)
            self.encoded += len(missing)
            for key, matrix in zip(missing, fresh):
                found[key] = matrix.astype(np.float16)
                self.cache.put(key, found[key])
        return [found[k] for k in keys]

    def __call__(self, state: QueryState, ctx: RunContext) -> QueryState:
        rescored = state.hits[: self.params.candidates]
        if not rescored:
            return state
        query = self.token_embeddings([state.search_query], ctx)[0]
        docs = self.chunk_embeddings([h.chunk.text for h in rescored], ctx)
        scores = np.array([maxsim(query, d.astype(np.float32)) for d in docs])
        if self.params.fuse == "rrf":
            scores = rrf_scores(scores, -np.arange(len(rescored), dtype=np.float64), k=self.params.rrf_k)
        return reranked(state, rescored, scores, self.name, self.params.top_k)
