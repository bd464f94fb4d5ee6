"""Reading JSON Lines files with errors that name the file and line, and writing them without a torn file."""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator

from rag.errors import InputError, RagloomError


def read_jsonl_objects(path: Path, error: type[RagloomError] = InputError,
                       encoding: str = "utf-8") -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line (in ``encoding``; a byte order mark before the first
    line is skipped); a missing file, undecodable bytes, invalid JSON or a non-object line raises ``error``
    naming ``path:line``. (Lines are split at LF bytes, so ``encoding`` is one whose LF is that byte: UTF-8, Latin-1,
    cp1252, ...)"""
    if not path.is_file():
        raise error(f"{path}: file not found")
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise error(f"{path}:{number}: not valid {encoding} at byte {exc.start} of the line") from None
            if number == 1:
                line = line.removeprefix("\ufeff")
            if not line.strip():
                continue
            try:
                row = json.loads(line.rstrip("\r\n"))  # without its line end, so the column is on the line
            except json.JSONDecodeError as exc:
                raise error(f"{path}:{number}: invalid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(row, dict):
                raise error(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            yield number, row


def json_line(row: dict[str, Any], encoding: str = "utf-8") -> str:
    """``row`` as one line of JSON, non-ASCII characters as they are unless ``encoding`` cannot write them (a
    surrogate in a text: then escaped, ``"\\ud800"``, which reads back as the same string)."""
    line = json.dumps(row, ensure_ascii=False)
    try:
        line.encode(encoding)
    except UnicodeEncodeError:
        return json.dumps(row)
    return line


def write_jsonl_atomically(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Rows as JSON Lines, written to a temporary file next to ``path`` and renamed over it: an interrupted
    run leaves any previous file whole. ``rows`` may be a generator that reads and computes as it goes: an error
    it raises passes through as it is (the temporary file removed); only a failed write is "cannot write". The
    temporary file gets a name no other file has (``.NAME.xxxxxxxx.tmp``), so no file of the user's is overwritten
    on the way."""

    def cannot_write(exc: OSError) -> RagloomError:
        return RagloomError(f"cannot write {path}: {exc.strerror or exc}")

    try:
        tmp, descriptor = _new_file_next_to(path)
    except OSError as exc:
        raise cannot_write(exc) from None
    try:
        with open(descriptor, "w", encoding="utf-8") as handle:
            for row in rows:  # rows may be made as they are written: their errors are theirs, not the write's
                line = json_line(row) + "\n"
                try:
                    handle.write(line)
                except OSError as exc:
                    raise cannot_write(exc) from None
            try:
                handle.flush()
            except OSError as exc:
                raise cannot_write(exc) from None
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise cannot_write(exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_file_next_to(path: Path) -> tuple[Path, int]:
    """A new file ``.NAME.xxxxxxxx.tmp`` in ``path``'s folder, opened for writing (created exclusively, so never
    one that exists; permissions from the umask, as ``open`` gives)."""
    while True:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
