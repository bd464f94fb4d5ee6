"""Content terms of a text (lowercased words minus English stopwords), for query-side heuristics."""
from __future__ import annotations

import re
from functools import lru_cache

_WORD = re.compile(r"\w+", re.UNICODE)


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | {"did", "does", "doing", "s", "t"}


def content_terms(text: str) -> list[str]:
    stop = stopwords()
    return [w for w in _WORD.findall(text.lower()) if w not in stop and (len(w) > 1 or w.isdigit())]


def term_stem(word: str) -> str:
    """A light suffix-stripping stem so 'films'/'film' and 'directed'/'director' share a root."""
    for suffix in ("ations", "ation", "ings", "ing", "ers", "er", "ies", "es", "ed", "s", "or"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word
