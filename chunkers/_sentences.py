"""Offline sentence segmentation into spans that tile the text (no model, no download).

Rules in the spirit of Punkt / pySBD, kept small: a sentence ends after ``. ! ? …`` (and the full stops and question
marks of Arabic, Urdu, Devanagari, Ethiopic, Armenian and Myanmar: :data:`SPACED_ENDS`; plus closing quotes,
guillemets or brackets) followed by whitespace and a character that does not continue the sentence (not a lower-case
letter, nor the next period of a spaced ellipsis ". . ."), unless the word before the period is a known abbreviation
or an initial standing alone ("J. Smith", "J.K. Rowling"; not a letter glued to what is before it, "37°C.",
"fetuin-A."), or the period ends a list number that would be a sentence of its own ("1. Download it." is one
sentence); an abbreviation that often ends a sentence ("etc.") ends it before an upper-case letter; after CJK full
stops ``。！？｡．`` with no space needed (and the closing quotes or brackets after them); and at a line break (LF, CRLF,
or a lone CR: old Mac line ends, read as LF), except a hard wrap, which reads as a space (:mod:`chunkers._wraps`:
before a plain lower-case word; after a filled line of prose before a capitalised word, a quote, a bracket, a digit
or a name; after a line that ends in "the", "of", "and"...), and not inside a markdown code fence. In text without a
single capital letter (a lower-cased corpus, such as FinQA's filings), a lower-case letter is no sign of a continued
sentence, so only abbreviations, initials and list numbers hold a period back, and every line break ends a sentence.
A range of a text is read as a text of its own. Each sentence span keeps its trailing whitespace, so the spans tile
the text exactly.
"""
from __future__ import annotations

import re

from chunkers._markdown import with_line_feeds
from chunkers._wraps import FENCE, filled_wrap, lower_case_wrap, wrapped

ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e eg ie inc ltd co corp no nos fig figs al approx dept est "
    "jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k mt ft gen gov sen rep col lt sgt capt cf ca "
    "vol pp ed eds rev sec secs eq eqs ch ref refs".split()
)
#: Abbreviations that often end a sentence ("apples, pears, etc. Then ..."): their period ends it when an
#: upper-case letter follows (other abbreviations, such as titles, are followed by a name).
SENTENCE_FINAL_ABBREVIATIONS = frozenset("etc inc ltd corp u.s.a".split())

#: Sentence ends that need whitespace after them: . ! ? … and the full stops and question marks of scripts that
#: put a space after theirs (Arabic ؟ and Urdu ۔, Devanagari । ॥, Ethiopic ። ፧, Armenian ։, Myanmar ။).
SPACED_ENDS = ".!?…؟۔।॥።፧։။"
#: Sentence ends that need no space: CJK full stops and question / exclamation marks, the halfwidth ｡ and the
#: fullwidth period ． (Japanese academic writing; not between digits, where it is a decimal point).
UNSPACED_ENDS = "。！？｡．"
#: What closes a sentence after an unspaced end: quotes and brackets, halfwidth and fullwidth.
_UNSPACED_CLOSERS = "」』”’)）》】〕〉〗〙〛｣"
_DIGITS = "0123456789０１２３４５６７８９"
# Three kinds of sentence end: ``[SPACED_ENDS]+`` and closing quotes or brackets (a guillemet also after a space,
# as French sets it) then ``(\s+)`` (group 1: the whitespace it needs),
# ``[UNSPACED_ENDS]+[_UNSPACED_CLOSERS]*\s*`` and a line break, ``\n\s*`` or ``\r\s*`` (a CRLF's CR starts the match its
# LF started: same end; two one-character look-behinds, as one ``[\r\n]`` made the scan 7 % slower). Their first
# characters differ, so the first character is matched once and a look-behind picks the branch: a pattern that
# starts with a character class lets the regex engine skip ahead to candidate characters instead of trying every
# branch at every position (4x faster, same matches).
# Only the first of a run of spaced ends starts the first branch, and its runs are possessive: a later one ends
# the same way, and retrying from each one made a long run with no space after it quadratic (20,000 dots: 10 s).
_TERMINAL = re.compile(
    rf"[{SPACED_ENDS}{UNSPACED_ENDS}\r\n](?:(?<=[{SPACED_ENDS}])(?<![{SPACED_ENDS}][{SPACED_ENDS}])[{SPACED_ENDS}]*+"
    rf"(?:[\"'”’“»›)\]]|[ \u00a0\u202f][»›])*+(\s+)"
    rf"|(?<=[{UNSPACED_ENDS}])[{UNSPACED_ENDS}]*[{_UNSPACED_CLOSERS}]*\s*|(?<=\n)\s*|(?<=\r)\s*)")
#: A longer word is never an abbreviation, so the look-back for one stops after this many characters.
_LONGEST = max(map(len, ABBREVIATIONS))
#: a word of this many characters is too long to be an abbreviation
_TOO_LONG = _LONGEST + 1
_WORD_AT_END = re.compile(r"[\w.]*\Z")
#: Initials of a name before the period ("J.K. Rowling", "J.R.R. Tolkien"); "U.S.A." is an abbreviation
#: that ends sentences (:data:`SENTENCE_FINAL_ABBREVIATIONS`).
_INITIALS = re.compile(r"(?:[A-Z]\.){1,2}[A-Z]\Z")
#: What may open a word standing alone, before its first letter: an initial in brackets or quotes.
_OPENINGS = "([{\"'“‘«"


def _abbreviation_before(text: str, period: int, cut: int) -> bool:
    """True when the word before ``period`` is a known abbreviation or an initial ("J. Smith", or a single letter
    enumerator), so the period does not end the sentence, unless it is one that often ends a sentence
    (:data:`SENTENCE_FINAL_ABBREVIATIONS`) and the next sentence starts at ``cut`` with an upper-case letter. The
    word is what ``[\\w.]+$`` finds when searched in the 20 characters before ``period`` (``$`` also matches before
    a final line feed, here a lone CR too: CR-only text reads as its LF copy); only the last ``_TOO_LONG``
    characters are searched, enough to tell a longer word."""
    end = period - 1 if period >= 1 and text[period - 1] in "\r\n" else period
    segment = text[max(0, period - 20, end - _TOO_LONG):end]
    word = segment[_WORD_AT_END.search(segment).start():]
    if not word or len(word) > _LONGEST:
        return False
    lower = word.lower()
    if lower in SENTENCE_FINAL_ABBREVIATIONS:
        return not text[cut].isupper()
    if lower in ABBREVIATIONS:
        return True
    # an initial stands alone: a letter glued to what is before it ends a unit or a name ("37°C.", "fetuin-A.")
    start = end - len(word)
    alone = start == 0 or text[start - 1].isspace() or text[start - 1] in _OPENINGS
    return alone and (len(word) == 1 and word.isalpha() or _INITIALS.match(word) is not None)


#: the most digits a list number has ("12. Bake"); a longer number alone before a period is a year or an amount
_ENUMERATOR_DIGITS = 3


def _continues(text: str, cut: int, period: int, sentence_start: int, cased: bool) -> bool:
    """Whether the sentence end at ``period`` (. ! ? … and the whitespace after it, up to ``cut``) does not end the
    sentence that began at ``sentence_start``: a lower-case letter follows (in cased text) or another period (a
    spaced ellipsis), or the period is that of an abbreviation, an initial or a list number. Every abbreviation
    ends in a letter, so only a letter (or a line break, which the look-back skips) before the period needs the
    look-back, and not after _TOO_LONG letters or digits."""
    if cased and text[cut].islower():
        return True
    if text[period] != "." or not period:
        return False
    if text[cut] == ".":
        return True  # a spaced ellipsis (". . .") goes on
    before = text[period - 1]
    if (before.isalpha() or before in "\r\n") \
            and not (period >= _TOO_LONG and text[period - _TOO_LONG:period].isalnum()) \
            and _abbreviation_before(text, period, cut):
        return True
    return before.isdigit() and period - sentence_start <= 2 * _ENUMERATOR_DIGITS and \
        _is_enumerator(text, sentence_start, period)


def _has_line_break(whitespace: str) -> bool:
    return "\n" in whitespace or "\r" in whitespace


_INDENT = re.compile(r"[ \t]*")


def _is_enumerator(text: str, sentence_start: int, period: int) -> bool:
    """True when the period at ``period`` ends a list number that is all of its would-be sentence ("1. Download
    it."): the number belongs with the item after it, not in a sentence of its own."""
    number = text[sentence_start:period].strip()
    return 0 < len(number) <= _ENUMERATOR_DIGITS and number.isdigit()


def _islower(text: str) -> bool:
    """``text.islower()``; ASCII text is tested as bytes (a table lookup per byte: 10x faster on a long lower-cased
    text, which str.islower reads to its end)."""
    return (text.encode("ascii") if text.isascii() else text).islower()


def sentence_cuts(text: str, start: int = 0, end: int | None = None) -> list[int]:
    """Where the sentences of ``text[start:end]`` after the first begin (strictly inside the range)."""
    end = len(text) if end is None else end
    if text.find("\r", start, end) >= 0:  # lone CRs read as line feeds, by the wrap rules too
        return [cut + start for cut in _sentence_cuts(with_line_feeds(text[start:end]), 0, end - start)]
    return _sentence_cuts(text, start, end)


def _sentence_cuts(text: str, start: int, end: int) -> list[int]:
    # cased letters, none of them upper-case: lower-cased text, where case says nothing about sentence starts
    cased = not _islower(text[start:end])
    cuts = []
    line_start = _INDENT.match(text, start, end).end()  # where the line the scan is in starts, after its indentation
    in_fence = False  # inside a markdown code fence: its lines are code, never a wrapped sentence
    # The pattern's look-behind must not see a . ! ? … before the range (the range's first one starts a match):
    # then the range is scanned as a string of its own, the offsets shifted back.
    shift = start if start and text[start - 1] in SPACED_ENDS else 0
    for match in _TERMINAL.finditer(text[start:end] if shift else text, start - shift, end - shift):
        cut = match.end() + shift
        if cut >= end:
            break
        # After . ! ? … (the branch with group 1, the only group) a lower-case letter continues the sentence (in
        # cased text), and so does a period after an abbreviation, an initial or a list number (_continues).
        # A line break ends the sentence, also one in the whitespace after . ! ? …, unless it is a hard wrap
        # (chunkers._wraps) in cased text outside code fences, where it reads as a space: after a period that does
        # not end the sentence on its own (an abbreviation, an initial), before a plain lower-case word (wrapped); in
        # the middle of a line, by the rules for lower-case words (lower_case_wrap) and the others (filled_wrap).
        ending_line = line_start  # the start of the line a line break in this match ends
        if match.lastindex:
            if not _has_line_break(match.group(1)):
                if _continues(text, cut, match.start() + shift, cuts[-1] if cuts else start, cased):
                    continue
                cuts.append(cut)
                continue
            line_start = cut
            if cased and not in_fence and text[cut].islower() \
                    and wrapped(text, ending_line, match.start(1) + shift, cut, end) \
                    and _continues(text, cut, match.start() + shift, cuts[-1] if cuts else start, False):
                continue
        elif text[match.start() + shift] in "\r\n":  # a line break
            line_start = cut
            if text.startswith(FENCE, ending_line):
                in_fence = not in_fence
            elif cased and not in_fence and (lower_case_wrap if text[cut].islower() else filled_wrap)(
                    text, start, ending_line, match.start() + shift, cut, end):
                continue
        elif text[cut - 1] == "．" and cut - 2 >= start and text[cut - 2] in _DIGITS and text[cut] in _DIGITS:
            continue  # a fullwidth decimal point: ３．１４
        elif _has_line_break(match.group()):  # a CJK full stop, then whitespace with a line break
            line_start = cut
        cuts.append(cut)
    return cuts


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans ``[(s, e), ...]`` tiling ``text[start:end]``; each keeps its trailing whitespace."""
    end = len(text) if end is None else end
    if start >= end:
        return []
    edges = [start, *sentence_cuts(text, start, end), end]
    return list(zip(edges[:-1], edges[1:]))
