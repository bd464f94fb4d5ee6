"""Exact token accounting of a context being assembled, with small-to-big merging of adjacent chunks.

Chunks of one document whose character spans overlap or touch are merged into one context span
(``doc.text[start:end]``, rebuilt from the chunks' own texts, so no document store is needed) when the merged
text costs no more tokens than the pieces kept apart: overlapping text is then counted — and shown to the
generator — once. The total is always the sum of ``count(text)`` over the spans the generator will receive.

Pieces that abut exactly (no overlap) at a cl100k safe cut (:func:`rag.encodings.is_safe_cut`: a space before a
word, the start of a line) tokenize as their concatenation does, so such a merge is counted as the sum of the
pieces' counts without encoding the merged text; any other merge is encoded.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from rag.encodings import SAFE_CUT_ENCODINGS, is_safe_cut
from rag.types import Chunk, Hit


@dataclass
class ContextSpan:
    """One piece of the final context: one chunk, or several merged chunks of one document."""

    members: list[Hit]
    text: str
    start: int
    end: int
    tokens: int
    order: int  # position of the first member admitted, so the context keeps selection order

    @property
    def doc_id(self) -> str:
        return self.members[0].chunk.doc_id


def _has_exact_offsets(chunk: Chunk) -> bool:
    return chunk.end - chunk.start == len(chunk.text)


def _union_text(hits: list[Hit]) -> tuple[str, int, int]:
    """The text of the union of contiguous spans (sorted by start; each starts at or before the running end)."""
    ordered = sorted(hits, key=lambda h: (h.chunk.start, -h.chunk.end))
    first = ordered[0].chunk
    parts, end = [first.text], first.end
    for hit in ordered[1:]:
        chunk = hit.chunk
        if chunk.end > end:
            parts.append(chunk.text[end - chunk.start:])
            end = chunk.end
    return "".join(parts), first.start, end


@dataclass
class Admission:
    """What adding one hit would do: the spans it replaces, the span it creates and the new total."""

    hit: Hit
    replaced: list[ContextSpan]
    span: ContextSpan
    total: int


@dataclass
class ContextSpans:
    """The context under construction; ``total`` tokens, never above what the caller admitted."""

    count: Callable[[str], int]
    cost_of: Callable[[Hit], int]
    merge: bool = True
    tokenizer: str | None = None  # identity of the tokenizer behind ``count``, recorded on chunks built here
    spans: list[ContextSpan] = field(default_factory=list)
    total: int = 0
    admitted: set[str] = field(default_factory=set)
    _by_doc: dict[str, list[ContextSpan]] = field(default_factory=dict, init=False, repr=False)  # ``spans`` order

    def _touching(self, chunk: Chunk) -> list[ContextSpan]:
        """Spans (in context order) that ``chunk`` would be merged with, if the merge is no more expensive."""
        if not self.merge or chunk.doc_id not in self._by_doc or not _has_exact_offsets(chunk):
            return []
        return [s for s in self._by_doc[chunk.doc_id] if s.start <= chunk.end and chunk.start <= s.end
                and all(_has_exact_offsets(m.chunk) for m in s.members)]

    def plan(self, hit: Hit, tokens: int | None = None) -> Admission:
        """The admission of ``hit`` (not applied): merged with touching/overlapping spans when that is cheaper.
        ``tokens``: the hit's own token count when the caller already has it."""
        chunk = hit.chunk
        own_tokens = self.cost_of(hit) if tokens is None else tokens
        own = ContextSpan([hit], chunk.text, chunk.start, chunk.end, own_tokens, len(self.spans))
        alone = Admission(hit, [], own, self.total + own.tokens)
        touching = self._touching(chunk)
        if not touching:
            return alone
        members = [m for s in touching for m in s.members] + [hit]
        text, start, end = _union_text(members)
        kept_apart = own.tokens + sum(s.tokens for s in touching)
        merged_tokens = kept_apart if self._joined_at_safe_cuts(text, start, touching + [own]) else self.count(text)
        if merged_tokens > kept_apart:
            return alone
        span = ContextSpan(members, text, start, end, merged_tokens, min(s.order for s in touching))
        return Admission(hit, touching, span, self.total - sum(s.tokens for s in touching) + merged_tokens)

    def _joined_at_safe_cuts(self, text: str, start: int, pieces: list[ContextSpan]) -> bool:
        """True when ``text`` (starting at document offset ``start``) is ``pieces`` laid end to end, every
        junction a safe cut and every piece at least two characters long: then its token count is the sum of
        theirs, exactly (the safe-cut property holds for any context beyond one character either side)."""
        if self.tokenizer not in SAFE_CUT_ENCODINGS:
            return False
        ordered = sorted(pieces, key=lambda s: s.start)
        if ordered[0].start != start or any(s.end - s.start < 2 for s in ordered):
            return False
        for left, right in zip(ordered, ordered[1:]):
            if right.start != left.end or not is_safe_cut(text, right.start - start):
                return False
        return True

    def admit(self, admission: Admission) -> None:
        span = admission.span
        if admission.replaced:
            # spans are distinct objects with distinct members: identity is equality here, and far cheaper
            gone = {id(s) for s in admission.replaced}
            self.spans = [s for s in self.spans if id(s) not in gone]
            self._by_doc[span.doc_id] = [s for s in self._by_doc[span.doc_id] if id(s) not in gone]
        self.spans.append(span)
        self._by_doc.setdefault(span.doc_id, []).append(span)
        self.total = admission.total
        self.admitted.add(admission.hit.chunk.id)

    def try_admit(self, hit: Hit, budget: int, tokens: int | None = None) -> bool:
        """Admit ``hit`` if the context stays within ``budget`` tokens; True if admitted (or already in).
        ``tokens``: the hit's own token count when the caller already has it."""
        chunk = hit.chunk
        if chunk.id in self.admitted:
            return True
        if tokens is None:
            tokens = self.cost_of(hit)
        if self.total + tokens > budget and not self._touching(chunk):
            return False  # alone it does not fit, and there is nothing to merge with (the common rejection)
        admission = self.plan(hit, tokens)
        if admission.total > budget:
            return False
        self.admit(admission)
        return True

    def to_hits(self) -> tuple[Hit, ...]:
        """The context as hits in admission order; a merged span becomes one chunk ``"a+b+..."`` whose
        metadata lists ``merged_from`` and whose score is its best member's. A chunk whose ``token_count`` is
        replaced by the span's count records ``tokenizer`` as the tokenizer that count was measured with."""
        out = []
        for span in sorted(self.spans, key=lambda s: s.order):
            if len(span.members) == 1:
                hit = span.members[0]
                chunk = hit.chunk
                if chunk.token_count != span.tokens:
                    chunk = Chunk(chunk.id, chunk.doc_id, chunk.text, chunk.start, chunk.end, span.tokens,
                                  chunk.metadata, self.tokenizer)
                out.append(Hit(chunk, hit.score, hit.source))
                continue
            members = sorted(span.members, key=lambda h: h.chunk.start)
            best = max(span.members, key=lambda h: h.score)
            metadata = {**members[0].chunk.metadata, "merged_from": [m.chunk.id for m in members]}
            merged = Chunk("+".join(m.chunk.id for m in members), span.doc_id, span.text, span.start, span.end,
                           span.tokens, metadata, self.tokenizer)
            out.append(Hit(merged, best.score, best.source))
        return tuple(out)
