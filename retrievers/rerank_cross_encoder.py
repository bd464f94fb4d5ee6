"""``op: cross_encoder`` — rerank with a sentence-transformers CrossEncoder (query and chunk read together).

    - {op: cross_encoder, model: cross-encoder/ms-marco-MiniLM-L6-v2, top_k: 20}

``model`` is a local directory (anything ``CrossEncoder.save`` or ``save_pretrained`` wrote) or a hub name
already in the local Hugging Face cache: ragloom never downloads, so fetch a real model once yourself
(``huggingface-cli download cross-encoder/ms-marco-MiniLM-L6-v2``) or point ``model`` at its folder.
Nogueira & Cho 2019, "Passage Re-ranking with BERT".
"""
from __future__ import annotations

import os

from pydantic import Field

from rag.errors import ConfigError
from rag.operators import RunContext, StepOperator
from rag.registry import OperatorParams, operator
from rag.state import QueryState
from retrievers.rerank_base import reranked


def load_cross_encoder(model: str, device: str = "cpu", max_length: int | None = None):
    """A ``sentence_transformers.CrossEncoder`` from a local path or cached name, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import CrossEncoder

    try:
        return CrossEncoder(model, device=device, max_length=max_length)
    except Exception as exc:
        raise ConfigError(f"could not load cross-encoder {model!r}: {exc}. Give a local model directory (nothing "
                          "is downloaded; see retrievers/rerank_cross_encoder.py)", "model") from None


@operator("cross_encoder", kind="step")
class CrossEncoderReranker(StepOperator):
    """Rerank hits with a cross-encoder's relevance score for (query, chunk text)."""

    class Params(OperatorParams):
        model: str = Field(description="local CrossEncoder directory or cached hub name")
        top_k: int | None = Field(None, gt=0, description="keep the best N after reranking (default: all)")
        candidates: int = Field(100, gt=0, description="rescore only the best N hits")
        batch_size: int = Field(32, gt=0)
        max_length: int | None = Field(None, gt=0, description="truncate (query, chunk) pairs to N word pieces")
        device: str = "cpu"

    def __init__(self, **params):
        super().__init__(**params)
        self._model = None

    @property
    def model(self):
        if self._model is None:
            self._model = load_cross_encoder(self.params.model, self.params.device, self.params.max_length)
        return self._model

    def __call__(self, state: QueryState, ctx: RunContext) -> QueryState:
        rescored = state.hits[: self.params.candidates]
        if not rescored:
            return state
        pairs = [(state.search_query, h.chunk.text) for h in rescored]
        scores = self.model.predict(pairs, batch_size=self.params.batch_size, show_progress_bar=False)
        return reranked(state, rescored, [float(s) for s in scores], self.name, self.params.top_k)
