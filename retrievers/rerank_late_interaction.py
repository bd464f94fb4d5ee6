"""``op: late_interaction`` — ColBERT-style MaxSim reranking with the bundled MiniLM's token embeddings.

    - {op: late_interaction}                       # the defaults below: top 30, title + text, windows, zscore 0.5
    - {op: late_interaction, candidates: 30, with_title: true, long_chunks: windows, fuse: zscore, weight: 0.5}
    - {op: late_interaction, fuse: rrf}            # or fuse: replace (MaxSim alone)

score(q, d) = (1/|q|) Σ_{i∈q} max_{j∈d} cos(q_i, d_j) over the (L2-normalised) contextual token embeddings of
query and chunk (Khattab & Zaharia 2020, "ColBERT"), computed with an off-the-shelf sentence encoder — no
ColBERT training, so it is a cheap, offline reranker. Three choices make it help an untrained encoder:

- ``with_title``: a chunk is scored as ``title + " " + text``, the text the ``bm25`` / ``dense`` structures index
  (``retrievers.filtering.indexed_text``), so the reranker sees what the first stage matched.
- ``long_chunks: windows``: a chunk longer than the model's window (MiniLM: 256 word pieces) is encoded as
  consecutive windows, each with its own special tokens, and MaxSim runs over the tokens of all of them; with
  ``truncate`` (the model's own behaviour) everything after the first window is invisible to the reranker.
- ``fuse: zscore``: the MaxSim scores and the incoming (first-stage) scores of the rescored hits are each
  standardised over the candidates and mixed, ``(1 − weight)·z(first) + weight·z(maxsim)`` — score fusion as
  in ``retrievers/fusion.py`` (Bruch et al. 2023), which keeps how *far* apart hits are, where rank fusion keeps
  only their order. ``weight`` 0.5 counts both equally (not tuned). ``fuse: rrf`` combines the two rankings by
  reciprocal rank fusion (Cormack et al. 2009, k = 60); ``fuse: replace`` ranks by MaxSim alone.

Chunk token embeddings are cached in memory (float16, keyed by the scored text and the encoding settings), so a
chunk is encoded once per operator instance.
"""
from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from typing import Literal, Sequence

import numpy as np
from pydantic import Field

from rag.embedding import resolve_model_path
from rag.errors import ConfigError
from rag.operators import RunContext, StepOperator
from rag.registry import OperatorParams, operator
from rag.state import QueryState
from retrievers.filtering import indexed_text
from retrievers.fusion import normalise_scores
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


def standardised_fusion(first: Sequence[float], late: Sequence[float], weight: float) -> np.ndarray:
    """(1 − weight)·z(first) + weight·z(late), each list z-scored over the same items (a constant list adds 0)."""
    return ((1 - weight) * normalise_scores(np.asarray(first, dtype=np.float64), "zscore")
            + weight * normalise_scores(np.asarray(late, dtype=np.float64), "zscore"))


@operator("late_interaction", kind="step")
class LateInteractionReranker(StepOperator):
    """Rerank hits by ColBERT-style MaxSim over MiniLM token embeddings (offline default reranker)."""

    class Params(OperatorParams):
        model: str = Field("minilm", description="sentence-transformers model giving token embeddings")
        top_k: int | None = Field(None, gt=0, description="keep the best N after reranking (default: all)")
        candidates: int = Field(30, gt=0, description="rescore only the best N hits")
        fuse: Literal["zscore", "rrf", "replace"] = Field(
            "zscore", description="combine MaxSim with the incoming scores (zscore), ranks (rrf), or not (replace)")
        weight: float = Field(0.5, ge=0, le=1, description="share of the MaxSim z-score under fuse: zscore")
        rrf_k: int = Field(60, gt=0)
        with_title: bool = Field(True, description="score title + text, as the bm25 / dense structures index them")
        long_chunks: Literal["windows", "truncate"] = Field(
            "windows", description="encode text beyond the model's window as further windows, or cut it off")
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

    def token_embeddings(self, texts: Sequence[str], ctx: RunContext | None = None,
                         normalise: bool = True) -> list[np.ndarray]:
        """Token embeddings per text (L2-normalised unless ``normalise=False``): the rows of all its windows
        (``long_chunks: windows``) or of the first one, special tokens dropped if configured."""
        import torch

        model = self._model(ctx)
        tokenizer = model.tokenizer
        windows = self.params.long_chunks == "windows"
        if windows and not tokenizer.is_fast:
            raise ConfigError(f"long_chunks: windows needs a fast tokenizer; {self.params.model!r} has none "
                              "(use long_chunks: truncate)", "long_chunks")
        encoded = tokenizer(list(texts), truncation=True, max_length=model.max_seq_length,
                            return_overflowing_tokens=windows, return_special_tokens_mask=True)
        owner = encoded["overflow_to_sample_mapping"] if windows else range(len(texts))
        rows = [{k: encoded[k][i] for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded}
                for i in range(len(encoded["input_ids"]))]
        per_text: list[list[np.ndarray]] = [[] for _ in texts]
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]["input_ids"]))
        for start in range(0, len(order), self.params.batch_size):
            batch = order[start:start + self.params.batch_size]
            features = tokenizer.pad([rows[i] for i in batch], return_tensors="pt")
            with torch.inference_mode():
                out = model.forward({k: v.to(model.device) for k, v in features.items()})["token_embeddings"]
            for row, i in enumerate(batch):
                matrix = out[row, : len(rows[i]["input_ids"])].float().cpu().numpy()
                if self.params.skip_special_tokens:
                    matrix = matrix[np.asarray(encoded["special_tokens_mask"][i]) == 0]
                per_text[owner[i]].append(matrix)
        result = []
        for parts in per_text:  # every text has at least one row; its windows are consecutive, in order
            matrix = np.concatenate(parts)
            if normalise:
                matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
            result.append(matrix)
        return result

    def chunk_embeddings(self, texts: Sequence[str], ctx: RunContext | None = None) -> list[np.ndarray]:
        settings = f"{self.params.long_chunks}|{self.params.skip_special_tokens}|"
        keys = [self.cache.key(settings + t) for t in texts]
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
        p = self.params
        rescored = state.hits[: p.candidates]
        if not rescored:
            return state
        query = self.token_embeddings([state.search_query], ctx)[0]
        docs = self.chunk_embeddings([indexed_text(h.chunk, p.with_title) for h in rescored], ctx)
        scores = np.array([maxsim(query, d.astype(np.float32)) for d in docs])
        if p.fuse == "zscore":
            scores = standardised_fusion([h.score for h in rescored], scores, p.weight)
        elif p.fuse == "rrf":
            scores = rrf_scores(scores, -np.arange(len(rescored), dtype=np.float64), k=p.rrf_k)
        return reranked(state, rescored, scores, self.name, p.top_k)
