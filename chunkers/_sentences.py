"""Offline sentence segmentation into spans that tile the text (no model, no download).

Rules in the spirit of Punkt / pySBD, kept small: a sentence ends after ``. ! ? …`` (plus closing quotes
or brackets) followed by whitespace and a character that does not continue the sentence (not a lower-case
letter), unless the word before the period is a known abbreviation or an initial; after CJK full stops
``。！？`` with no space needed; and at every line break. Each sentence span keeps its trailing whitespace,
so the spans tile the text exactly.
"""
from __future__ import annotations

import re

ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e eg ie inc ltd co corp no nos fig figs al approx dept est "
    "jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k mt ft gen gov sen rep col lt sgt capt cf ca "
    "vol pp ed eds rev".split()
)

_TERMINAL = re.compile(r"[.!?…]+[\"'”’)\]]*(\s+)|[。！？]+[」』”’)]*\s*|\n\s*")
_WORD_BEFORE = re.compile(r"([\w.]+)$")


def _word_before(text: str, end: int) -> str | None:
    """What ``_WORD_BEFORE.search(text, end - 20, end)`` finds (the run of word characters and periods ending
    at ``end``, or just before a final line feed, within 20 characters), without the regex engine."""
    lo = max(0, end - 20)
    if end - 1 >= lo and text[end - 1] == "\n":  # `$` also matches before a final newline
        end -= 1
    i = end
    while i > lo and (text[i - 1].isalnum() or text[i - 1] in "._"):
        i -= 1
    return text[i:end] if i < end else None


def _ends_sentence(text: str, punct_start: int, next_pos: int) -> bool:
    if next_pos < len(text) and text[next_pos].islower():
        return False
    if text[punct_start] != ".":
        return True
    token = _word_before(text, punct_start)
    if token is None:
        return True
    token = token.lower()
    if token in ABBREVIATIONS:
        return False
    # An initial ("J. Smith") or a single letter enumerator.
    return not (len(token) == 1 and token.isalpha())


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans ``[(s, e), ...]`` tiling ``text[start:end]``; each keeps its trailing whitespace."""
    end = len(text) if end is None else end
    if start >= end:
        return []
    spans = []
    current = start
    for match in _TERMINAL.finditer(text, start, end):
        cut = match.end()
        if cut <= current or cut >= end:
            continue
        if match.group(1) is not None and not _ends_sentence(text, match.start(), cut):
            continue
        spans.append((current, cut))
        current = cut
    spans.append((current, end))
    return spans
