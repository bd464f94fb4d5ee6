"""The default, fully offline generator: the answer is the context's most relevant sentences, verbatim.

Each context chunk is split into sentences (``chunkers._sentences``); each sentence is scored against the
question by a mix of meaning and wording —

    score(s) = w · cos(E(question), E(s)) + (1 − w) · Σ_{t ∈ q ∩ s} idf(t) / Σ_{t ∈ q} idf(t)

with w = ``semantic_weight`` (default 0.3), E the pipeline's embedder (the bundled MiniLM, cached) and idf computed over the context's sentences on
stemmed, stop-word-free terms — the classic sentence-extraction recipe of query-focused summarisation
(e.g. Otterbacher et al. 2009, "Biased LexRank"; Nenkova & McKeown 2011). The best ``max_sentences``, within
``min_relative_score`` of the best and not near-duplicates of each other, are returned in reading order (by
chunk rank, then position), each cited by its chunk id. Nothing is invented: every answer sentence is a
verbatim substring of a context chunk.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from pydantic import Field

from rag.generation.base import Generator, GeneratorParams
from rag.state import Answer, Citation
from rag.text import content_terms
from rag.types import Chunk

_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Sentence:
    """A sentence of a context chunk: ``chunk.text[start:end] == text``."""

    rank: int
    chunk_id: str
    start: int
    end: int
    text: str


_BLOCK_START = re.compile(r"[ \t]*(?:[-*+#>|]|\d+[.)]\s|```)")
#: Sentences longer than this (code, tables) are split at their line breaks instead.
MAX_SENTENCE_CHARS = 400


def _unwrapped(text: str) -> str:
    """``text`` with hard-wrap line breaks (a single newline inside a paragraph) turned into spaces — same
    length, so spans found in it are spans of ``text``. Blank lines, list items, headings, quotes and tables
    keep their line breaks."""
    lines = text.split("\n")
    out = []
    for i, line in enumerate(lines[:-1]):
        following = lines[i + 1]
        joins = (line.strip() and following.strip() and not line.lstrip().startswith(("#", "|", "```"))
                 and not _BLOCK_START.match(following))
        out.append(line + (" " if joins else "\n"))
    out.append(lines[-1])
    return "".join(out)


def _spans(text: str) -> list[tuple[int, int]]:
    from chunkers._sentences import sentence_spans

    spans = []
    for start, end in sentence_spans(_unwrapped(text)):
        if end - start > MAX_SENTENCE_CHARS and "\n" in text[start:end]:
            # code or a table: its lines are the units (and the sentences of a line)
            line_start = start
            for line in text[start:end].splitlines(keepends=True):
                spans.extend(sentence_spans(text, line_start, line_start + len(line)))
                line_start += len(line)
        else:
            spans.append((start, end))
    return spans


def context_sentences(contexts: Sequence[Chunk]) -> list[Sentence]:
    """Every non-empty sentence of the contexts, stripped, each text kept once (overlapping chunks repeat text).

    Hard-wrapped paragraphs are read as prose (a line break inside a paragraph does not end a sentence).
    """
    seen: set[str] = set()
    sentences = []
    for rank, chunk in enumerate(contexts):
        for start, end in _spans(chunk.text):
            piece = chunk.text[start:end]
            stripped = piece.strip()
            if not stripped or not any(ch.isalnum() for ch in stripped) or stripped in seen:
                continue
            seen.add(stripped)
            offset = start + piece.index(stripped)
            sentences.append(Sentence(rank, chunk.id, offset, offset + len(stripped), stripped))
    return sentences


def is_answer_like(sentence: Sentence, min_words: int) -> bool:
    """Headings and short labels name a topic but answer nothing."""
    return not sentence.text.startswith("#") and len(_WORD.findall(sentence.text)) >= min_words


def lexical_coverage(question_terms: Sequence[str], sentence_terms: Sequence[set[str]]) -> np.ndarray:
    """The idf-weighted share of the question's terms each sentence contains (idf over the sentences)."""
    if not question_terms or not sentence_terms:
        return np.zeros(len(sentence_terms))
    query = sorted(set(question_terms))
    n = len(sentence_terms)
    present = np.array([[term in terms for term in query] for terms in sentence_terms], dtype=np.float64)
    df = present.sum(axis=0)
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    return present @ idf / idf.sum()


class ExtractiveGenerator(Generator):
    """Answers with the context's most relevant sentences, verbatim, each cited by chunk id (offline)."""

    name = "extractive"

    class Params(GeneratorParams):
        max_sentences: int = Field(3, ge=1, le=50, description="most sentences in an answer")
        semantic_weight: float = Field(0.3, ge=0.0, le=1.0,
                                       description="weight of embedding similarity (0 = wording only, no model)")
        min_relative_score: float = Field(0.4, ge=0.0, le=1.0,
                                          description="drop sentences scoring below this fraction of the best")
        max_candidates: int = Field(24, ge=1, description="sentences embedded per answer (best by wording)")
        min_words: int = Field(4, ge=0, description="shorter sentences (labels) and headings are not used")
        order: Literal["context", "score"] = Field("context", description="reading order or best first")
        cite_inline: bool = Field(True, description="append [chunk_id] after each sentence of the answer text")

    def _embedder(self):
        if self.resources is None:
            from rag.resources import Resources

            self.resources = Resources()
        return self.resources.embedder

    def score(self, question: str, sentences: Sequence[Sentence]) -> np.ndarray:
        """The relevance of each sentence to the question (see the module docstring)."""
        params = self.params
        lexical = lexical_coverage(content_terms(question), [set(content_terms(s.text)) for s in sentences])
        if params.semantic_weight == 0.0:
            return lexical
        embedder = self._embedder()
        query_vec = embedder.embed_queries([question])[0]
        sentence_vecs = embedder.embed([s.text for s in sentences])
        return params.semantic_weight * (sentence_vecs @ query_vec) + (1 - params.semantic_weight) * lexical

    def select(self, question: str, sentences: list[Sentence]) -> list[Sentence]:
        """The answer's sentences, in the configured order."""
        params = self.params
        usable = [s for s in sentences if is_answer_like(s, params.min_words)] or sentences
        if len(usable) > params.max_candidates:
            coverage = lexical_coverage(content_terms(question), [set(content_terms(s.text)) for s in usable])
            best = np.argsort(-coverage, kind="stable")[: params.max_candidates]
            usable = [usable[i] for i in sorted(best)]
        scores = self.score(question, usable)
        ranked = np.argsort(-scores, kind="stable")
        top = float(scores[ranked[0]])
        chosen: list[int] = []
        chosen_terms: list[set[str]] = []
        for i in ranked:
            if len(chosen) == params.max_sentences:
                break
            if top > 0 and scores[i] < params.min_relative_score * top:
                break
            terms = set(content_terms(usable[i].text))
            if any(_jaccard(terms, other) >= 0.8 for other in chosen_terms):
                continue  # a near-copy of a chosen sentence (overlapping or duplicated documents)
            chosen.append(int(i))
            chosen_terms.append(terms)
        picked = [usable[i] for i in chosen]
        if params.order == "context":
            picked.sort(key=lambda s: (s.rank, s.start))
        return picked

    def answer(self, question: str, contexts: Sequence[Chunk]) -> Answer:
        sentences = context_sentences(list(contexts))
        if not sentences:
            return self.no_context_answer()
        picked = self.select(question, sentences)
        if self.params.cite_inline:
            text = " ".join(f"{s.text} [{s.chunk_id}]" for s in picked)
        else:
            text = " ".join(s.text for s in picked)
        return Answer(text, tuple(Citation(s.chunk_id, s.text) for s in picked), self.name, 0)


def _jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b) if (a or b) else 0.0


__all__ = ["ExtractiveGenerator", "Sentence", "context_sentences", "content_terms", "lexical_coverage"]
