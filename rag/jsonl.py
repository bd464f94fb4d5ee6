"""Reading JSON Lines files with errors that name the file and line, and writing them without a torn file."""
from __future__ import annotations

import codecs
import io
import json
import os
import stat
import sys
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
                bom = number == 1 and raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
                raise error(f"{path}:{number}: not valid {encoding} at byte {exc.start} of the line"
                            + ("; the file starts with a UTF-16 byte-order mark: convert it to UTF-8 (JSON Lines are "
                               "read line by line, which UTF-16 cannot be)" if bom else "")) from None
            if number == 1:
                line = line.removeprefix("\ufeff")
            if not line.strip():
                continue
            try:
                # without its line end, so the column is on the line
                row = json.loads(line.rstrip("\r\n"), parse_constant=_refuse_constant)
            except json.JSONDecodeError as exc:
                raise error(f"{path}:{number}: invalid JSON ({exc.msg} at column {exc.colno})") from None
            except _NotJSON as exc:
                raise error(f"{path}:{number}: {exc} is not JSON (a number is finite); give a number, null or a "
                            "string") from None
            if not isinstance(row, dict):
                raise error(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            yield number, row


class _NotJSON(ValueError):
    """NaN, Infinity or -Infinity, which Python's json reads and writes though JSON has no such numbers."""


def _refuse_constant(name: str):
    raise _NotJSON(name)


def json_line(row: dict[str, Any], encoding: str = "utf-8") -> str:
    """``row`` as one line of JSON, non-ASCII characters as they are unless ``encoding`` cannot write them (a
    surrogate in a text: then escaped, ``"\\ud800"``, which reads back as the same string). A number that is not
    finite is an error: :func:`read_jsonl_objects` would refuse the line, and so would other JSON readers."""
    try:
        line = json.dumps(row, ensure_ascii=False, allow_nan=False)
    except ValueError:
        name = f"the row of id {row['id']!r}" if "id" in row else "a row"
        raise RagloomError(f"cannot write {name} as JSON: a number in it is not finite (NaN or Infinity)") from None
    try:
        line.encode(encoding)
    except UnicodeEncodeError:
        return json.dumps(row)
    return line


def write_jsonl_atomically(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Rows as JSON Lines, written to a temporary file next to ``path`` and renamed over it: an interrupted
    run leaves any previous file whole. ``rows`` may be a generator that reads and computes as it goes: an error
    it raises passes through as it is (the temporary file removed); only a failed write is "cannot write".

    The temporary file is unnamed while it is written where the system allows it (Linux ``O_TMPFILE``), so a
    process killed outright (SIGKILL, the out-of-memory killer) leaves nothing behind; it gets a name only to be
    renamed over ``path``. That name, and the name of the file written elsewhere, is one no other file has
    (``.NAME.xxxxxxxx.tmp``): no file of the user's is overwritten on the way. It is on disk (``fsync``) before
    the rename, and takes the permission bits of the file it replaces.

    A symbolic link is followed: the file it points to is replaced, the link kept. A device, a pipe or a stream
    (``/dev/null``, a named pipe, ``/dev/stdout``: :func:`_written_in_place`) is written to as it is, row by row:
    there is no previous file to keep, and replacing it would destroy it."""

    def cannot_write(exc: OSError) -> RagloomError:
        return RagloomError(f"cannot write {path}: {exc.strerror or exc}")

    if path.is_dir():  # found now, not when the rows are all written and renamed over it
        raise RagloomError(f"cannot write {path}: it is a directory; give a file name")
    if _written_in_place(path):
        _write_jsonl_into(path, rows, cannot_write)
        return
    target = Path(os.path.realpath(path))
    try:
        mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else None
        tmp, descriptor = _new_file_next_to(target)
    except OSError as exc:
        raise cannot_write(exc) from None
    try:
        with open(descriptor, "w", encoding="utf-8") as handle:
            _write_rows(handle, rows, cannot_write)
            try:
                if mode is not None:
                    os.fchmod(handle.fileno(), mode)
                os.fsync(handle.fileno())
                if tmp is None:
                    tmp = _named(handle.fileno(), target)
            except OSError as exc:
                raise cannot_write(exc) from None
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise cannot_write(exc) from None
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


def _written_in_place(path: Path) -> bool:
    """Whether ``path`` is written as it is, not replaced: a device or a pipe (``/dev/null``, a named pipe,
    ``/dev/fd/63``), this process's standard output or error (``/dev/stdout`` redirected to a file: a rename would
    replace the file behind the shell's back), or another link in ``/dev`` or ``/proc`` (an open file's)."""
    try:
        status = os.stat(path)  # through links, magic ones included (a pipe's /proc/self/fd/N)
    except OSError:
        return False  # a new file (or a link to one)
    if not stat.S_ISREG(status.st_mode) or _standard_stream(path) is not None:
        return True
    return Path(os.path.abspath(path)).parts[1:2] in (("dev",), ("proc",)) and path.is_symlink()


def _write_jsonl_into(path: Path, rows: Iterable[dict[str, Any]], cannot_write) -> None:
    """Rows as JSON Lines written straight into ``path``, a device, a pipe or a stream: through ``sys.stdout`` or
    ``sys.stderr`` when it is that stream's file (``/dev/stdout`` redirected to a file: opened anew, it would be
    written from its start, under what the process prints)."""
    stream = _standard_stream(path)
    try:
        handle = stream or open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise cannot_write(exc) from None
    try:
        _write_rows(handle, rows, cannot_write)
    finally:
        if stream is None:
            handle.close()


def _write_rows(handle, rows: Iterable[dict[str, Any]], cannot_write) -> None:
    """Each row as a line of JSON (in the handle's encoding), then flushed; a failed write is ``cannot_write``'s
    error. ``rows`` may be made as they are written: their errors are theirs, not the write's."""
    encoding = handle.encoding or "utf-8"
    for row in rows:
        line = json_line(row, encoding) + "\n"
        try:
            handle.write(line)
        except OSError as exc:
            raise cannot_write(exc) from None
    try:
        handle.flush()
    except OSError as exc:
        raise cannot_write(exc) from None


def _standard_stream(path: Path):
    """``sys.stdout`` or ``sys.stderr`` when ``path`` is its file, else None."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if os.path.samestat(os.stat(path), os.fstat(stream.fileno())):
                return stream
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            continue  # a stream without a file (replaced, closed), or a path that cannot be read
    return None


#: where an open file can be named by its descriptor (for ``link``): an unnamed file can be given a name
_DESCRIPTORS = Path("/proc/self/fd")


def _new_file_next_to(path: Path) -> tuple[Path | None, int]:
    """A new file in ``path``'s folder, opened for writing (permissions from the umask, as ``open`` gives):
    ``(None, descriptor)`` for an unnamed one (``O_TMPFILE``, named later by :func:`_named`), else
    ``(name, descriptor)`` for a new file ``.NAME.xxxxxxxx.tmp`` (created exclusively, so never one that exists).
    """
    if hasattr(os, "O_TMPFILE") and os.link in os.supports_dir_fd and _DESCRIPTORS.is_dir():
        try:
            return None, os.open(path.parent, os.O_TMPFILE | os.O_WRONLY, 0o666)
        except OSError:
            pass  # a file system without unnamed files (or a folder that is not there: the error below names it)
    while True:
        tmp = _temporary_name(path)
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue


def _named(descriptor: int, path: Path) -> Path:
    """A name ``.NAME.xxxxxxxx.tmp`` next to ``path`` for the unnamed file open at ``descriptor``."""
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        while True:
            tmp = _temporary_name(path)
            try:
                # linkat with AT_SYMLINK_FOLLOW, which os.link uses only with a folder descriptor: the link is
                # followed to the open file (a plain link() would try to link the /proc entry itself)
                os.link(_DESCRIPTORS / str(descriptor), tmp.name, dst_dir_fd=folder, follow_symlinks=True)
                return tmp
            except FileExistsError:
                continue
    finally:
        os.close(folder)


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
