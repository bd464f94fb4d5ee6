"""Reading documents: a folder of text-like files, a single file, or a JSONL file of {id, text, metadata}.

Every problem is reported with the file (and line, for JSONL). Empty or whitespace-only documents are
skipped with a warning naming them; input with no usable document at all is an error.
"""
from __future__ import annotations

import codecs
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Iterable, Iterator

from rag.errors import InputError, undecodable
from rag.jsonl import read_jsonl_objects
from rag.types import Document

log = logging.getLogger(__name__)

TEXT_SUFFIXES = {
    ".txt", ".md", ".markdown", ".rst", ".adoc", ".org", ".tex", ".html", ".htm", ".xml", ".csv", ".tsv",
    ".json", ".yaml", ".yml", ".toml", ".ini", ".cfg",
    ".py", ".pyi", ".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts", ".java", ".go", ".rs", ".c",
    ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx", ".cs", ".rb", ".php", ".kt", ".swift", ".scala", ".sh",
    ".sql", ".lua", ".r",
}
LANGUAGE_OF_SUFFIX = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".jsx": "javascript", ".mjs": "javascript",
    ".cjs": "javascript", ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".java": "java", ".go": "go", ".rs": "rust", ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp",
    ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp", ".md": "markdown", ".markdown": "markdown",
}


def language_of_path(path: str | PurePath) -> str | None:
    """The language a file's suffix names (:data:`LANGUAGE_OF_SUFFIX`), or None."""
    return LANGUAGE_OF_SUFFIX.get(PurePath(path).suffix.lower())


def read_documents(source: str | Path, encoding: str = "utf-8") -> list[Document]:
    """Documents from a folder (recursively, text-like files), a ``.jsonl`` file, or one text file."""
    return list(iter_documents(source, encoding))


def iter_documents(source: str | Path, encoding: str = "utf-8") -> Iterator[Document]:
    """The documents of :func:`read_documents`, read one at a time (a file, or a JSON line, when the one before
    has been taken). A missing input or an unknown encoding is an error at once; an unreadable file or line when
    it is reached (:func:`check_documents` finds those first); input without a document with text after the last
    one."""
    return _documents(source, encoding, warn=True)


@dataclass(frozen=True)
class InputSize:
    """How much :func:`iter_documents` will give: documents with text, and their size in UTF-8 megabytes."""

    documents: int
    megabytes: float


def utf8_size(document: Document) -> int:
    """The document's text in UTF-8 bytes (a lone surrogate counted as its 3 bytes)."""
    return len(document.text.encode("utf-8", "surrogatepass"))


def check_documents(source: str | Path, encoding: str = "utf-8") -> InputSize:
    """Every document of ``source`` read once and dropped, for the errors :func:`iter_documents` would raise part
    way (an undecodable file, a bad JSON line, no document with text), raised now, before any work is done on the
    documents; and their number and size. One document is held at a time; nothing is logged (the real pass warns
    of the empty documents it skips)."""
    documents = size = 0
    for document in _documents(source, encoding, warn=False):
        documents += 1
        size += utf8_size(document)
    return InputSize(documents, size / 1e6)


def input_path(source: str | Path) -> Path:
    """``source`` as a path; an empty name is an error (``Path("")`` is the current folder, read in its place)."""
    if source == "":
        raise InputError("the input is empty: give a folder, a .jsonl file or a text file")
    return Path(source)


def _documents(source: str | Path, encoding: str, warn: bool) -> Iterator[Document]:
    path = input_path(source)
    if not path.exists():
        if path.is_symlink():  # exists() follows the link
            raise InputError(f"input {path} is a symbolic link that leads nowhere (a loop, or a missing target)")
        raise InputError(f"input not found: {path}")
    try:
        # rot13, base64, zlib are codecs too, but not of bytes to text: bytes.decode refuses them
        text_encoding = codecs.lookup(encoding)._is_text_encoding
    except LookupError:
        text_encoding = False
    if not text_encoding:
        raise InputError(f"unknown text encoding {encoding!r} (e.g. utf-8, latin-1, cp1252, utf-16)")
    if path.is_dir():
        docs = _read_folder(path, encoding)
    elif not path.is_file():  # reading a named pipe or a device could wait for ever
        raise InputError(f"input {path} is neither a folder nor a regular file (a named pipe, socket or device)")
    elif path.suffix.lower() == ".jsonl":
        docs = _read_jsonl(path, encoding)
    else:
        docs = (d for d in [_read_file(path, path.name, encoding)] if d is not None)
    return _keep_nonempty(docs, str(path), jsonl=path.suffix.lower() == ".jsonl" and not path.is_dir(), warn=warn)


def _keep_nonempty(docs: Iterable[Document], source: str, jsonl: bool = False,
                   warn: bool = True) -> Iterator[Document]:
    kept = 0
    empty: list[str] = []
    seen_any = False
    for doc in docs:
        seen_any = True
        if doc.text.strip():
            kept += 1
            yield doc
        else:
            empty.append(doc.id)
    if empty and warn:
        names = ", ".join(empty[:10]) + (f" and {len(empty) - 10} more" if len(empty) > 10 else "")
        log.warning("skipped %d empty document(s) in %s: %s", len(empty), source, names)
    if jsonl and not seen_any:
        raise InputError(f"{source}: no documents (the file has no JSON lines)")
    if not kept:
        jsonl_inside = sorted(Path(source).glob("*.jsonl"))[:1] if Path(source).is_dir() else []
        raise InputError(f"{source}: no document with text"
                         + (f" ({len(empty)} empty)" if empty else " (no text-like files found: "
                            f"suffixes {', '.join(sorted(TEXT_SUFFIXES)[:8])}, ..."
                            + (f"; a .jsonl of documents is read when it is the input itself: {jsonl_inside[0]}"
                               if jsonl_inside else "") + ")"))


def _read_folder(root: Path, encoding: str) -> Iterator[Document]:
    for path in text_files(root):
        doc = _read_file(path, path.relative_to(root).as_posix(), encoding)
        if doc is not None:
            yield doc


def text_files(root: Path, suffixes: Iterable[str] = TEXT_SUFFIXES) -> list[Path]:
    """The files under ``root`` with one of ``suffixes`` (lower case), sorted, outside hidden files and folders and
    without following links to folders. A folder that cannot be listed is an error naming it (``Path.rglob``
    skips it silently, and its files would be missing from the output)."""

    def unreadable(error: OSError):
        raise InputError(f"{error.filename}: cannot list the folder ({error.strerror or error}); its files would "
                         "be left out") from None

    files = []
    for folder, subfolders, names in os.walk(root, onerror=unreadable):
        subfolders[:] = [name for name in subfolders if not _hidden(name)]
        files.extend(Path(folder, name) for name in names if _text_file_name(name, suffixes))
    return sorted(path for path in files if path.is_file())


def is_read_in_folder(relative: PurePath, suffixes: Iterable[str] = TEXT_SUFFIXES) -> bool:
    """Whether a file at ``relative`` inside a folder, there or not yet, is one :func:`text_files` of that folder
    lists."""
    return not any(_hidden(part) for part in relative.parent.parts) and _text_file_name(relative.name, suffixes)


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _text_file_name(name: str, suffixes: Iterable[str]) -> bool:
    return not _hidden(name) and PurePath(name).suffix.lower() in suffixes


def _read_file(path: Path, doc_id: str, encoding: str) -> Document | None:
    try:
        data = path.read_bytes()
    except OSError as exc:  # an error while reading (EIO) names no file: the command's message must
        if exc.filename is None:
            exc.filename = str(path)
        raise
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: {undecodable(data, exc, encoding)}; convert the file or pass its encoding "
                         f"({_encoding_hint(data)})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    metadata = {"path": str(path), "title": Path(doc_id).stem}
    language = language_of_path(path)
    if language:
        metadata["language"] = language
    return Document(doc_id, text, metadata)


def _encoding_hint(data: bytes) -> str:
    """What ``--encoding`` to suggest for bytes that did not decode: the one a byte-order mark names, else latin-1."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "--encoding utf-16: the file starts with a UTF-16 byte-order mark"
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "--encoding utf-32: the file starts with a UTF-32 byte-order mark"
    return "--encoding, e.g. latin-1"


def _read_jsonl(path: Path, encoding: str = "utf-8") -> Iterator[Document]:
    if "\n".encode(encoding) != b"\n":
        raise InputError(f"{path}: JSON Lines are read line by line, so {encoding!r} cannot be used (its line feed "
                         "is not the byte 0x0A); convert the file to UTF-8")
    seen: set[str] = set()
    for number, record in read_jsonl_objects(path, encoding=encoding):
        doc_id = record.get("id") if record.get("id") is not None else record.get("_id")
        if doc_id is None or "text" not in record:
            missing = "'text'" if doc_id is not None else "an 'id' (or '_id') that is not null" + (
                "" if "text" in record else " and 'text'")
            raise InputError(f"{path}:{number}: a document needs {missing}; got keys {sorted(record)}")
        if not isinstance(record["text"], str):
            raise InputError(f"{path}:{number}: 'text' must be a string")
        if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)) or doc_id == "":
            # str() would make {"x": 1} the id "{'x': 1}" and true "True"
            raise InputError(f"{path}:{number}: a document's id must be a non-empty string or an integer, got "
                             f"{json.dumps(doc_id)}")
        doc_id = str(doc_id)
        if doc_id in seen:
            raise InputError(f"{path}:{number}: duplicate document id {doc_id!r}")
        seen.add(doc_id)
        metadata = record.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise InputError(f"{path}:{number}: 'metadata' must be an object")
        language = metadata.get("language")
        if language is not None and not isinstance(language, str):  # read by the chunkers: found here, with its line
            raise InputError(f"{path}:{number}: metadata 'language' must be a language name such as 'python' or "
                             f"'markdown', got {json.dumps(language)}")
        if record.get("title") and "title" not in metadata:
            metadata = {**metadata, "title": record["title"]}
        yield Document(doc_id, record["text"], metadata)
