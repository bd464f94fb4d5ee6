"""LLM-guided chunking (LumberChunker, Duarte et al. 2024, "LumberChunker: Long-Form Narrative Document
Segmentation").

YAML::

    index:
      chunker: {op: llm, chunk_size: 256, generator: {name: openai, base_url: "http://localhost:8000/v1", model: m}}

The document is split into paragraphs (blank lines; a paragraph over ``chunk_size`` into its sentences, and a
sentence over it at lines, words). Starting at the first paragraph not yet chunked, consecutive paragraphs are
gathered while they fit ``chunk_size`` tokens (the paper's window θ), each labelled ``ID n``; the LLM, called
through the generator interface (``Generator.complete``), names the first paragraph where the content clearly
shifts.
The paragraphs before it form a chunk and the next window starts there. An answer that names no paragraph
after the window's first (or cannot be parsed) makes the whole window one chunk, so every call makes progress.
Chunks tile the text and never exceed ``chunk_size``; ``model_calls`` counts the LLM calls and
``unusable_answers`` the calls whose answer named no paragraph of the window after its first (a model that
often fails to answer the prompt segments by window size alone).

``answer: choose`` asks a local model (``generator: {name: hf, ...}``) for the log-probability of each possible
answer, ``Answer: ID n`` for every paragraph of the window after its first, and takes the likeliest: a choice
constrained to the answers the prompt allows, as multiple-choice questions are scored, so a model that does not
write the answer format (a small base model) still chooses; no answer is unusable. Same prompt; one pass over it,
whose cached keys and values the answers share (:meth:`rag.lm.CausalLM.option_logprobs`). Choosing, every window of
two paragraphs or more is cut once, the last one of a document too (the allowed answers hold no "no shift"); a
window of two is cut between them without a call, as it has one allowed answer.
"""
from __future__ import annotations

import bisect
import re
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from chunkers._spans import Span, build_chunks, fit_spans
from chunkers._splitter import RecursiveSplitter
from chunkers.base import Chunker, TokenizerName, tokenizer_field
from chunkers.sentence import sentence_units
from rag.errors import ConfigError
from rag.registry import OperatorParams, operator
from rag.types import Chunk, Document

PROMPT = """You will receive as input an English document with paragraphs identified by 'ID XXXX: <text>'.

Task: Find the first paragraph (not the first one) where the content clearly changes compared to the previous paragraphs.

Output: Return the ID of the paragraph with the content shift as in the exemplified format: 'Answer: ID XXXX'.

Additional Considerations: Avoid very long groups of paragraphs. Aim for a good balance between identifying content shifts and keeping groups manageable.

Document:
{paragraphs}
"""
# "ID" standing alone: not the end of "covid 19" or "Android 12"
_ANSWER = re.compile(r"(?<![^\W\d_])ID\s*:?\s*(\d+)", re.I)


def paragraph_units(splitter: RecursiveSplitter, limit: int) -> list[Span]:
    """Paragraph spans tiling the text (cut after blank lines), with each paragraph over ``limit`` split into its
    sentences (:func:`chunkers.sentence.sentence_units`). Cut into pieces up to the limit instead, each piece
    would fill a window alone and the LLM would never be asked where the content shifts inside it: text without
    blank lines would never be shown to it at all."""
    text = splitter.text
    cuts = [c for c in splitter.blank_line_ends(0, len(text)) if 0 < c < len(text)]
    paragraphs = _visible_paragraphs(text, list(zip([0, *cuts], [*cuts, len(text)])))
    cuts = [a for a, _ in paragraphs[1:]]
    over = [splitter.estimate(a, b) > limit for a, b in paragraphs]
    if not any(over):
        return paragraphs
    sentences = sentence_units(splitter, limit, paragraph_starts=np.array(cuts, dtype=np.int64))
    sentence_ends = [b for _, b in sentences]
    units: list[Span] = []
    for (a, b), split in zip(paragraphs, over):
        if not split:
            units.append((a, b))
            continue
        # the sentences overlapping the paragraph, cut to it: a sentence unit may begin before it (whitespace
        # that opens a text is joined to the first sentence), and the text between would be lost
        for start, end in sentences[bisect.bisect_right(sentence_ends, a):]:
            if start >= b:
                break
            units.append((max(start, a), min(end, b)))
    return units


def _visible_paragraphs(text: str, paragraphs: list[Span]) -> list[Span]:
    """The paragraphs with whitespace-only ones joined to a neighbour (the blank lines opening a text to the first
    paragraph, others to the one before): the LLM is not shown empty paragraphs, nor asked to cut at one."""
    out: list[Span] = []
    for a, b in paragraphs:
        if out and (text[a:b].isspace() or text[out[-1][0]:out[-1][1]].isspace()):
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


_ANSWER_WORD = re.compile("answer", re.I)
_ANSWER_LINE = re.compile(r"answer\s*:?\s*ID\s*:?\s*(\d+)", re.I)  # the prompt's own format


def parse_shift(answer: str, first: int, last: int) -> int | None:
    """The paragraph id in ``answer`` if it lies in ``(first, last]``: the first 'Answer: ID n' in range (the
    prompt's format, wherever reasoning or an explanation puts it), else the first id in range after the first
    'answer' (an explanation after it may say 'answer' again), else None."""
    for match in _ANSWER_LINE.finditer(answer):
        value = _id_value(match.group(1))
        if first < value <= last:
            return value
    word = _ANSWER_WORD.search(answer)
    tail = answer[word.start():] if word else answer
    for match in _ANSWER.finditer(tail):
        value = _id_value(match.group(1))
        if first < value <= last:
            return value
    return None


def _id_value(digits: str) -> int:
    """The paragraph id the digits name; -1 for a run of digits longer than any id (a degenerate answer: Python
    refuses to convert more than 4,300 digits)."""
    return int(digits) if len(digits) <= 18 else -1


@operator("llm", kind="chunker")
class LLMChunker(Chunker):
    """LumberChunker: an LLM picks where the content shifts within a window of paragraphs; iterate."""

    class Params(OperatorParams):
        chunk_size: int = Field(256, gt=0, description="maximum tokens per chunk and per window (hard ceiling)")
        generator: dict[str, Any] | str = Field(..., description="a completion generator spec, e.g. {name: hf, "
                                                                 "model: PATH} or {name: openai, ...}")
        max_answer_tokens: int = Field(16, gt=0, description="tokens the LLM may write per answer")
        answer: Literal["generate", "choose"] = Field(
            "generate", description="generate: the LLM writes its answer, parsed for a paragraph ID (the paper); "
                                    "choose: the likeliest of the allowed answers under a local model (hf)")
        tokenizer: TokenizerName = tokenizer_field()

        @field_validator("generator")
        @classmethod
        def _completion_generator(cls, spec):
            from rag.generation import completion_generators, parse_generator_spec

            generator_cls, _ = parse_generator_spec(spec, "generator")
            if not generator_cls.can_complete:
                raise ConfigError(f"generator {generator_cls.name!r} cannot complete prompts; use one of "
                                  f"{', '.join(completion_generators())}", "generator")
            return spec

        @model_validator(mode="after")
        def _choice_needs_a_scoring_generator(self):
            from rag.generation import option_scoring_generators, parse_generator_spec

            generator_cls, _ = parse_generator_spec(self.generator, "generator")
            if self.answer == "choose" and not generator_cls.can_score_options:
                raise ConfigError(f"'choose' scores each allowed answer, which the generator {generator_cls.name!r} "
                                  f"cannot do; use one of {', '.join(option_scoring_generators())}, or "
                                  "answer: generate", "answer")
            return self

    def __init__(self, **params):
        super().__init__(**params)
        self._generator = None
        self.model_calls = 0
        self.unusable_answers = 0

    @property
    def generator(self):
        if self._generator is None:
            from rag.resources import Resources

            self._generator = Resources(generator=self.params.generator).generator()
        return self._generator

    def use_generator(self, generator) -> "LLMChunker":
        """Use this generator (anything with ``complete(prompt, max_tokens, stop)``) instead of building one."""
        self._generator = generator
        return self

    def boundaries(self, text: str, splitter: RecursiveSplitter, units: list[Span]) -> list[Span]:
        limit = self.params.chunk_size
        spans: list[Span] = []
        first = 0
        while first < len(units):
            last = first
            while last + 1 < len(units) and splitter.estimate(units[first][0], units[last + 1][1]) <= limit:
                last += 1
            shift = None
            if last == first + 1 and self.params.answer == "choose":
                shift = last  # one allowed answer: nothing to ask
            elif last > first:
                listing = "\n".join(f"ID {i:04d}: {text[a:b].strip()}" for i, (a, b) in
                                    enumerate(units[first:last + 1], start=first))
                prompt = PROMPT.format(paragraphs=listing)
                self.model_calls += 1
                if self.params.answer == "choose":
                    options = [f"Answer: ID {i:04d}" for i in range(first + 1, last + 1)]
                    scores = list(self.generator.score_options(prompt, options))
                    if len(scores) != len(options):
                        raise TypeError(f"generator {type(self.generator).__name__}: score_options returned "
                                        f"{len(scores)} scores for {len(options)} options")
                    shift = first + 1 + max(range(len(scores)), key=scores.__getitem__)
                else:
                    answer = self.generator.complete(prompt, max_tokens=self.params.max_answer_tokens)
                    if not isinstance(answer, str):
                        raise TypeError(f"generator {type(self.generator).__name__}: complete() returned "
                                        f"{type(answer).__name__}, not str")
                    shift = parse_shift(answer, first, last)
                    self.unusable_answers += shift is None
            end = shift if shift is not None else last + 1
            spans.append((units[first][0], units[end - 1][1]))
            first = end
        return spans

    def chunk(self, document: Document) -> list[Chunk]:
        text = document.text
        if not text:
            return []
        limit = self.params.chunk_size
        splitter = RecursiveSplitter(text, self.tokenizer_, markdown=False)
        spans = self.boundaries(text, splitter, paragraph_units(splitter, limit))
        counts = splitter.index.counts(spans)
        spans, counts, oversize = fit_spans(text, spans, self.tokenizer_, limit, counts)
        return build_chunks(document, spans, counts, oversize, tokenizer=self.tokenizer_)
