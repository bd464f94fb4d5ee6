"""Content terms of a question or sentence: lowercased words without stopwords, Snowball-stemmed.

Used wherever ragloom compares a question's wording with text outside the lexical index (the extractive
generator, routers, judges, query rewriting). The stopword list is wider than the BM25 analyzer's (it drops
question words such as *what* and *how*), because here a term must carry content to count.
"""
from __future__ import annotations

import re
from functools import lru_cache

STOPWORDS = frozenset(
    "a an and are as at be been being but by can could did do does for from had has have how i if in into is "
    "it its itself me my no not of on or our so than that the their them then there these they this those to "
    "was we were what when where which while who whom why will with would you your".split()
)
_WORD = re.compile(r"\w+")


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def content_terms(text: str) -> list[str]:
    """Lower-cased, stemmed words of ``text`` without stop words."""
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    return _stemmer().stemWords(words) if words else []
