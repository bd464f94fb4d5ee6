"""Late chunking: contextual chunk embeddings from one pass of the embedding model over the whole text.

Günther et al. 2024, "Late Chunking: Contextual Chunk Embeddings Using Long-Context Embedding Models":
encode the document once, then mean-pool the token embeddings inside each chunk's span, so every chunk
vector sees its surroundings. Texts longer than the model's window are encoded in overlapping
macro-windows (the paper's "long late chunking"); each token keeps the embedding from the window in which
it is farthest from an edge. Chunk spans map to tokens through the tokenizer's character offsets, exactly.

Each chunk's final vector mixes the pooled-in-context vector with the chunk's text embedded on its own,
``context_weight · pooled + (1 − context_weight) · own`` (default 0.5; 1 is the paper's method alone). With a
model trained on short texts (MiniLM), pooling a 100–150-token chunk out of a 256-token context lets the context
drown the chunk's own content, and the pooled vector alone retrieves worse than independent embedding; the mix
keeps both signals (docs/results/chunking.md). It costs one extra embedding of the chunk texts.

Overlapping chunks (``token`` windows with ``overlap``, ``sentence`` with ``overlap_sentences``, ``recursive``
with ``overlap``) pool only their *centre* by default (``pooling: centre``, :func:`centre_spans`): from the middle
of the overlap with the previous chunk to the middle of the overlap with the next. Pooled over their whole
spans, neighbours that share most of their text get nearly the same vector and fill the top k with copies of one
region. Decided by a rule written down before measuring (2026-12-05): mean recall over the six overlapping
boundary sets on chroma-chunking 0.832 → 0.840 (IoU not lower), and over three on scifact passages 0.711 → 0.714;
token 400 / overlap 200 on chroma-chunking alone drops 0.870 → 0.850 (``pooling: whole`` keeps it).

Late chunking assumes the parts of a document belong together. A "document" made of short unrelated texts
(passages joined into one file) pools other topics into each chunk: on hotpotqa-100 passages joined 50 at a
time, 200-token chunks lose 0.046 recall against independent embedding (benchmarks/chunking_passages.py). Keep
such texts as separate documents, or set ``context_weight: 0``.

YAML (any boundary chunker, given as a nested op)::

    index:
      chunker: {op: late, boundaries: {op: sentence, chunk_size: 128}, window_overlap: 64}
      # the paper's pooled vectors alone: {op: late, boundaries: {...}, context_weight: 1.0}
      embedder: {model: minilm}
      structures: [dense]

The chunker sets ``embeds_chunks = True``: the index calls :meth:`LateChunker.chunk_documents_with_embeddings` and the
dense structure stores the contextual vectors (queries are embedded as usual). Its passes count in the embedder's
``model_calls`` (what ``ragloom eval`` reports as ``embedding_model_calls``): one per macro-window run through the
model, as the embedder counts one per text it encodes, plus the chunk texts it embeds on its own; vectors read from
the cache cost none.
"""
from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np
from pydantic import Field, model_validator

from chunkers.base import Chunker
from rag.errors import ConfigError
from rag.registry import OperatorParams, create, get_spec, operator, validate_params
from rag.tokens import without_lone_surrogates
from rag.types import Chunk, Document

if TYPE_CHECKING:
    from rag.resources import Resources


def window_ranges(n_tokens: int, window: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Macro-windows ``(start, end, own_start, own_end)`` over ``n_tokens`` tokens: each window holds at most
    ``window`` tokens, consecutive windows share ``overlap`` tokens, and the ``own`` ranges (where a token's
    embedding is taken from) tile ``[0, n_tokens)`` with each boundary in the middle of an overlap."""
    if n_tokens <= window:
        return [(0, n_tokens, 0, n_tokens)]
    stride = window - overlap
    starts = list(range(0, n_tokens - overlap, stride))
    ranges = []
    for k, start in enumerate(starts):
        end = min(start + window, n_tokens)
        own_start = 0 if k == 0 else start + overlap // 2
        own_end = n_tokens if k == len(starts) - 1 else starts[k + 1] + overlap // 2
        ranges.append((start, end, own_start, own_end))
        if end == n_tokens:
            ranges[-1] = (start, end, own_start, n_tokens)
            break
    return ranges


def model_window(st_model) -> int:
    """Word pieces of text one macro-window holds: the model's maximum length less its [CLS] / [SEP] tokens."""
    tokenizer = st_model[0].tokenizer
    return (int(st_model.max_seq_length) - (tokenizer.cls_token_id is not None)
            - (tokenizer.sep_token_id is not None))


def token_embeddings(st_model, text: str, overlap: int, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """``(embeddings (n, dim), offsets (n, 2))`` for the word pieces of ``text`` under a sentence-transformers
    model, computed in overlapping macro-windows of the model's maximum length."""
    return token_embeddings_many(st_model, [text], overlap, batch_size)[0]


def token_embeddings_many(st_model, texts: list[str], overlap: int,
                          batch_size: int = 16) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`token_embeddings` of several texts, their macro-windows run through the model in shared batches of
    windows of similar length (each window is its own sequence: batching changes only the padding)."""
    import torch

    transformer = st_model[0]
    tokenizer, model = transformer.tokenizer, transformer.auto_model
    dim = model.config.hidden_size
    specials = [tokenizer.cls_token_id, tokenizer.sep_token_id]
    lead = 1 if specials[0] is not None else 0
    trail = 1 if specials[1] is not None else 0
    window = model_window(st_model)
    if overlap >= window:
        raise ConfigError(f"window_overlap ({overlap}) must be below the model window ({window} tokens)",
                          "window_overlap")
    results, jobs = [], []  # jobs: (text number, ids, window start, end, own start, own end)
    for number, text in enumerate(texts):
        encoded = tokenizer(without_lone_surrogates(text), add_special_tokens=False, return_offsets_mapping=True,
                            truncation=False, verbose=False)
        ids = encoded["input_ids"]
        results.append((np.zeros((len(ids), dim), dtype=np.float32),
                        np.asarray(encoded["offset_mapping"], dtype=np.int64).reshape(-1, 2)))
        if ids:
            jobs.extend((number, ids, *r) for r in window_ranges(len(ids), window, overlap))
    jobs.sort(key=lambda job: job[3] - job[2])  # windows of similar length batched together: little padding
    pad = tokenizer.pad_token_id or 0
    with torch.inference_mode():
        for b in range(0, len(jobs), batch_size):
            batch = jobs[b:b + batch_size]
            rows = [([specials[0]] if lead else []) + ids[s:e] + ([specials[1]] if trail else [])
                    for _, ids, s, e, _, _ in batch]
            width = max(len(r) for r in rows)
            input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
            hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state.float().numpy()
            for (number, _, s, _, own_s, own_e), states in zip(batch, hidden):
                results[number][0][own_s:own_e] = states[lead + own_s - s:lead + own_e - s]
    return results


def pool_spans(embeddings: np.ndarray, offsets: np.ndarray, spans: list[tuple[int, int]]) -> tuple[np.ndarray, list[int]]:
    """Mean of the token embeddings overlapping each character span; returns the vectors and the indices of
    spans that contain no token (whitespace), which callers embed on their own."""
    vectors = np.zeros((len(spans), embeddings.shape[1]), dtype=np.float32)
    empty = []
    if len(offsets):
        ends, starts = offsets[:, 1], offsets[:, 0]
        cumulative = np.vstack([np.zeros((1, embeddings.shape[1]), dtype=np.float64),
                                np.cumsum(embeddings, axis=0, dtype=np.float64)])
    for i, (s, e) in enumerate(spans):
        if not len(offsets):
            empty.append(i)
            continue
        first = int(np.searchsorted(ends, s, side="right"))
        last = int(np.searchsorted(starts, e, side="left"))
        if last <= first:
            empty.append(i)
            continue
        vectors[i] = (cumulative[last] - cumulative[first]) / (last - first)
    return vectors, empty


def centre_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """For one document's chunk spans in order, the part of each that its token embeddings are pooled over with
    ``pooling: centre``: from the middle of its overlap with the previous span to the middle of its overlap with
    the next; a span that meets or misses a neighbour keeps that edge. So each stretch of overlapped text feeds
    the one chunk it is most central in (as each token's embedding comes from the macro-window it is most
    central in), and chunks without overlap pool their whole span."""
    out = []
    for i, (start, end) in enumerate(spans):
        if i and spans[i - 1][1] > start:
            start = (start + spans[i - 1][1]) // 2
        if i + 1 < len(spans) and spans[i + 1][0] < end:
            end = (end + spans[i + 1][0]) // 2
        out.append((start, end) if end > start else spans[i])
    return out


def _as_embedder_output(vectors: np.ndarray, embedder) -> np.ndarray:
    """``vectors`` as the embedder returns its own: float32, rows scaled to unit length when it normalises."""
    if embedder.normalize:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms == 0, 1, norms)
    return vectors.astype(np.float32)


def boundary_spec(boundaries: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The nested chunker's name and params from ``{op: ..., **params}``."""
    params = dict(boundaries)
    name = params.pop("op", None)
    if not name or not isinstance(name, str):
        raise ConfigError("needs a nested chunker, e.g. {op: sentence, chunk_size: 128}", "boundaries.op")
    if name == "late":
        raise ConfigError("late chunking cannot wrap itself", "boundaries.op")
    return name, params


@operator("late", kind="chunker")
class LateChunker(Chunker):
    """Late chunking (Günther et al. 2024): boundaries from a nested chunker, vectors pooled in context."""

    embeds_chunks = True

    class Params(OperatorParams):
        boundaries: dict[str, Any] = Field(default_factory=lambda: {"op": "sentence", "chunk_size": 128},
                                           description="the boundary chunker, as a nested {op: ...}")
        window_overlap: int = Field(64, ge=0, description="tokens shared by consecutive macro-windows")
        context_weight: float = Field(0.5, ge=0, le=1, description=(
            "share of the pooled-in-context vector in each chunk vector; the rest is the chunk's text embedded "
            "on its own (1: the paper's late chunking alone, 0: independent embedding)"))
        pooling: Literal["centre", "whole"] = Field("centre", description=(
            "tokens pooled for a chunk that overlaps its neighbours: 'centre', from the middle of its overlap with "
            "the previous chunk to the middle of its overlap with the next; 'whole', all of its tokens (the "
            "paper). Chunks without overlap pool their whole span either way"))
        batch_size: int = Field(16, gt=0)
        cache: bool = Field(True, description="cache pooled vectors on disk by document text and spans")

        @model_validator(mode="after")
        def _boundaries_are_a_chunker(self):
            # checked with the params, so `ragloom validate` and the config's line name a bad nested key
            name, params = boundary_spec(self.boundaries)
            validate_params(get_spec(name, "chunker", "boundaries.op").cls, params, "boundaries")
            return self

    def __init__(self, **params):
        super().__init__(**params)
        name, params = boundary_spec(self.params.boundaries)
        self.boundary_chunker_ = create(name, params, kinds="chunker", path="boundaries")
        self._cache = None

    def chunk(self, document: Document) -> list[Chunk]:
        return self.boundary_chunker_.chunk(document)

    def _cache_store(self):
        if self._cache is None and self.params.cache:
            from rag.embedding import EmbeddingCache, default_cache_dir

            self._cache = EmbeddingCache(default_cache_dir() / "late_chunking.sqlite")
        return self._cache

    def chunk_with_embeddings(self, document: Document, resources: "Resources") -> tuple[list[Chunk], np.ndarray]:
        return self.chunk_documents_with_embeddings([document], resources)

    def chunk_documents_with_embeddings(self, documents: Sequence[Document],
                                        resources: "Resources") -> tuple[list[Chunk], np.ndarray]:
        """Chunks of every document and their vectors. The documents' macro-windows share the model's batches
        and the chunks' own texts are embedded in one call, so many short documents cost about what one long
        one does."""
        per_document = [(document, self.chunk(document)) for document in documents]
        chunks = [c for _, document_chunks in per_document for c in document_chunks]
        embedder = resources.embedder
        if not chunks:
            return chunks, np.zeros((0, embedder.dim), dtype=np.float32)
        if self.params.context_weight <= 0:  # independent embedding: no forward pass over the whole text
            return chunks, embedder.embed([c.text for c in chunks])
        pooled = self._cached_pooled([(d, cs) for d, cs in per_document if cs], embedder)
        return chunks, self._with_own_text(chunks, pooled, embedder)

    def _cached_pooled(self, per_document: list[tuple[Document, list[Chunk]]], embedder) -> np.ndarray:
        """:meth:`_pooled` of every document's chunks (in order), read from / written to the on-disk cache keyed
        by document text and chunk spans."""
        cache = self._cache_store()
        model_key = f"{embedder.identity}|late|overlap={self.params.window_overlap}"
        if self.params.pooling == "centre":  # the same vectors as 'whole' where chunks do not overlap
            model_key += "|centre"
        keys = [hashlib.sha256((d.text + json.dumps([(c.start, c.end) for c in cs])).encode("utf-8", "surrogatepass"))
                .digest() for d, cs in per_document]
        hits = cache.get_many(model_key, keys, None) if cache is not None else {}
        found: dict[int, np.ndarray] = {}
        for i, ((_, document_chunks), key) in enumerate(zip(per_document, keys)):
            hit = hits.get(key)
            if hit is not None and hit.size % len(document_chunks) == 0:
                found[i] = hit.reshape(len(document_chunks), -1).copy()
        missing = [i for i in range(len(per_document)) if i not in found]
        if missing:
            fresh = self._pooled([per_document[i] for i in missing], embedder)
            found.update(zip(missing, fresh))
            if cache is not None:
                cache.put_many(model_key, [(keys[i], found[i].ravel()) for i in missing])
        return np.vstack([found[i] for i in range(len(per_document))])

    def _pooled(self, per_document: list[tuple[Document, list[Chunk]]], embedder) -> list[np.ndarray]:
        """The paper's late-chunking vectors: token embeddings of each whole text mean-pooled per chunk span (its
        centre, :func:`centre_spans`, under ``pooling: centre``).

        Each macro-window run through the model counts as one of ``embedder.model_calls``, as each text the
        embedder encodes does: a text within the model's window costs one call, a longer one a call per window."""
        overlap = self.params.window_overlap
        encoded = token_embeddings_many(embedder.st, [d.text for d, _ in per_document], overlap,
                                        self.params.batch_size)
        window = model_window(embedder.st)
        embedder.model_calls += sum(len(window_ranges(len(offsets), window, overlap))
                                    for _, offsets in encoded if len(offsets))
        out = []
        for (_, chunks), (embeddings, offsets) in zip(per_document, encoded):
            spans = [(c.start, c.end) for c in chunks]
            vectors, empty = pool_spans(embeddings, offsets, centre_spans(spans) if self.params.pooling == "centre"
                                        else spans)
            if empty:  # chunks without any word piece (whitespace): embed their text on its own
                vectors[empty] = embedder.embed([chunks[i].text for i in empty])
            out.append(_as_embedder_output(vectors, embedder))
        return out

    def _with_own_text(self, chunks: list[Chunk], contextual: np.ndarray, embedder) -> np.ndarray:
        """``w · contextual + (1 − w) · own`` (renormalised when the embedder normalises), ``own`` being each
        chunk's text embedded alone. Pooling a small chunk's tokens out of a long context lets the context
        drown the chunk's own content; the mix keeps both signals (docs/results/chunking.md measures it)."""
        weight = self.params.context_weight
        if weight >= 1:
            return contextual
        own = embedder.embed([c.text for c in chunks])
        vectors = weight * contextual + (1 - weight) * own
        return _as_embedder_output(vectors, embedder)
