"""Late chunking: contextual chunk embeddings from one pass of the embedding model over the whole text.

Günther et al. 2024, "Late Chunking: Contextual Chunk Embeddings Using Long-Context Embedding Models":
encode the document once, then mean-pool the token embeddings inside each chunk's span, so every chunk
vector sees its surroundings. Texts longer than the model's window are encoded in overlapping
macro-windows (the paper's "long late chunking"); each token keeps the embedding from the window in which
it is farthest from an edge. Chunk spans map to tokens through the tokenizer's character offsets, exactly.

Each chunk's final vector mixes the pooled-in-context vector with the chunk's text embedded on its own,
``context_weight · pooled + (1 − context_weight) · own`` (default 0.5; 1 is the paper's method alone), both halves
unit vectors, so ``context_weight`` is a share of direction whatever their raw lengths. The result is unit length
when the embedder normalises (the default); with ``embedder: {normalize: false}`` it is left as that mix (length at
most 1, shorter where the halves disagree), and ``context_weight: 0`` returns the embedder's own vectors as they come.
With a model trained on short texts (MiniLM), pooling a 100–150-token chunk out of a 256-token context lets the
context drown the chunk's own content, and the pooled vector alone retrieves worse than independent embedding; the
mix keeps both signals (docs/results/chunking.md). It costs one extra embedding of the chunk texts.

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

The embedder's ``document_prefix`` (e5's ``"passage: "``), after the model's own default prompt if it has one, opens
every macro-window, after [CLS], as they open every text the model embeds; their tokens take room in the window and
are pooled into no chunk. The model must mean-pool its sentence vectors (a CLS-pooling model is refused: a mean of
a chunk's tokens is not in its space), its modules after the pooling (a Dense head) run on the pooled vectors, and
its tokenizer must be a fast one (character offsets); see :mod:`chunkers._late_model`. ``window_overlap`` must stay
below the text a window holds (:func:`window_from_files` checks it when the config is read) and a stride under a
quarter of the window warns, since the model passes grow as ``window / stride``.
"""
from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np
from pydantic import Field, model_validator

from chunkers.base import Chunker
from chunkers._late_model import after_pooling, check_mean_pooling, modules_after_pooling, projects, window_prompt
from chunkers.model_window import model_tokens, model_window, window_from_files
from rag.errors import ConfigError, warn_user
from rag.once import made_once
from rag.registry import OperatorParams, create, get_spec, operator, validate_params
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


def token_embeddings(st_model, text: str, overlap: int, batch_size: int = 16,
                     prefix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """``(embeddings (n, dim), offsets (n, 2))`` for the word pieces of ``text`` under a sentence-transformers
    model, computed in overlapping macro-windows of the model's maximum length, each opening with ``prefix``."""
    return token_embeddings_many(st_model, [text], overlap, batch_size, prefix)[0]


def token_embeddings_many(st_model, texts: list[str], overlap: int, batch_size: int = 16,
                          prefix: str = "") -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`token_embeddings` of several texts, their macro-windows run through the model in shared batches of
    windows of similar length (each window is its own sequence: batching changes only the padding)."""
    return _windowed_token_embeddings(st_model, texts, overlap, batch_size, prefix)[0]


def _windowed_token_embeddings(st_model, texts: list[str], overlap: int, batch_size: int,
                               prefix: str) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
    """:func:`token_embeddings_many` and the number of macro-windows run through the model.

    Each text is tokenized behind ``prefix``, as the embedder encodes ``prefix + text``; the leading tokens that end
    within the prefix are the prefix's, put after [CLS] in every window and pooled nowhere; the rest keep offsets in
    ``text`` (a token straddling the seam starts at 0). With no prefix the windows are exactly the text's."""
    import torch

    transformer = st_model[0]
    tokenizer, model = transformer.tokenizer, transformer.auto_model
    dim = model.config.hidden_size
    specials = [tokenizer.cls_token_id, tokenizer.sep_token_id]
    lead = 1 if specials[0] is not None else 0
    trail = 1 if specials[1] is not None else 0
    window = model_window(st_model)
    if overlap >= window:
        raise ConfigError(_overlap_message(overlap, window, 0, str(st_model.max_seq_length)), "window_overlap")
    results, jobs = [], []  # jobs: (text number, prefix ids, ids, window start, end, own start, own end)
    warned = False
    for number, text in enumerate(texts):
        ids, offsets = model_tokens(tokenizer, prefix + text)
        prefix_ids: list[int] = []
        if prefix:
            n_prefix = int(np.searchsorted(offsets[:, 1], len(prefix), side="right"))
            prefix_ids, ids = ids[:n_prefix], ids[n_prefix:]
            offsets = np.maximum(offsets[n_prefix:] - len(prefix), 0)
        text_window = window - len(prefix_ids)
        if overlap >= text_window:
            raise ConfigError(_overlap_message(overlap, window, len(prefix_ids), str(st_model.max_seq_length)),
                              "window_overlap")
        results.append((np.zeros((len(ids), dim), dtype=np.float32), offsets))
        if ids:
            ranges = window_ranges(len(ids), text_window, overlap)
            if len(ranges) > 1 and not warned and 4 * (text_window - overlap) < text_window:
                warn_user(_stride_message(overlap, text_window))
                warned = True
            jobs.extend((number, prefix_ids, ids, *r) for r in ranges)
    jobs.sort(key=lambda job: job[4] - job[3])  # windows of similar length batched together: little padding
    pad = tokenizer.pad_token_id or 0
    with torch.inference_mode():
        for b in range(0, len(jobs), batch_size):
            batch = jobs[b:b + batch_size]
            rows = [([specials[0]] if lead else []) + prefix_ids + ids[s:e] + ([specials[1]] if trail else [])
                    for _, prefix_ids, ids, s, e, _, _ in batch]
            width = max(len(r) for r in rows)
            input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
            hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state.float().numpy()
            for (number, prefix_ids, _, s, _, own_s, own_e), states in zip(batch, hidden):
                first = lead + len(prefix_ids) - s
                results[number][0][own_s:own_e] = states[first + own_s:first + own_e]
    return results, len(jobs)


def _overlap_message(overlap: int, window: int, prefix_tokens: int, positions: str) -> str:
    text_window = window - prefix_tokens
    room = f"{positions} positions less [CLS] and [SEP]" + (
        f" and the {prefix_tokens} tokens of document_prefix" if prefix_tokens else "")
    hint = f"e.g. window_overlap: {min(64, max(text_window, 4) // 4)}" if text_window > 0 else \
        "use a shorter document_prefix or a model with a longer window"
    return (f"is {overlap}, but must be below the {max(text_window, 0)} tokens of text one macro-window of the "
            f"embedding model holds ({room}); {hint}")


def _stride_message(overlap: int, text_window: int) -> str:
    stride = text_window - overlap
    return (f"late chunking: window_overlap {overlap} leaves a stride of {stride} token(s) per {text_window}-token "
            f"macro-window, so texts longer than a window take about {text_window / stride:.0f}x the model passes of "
            f"windows without overlap; a window_overlap of at most {text_window - -(-text_window // 4)} keeps that "
            "under 4x")


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


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def _as_embedder_output(vectors: np.ndarray, embedder) -> np.ndarray:
    """``vectors`` as the embedder returns its own: float32, rows scaled to unit length when it normalises."""
    if embedder.normalize:
        vectors = _unit_rows(vectors)
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
        context_weight: float = Field(0.5, ge=0, le=1, allow_inf_nan=False, description=(
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

    @classmethod
    def check_embedder(cls, params: dict[str, Any], embedder) -> None:
        """``window_overlap`` below the text a macro-window of the index's embedder holds, read from the model's
        files when the config is read (:func:`window_from_files`); a model those can't describe is checked when
        it is loaded."""
        overlap = params.get("window_overlap", cls.Params.model_fields["window_overlap"].default)
        found = window_from_files(embedder.model, embedder.document_prefix)
        if found is not None and overlap >= found[0] - found[1]:
            raise ConfigError(_overlap_message(overlap, found[0], found[1], str(found[2])), "window_overlap")

    def __init__(self, **params):
        super().__init__(**params)
        name, params = boundary_spec(self.params.boundaries)
        self.boundary_chunker_ = create(name, params, kinds="chunker", path="boundaries")
        self._cache = None

    def chunk(self, document: Document) -> list[Chunk]:
        return self.boundary_chunker_.chunk(document)

    def _cache_store(self):
        if not self.params.cache:
            return None
        from rag.embedding import EmbeddingCache, default_cache_dir

        return made_once(self, "_cache", lambda: EmbeddingCache(default_cache_dir() / "late_chunking.sqlite"))

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
        check_mean_pooling(embedder.st, embedder.model)
        model_key = f"{embedder.identity}|late|overlap={self.params.window_overlap}"
        if self.params.pooling == "centre":  # the same vectors as 'whole' where chunks do not overlap
            model_key += "|centre"
        if window_prompt(embedder.st) + embedder.document_prefix:
            # vectors cached before the prefix (and the model's own prompt) opened each macro-window are not these
            model_key += "|prefixed-windows"
        if projects(modules_after_pooling(embedder.st, embedder.model)):  # nor those cached before its head ran
            model_key += "|head"
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
        st = embedder.st
        encoded, windows = _windowed_token_embeddings(st, [d.text for d, _ in per_document],
                                                      self.params.window_overlap, self.params.batch_size,
                                                      window_prompt(st) + embedder.document_prefix)
        embedder.model_calls += windows
        head = modules_after_pooling(st, embedder.model)
        out = []
        for (_, chunks), (embeddings, offsets) in zip(per_document, encoded):
            spans = [(c.start, c.end) for c in chunks]
            vectors, empty = pool_spans(embeddings, offsets, centre_spans(spans) if self.params.pooling == "centre"
                                        else spans)
            vectors = after_pooling(head, vectors)
            if empty:  # chunks without any word piece (whitespace): embed their text on its own
                vectors[empty] = embedder.embed([chunks[i].text for i in empty])
            out.append(_as_embedder_output(vectors, embedder))
        return out

    def _with_own_text(self, chunks: list[Chunk], contextual: np.ndarray, embedder) -> np.ndarray:
        """``w · contextual + (1 − w) · own`` of unit vectors (renormalised when the embedder normalises), ``own``
        being each chunk's text embedded alone. Pooling a small chunk's tokens out of a long context lets the
        context drown the chunk's own content; the mix keeps both signals (docs/results/chunking.md measures it)."""
        weight = self.params.context_weight
        if not embedder.normalize:  # a mean of token states is 2-3 long, a sentence vector often 1: equal footing
            contextual = _unit_rows(contextual)
        if weight >= 1:
            return contextual
        own = embedder.embed([c.text for c in chunks])
        if not embedder.normalize:
            own = _unit_rows(own)
        vectors = weight * contextual + (1 - weight) * own
        return _as_embedder_output(vectors, embedder)
