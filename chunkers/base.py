"""The chunker contract: a registered operator of kind ``chunker`` that turns a Document into Chunks.

Invariants every chunker keeps (property-tested): ``document.text[c.start:c.end] == c.text``; chunks are
in document order; ``c.token_count`` is measured on ``c.text`` with the chunker's tokenizer and is at most
``chunk_size`` (except an unsplittable token, which is reported in ``c.metadata["oversize"]``).

Every chunker's ``chunk`` also takes a plain string (a document with id ``"doc"``) and ``chunk_documents`` a list
of strings (ids ``"doc0"``, ``"doc1"``, ...): :class:`Chunker` wraps a subclass's own methods, so a plugin chunker
gets this too. Anything else is a ``TypeError`` that names what was given.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, Any, Iterable, Iterator, Sequence

import numpy as np
from pydantic import AfterValidator

from rag.errors import ConfigError, InputError, field_check
from rag.registry import Operator
from rag.tokens import get_tokenizer
from rag.types import Chunk, Document

if TYPE_CHECKING:
    from rag.resources import Resources


#: The type of the ``tokenizer`` param: a tokenizer name that loads. It is loaded (once, shared) when the params are
#: validated, so `ragloom validate` and the config's file and line name an unknown tokenizer, not the first run.
TokenizerName = Annotated[str, AfterValidator(field_check(get_tokenizer))]


def tokenizer_field():
    """The ``tokenizer`` param every size-limited chunker takes."""
    from pydantic import Field

    return Field("cl100k_base", description="what chunk_size counts: a tiktoken encoding (cl100k_base, bundled) or an "
                                            "embedding model's own tokenizer (minilm, a local model directory)")


def overlap_below_size(params):
    """The check of every chunker whose ``overlap`` counts tokens: it must stay below ``chunk_size`` (used as
    ``model_validator(mode="after")`` of their params)."""
    if params.overlap >= params.chunk_size:
        raise ConfigError(f"overlap ({params.overlap}) must be smaller than chunk_size ({params.chunk_size})", "overlap")
    return params


def as_document(document: Document | str, doc_id: str = "doc") -> Document:
    """``document``, or a plain string as a Document with id ``doc_id``; a TypeError for anything else."""
    if isinstance(document, Document):
        return document
    if isinstance(document, str):
        return Document(doc_id, document)
    raise TypeError(f"a chunker takes a Document or a str, got {type(document).__name__}"
                    + (" (decode it first)" if isinstance(document, (bytes, bytearray)) else ""))


def _check_not_one_text(documents: Any, method: str) -> None:
    """A TypeError when a method that takes many documents was given one text (or one Document), or nothing that
    can be iterated (``None``)."""
    if isinstance(documents, (str, bytes, Document)):
        raise TypeError(f"{method} takes an iterable of Documents or strs, got one {type(documents).__name__} "
                        "(use chunk for a single text)")
    if not isinstance(documents, Iterable):
        raise TypeError(f"{method} takes an iterable of Documents or strs, got {type(documents).__name__}")


def as_documents(documents: Sequence[Document | str]) -> Sequence[Document]:
    """``documents`` with every plain string made a Document (ids ``doc0``, ``doc1``, ... by position)."""
    _check_not_one_text(documents, "chunk_documents")
    documents = documents if isinstance(documents, (list, tuple)) else list(documents)  # a generator: read once
    if not all(isinstance(d, Document) for d in documents):
        documents = [as_document(d, f"doc{i}") for i, d in enumerate(documents)]
    check_unique_ids(documents, set())
    return documents


def check_unique_ids(documents: Sequence[Document], seen: set[str]) -> None:
    """An :class:`InputError` for a document id that two documents share (among ``documents`` and the ids in
    ``seen``, which takes theirs): chunk ids are ``<document id>#<n>``, so their chunks' ids would collide."""
    for document in documents:
        if document.id in seen:
            raise InputError(f"duplicate document id {document.id!r}: chunk ids ({document.id}#0, ...) would "
                             "collide; give each document its own id")
        seen.add(document.id)


#: About how many characters of documents :meth:`Chunker.iter_chunks` (and ``ragloom chunk``) read and chunk at a
#: time: a group ends with the document that reaches it.
GROUP_CHARACTERS = 16_000_000


def document_groups(documents: Iterable[Document | str], characters: int) -> Iterator[list[Document]]:
    """``documents`` read lazily in consecutive groups, each ending with the document that brings it to
    ``characters`` (the last one shorter); a plain string becomes a Document with id ``doc<i>`` by its position in
    the whole iterable."""
    group: list[Document] = []
    size = 0
    for position, document in enumerate(documents):
        group.append(as_document(document, f"doc{position}"))
        size += len(group[-1].text)
        if size >= characters:
            yield group
            group, size = [], 0
    if group:
        yield group


def _converting_first_argument(convert):
    """A decorator: the method gets ``convert(x)`` for its first argument ``x`` (marked ``takes_text``)."""
    def wrap(method):
        @functools.wraps(method)
        def converted(self, first, *args, **kwargs):
            return method(self, convert(first), *args, **kwargs)
        converted.takes_text = True
        return converted
    return wrap


_taking_text = _converting_first_argument(as_document)
_taking_texts = _converting_first_argument(as_documents)


class Chunker(Operator):
    """Base of every chunker; a chunker with a ``tokenizer`` param measures sizes with ``self.tokenizer_``.
    A subclass's ``chunk`` / ``chunk_with_embeddings`` also take a str, its ``chunk_documents`` /
    ``chunk_documents_with_embeddings`` a list of strs (wrapped here, see the module docstring)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, wrap in (("chunk", _taking_text), ("chunk_with_embeddings", _taking_text),
                           ("chunk_documents", _taking_texts), ("chunk_documents_with_embeddings", _taking_texts)):
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "takes_text", False):
                setattr(cls, name, wrap(method))

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        tokenizer = getattr(self.params, "tokenizer", None)
        if isinstance(tokenizer, str):
            try:
                self.tokenizer_ = get_tokenizer(tokenizer)
            except ConfigError as exc:
                raise ConfigError(exc.message, exc.path or "tokenizer") from None

    @classmethod
    def check_embedder(cls, params: dict[str, Any], embedder) -> None:
        """Check ``params`` against the index's embedder (``index.embedder``) when a pipeline config is read; a
        :class:`ConfigError` with a path inside the params. Only chunkers that run that embedder's model over the
        text (late chunking) have anything to check."""

    @_taking_text
    def chunk(self, document: Document) -> list[Chunk]:
        raise NotImplementedError

    def chunk_text(self, text: str, doc_id: str = "doc", metadata: dict[str, Any] | None = None) -> list[Chunk]:
        """The chunks of ``text`` as a document with id ``doc_id`` and ``metadata``."""
        return self.chunk(Document(doc_id, text, metadata or {}))

    @_taking_texts
    def chunk_documents(self, documents: Sequence[Document]) -> list[Chunk]:
        return [c for d in documents for c in self.chunk(d)]

    def iter_chunks(self, documents: Iterable[Document | str],
                    group_characters: int = GROUP_CHARACTERS) -> Iterator[Chunk]:
        """Every document's chunks, in order, for an iterable of any length (a generator reading files, say): the
        documents are read and chunked in groups of about ``group_characters`` (:func:`document_groups`), so
        memory holds one group, not the corpus. The same chunks as :meth:`chunk_documents` of all of them."""
        _check_not_one_text(documents, "iter_chunks")
        seen: set[str] = set()
        for group in document_groups(documents, group_characters):
            check_unique_ids(group, seen)
            yield from self.chunk_documents(group)

    #: True for chunkers that compute their own chunk vectors (late chunking).
    embeds_chunks: bool = False

    @_taking_text
    def chunk_with_embeddings(self, document: Document, resources: "Resources") -> tuple[list[Chunk], np.ndarray]:
        """Chunks plus one vector per chunk; only for chunkers with ``embeds_chunks``."""
        raise NotImplementedError(f"chunker {self.name!r} does not embed its chunks")

    @_taking_texts
    def chunk_documents_with_embeddings(self, documents: Sequence[Document],
                                        resources: "Resources") -> tuple[list[Chunk], np.ndarray]:
        """Every document's chunks plus one vector per chunk (one document at a time unless a chunker batches)."""
        chunks: list[Chunk] = []
        vectors = []
        for document in documents:
            document_chunks, document_vectors = self.chunk_with_embeddings(document, resources)
            chunks.extend(document_chunks)
            vectors.append(np.asarray(document_vectors, dtype=np.float32).reshape(len(document_chunks), -1))
        return chunks, np.concatenate(vectors) if vectors else np.zeros((0, resources.embedder.dim), np.float32)
