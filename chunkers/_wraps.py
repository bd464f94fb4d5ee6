"""Hard wraps: which single line breaks inside a text are the spaces an editor turned into line feeds.

:func:`chunkers._sentences.sentence_cuts` ends a sentence at a line break unless it is a hard wrap, which reads as a
space. A break is a wrap (each rule adopted on measurements, docs/results/chunking.md):

- before a plain lower-case word after a line a sentence can run on from (:func:`wrapped`);
- after a *filled* line (the next word would not have fit on it at the width of the lines around it, 40 to 100
  characters; a paragraph's first line measured by the two lines after it): before a capitalised word, a word that
  opens with a quote, a bracket, a backtick or a digit, a name with digits or capitals inside, or any other
  lower-case word, the last two between lines of prose, not code (:func:`filled_wrap`, :func:`lower_case_wrap`);
- after a line that ends in an English function word ("the", "of", "and"), before such a word, between lines of
  prose, whatever the width (:func:`_after_function_word`).

The callers check that the text is cased, that the break is outside a code fence and that the line does not end a
sentence.
"""
from __future__ import annotations

import re

#: what a markdown code fence line starts with (after its indentation)
FENCE = ("```", "~~~")
#: what a line that a wrapped sentence cannot run on from starts with: a markdown heading, a table row, a fence,
#: a decorator
_STRUCTURE_LINE = ("#", "|", *FENCE, "@")
#: a letter or a digit
_ALPHANUMERIC = re.compile(r"[^\W_]")
#: the first word of a line: the whitespace before it, and (group 1) the word (up to the next whitespace)
_FIRST_WORD = re.compile(r"\s*(\S*)")
#: the whitespace of a hard wrap, without its spaces and tabs
_ONE_LINE_BREAK = frozenset(("\n", "\r\n", "\r"))
#: a plain lower-case word of prose at the start of a line ("and", "don't", "well-known", "day,", "respectively)."):
#: letters (apostrophes and hyphens after the first), a closing bracket and one of , ; . ! ? after them (each
#: optional), then whitespace; not a lettered list marker ("a." "b)"). Not ``key:``, a path, a call, ``snake_case``,
#: a number or a hash. (Its case is checked apart.)
_PLAIN_WORD = re.compile(r"(?![^\W\d_][.)](?:\s|\Z))[^\W\d_](?:[^\W\d_]|['’-])*\)?[,;.!?]?(?=\s|\Z)")


def _opening(text: str, line_start: int, whitespace_start: int) -> str | None:
    """The first word of the line ``text[line_start:whitespace_start]``, or None when a wrapped sentence cannot run
    on from the line: a markdown heading, table row or code fence, a decorator (``@``), or a line without a letter
    or digit that opens with more than one character (an underline, ``<!--``, a docstring's quotes; a lone ``/``,
    ``=`` or ``)`` may be a formula's or a call's, which the sentence runs on from)."""
    opening = _FIRST_WORD.match(text, line_start, whitespace_start).group(1)
    if opening.startswith(_STRUCTURE_LINE):
        return None
    if len(opening) > 1 and _ALPHANUMERIC.search(text, line_start, whitespace_start) is None:
        return None
    return opening


def wrapped(text: str, line_start: int, whitespace_start: int, cut: int, end: int,
            plain: re.Pattern = None) -> re.Match | None:
    """Whether the whitespace ``text[whitespace_start:cut]``, which holds a line break and ends the line that
    starts at ``line_start``, is a hard wrap inside a sentence of ``text[:end]``, given that a lower-case letter
    follows at ``cut``:
    one line break (spaces and tabs around it) before a plain word (:data:`_PLAIN_WORD`, or ``plain``) that does
    not also open the line before (a list of records, "make build" / "make test"), after a line a sentence can run
    on from (:func:`_opening`; the word's match, or None). The caller checks that the text is cased and that the
    line does not end a sentence."""
    if text[whitespace_start:cut].strip(" \t") not in _ONE_LINE_BREAK:
        return None
    word = (plain or _PLAIN_WORD).match(text, cut, end)
    if word is None:
        return None
    opening = _opening(text, line_start, whitespace_start)
    return word if opening is not None and opening != word.group() else None


#: the narrowest width (in characters) a text is taken to be wrapped at: shorter lines are records, verse or a list
MIN_WRAP_WIDTH = 40
#: the widest: longer lines are paragraphs of their own (text that is not hard-wrapped)
MAX_WRAP_WIDTH = 100
#: a capitalised word of prose, or one in capitals ("Health", "NASA"), with what may follow it (a closing quote or
#: bracket, then one of , ; . ! ?: ``Journal".``); not a CamelCase name, nor code ("A = f(x)")
_CAPITALISED_WORD = re.compile(r"(?:[^\W\d_](?:[^\W\d_A-Z]|['’-])*|[A-Z]+)[\"'”’)\]]?[,;.!?]?"
                               r"(?=\s|\Z)(?![ \t]*=)")
#: a line that ends a sentence in emphasis or quotes ("**Deprecated.**"), or a docstring
_ENDS_SENTENCE = re.compile(r"(?:[.!?:][*_\"'”’)\]]*|\"\"\"|''')\Z")
#: a line of prose has a letter, and is no Python prompt (nor its continuation)
_PROSE_LINE = re.compile(r"\s*+(?!>>>|\.\.\.)[^\n]*?[^\W\d_]")
#: column alignment: a run of three spaces, or a tab, inside a line
_COLUMNS = re.compile(r"\S(?: {3}|\t)")
#: a word that opens with a quote, a bracket, a backtick, an asterisk or a digit ("(see", "`code`", "2019,"); not
#: a list item's marker ("1.", "12)", "* "; four digits are a year that ends a sentence, "in" / "1999."), a key
#: (``"Name":``, a link definition ``[a]: url``), code ("x[0] = 1", ``"items": [``) nor a word without a letter or
#: digit (a docstring's closing quotes)
_OPENINGS = frozenset("\"'“‘([`*")
_OPENING_WORD = re.compile(r"(?!\d{1,3}[.)](?:\s|\Z)|\*[ \t]|\S*\":)(?=\S*[^\W_])"
                           r"[\"'“‘(\[`*\d]\S*+(?<![:{\[])(?![ \t]*=)")


#: any other word that opens with a lower-case letter ("sod-3", "age/sex", "e.g.", "c-JUN),"); not a lettered list
#: marker, a key ("name:") nor code ("x = 1", "status=404,"; calls are found on the line, :data:`_CODE`)
_LOWER_CASE_WORD = re.compile(r"(?![^\W\d_][.)](?:\s|\Z))[^\W\d_A-Z][^\s=]*+(?<![:{\[])(?![ \t]*=)")
#: any other word that opens with a capital ("IL-10", "ALK2,", "A/CDK2", "LMPPs", "PU.1"); not a key ("Name:") nor
#: code ("A=1"; calls are found on the line, :data:`_CODE`)
_OTHER_CAPITAL_WORD = re.compile(r"[A-Z][^\s=]*+(?<![:{\[])(?![ \t]*=)")
#: the fewest words on a filled line of prose before a lower-case word (a line of base64 has one)
_PROSE_WORDS = 4
#: code on a line: an assignment or comparison ("x = 1", "a == b", "n -= 1"), a call ("f(x)", "a.b()"), a
#: statement's end or a block ("x;", "{", "}"), a snake_case name, a string literal's prefix (f"…", r'…')
_CODE = re.compile(r"\s[=!<>+\-*/%|&^]?=\s|==|[\w.]\(|[;{}]\s*$|[^\W_]_[^\W_]|^\s*[a-z]{1,2}[\"']", re.M)


def _prose_around(text: str, begin: int, whitespace_start: int, cut: int, end: int) -> bool:
    """Whether the line ``text[begin:whitespace_start]`` and the line that starts at ``cut`` read as prose, not
    code (:data:`_CODE`): a lower-case word after a line break of code is a line of code much more often than a wrap
    ("return x" under "return y", "from a import b", "q, r = qr(a)"), and a line of prose has a few words."""
    line_end = text.find("\n", cut, end)
    return (len(text[begin:whitespace_start].split()) >= _PROSE_WORDS
            and not _CODE.search(text, begin, whitespace_start)
            and not _CODE.search(text, cut, end if line_end < 0 else line_end))


def _in_capitals(*lines: str) -> bool:
    """Whether the lines are prose in capitals throughout (legal text: "SHALL NOT BE LIABLE FOR ANY"): no
    lower-case letter, at least :data:`_PROSE_WORDS` words and no code on each. Every such line opens with a
    capital, which is no sign of a record there."""
    return all(line.upper() == line and len(line.split()) >= _PROSE_WORDS and not _CODE.search(line)
               for line in lines)


def _line(text: str, begin: int, end: int) -> str:
    """The line ``text[begin:end]`` without its trailing whitespace."""
    return text[begin:end].rstrip()


def _opens_alike(line: str, first: str) -> bool:
    """Whether ``line`` opens as a line that opens with ``first`` does: with a capital, a digit, or ``first``."""
    opening = line.lstrip()[:1]
    return opening.isupper() if first.isupper() else opening.isdigit() if first.isdigit() else opening == first


def _filled(text: str, start: int, begin: int, whitespace_start: int, end: int, word: re.Match) -> bool:
    """Whether the line of ``text[start:end]`` from ``begin`` to ``whitespace_start`` (one line break follows, then
    ``word``) is a filled line of wrapped prose: the word would not have fit on it (after a space) at the width
    the lines around it are wrapped at, the wider of the line before it and the line after it
    (:data:`MIN_WRAP_WIDTH` to :data:`MAX_WRAP_WIDTH`), and neither would the line's first word have fit on the
    line before it (that one was filled too); a paragraph's first line is measured by the two lines after it
    (:func:`_first_line_filled`). A line ended on purpose (a title, a record, a line of verse or of a list) mostly
    leaves room for the next word. Not a line indented deeper than the one before (a definition under its term),
    nor lines in columns (a table, a menu) or that all open alike (a list of names, titles, records or JSON keys),
    nor a line that ends a sentence in emphasis or quotes or with a colon, a docstring, a line without a letter (an
    underline) or a Python prompt."""
    cut = word.start()
    line = _line(text, begin, whitespace_start)
    before = _line(text, text.rfind("\n", start, begin - 1) + 1 or start, begin - 1) if begin > start else ""
    next_end = text.find("\n", cut, end)
    after = _line(text, text.rfind("\n", start, cut) + 1, end if next_end < 0 else next_end)
    if not before:
        return _first_line_filled(text, end, word, line, after, next_end)
    width = max(len(before), len(after))
    indent = len(line) - len(line.lstrip())
    first_word = len(_FIRST_WORD.match(line).group(1))
    if not MIN_WRAP_WIDTH <= width <= MAX_WRAP_WIDTH or len(line) + 1 + len(word.group()) <= width \
            or len(before) + 1 + first_word <= width or len(after) - len(after.lstrip()) > indent:
        return False
    if _opens_alike(before, text[cut]) and _opens_alike(line, text[cut]) and not _in_capitals(before, line, after):
        return False  # three lines in a row open alike: a list of names, titles, records or JSON keys
    return _prose_line(line, (before, line, after))


def _prose_line(line: str, lines: tuple[str, ...]) -> bool:
    """The last guards of a filled line: it does not end a sentence (in emphasis or quotes, with a colon, a
    docstring), none of ``lines`` (it and its neighbours) is in columns, and it is prose."""
    return (_ENDS_SENTENCE.search(line) is None and not any(map(_COLUMNS.search, lines))
            and _PROSE_LINE.match(line) is not None)


def _first_line_filled(text: str, end: int, word: re.Match, line: str, after: str, after_end: int) -> bool:
    """:func:`_filled` for a paragraph's first line (a blank line or nothing above it): measured against the two
    lines after it instead: the word would not have fit on it at the width of the line after it, and that line is
    filled too (the first word of the third line would not have fit on it, at the wider of the first and third)."""
    if after_end < 0:
        return False
    third_end = text.find("\n", after_end + 1, end)
    third = _line(text, after_end + 1, end if third_end < 0 else third_end)
    if not third.strip():
        return False  # a paragraph of two lines
    width, third_width = len(after), max(len(line), len(third))
    if not (MIN_WRAP_WIDTH <= width <= MAX_WRAP_WIDTH and MIN_WRAP_WIDTH <= third_width <= MAX_WRAP_WIDTH) \
            or len(line) + 1 + len(word.group()) <= width \
            or len(after) + 1 + len(_FIRST_WORD.match(third).group(1)) <= third_width:
        return False
    indent = len(line) - len(line.lstrip())
    if len(after) - len(after.lstrip()) > indent or len(third) - len(third.lstrip()) > indent:
        return False
    first = text[word.start()]
    if _opens_alike(line, first) and _opens_alike(third, first) and not _in_capitals(line, after, third):
        return False  # three lines in a row open alike
    return _prose_line(line, (line, after, third))


#: words a sentence does not end with (English): a line that ends with one runs on, whatever its width
FUNCTION_WORDS = frozenset("the a an of for and or to in on at by with from as into its his her their our whose that "
                           "which".split())


def _after_function_word(text: str, begin: int, whitespace_start: int, cut: int, end: int) -> bool:
    """Whether the line ``text[begin:whitespace_start]`` ends in one of :data:`FUNCTION_WORDS`, a word of its own
    (not the "a" of a path "foo/a"), between lines of prose (:func:`_prose_around`): "... played football for the"
    / "Oregon Webfoots ...". The callers match the next line's word first (no key, list number or code)."""
    tail = text[max(begin, whitespace_start - 7):whitespace_start]  # longer than any function word
    return tail[tail.rfind(" ") + 1:] in FUNCTION_WORDS and _prose_around(text, begin, whitespace_start, cut, end)


def filled_wrap(text: str, start: int, line_start: int, whitespace_start: int, cut: int, end: int) -> bool:
    """Whether the line break at ``whitespace_start``, before a character that is no lower-case letter, is a hard
    wrap (:func:`wrapped`): before a capitalised word (:data:`_CAPITALISED_WORD`), one that opens with a quote, a
    bracket, a backtick or a digit (:data:`_OPENING_WORD`), or a name with digits or capitals inside
    (:data:`_OTHER_CAPITAL_WORD`, between lines of prose), after a filled line (:func:`_filled`) or a line that ends
    in a function word (:func:`_after_function_word`)."""
    first = text[cut]
    if first.isupper():
        words = _CAPITALISED_WORD
    elif first in _OPENINGS or first.isdigit():
        words = _OPENING_WORD
    else:
        return False
    word = wrapped(text, line_start, whitespace_start, cut, end, words)
    other = word is None and words is _CAPITALISED_WORD  # then perhaps a name with digits or capitals ("IL-10")
    if other:
        word = wrapped(text, line_start, whitespace_start, cut, end, _OTHER_CAPITAL_WORD)
    if word is None:
        return False
    # the line's start: in a range that starts inside a line, the range's start (lone CRs: a line of many)
    begin = max(start, text.rfind("\n", start, whitespace_start) + 1)
    if other and not _prose_around(text, begin, whitespace_start, cut, end):
        return False
    # unless the word fits after the line in the narrowest wrap (decided before other lines are read)
    if whitespace_start - begin + 1 + len(word.group()) > MIN_WRAP_WIDTH \
            and _filled(text, start, begin, whitespace_start, end, word):
        return True
    return _after_function_word(text, begin, whitespace_start, cut, end)


def lower_case_wrap(text: str, start: int, line_start: int, whitespace_start: int, cut: int, end: int) -> bool:
    """Whether the line break at ``whitespace_start``, before a lower-case letter, is a hard wrap: before a plain
    word (:func:`wrapped`'s rule), or, after a filled line (:func:`_filled`) between lines of prose
    (:func:`_prose_around`), before any other lower-case word (:data:`_LOWER_CASE_WORD`) or a plain word that also
    opens the line before (the filled line's own checks, three lines that open alike and columns, stand for the
    records check there), or after a line that ends in a function word (:func:`_after_function_word`). It reads the
    break as :func:`wrapped` does, once for all these rules."""
    if text[whitespace_start:cut].strip(" \t") not in _ONE_LINE_BREAK:
        return False
    plain = _PLAIN_WORD.match(text, cut, end)
    word = plain or _LOWER_CASE_WORD.match(text, cut, end)
    if word is None:
        return False
    opening = _opening(text, line_start, whitespace_start)
    if opening is None:
        return False
    if plain is not None and opening != plain.group():
        return True
    begin = max(start, text.rfind("\n", start, whitespace_start) + 1)
    if whitespace_start - begin + 1 + len(word.group()) > MIN_WRAP_WIDTH:  # else it fits in the narrowest wrap
        if not _prose_around(text, begin, whitespace_start, cut, end):
            return False
        if _filled(text, start, begin, whitespace_start, end, word):
            return True
    return _after_function_word(text, begin, whitespace_start, cut, end)
