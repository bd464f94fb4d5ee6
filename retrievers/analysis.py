"""The text analyzer for lexical retrieval: tokenise, lowercase, drop stopwords, stem — all offline.

Defaults follow bm25s / scikit-learn's ``CountVectorizer``: tokens are ``(?u)\\b\\w\\w+\\b`` (two or more word
characters), the 33-word Lucene English stopword list, and the Snowball English stemmer from PyStemmer.
``split_identifiers`` additionally emits the parts of ``snake_case`` and ``camelCase`` identifiers, which
helps lexical search over source code. The analyzer is part of the index config: an index built with one
analyzer is only valid for queries analysed the same way, so its params are saved with the structure.

Example::

    analyzer = Analyzer(AnalyzerParams(stemmer="english", stopwords="en"))
    analyzer("The running dogs")   # ['run', 'dog']
"""
from __future__ import annotations

import re
from itertools import chain
from typing import Iterable, Literal, Sequence

from pydantic import field_validator

from rag.errors import ConfigError
from rag.registry import OperatorParams

#: Lucene's (and Elasticsearch's) English stopwords — the list bm25s uses for ``stopwords="en"``.
STOPWORDS_EN = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not",
    "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was",
    "will", "with",
))

_CAMEL_PARTS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


class AnalyzerParams(OperatorParams):
    """How text becomes index terms (YAML: ``analyzer: {stemmer: english, stopwords: en}``)."""

    lowercase: bool = True
    token_pattern: str = r"(?u)\b\w\w+\b"
    stopwords: Literal["en", "none"] | list[str] = "en"
    stemmer: str | None = "english"
    split_identifiers: bool = False

    @field_validator("token_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"token_pattern is not a valid regular expression: {exc}") from None
        return value


class Analyzer:
    """Turns text into a list of terms; stems each distinct word once (memoised), which keeps indexing fast."""

    def __init__(self, params: AnalyzerParams | None = None):
        self.params = params or AnalyzerParams()
        self._pattern = re.compile(self.params.token_pattern)
        sw = self.params.stopwords
        self.stopwords = STOPWORDS_EN if sw == "en" else frozenset() if sw == "none" else frozenset(
            w.lower() if self.params.lowercase else w for w in sw)
        self._stemmer = None
        if self.params.stemmer:
            import Stemmer

            if self.params.stemmer not in Stemmer.algorithms():
                raise ConfigError(f"unknown stemmer {self.params.stemmer!r}; PyStemmer offers: "
                                  f"{', '.join(Stemmer.algorithms())}", "analyzer.stemmer")
            self._stemmer = Stemmer.Stemmer(self.params.stemmer)
        # word -> its term after stopword removal and stemming ("" means dropped)
        self._terms: dict[str, str] = {}

    def __call__(self, text: str) -> list[str]:
        return self.analyze_many([text])[0]

    def words(self, text: str) -> list[str]:
        """The raw tokens before stopword removal and stemming."""
        if not self.params.split_identifiers:
            return self._pattern.findall(text.lower() if self.params.lowercase else text)
        found = list(_with_identifier_parts(self._pattern.findall(text)))
        return [w.lower() for w in found] if self.params.lowercase else found

    def analyze_many(self, texts: Sequence[str]) -> list[list[str]]:
        """Terms for each text, in order of occurrence (duplicates kept: they are term frequencies)."""
        tokenised = [self.words(t) for t in texts]
        terms = self.terms_of(set(chain.from_iterable(tokenised)))
        return [[s for s in map(terms.__getitem__, words) if s] for words in tokenised]

    def terms_of(self, words: Iterable[str]) -> dict[str, str]:
        """The memo ``word → term`` (``""`` for dropped words), extended to cover ``words``."""
        terms = self._terms
        unseen = set(words).difference(terms)
        if unseen:
            kept = [w for w in unseen if w not in self.stopwords]
            stems = self._stemmer.stemWords(kept) if self._stemmer is not None else kept
            terms.update(dict.fromkeys(unseen, ""))
            terms.update(zip(kept, stems))
        return terms


def _with_identifier_parts(tokens: Iterable[str]) -> Iterable[str]:
    """Each token, followed by its snake_case / camelCase parts when it has more than one."""
    for token in tokens:
        yield token
        parts = [p for piece in token.split("_") for p in _CAMEL_PARTS.findall(piece)]
        if len(parts) > 1:
            yield from (p for p in parts if len(p) > 1)
