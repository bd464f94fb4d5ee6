"""Whole-text character scans of the separator-hierarchy splitter (:mod:`chunkers._splitter`): where lines and
words start. A long text is turned into code points a piece at a time (:data:`SCAN_PIECE` characters, 4 bytes
each), not all at once; a text's code points already at hand are used whole.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from chunkers._token_index import codepoints, is_space

#: Characters turned into code points at a time by the whole-text scans (line and word starts): 4 bytes for each
#: character of a piece, not of a whole long document.
SCAN_PIECE = 1 << 20


def word_starts_of(points: np.ndarray) -> np.ndarray:
    """Where words start in a text given as code points: the ends of whitespace runs followed by a non-space
    character (never position 0)."""
    return word_starts_from_space(is_space(points))


def word_starts_from_space(space: np.ndarray) -> np.ndarray:
    """:func:`word_starts_of` given ``str.isspace`` of every character."""
    return np.flatnonzero(space[:-1] & ~space[1:]) + 1


def _code_point_pieces(text: str, points: np.ndarray | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(start, length, code points)`` of ``text`` a :data:`SCAN_PIECE` at a time, each piece's code points
    followed by the next one's first (the whole text's ``points`` at once, when given)."""
    if points is not None:
        yield 0, len(text), points
        return
    for a in range(0, len(text), SCAN_PIECE):
        yield a, min(SCAN_PIECE, len(text) - a), codepoints(text[a:a + SCAN_PIECE + 1])


def line_starts_of(text: str, points: np.ndarray | None = None) -> np.ndarray:
    """Positions right after each line break: a line feed, or a lone CR (the CR of a CRLF breaks no line)."""
    found = []
    with_cr = "\r" in text
    for a, n, piece in _code_point_pieces(text, points):
        breaks = piece[:n] == 10
        if with_cr:
            followed = piece[1:] != 10  # what follows each CR is not a line feed (the text's end: True)
            breaks |= (piece[:n] == 13) & (followed if len(piece) > n else np.append(followed, True))
        found.append(np.flatnonzero(breaks) + (a + 1))
    return np.concatenate(found) if found else np.empty(0, dtype=np.int64)


def space_of(text: str, points: np.ndarray | None = None) -> np.ndarray:
    """``str.isspace`` of every character of ``text``."""
    space = np.empty(len(text), dtype=bool)
    for a, n, piece in _code_point_pieces(text, points):
        space[a:a + n] = is_space(piece[:n])
    return space
