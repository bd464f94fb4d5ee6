"""Semantic chunking: cut where adjacent sentence windows stop resembling each other, under a hard size cap.

YAML::

    index:
      chunker: {op: semantic, chunk_size: 256, breakpoint: percentile, threshold: 95, buffer: 1}
      # or the clustering variant (Chroma's ClusterSemanticChunker, Smith & Troynikov 2024):
      # chunker: {op: semantic, chunk_size: 200, breakpoint: cluster, piece_size: 50}

Breakpoint methods (Kamradt's "5 levels of text splitting", as in LangChain's SemanticChunker): embed each
sentence together with ``buffer`` neighbours on each side (a window longer than the embedding model reads keeps
its sentence and the neighbouring text nearest it, :func:`centred_windows`), take cosine distances between consecutive
windows, and cut where the distance exceeds a threshold: the ``threshold``-th ``percentile`` of the
distances, the mean plus ``threshold`` standard deviations (``stddev``), or the ``threshold``-th percentile
of the distance gradient (``gradient``). Segments longer than ``chunk_size`` are packed sentence by sentence
(so, unlike LangChain / Chonkie / LlamaIndex, no chunk ever exceeds the cap).

``cluster``: split into pieces of about ``piece_size`` tokens, embed them, and choose the segmentation
maximising the summed pairwise similarity (minus the mean similarity) inside each segment by dynamic
programming, subject to the segment fitting ``chunk_size`` tokens.
"""
from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
from pydantic import Field, model_validator

from chunkers._spans import Span, build_chunks, fit_spans
from chunkers._splitter import RecursiveSplitter
from chunkers.base import Chunker, TokenizerName, tokenizer_field
from chunkers.model_window import model_tokens, model_window, model_word_pieces
from chunkers.sentence import sentence_units
from rag.config import EmbedderConfig
from rag.errors import ConfigError
from rag.once import made_once
from rag.registry import OperatorParams, operator
from rag.types import Chunk, Document

DEFAULT_THRESHOLDS = {"percentile": 95.0, "stddev": 3.0, "gradient": 95.0}


def breakpoint_distances(vectors: np.ndarray) -> np.ndarray:
    """Cosine distance between each pair of consecutive (L2-normalised) vectors."""
    if len(vectors) < 2:
        return np.zeros(0, dtype=np.float32)
    return 1.0 - np.einsum("ij,ij->i", vectors[:-1], vectors[1:])


def breakpoints(distances: np.ndarray, method: str, threshold: float) -> np.ndarray:
    """Indices ``i`` such that a cut goes between unit ``i`` and unit ``i + 1``."""
    if len(distances) == 0:
        return np.zeros(0, dtype=np.int64)
    if method == "percentile":
        cutoff = np.percentile(distances, threshold)
        return np.flatnonzero(distances > cutoff)
    if method == "stddev":
        cutoff = distances.mean() + threshold * distances.std()
        return np.flatnonzero(distances > cutoff)
    if method == "gradient":
        gradient = np.gradient(distances) if len(distances) > 1 else distances
        cutoff = np.percentile(gradient, threshold)
        return np.flatnonzero(gradient > cutoff)
    raise ValueError(f"unknown breakpoint method {method!r}")


#: scores of segmentations closer than this per similarity summed (for unit vectors; scaled by the largest
#: squared norm) are equal: float noise (see optimal_segmentation)
TIE_PER_PAIR = 1e-6


def optimal_segmentation(vectors: np.ndarray, fits) -> list[tuple[int, int]]:
    """Segments ``[(first, last), ...]`` of consecutive pieces maximising the sum over segments of pairwise
    similarities minus the global mean pairwise similarity (Chroma's ClusterSemanticChunker reward),
    subject to ``fits(first, last)``. Dynamic programming; the reward of a growing segment is updated with
    one column of the similarity band, so memory is O(n · max segment length)."""
    n = len(vectors)
    if n == 0:
        return []
    total = vectors.sum(axis=0)
    squared_norms = np.einsum("ij,ij->i", vectors, vectors)
    pair_sum = (float(total @ total) - float(squared_norms.sum())) / 2
    tie = TIE_PER_PAIR * float(squared_norms.max())  # a similarity's scale: 1 for unit vectors
    mean = pair_sum / max(1, n * (n - 1) / 2)
    best = np.full(n + 1, -np.inf)
    best[0] = 0.0
    start_of = np.zeros(n + 1, dtype=np.int64)
    first = 0
    for last in range(n):
        # The earliest feasible start never moves left as the segment end advances (two pointers).
        while first < last and not fits(first, last):
            first += 1
        candidates = best[first:last + 1] + _segment_rewards(vectors, first, last, mean)
        # Scores within float noise of the best are a tie, settled for the longest last segment: the vectors move
        # by ~1e-7 with their embedding batch, and near-identical pieces (or two pieces, whose pair similarity is
        # the mean) score ~0 either way, so argmax let that noise choose (a document got 8 chunks alone and 30
        # in chunk_documents). The tolerance grows with the pairs a segment sums.
        span = last - first + 1
        tolerance = tie * max(1.0, span * (span - 1) / 2)
        k = int(np.flatnonzero(candidates >= candidates.max() - tolerance)[0])
        best[last + 1] = candidates[k]
        start_of[last + 1] = first + k
    segments = []
    end = n
    while end > 0:
        begin = int(start_of[end])
        segments.append((begin, end - 1))
        end = begin
    return segments[::-1]


def _segment_rewards(vectors: np.ndarray, first: int, last: int, mean: float) -> np.ndarray:
    """Rewards of the segments ``(s, last)`` for ``s`` in ``first..last``."""
    block = vectors[first:last + 1] @ vectors[first:last + 1].T - mean
    np.fill_diagonal(block, 0.0)
    # Reward of (s, last) = sum of block[s-first:, s-first:]: a reversed 2-D suffix sum along the diagonal.
    suffix = block[::-1, ::-1].cumsum(axis=0).cumsum(axis=1)[::-1, ::-1]
    return np.diagonal(suffix).copy()


def centred_windows(text: str, units: list[Span], buffer: int, offsets: np.ndarray, budget: int,
                    continues: np.ndarray | None = None) -> list[str]:
    """The text of each unit with ``buffer`` units on each side, as long as the window's ``offsets`` (the text's
    model tokens, as character spans) hold at most ``budget`` tokens. A longer window keeps the unit and the
    neighbouring tokens nearest it, as many before as after while both sides have them: the model would
    otherwise cut the window's end, the later neighbours, so each window would lean on what comes before it
    and the last ones (which have fewer neighbours) would look far from the rest. Such a window starts and ends
    between words where ``continues`` (per token: it continues the word of the token before it) says where
    words are: cut inside one, the part kept is tokenized into other pieces, and more of them could take the
    window over ``budget``. A unit over ``budget`` alone is its own window, cut by the model."""
    n = len(units)
    unit_starts = np.array([a for a, _ in units], dtype=np.int64)
    unit_ends = np.array([z for _, z in units], dtype=np.int64)
    first_token = np.searchsorted(offsets[:, 1], unit_starts, side="right")  # the first ending after its start
    end_token = np.maximum(np.searchsorted(offsets[:, 0], unit_ends, side="left"), first_token)
    windows = []
    for i in range(n):
        before, after = max(0, i - buffer), min(n - 1, i + buffer)
        if end_token[after] - first_token[before] <= budget:
            windows.append(text[unit_starts[before]:unit_ends[after]])
            continue
        own = int(end_token[i] - first_token[i])
        if own >= budget:
            windows.append(text[unit_starts[i]:unit_ends[i]])
            continue
        room = budget - own
        left_has, right_has = int(first_token[i] - first_token[before]), int(end_token[after] - end_token[i])
        right = min(right_has, room - min(left_has, room // 2))
        left = min(left_has, room - right)
        if continues is not None:
            while left and continues[first_token[i] - left]:
                left -= 1  # the window's first token ends a word begun before it
            while right and end_token[i] + right < len(continues) and continues[end_token[i] + right]:
                right -= 1  # the token after the window continues the window's last word
        start = int(offsets[first_token[i] - left, 0]) if left else int(unit_starts[i])
        end = int(offsets[end_token[i] + right - 1, 1]) if right else int(unit_ends[i])
        windows.append(text[min(start, unit_starts[i]):max(end, unit_ends[i])])
    return windows


@operator("semantic", kind="chunker")
class SemanticChunker(Chunker):
    """Embedding-similarity breakpoints (percentile / stddev / gradient) or clustering DP, hard size cap."""

    class Params(OperatorParams):
        chunk_size: int = Field(256, gt=0, description="maximum tokens per chunk (hard ceiling)")
        breakpoint: Literal["percentile", "stddev", "gradient", "cluster"] = "percentile"
        threshold: float | None = Field(None, allow_inf_nan=False,
                                        description="percentile (0-100) or number of standard deviations")
        buffer: int = Field(1, ge=0, description="neighbouring sentences embedded with each sentence")
        piece_size: int = Field(50, gt=0, description="tokens per piece for the cluster variant")
        embedder: EmbedderConfig = Field(default_factory=EmbedderConfig, description="used when no embedder is shared")
        tokenizer: TokenizerName = tokenizer_field()

        @model_validator(mode="after")
        def _percentile_in_range(self):
            if self.threshold is not None and self.breakpoint == "cluster":
                raise ConfigError("threshold has no effect with breakpoint 'cluster' (it maximises within-chunk "
                                  "similarity under chunk_size; piece_size sets its granularity): remove it",
                                  "threshold")
            if "buffer" in self.model_fields_set and self.breakpoint == "cluster":
                raise ConfigError("buffer has no effect with breakpoint 'cluster' (it embeds each piece alone): "
                                  "remove it", "buffer")
            if "piece_size" in self.model_fields_set and self.breakpoint != "cluster":
                raise ConfigError(f"piece_size has no effect with breakpoint {self.breakpoint!r} (its units are "
                                  "sentences; piece_size sets the cluster variant's pieces): remove it", "piece_size")
            if self.threshold is not None and self.breakpoint in ("percentile", "gradient") \
                    and not 0 <= self.threshold <= 100:
                raise ConfigError(f"threshold ({self.threshold}) is a percentile for breakpoint {self.breakpoint!r}: "
                                  "it must be between 0 and 100", "threshold")
            return self

    def __init__(self, **params):
        super().__init__(**params)
        self._embedder = None

    @property
    def embedder(self):
        from rag.embedding import Embedder

        return made_once(self, "_embedder", lambda: Embedder(**self.params.embedder.model_dump()))

    def use_embedder(self, embedder) -> "SemanticChunker":
        """Share an already loaded embedder (e.g. the pipeline's) instead of creating one."""
        self._embedder = embedder
        return self

    def units(self, splitter: RecursiveSplitter) -> list[Span]:
        limit = self.params.chunk_size
        if self.params.breakpoint == "cluster":
            return splitter.split(0, len(splitter.text), min(self.params.piece_size, limit))
        return sentence_units(splitter, limit)

    def window_texts(self, text: str, units: list[Span]) -> list[str]:
        """Each unit with ``buffer`` neighbours on each side, fitted to what the embedding model reads
        (:func:`centred_windows`)."""
        b = 0 if self.params.breakpoint == "cluster" else self.params.buffer
        n = len(units)
        if b == 0:
            return [text[a:z] for a, z in units]
        st_model = getattr(self.embedder, "st", None)  # a sentence-transformers model (any embed() will do)
        tokenizer = getattr(st_model, "tokenizer", None)
        if not getattr(tokenizer, "is_fast", False):  # no offsets: windows whole, as the embedder takes them
            return [text[units[max(0, i - b)][0]:units[min(n - 1, i + b)][1]] for i in range(n)]
        prefix = getattr(self.embedder, "document_prefix", "")
        budget = model_window(st_model) - (len(model_tokens(tokenizer, prefix)[0]) if prefix else 0)
        offsets, continues = model_word_pieces(tokenizer, text)
        return centred_windows(text, units, b, offsets, max(1, budget), continues)

    def segment(self, splitter: RecursiveSplitter, units: list[Span], vectors: np.ndarray) -> list[Span]:
        limit = self.params.chunk_size

        def fits(first: int, last: int) -> bool:
            return splitter.estimate(units[first][0], units[last][1]) <= limit

        if self.params.breakpoint == "cluster":
            return [(units[a][0], units[b][1]) for a, b in optimal_segmentation(vectors, fits)]
        threshold = self.params.threshold
        if threshold is None:
            threshold = DEFAULT_THRESHOLDS[self.params.breakpoint]
        cuts = breakpoints(breakpoint_distances(vectors), self.params.breakpoint, threshold)
        edges = [0, *(int(c) + 1 for c in cuts), len(units)]
        spans: list[Span] = []
        for a, b in zip(edges, edges[1:]):
            if a < b:
                spans.extend(splitter.pack(units[a:b], limit))
        return spans

    def chunk(self, document: Document) -> list[Chunk]:
        return self.chunk_documents([document])

    def chunk_documents(self, documents: Sequence[Document]) -> list[Chunk]:
        """Chunk several documents with one embedding call for all their sentence windows (bigger, length-sorted
        batches than one call per document)."""
        prepared = []
        windows: list[str] = []
        for document in documents:
            if not document.text:
                continue
            splitter = RecursiveSplitter(document.text, self.tokenizer_, markdown=False)
            units = self.units(splitter)
            first = len(windows)
            if len(units) > 1:
                windows.extend(self.window_texts(document.text, units))
            prepared.append((document, splitter, units, first))
        vectors = self.embedder.embed(windows) if windows else None
        chunks: list[Chunk] = []
        for document, splitter, units, first in prepared:
            if len(units) > 1:
                spans = self.segment(splitter, units, vectors[first:first + len(units)])
            else:
                spans = units
            counts = splitter.index.counts(spans)
            spans, counts, oversize = fit_spans(document.text, spans, self.tokenizer_, self.params.chunk_size, counts)
            chunks.extend(build_chunks(document, spans, counts, oversize, tokenizer=self.tokenizer_))
        return chunks
