"""The ast chunker's last placement rule (:mod:`chunkers.ast`): a control keyword opens the chunk of what it governs.

A chunk that ends with ``else``, ``if``, ``for``, ``while`` (``} else if ``, ``#  if ``) leaves the keyword apart from
what it governs, which the next chunk opens with (``(x) {``, ``{``). Such keywords are tokens of the syntax tree (a
word in a comment or a string is not one); the chunk boundary moves back to the first of them, and then over the
comments on their own lines just before them (they describe the statement), so that they open the next chunk, when
that still fits (else they stay: the chunk after is full; when only the last lines of keywords fit, ``if`` of
``#else`` / ``if``, those move alone). A chunk that would be ``} else`` alone, the brace too small to stay behind,
joins the next one whole when it fits.
"""
from __future__ import annotations

import numpy as np

from chunkers._spans import Span
from chunkers._syntax import COMMENT_TYPES

#: Keyword tokens that open a construct continued after them; never the last token of a statement.
KEYWORDS = frozenset({"if", "else", "elif", "for", "while", "do", "switch", "match", "loop", "select", "constexpr",
                      "#if", "#ifdef", "#ifndef", "#elif", "#elifdef", "#elifndef", "#else"})


class _Tokens:
    """The token of the tree ending at the last non-whitespace character before a character offset."""

    def __init__(self, root, text: str, char_of_byte):
        self.root, self.text, self.char_of_byte = root, text, char_of_byte

    def byte(self, char: int) -> int:
        if self.char_of_byte is None:
            return char
        return int(np.searchsorted(self.char_of_byte, char, side="right")) - 1

    def char(self, byte: int) -> int:
        return byte if self.char_of_byte is None else int(self.char_of_byte[byte])

    def last_nonspace(self, floor: int, end: int) -> int | None:
        """The offset of the last non-whitespace character in ``[floor, end)``, or None."""
        stripped = len(self.text[floor:end].rstrip())
        return floor + stripped - 1 if stripped else None

    def before(self, floor: int, end: int, keywords: bool) -> int | None:
        """Where the keyword (``keywords``) or the comment on its own line ending ``[floor, end)`` starts, if it starts
        in there (else None)."""
        last = self.last_nonspace(floor, end)
        if last is None:
            return None
        byte = self.byte(last)
        node = self.root.descendant_for_byte_range(byte, byte + 1)
        if keywords:
            if node is None or node.is_named or node.type not in KEYWORDS:
                return None
        else:
            while node is not None and node.type not in COMMENT_TYPES:
                node = node.parent if node.parent is not None and node.parent.end_byte == node.end_byte else None
            if node is None:
                return None
        start, stop = self.char(node.start_byte), self.char(node.end_byte)
        if start < floor or stop <= last or self.text[last + 1:stop].strip():
            return None  # (a Rust doc comment, ``/// x``, ends after its line's end)
        if not keywords:  # a comment ending a line of code goes with that code
            previous = self.last_nonspace(floor, start)
            if previous is not None and "\n" not in self.text[previous:start]:
                return None
        return start


def open_with_keywords(pieces: list[tuple[Span, tuple]], root, text: str, char_of_byte, fits,
                       nonspace) -> list[tuple[Span, tuple]]:
    """``pieces`` (``(span, scope_path)``, tiling the text) with each control keyword (``else``, ``if``: a token of the
    tree ``root``) that ends one of them moved, with the keywords before it and then the comments on their own lines
    just before those, to open the next piece, when it still ``fits`` there and what stays behind is nothing (the
    piece is merged) or is not smaller (in ``nonspace`` characters) than what moves, nor comments alone. The
    comments stay behind if only the keywords fit, and the first lines of keywords too if only the last ones do
    (``#else`` / ``if``). A piece whose keywords cannot move, what stays being smaller (``} else``), joins the next
    one whole when that fits."""
    tokens = _Tokens(root, text, char_of_byte)
    out: list[tuple[Span, tuple]] = []
    for (start, end), scope in pieces:
        if out:
            (before_start, cut), before_scope = out[-1]
            keyword = tokens.before(before_start, cut, keywords=True)
            chain = []  # where each keyword ending the piece starts, the last first
            while keyword is not None:
                chain.append(keyword)
                cut, keyword = keyword, tokens.before(before_start, keyword, keywords=True)
            comments = cut
            while cut != start and (comment := tokens.before(before_start, comments, keywords=False)) is not None:
                comments = comment
            # all that can move, then fewer: the keywords after a line break in the chain (``#else`` / ``if``); last,
            # when what stays before the keywords is smaller than they are (the ``}`` of ``} else``), the whole piece
            fewer = [k for k, previous in zip(chain, chain[1:]) if "\n" in text[previous:k]]
            for moved in dict.fromkeys((comments, cut, *reversed(fewer), *([before_start] if chain else []))):
                stays, moves = nonspace[moved] - nonspace[before_start], nonspace[start] - nonspace[moved]
                alone = moved <= cut and nonspace[comments] == nonspace[before_start]  # comments alone would stay
                if moved == start or stays and (stays < moves or alone):
                    continue  # nothing moves; or what stays is smaller than what moves, or comments alone
                if fits(before_start if not stays else moved, end):
                    if stays:
                        out[-1] = ((before_start, moved), before_scope)
                    else:  # the piece before was keywords (and comments) alone: it joins this one
                        out.pop()
                    start = moved if stays else before_start
                    break
        out.append(((start, end), scope))
    return out
