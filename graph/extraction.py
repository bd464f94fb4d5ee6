"""Offline entity and concept extraction: what a chunk is about, sentence by sentence, with no model.

Candidates (each normalised with :func:`graph.normalize.normalize_entity`):

- capitalised spans, allowing lowercase connectors inside (``University of California``, ``Lord of the
  Rings``) — the cheap proper-noun recogniser used by keyword-graph RAG systems when no NER model is at hand;
- quoted spans of up to eight words (titles of works: ``"Demon Creation Specialists"``);
- the chunk's title (``chunk.metadata["title"]``), which in encyclopaedic corpora is *the* entity the passage is
  about; it counts as one mention and co-occurs with every sentence (a stand-in for pronoun coreference).
  The title and its base name without a trailing qualifier (``Bethel University (Minnesota)`` → ``bethel
  university``) are kept as the chunk's ``titles``: the graph links those entities strongly to the chunk;
- noun-phrase patterns: runs of two or three lowercase content words between stopwords and punctuation (the
  candidate phrases of RAKE, Rose et al. 2010), e.g. ``collectible dice game``;
- optionally the top YAKE keyphrases of the chunk (Campos et al. 2020; ``pip install yake``).

Aliases: an acronym in parentheses after a span whose initials it spells (``Federal Bureau of Investigation
(FBI)``) is merged into that span's entity and remembered as one of its surface forms.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from graph.normalize import STOPWORDS, normalize_entity

_TOKEN = re.compile(r"\w+(?:[.'’\-&]\w+)*")
_SENTENCE_END = re.compile(r"[.!?][\"”')\]]*\s+(?=[\"“'(\[]?[A-Z0-9])")
_QUOTED = re.compile(r"[\"“]([^\"“”\n]{2,100})[\"”]")
#: A trailing disambiguation qualifier of an encyclopaedic title: ``Bethel University (Minnesota)``.
_TITLE_QUALIFIER = re.compile(r"\s*\([^()]*\)\s*$")
_ACRONYM = re.compile(r"\(\s*([A-Z][A-Z0-9&.]{1,9})\s*\)")
_PHRASE_BREAK = re.compile(r"[^\w\s'’\-]")
_ABBREVIATIONS = frozenset("mr mrs ms dr st jr sr prof gen col lt sgt vs etc inc ltd co no vol pp fig".split())
#: Lowercase words allowed inside a capitalised span (``Bank of America``, ``Ludwig van Beethoven``).
_CONNECTORS = frozenset("of the de da del der di du la le van von y al bin upon on".split())


@dataclass
class ChunkEntities:
    """What extraction found in one chunk: mention counts, surface forms, per-sentence entity sets and,
    for the LLM extractor, (subject, relation, object) triples. Keys are normalised entity names."""

    mentions: Counter = field(default_factory=Counter)
    surfaces: dict[str, Counter] = field(default_factory=dict)
    sentences: list[frozenset[str]] = field(default_factory=list)
    triples: list[tuple[str, str, str]] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)  # keys naming the chunk's topic: title, title sans qualifier

    def add_mention(self, surface: str, key: str | None = None) -> str:
        key = key if key is not None else normalize_entity(surface)
        if key:
            self.mentions[key] += 1
            self.surfaces.setdefault(key, Counter())[surface.strip()] += 1
        return key


def split_sentences(text: str) -> list[str]:
    """Sentences by terminal punctuation, not breaking after initials or common abbreviations."""
    sentences, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        before = text[start:match.start() + 1].rstrip(".!?\"”')]").split()
        last = before[-1].lower().rstrip(".") if before else ""
        if len(last) <= 1 or last in _ABBREVIATIONS or "." in last:
            continue
        sentences.append(text[start:match.end()].strip())
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def capitalised_spans(sentence: str) -> list[str]:
    """Maximal runs of capitalised tokens (with lowercase connectors inside) separated only by spaces."""
    spans: list[str] = []
    run: list[re.Match] = []
    pending: list[re.Match] = []  # connectors waiting for a capitalised token to follow them

    def close() -> None:
        at_sentence_start = bool(run) and not sentence[:run[0].start()].strip(" \"“'(")
        while at_sentence_start and len(run) > 1 and run[0].group(0).lower() in STOPWORDS:
            run.pop(0)  # "Are Christopher Nolan ..." -> "Christopher Nolan"
        while run and run[0].group(0).islower():
            run.pop(0)
        if run:
            text = sentence[run[0].start():run[-1].end()]
            first = run[0].group(0)
            at_start = run[0].start() == 0 or not sentence[:run[0].start()].strip(" \"“'(")
            # a lone sentence-initial word is usually an ordinary word with a capital ("Originally, ...")
            if not (len(run) == 1 and at_start and (first.lower() in STOPWORDS or first.lower().endswith("ly"))):
                spans.append(text)
        run.clear()
        pending.clear()

    previous_end = None
    for match in _TOKEN.finditer(sentence):
        token = match.group(0)
        gap = sentence[previous_end:match.start()] if previous_end is not None else " "
        previous_end = match.end()
        if gap.strip():
            close()
        if token[0].isupper():
            run.extend(pending)
            pending.clear()
            run.append(match)
        elif run and token in _CONNECTORS:
            pending.append(match)
        else:
            close()
    close()
    return spans


def noun_phrases(sentence: str, max_words: int = 3) -> list[str]:
    """RAKE-style candidate phrases: runs of 2..max_words lowercase content words."""
    phrases = []
    for piece in _PHRASE_BREAK.split(sentence):
        run: list[str] = []
        for word in piece.split() + [""]:
            if (word and word.islower() and word.isalpha() and len(word) > 2 and word not in STOPWORDS
                    and not word.endswith("ly")):
                run.append(word)
                continue
            while run and run[-1].endswith(("ed", "ing")):  # a verb, not the head noun
                run.pop()
            if 2 <= len(run) <= max_words:
                phrases.append(" ".join(run))
            run = []
    return phrases


def _acronym_aliases(text: str) -> dict[str, str]:
    """``{"fbi": "federal bureau of investigation"}`` for ``Federal Bureau of Investigation (FBI)``."""
    aliases = {}
    for match in _ACRONYM.finditer(text):
        acronym = match.group(1).replace(".", "")
        words = [w for w in _TOKEN.findall(text[max(0, match.start() - 120):match.start()])]
        capitals = [i for i, w in enumerate(words) if w[0].isupper()]
        if len(capitals) >= len(acronym) and "".join(words[i][0] for i in capitals[-len(acronym):]) == acronym:
            long_form = normalize_entity(" ".join(words[capitals[-len(acronym)]:]))
            if long_form:
                aliases[normalize_entity(acronym)] = long_form
    return aliases


class OfflineEntityExtractor:
    """Extracts entities and concepts with patterns only (see the module docstring)."""

    def __init__(self, phrases: bool = True, quoted: bool = True, yake_top: int = 0, max_phrase_words: int = 3):
        self.phrases = phrases
        self.quoted = quoted
        self.yake_top = yake_top
        self.max_phrase_words = max_phrase_words
        self._yake = None

    def keyphrases(self, text: str) -> list[str]:
        if self.yake_top <= 0:
            return []
        if self._yake is None:
            try:
                import yake
            except ImportError:
                from rag.errors import ConfigError

                raise ConfigError("yake_top > 0 needs the package yake (pip install 'ragloom[graph]')",
                                  "yake_top") from None
            self._yake = yake.KeywordExtractor(lan="en", n=self.max_phrase_words, top=self.yake_top)
        return [phrase for phrase, _ in self._yake.extract_keywords(text)]

    def sentence_entities(self, sentence: str, result: ChunkEntities, aliases: dict[str, str]) -> set[str]:
        found: set[str] = set()
        surfaces = capitalised_spans(sentence)
        if self.quoted:
            surfaces += [m.group(1) for m in _QUOTED.finditer(sentence) if len(m.group(1).split()) <= 8]
        if self.phrases:
            surfaces += noun_phrases(sentence, self.max_phrase_words)
        for surface in surfaces:
            key = normalize_entity(surface)
            key = aliases.get(key, key)
            if result.add_mention(surface, key):
                found.add(key)
        return found

    def extract(self, text: str, title: str | None = None) -> ChunkEntities:
        result = ChunkEntities()
        aliases = _acronym_aliases(text)
        title_key = result.add_mention(title) if title else ""
        if title_key:
            base_key = normalize_entity(_TITLE_QUALIFIER.sub("", title))
            result.titles = list(dict.fromkeys(k for k in (title_key, base_key) if k))
        sentences = split_sentences(text)
        per_sentence = [self.sentence_entities(s, result, aliases) for s in sentences]
        lowered = [s.casefold() for s in sentences]
        for phrase in self.keyphrases(text):
            key = normalize_entity(phrase)
            if not key:
                continue
            hits = [i for i, s in enumerate(lowered) if phrase.casefold() in s]
            for i in hits or [0]:
                if per_sentence and key not in per_sentence[i]:
                    result.add_mention(phrase, key)
                    per_sentence[i].add(key)
        if title_key:
            per_sentence = [found | {title_key} for found in per_sentence] or [{title_key}]
        result.sentences = [frozenset(found) for found in per_sentence if found]
        return result

    def extract_query(self, text: str) -> list[str]:
        """Entity keys named in a query (no title, phrases included), in order of first mention."""
        found = self.extract(text)
        return list(found.mentions)

