"""Parsing for the ``ast`` chunker: the source bytes the grammars read, one tree-sitter parser per thread and
language, and a parse with a time limit (some grammars never finish on some inputs) that a Ctrl-C stops and that
defers the signals arriving during it. Grammars, and what the parsed nodes define, are :mod:`chunkers._syntax`'s.
"""
from __future__ import annotations

import ctypes
import re
import signal
import sys
import threading
import time
from contextlib import contextmanager

from chunkers._syntax import get_grammar

#: Signals a handler can be set for.
_CATCHABLE = sorted(set(signal.valid_signals())
                    - {getattr(signal, "SIGKILL", None), getattr(signal, "SIGSTOP", None)})
#: Bytes of source handed to tree-sitter per read.
_READ_BYTES = 1 << 20
_decref = ctypes.pythonapi.Py_DecRef
_decref.argtypes = [ctypes.py_object]
_decref.restype = None

_LONE_CR = re.compile(rb"\r(?!\n)")
#: A header's ``extern "C" {`` (or its closing ``}``) alone inside ``#ifdef __cplusplus`` ... ``#endif``: the
#: grammars do not run the preprocessor, so the unmatched brace made most of such a header one ERROR node
_EXTERN_C_BRACE = re.compile(rb'^[ \t]*#[ \t]*if(?:def[ \t]+__cplusplus|[ \t]+defined[ \t(]*__cplusplus\)?)[^\n]*\n'
                             rb'([ \t]*(?:extern[ \t]+"C"[ \t]*\{|\})[ \t]*(?://[^\n]*)?)\n[ \t]*#[ \t]*endif', re.M)


def source_to_parse(text: str, language: str) -> bytes:
    """The UTF-8 bytes of ``text`` as the grammars should read them, byte for byte (so offsets stay the text's):
    lone CRs (old Mac line ends) as line feeds, since C, C++ and Rust read a CR-only file as one line, a ``//``
    comment or a ``#define`` swallowing it all; NULs as spaces, since tree-sitter's lexers stop at one (a NUL in a
    string literal made the rest of the file errors); in C and C++, ``extern "C"`` braces blanked
    (:func:`_without_extern_c_braces`)."""
    source = _LONE_CR.sub(b"\n", text.encode("utf-8", "surrogatepass")).replace(b"\0", b" ")
    return _without_extern_c_braces(source) if language in ("c", "cpp") else source


def _without_extern_c_braces(source: bytes) -> bytes:
    """``source`` with each ``extern "C" {`` / ``}`` line of an ``#ifdef __cplusplus`` block blanked, byte for byte
    (the parse then reads the declarations between them; the chunks keep the text)."""
    found = list(_EXTERN_C_BRACE.finditer(source))
    if not found:
        return source
    out = bytearray(source)
    for match in found:
        start, end = match.span(1)
        out[start:end] = b" " * (end - start)
    return bytes(out)


_parsers = threading.local()  # a tree-sitter parser holds its parse's state: one per thread and language


def get_parser(language: str):
    """This thread's tree-sitter parser for ``language``, or ``None`` when the language or its grammar wheel is
    missing."""
    grammar = get_grammar(language)
    if grammar is None:
        return None
    parsers = _parsers.__dict__.setdefault("by_language", {})
    if language not in parsers:
        import tree_sitter

        parsers[language] = tree_sitter.Parser(grammar)
    return parsers[language]


#: Time a parse may take before it is given up (the file is then chunked as text): this many seconds, plus
#: :data:`PARSE_SECONDS_PER_MB` for each megabyte. Some grammars never finish on some inputs (the TypeScript
#: grammar on a 14-character line such as ``({x/[})a{b z#]``, tree-sitter-typescript#323); a real file parses at
#: several megabytes a second.
PARSE_SECONDS = 5.0
PARSE_SECONDS_PER_MB = 10.0


def parse_in_time(language: str, source: bytes, seconds: float | None = None):
    """The syntax tree of ``source`` in ``language`` (its grammar must be installed), or ``None`` when parsing
    takes more than ``seconds`` (by default :data:`PARSE_SECONDS` plus :data:`PARSE_SECONDS_PER_MB` per megabyte):
    the parse is cancelled, and a Ctrl-C stops it too."""
    parser = get_parser(language)
    if seconds is None:
        seconds = PARSE_SECONDS + PARSE_SECONDS_PER_MB * len(source) / 1e6
    deadline = time.monotonic() + seconds
    with _signals_deferred() as signals:
        # tree-sitter calls progress_callback (about every 200 bytes, and while it recovers from errors) only when
        # it reads the source through a callback; True cancels the parse: its time is up, or Ctrl-C was pressed
        def cancelled(*_) -> bool:
            return time.monotonic() > deadline or any(signum == signal.SIGINT for signum, _ in signals)

        pieces: list[bytes] = []
        try:
            return parser.parse(_reader(source, _READ_BYTES, pieces), progress_callback=cancelled)
        except ValueError:  # "Parsing failed": cancelled
            parser.reset()  # else the next parse would resume this one
            return None
        finally:
            if _binding_keeps_pieces(parser):
                _drop_kept_references(pieces)


def _reader(source: bytes, size: int, pieces: list[bytes]):
    """A read callback for ``parser.parse`` handing out ``source`` in pieces of ``size`` bytes, each a new object
    (a slice of the whole of ``source`` would be ``source`` itself) noted in ``pieces``."""
    def read(offset: int, _point) -> bytes:
        pieces.append(bytes(memoryview(source)[offset:offset + size]))
        return pieces[-1]

    return read


def _kept_references(pieces: list[bytes], i: int) -> int:
    """References to ``pieces[i]`` beyond the list's (and ``getrefcount``'s argument)."""
    return sys.getrefcount(pieces[i]) - 2


def _drop_kept_references(pieces: list[bytes]) -> None:
    """Release the references tree-sitter's Python binding kept to the pieces a read callback returned, once the
    parse has returned: each is a new object only ``pieces`` refers to."""
    for i in range(len(pieces)):
        if len(pieces[i]) > 1:  # the empty and one-byte bytes objects are shared by the interpreter
            for _ in range(_kept_references(pieces, i)):
                _decref(pieces[i])


_keeps_pieces: bool | None = None


def _binding_keeps_pieces(parser) -> bool:
    """Whether tree-sitter's Python binding keeps a reference to every piece a read callback returns: a leak of a
    copy of each file parsed (py-tree-sitter 0.26.1; QA: a service chunking 20,000 Python files grew from 196 to
    419 MB). Probed once, on a source read in pieces of 2 bytes: only when every piece is kept (not just the last,
    which a binding might hold on purpose) does :func:`_drop_kept_references` release them."""
    global _keeps_pieces
    if _keeps_pieces is None:
        pieces: list[bytes] = []
        parser.parse(_reader(b"x = 1\ny = 2\n", 2, pieces))
        parser.reset()
        kept = [_kept_references(pieces, i) for i in range(len(pieces)) if len(pieces[i]) > 1]
        _keeps_pieces = bool(kept) and all(n >= 1 for n in kept)
        if _keeps_pieces:
            _drop_kept_references(pieces)
    return _keeps_pieces


@contextmanager
def _signals_deferred():
    """A list of the signals ``(signum, frame)`` that arrive inside the block and have a Python handler: those
    handlers run when the block ends, in order (a Ctrl-C then raises KeyboardInterrupt). tree-sitter drops an
    exception raised in its progress callback, which is where Python would run them during a parse, so a
    Ctrl-C (or a ``signal.alarm`` timeout) would be lost. Outside the main thread, where Python runs no signal
    handler, the block runs as it is."""
    noted: list[tuple[int, object]] = []
    if threading.current_thread() is not threading.main_thread():
        yield noted
        return
    handlers = {}
    for signum in _CATCHABLE:
        handler = signal.getsignal(signum)
        if callable(handler):
            handlers[signum] = handler
            signal.signal(signum, lambda signum, frame: noted.append((signum, frame)))
    try:
        yield noted
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        for signum, frame in noted:
            handlers[signum](signum, frame)
