"""Errors a user can act on. Each names the file, line and key path it is about where known. Warnings are
attributed to the user's line that led to them (:func:`warn_user`)."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

#: ragloom's packages: a warning is attributed to the first caller outside them
_PACKAGE_FOLDERS = tuple(str(Path(__file__).resolve().parents[1] / name) + "/"
                         for name in ("rag", "chunkers", "retrievers", "graph", "evals"))


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` pointing at the first line outside ragloom's packages that led here (the user's call, not a
    line of ours, however deep the call that warns)."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_FOLDERS):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


class RagloomError(Exception):
    """Base class: every error ragloom raises on bad input derives from it."""


class ConfigError(RagloomError):
    """A pipeline or experiment config is invalid.

    ``path`` is the key path inside the config (``flow[2].loop.max_iters``), ``source`` the file and
    ``line`` the 1-based line in it, when known.
    """

    def __init__(self, message: str, path: str = "", source: str | None = None, line: int | None = None):
        self.message = message
        self.path = path
        self.source = source
        self.line = line
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.source:
            where = f"{self.source}:{self.line}: " if self.line else f"{self.source}: "
        key = f"{self.path}: " if self.path else ""
        return f"{where}{key}{self.message}"

    def located(self, source: str | None, line: int | None) -> "ConfigError":
        """The same error with file and line filled in (kept if already known)."""
        return ConfigError(self.message, self.path, self.source or source, self.line or line)


class InputError(RagloomError):
    """Documents, queries or a dataset could not be read (missing file, bad encoding, empty, ...)."""


class IndexStoreError(RagloomError):
    """An index directory is missing, incomplete, corrupted or of an unsupported format."""


def field_check(check):
    """A pydantic ``AfterValidator`` function from ``check(value)``, a check that raises :class:`ConfigError`: the
    value is kept, and the error becomes the ``ValueError`` pydantic reports under the field's key (with the
    config's file and line when a config is read)."""

    def validate(value):
        try:
            check(value)
        except ConfigError as exc:
            raise ValueError(exc.message) from None
        return value

    return validate


def undecodable(data: bytes, error: UnicodeDecodeError, encoding: str) -> str:
    """What a file's bytes that did not decode say about where: ``not valid utf-8 at byte 3 (bytes b'\\xe9...')``."""
    return f"not valid {encoding} at byte {error.start} (bytes {data[error.start:error.start + 4]!r})"
