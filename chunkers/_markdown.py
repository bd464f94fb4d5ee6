"""Markdown structure found by line scanning: ATX and setext headings, fenced code blocks and pipe tables.

Used by the recursive chunker to keep code fences and tables whole when they fit, to repeat a split table's
header (in metadata, since chunk text is always an exact slice) and to record each chunk's heading path.

Rules (CommonMark where practical; indentation is counted in characters, a tab as one, except for setext
headings, where a tab counts to the next multiple of 4 as in CommonMark):

- *ATX heading*: 1–6 ``#`` after at most 3 spaces, then a space or tab. An optional closing run of ``#`` is
  dropped from the title only when a space or tab precedes it (or it is the whole title): ``# C#`` is ``C#``,
  ``## Using F# ##`` is ``Using F#``.
- *Setext heading*: a paragraph underlined by a line of only ``=`` (level 1) or only ``-`` (level 2), at least
  2 of them (CommonMark takes 1, but a lone ``=`` or ``-`` line after text is far more often a formula sign
  or a stray bullet in extracted plain text), at most 3 spaces before and any spaces after. The heading starts
  at the paragraph's first line and its title is the whole paragraph, lines stripped and joined by a space
  (CommonMark's reading of a multi-line paragraph). The paragraph runs up from the underline to a blank line,
  an ATX heading, a fence line, a thematic break or another underline. It is no heading when one of its lines
  starts a list item, a block quote, a pipe table row or an HTML tag, or is a table delimiter row, or when its
  first line is indented 4 or more (indented code): with such a line the paragraph may be a list item's or a
  table's, and the underline a thematic break or text, so it is safer to see no heading (a setext heading
  inside a list item is missed). A ``---`` after a blank line is a thematic break, and ``|---|---|`` is never
  an underline.
- *Front matter*: a YAML block opened by ``---`` on the text's first line and closed by ``---`` or ``...``
  holds no heading (its ``---`` is not an underline, its ``# comment`` lines are not headings).
- *Code fence*: a line of 3 or more backticks or tildes (and an info string, which after backticks holds no
  backtick: ```` ```foo``` ```` opening a line is inline code), closed by a line of only the same character, at
  least as many, and spaces (```` ``` js ```` inside a fence is a line of its content). At most 3 spaces of
  indentation at top level. Inside a list item a fence may be indented up to the item's content offset + 3 (the
  offset is where the item's text starts after its marker ``-``, ``*``, ``+``, ``1.`` or ``1)`` and 1–4 spaces);
  the item is the nearest preceding marker line, since the last unindented line, whose content can hold the fence,
  and no line after a blank line in between may be indented less than its offset (that would end the item). An
  opener indented 4 or more elsewhere is the text of an indented code block, not a fence. A closing fence may be
  indented up to 3 at top level, up to the item's content offset + 3 in a list item. Lazy continuation lines (an
  item's paragraph wrapped without indentation) are not followed: after one, only a fence indented at most 3 is
  seen. An unclosed fence runs to the end of the text.
- *Table*: two or more consecutive lines starting with ``|``.
- *Line ends*: LF, CRLF or a lone CR (old Mac files). A lone CR is read as a line feed, so a CR-only text has
  the structure of its LF copy at the same positions (a table header keeps the text's own line ends).

Not parsed: block quotes, HTML blocks, indented code blocks (beyond not mistaking one for a fence).
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+$")
_TABLE = re.compile(r"(?:^[ \t]*\|[^\n]*(?:\n|$)){2,}", re.M)
_UNDERLINE = re.compile(r"\n {0,3}+(={2,}+|-{2,}+)[ \t]*+(?=\r?\n|$)")
_FRONT_MATTER = re.compile(r"---[ \t]*\r?\n(?:[^\n]*\n)*?(?:---|\.\.\.)[ \t]*(?:\r?\n|$)")
_LIST_ITEM = re.compile(r"^([ \t]*)([-*+]|\d{1,9}[.)])([ \t]+|(?=\r?$))([^\n]*)", re.M)
# a line feed and a list item line with spaces and a visible character after its marker (not a NUL: documents
# joined into one text are separated by one, so a document ending in "- " has no list item there)
_LIST_ITEM_WITH_TEXT = re.compile(r"\n[ \t]*+(?:[-*+]|\d{1,9}+[.)])[ \t]++(?=[^\s\x00])")
# Lines that end a paragraph above them (the paragraph starts after such a line) ...
_PARAGRAPH_STOP = re.compile(r"[ \t]*$|[ \t]{0,3}#{1,6}(?:[ \t]|$)|[ \t]*(?:```|~~~)| {0,3}(?:=+|-+)[ \t]*$"
                             r"| {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
# ... and lines after which an underline is no setext heading of a plain paragraph.
_NOT_PLAIN = re.compile(r"[ \t]*(?:[>|<]|(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$))"
                        r"|[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)+\|?[ \t]*$")


@dataclass
class MarkdownStructure:
    """Positions of headings, code fences and tables in one text."""

    heading_starts: list[int] = field(default_factory=list)
    heading_paths: list[tuple[str, ...]] = field(default_factory=list)
    #: where each heading's text begins: the first visible character after the heading (its line; a setext
    #: heading's title and underline), or the text's length
    heading_text_starts: list[int] = field(default_factory=list)
    blocks: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, "code" | "table")
    table_headers: dict[int, str] = field(default_factory=dict)  # table start -> header lines
    _block_starts: list[int] = field(default_factory=list)

    def block_at(self, position: int) -> tuple[int, int, str] | None:
        """The code fence or table containing ``position``, if any."""
        i = bisect.bisect_right(self._block_starts, position) - 1
        if i >= 0 and self.blocks[i][0] <= position < self.blocks[i][1]:
            return self.blocks[i]
        return None


# Line patterns start with a line feed and run over the text with one prepended (:func:`_padded`): the regex engine
# jumps between line feeds instead of trying ``^`` at every position. Their runs are possessive (``*+``, ``{0,3}+``):
# what follows a run can never be matched by giving part of it back, and not trying to makes each 10-30 % faster
# (same matches). No match takes its line's line break: the next line's match starts with it.
#
# The lines that can be structure are found in one pass (40 % faster than a pass for each kind): after the
# indentation (group 1), a fence (group 2: its marker), an ATX heading (3: its hashes, 4: its title, which ends
# before a CRLF's CR), a pipe table line, or a setext underline (5). The first visible character tells them apart,
# so no line could match two branches; the indentation a heading (at most 3) or an underline (at most 3 spaces)
# allows is checked on the match. A lookahead for those first characters turns most lines (text) away before the
# branches are tried one by one: the scan takes 0.6x the time (same matches).
_STRUCTURE_LINE = re.compile(r"\n([ \t]*+)(?=[`~#|=-])(?:(`{3,}+(?=[^`\n]*+(?:\n|$))|~{3,}+)[^\n]*+"
                             r"|(#{1,6})[ \t]+([^\r\n]*+)|\|[^\n]*+|(={2,}+|-{2,}+)[ \t]*+(?=\r?\n|$))")
_FENCE, _HEADING, _UNDERLINE_LINE = 2, 4, 5  # a match's lastindex for each kind (1: a pipe table line)
_UNINDENTED_LINE = re.compile(r"\n(?=[^ \t\r\n])")
_VISIBLE = re.compile(r"\S")
_LONE_CR = re.compile(r"\r(?!\n)")


def with_line_feeds(text: str) -> str:
    """``text`` with every lone CR (an old Mac line end) made a line feed: same length, so the positions found
    in it are the text's own; a CRLF is left as it is (the patterns allow its CR)."""
    return _LONE_CR.sub("\n", text) if "\r" in text else text


def _padded(text: str) -> str:
    """``text`` after a line feed, for the line patterns: a match's start in it is its line's start in ``text``,
    its end one past the end in ``text``."""
    return "\n" + text


def _line_starts(probe: re.Pattern, text: str) -> list[int]:
    """Starts of the lines whose beginning matches ``probe`` (a line pattern)."""
    return [m.start() for m in probe.finditer(_padded(text))]


def _tables(text: str, pipe_lines: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Runs of two or more consecutive lines starting with ``|`` (what ``_TABLE.finditer`` finds), from the pipe
    table lines' ``(start, end)`` (their line break not included)."""
    runs: list[tuple[int, int]] = []
    first = last_end = -1
    count = 0
    for start, end in pipe_lines:
        if count and start == last_end + 1:
            count += 1
        else:
            if count >= 2:
                runs.append((first, min(len(text), last_end + 1)))
            first, count = start, 1
        last_end = end
    if count >= 2:
        runs.append((first, min(len(text), last_end + 1)))
    return runs


def _has_fence_marker(text: str) -> bool:
    # A one-character search first: `"```" in text` scans a long text 40x slower than `"`" in text` (memchr).
    return ("`" in text and "```" in text) or ("~" in text and "~~~" in text)


@lru_cache(maxsize=64)
def _shallower_line(offset: int) -> re.Pattern:
    """A non-blank line indented fewer than ``offset`` characters (``offset`` ≥ 1) after a blank line (right
    after a paragraph line it may be a lazy continuation line)."""
    return re.compile(r"\n[ \t]*\r?\n[ \t]{0,%d}[^ \t\r\n]" % (offset - 1))


def list_item_starts(text: str) -> list[int]:
    """Where the list items of ``text`` with text right after their marker's spaces start (their line's start):
    the lines :data:`_LIST_ITEM` matches with spaces and then a visible character after the marker, found from
    line feed to line feed (:func:`_line_starts`; 3x faster than ``^`` tried at every position)."""
    return _line_starts(_LIST_ITEM_WITH_TEXT, with_line_feeds(text))


def list_item_starts_inside(line_feed_text: str, start: int, end: int) -> list[int]:
    """The :func:`list_item_starts` strictly inside ``(start, end)``, found by scanning only from ``start``, in a
    text whose line ends are line feeds (:func:`with_line_feeds`). No match crosses a line feed, so the matches
    from ``start`` on are the whole text's."""
    out = []
    for match in _LIST_ITEM_WITH_TEXT.finditer(line_feed_text, start):
        if match.start() + 1 >= end:
            break
        out.append(match.start() + 1)  # the line after the line feed
    return out


def _content_offset(item: re.Match) -> int:
    """Where a list item's content starts (CommonMark: after the marker and 1–4 spaces; marker width + 1 when
    the item's line is otherwise blank or 5 or more spaces follow the marker)."""
    marker_end = len(item.group(1)) + len(item.group(2))
    spaces = len(item.group(3))
    if not item.group(4).strip() or spaces > 4:
        return marker_end + 1
    return marker_end + spaces


class _ListContext:
    """The content offset of the list item holding a line, for fences indented 4 or more (found lazily: most
    texts have no such line)."""

    def __init__(self, text: str):
        self.text = text
        self.unindented = [0] + [m.end() for m in _UNINDENTED_LINE.finditer(text)]

    def item_offset(self, line_start: int, indent: int) -> int | None:
        """The content offset of the list item whose content may hold a fence indented ``indent`` at
        ``line_start`` (within offset + 3), or None when the line is no list item's content."""
        text = self.text
        since = self.unindented[bisect.bisect_right(self.unindented, line_start - 1) - 1]
        for item in reversed(list(_LIST_ITEM.finditer(text, since, line_start))):
            offset = _content_offset(item)
            if indent < offset:
                continue  # not this item's content (that item has ended): an outer item's, perhaps
            if indent > offset + 3:
                return None  # an indented code block inside this item
            if offset > 1 and _shallower_line(offset).search(text, item.end(), line_start - 1):
                continue  # a line in between closed this item
            return offset
        return None


def _fence_ranges(text: str, fence_lines: list[tuple[int, int, str, int, bool]]) -> list[tuple[int, int]]:
    """``(start, end)`` of the code fences, from the fence lines' ``(start, indentation, marker, end, bare)``
    (``end`` past the line's line break, or the text's length; ``bare``: nothing but spaces after the marker, as a
    closing fence must be)."""
    ranges = []
    opening = None  # (start, marker, most indentation of its closing fence)
    lists = None
    for start, indent, marker, end, bare in fence_lines:
        if opening is None:
            if indent <= 3:
                opening = (start, marker, 3)
                continue
            lists = lists or _ListContext(text)
            offset = lists.item_offset(start, indent)
            if offset is not None:
                opening = (start, marker, offset + 3)
        elif bare and marker[0] == opening[1][0] and len(marker) >= len(opening[1]) and indent <= opening[2]:
            ranges.append((opening[0], end))
            opening = None
    if opening is not None:  # an unclosed fence runs to the end of the text
        ranges.append((opening[0], len(text)))
    return ranges


def _front_matter_end(text: str) -> int:
    """The end of a YAML front matter block opening the text (0 when there is none)."""
    if not text.startswith("---"):
        return 0
    match = _FRONT_MATTER.match(text)
    return match.end() if match else 0


def _atx_title(raw: str) -> str:
    title = raw.strip()
    return _CLOSING_HASHES.sub("", title).strip() if title.endswith("#") else title


def _setext_paragraph(text: str, line_feed: int, floor: int) -> tuple[int, str] | None:
    """The start and title of the setext heading whose underline follows the line feed at ``line_feed`` (its
    paragraph starting at or after ``floor``), or None when the lines above are no plain paragraph (rules:
    module docstring)."""
    lines: list[tuple[int, str]] = []
    end = line_feed
    while end >= floor:
        previous = text.rfind("\n", floor, end)  # the line feed before the line ending at ``end``
        start = previous + 1 if previous >= 0 else floor
        line = text[start:end].rstrip("\r")
        if _PARAGRAPH_STOP.match(line):
            break
        if _NOT_PLAIN.match(line):
            return None
        lines.append((start, line))
        if previous < 0:
            break
        end = previous
    if not lines:
        return None
    first_start, first_line = lines[-1]
    indent = first_line[:len(first_line) - len(first_line.lstrip(" \t"))]
    if len(indent.expandtabs(4)) > 3:
        return None  # an indented code block (a tab counts to the next multiple of 4)
    return first_start, " ".join(line.strip() for _, line in reversed(lines))


def _setext_headings(text: str, floor: int, in_fence,
                     underlines: list[tuple[int, int, int]]) -> list[tuple[int, int, str, int]]:
    """(start, level, title, end) of the setext headings starting at or after ``floor`` (a line start), from the
    underlines' ``(start, level, end)``."""
    out = []
    for start, level, end in underlines:
        if start < floor or in_fence(start):
            continue
        paragraph = _setext_paragraph(text, start - 1, floor)
        if paragraph is not None:
            out.append((paragraph[0], level, paragraph[1], end))
    return out


def _structure_lines(text: str):
    """The fence lines ``(start, indentation, marker, end, bare)``, ATX heading lines ``(start, level, raw title,
    title end)``, pipe table lines ``(start, end)`` and setext underlines ``(start, level, end)`` of ``text``, in
    one scan of :data:`_STRUCTURE_LINE` over the text after a line feed (the regex engine jumps from line feed to
    line feed instead of trying ``^`` at every position). Positions are the text's; a fence line's end is past its
    line break."""
    padded = _padded(text)
    fences, headings, pipes, underlines = [], [], [], []
    for m in _STRUCTURE_LINE.finditer(padded):
        kind = m.lastindex
        if kind == _FENCE:
            end = m.end() if padded.startswith("\n", m.end()) else len(text)  # past the line break
            fences.append((m.start(), len(m.group(1)), m.group(2), end, not padded[m.end(2):m.end()].strip()))
        elif kind == _HEADING:
            if len(m.group(1)) <= 3:
                headings.append((m.start(), len(m.group(3)), m.group(4), m.end() - 1))
        elif kind == _UNDERLINE_LINE:
            indent = m.group(1)
            # not on the first line (no paragraph above it)
            if m.start() and len(indent) <= 3 and "\t" not in indent:
                underlines.append((m.start(), 1 if m.group(5)[0] == "=" else 2, m.end() - 1))
        else:
            pipes.append((m.start(), m.end() - 1))
    return fences, headings, pipes, underlines


def _may_have_structure(text: str) -> bool:
    """False when ``text`` has no marker of any structure (a quick test: most plain texts)."""
    return ("#" in text or "|" in text or _has_fence_marker(text)
            or (("=" in text or "-" in text) and _UNDERLINE.search(text) is not None))


def parse_markdown(text: str) -> MarkdownStructure:
    source, text = text, with_line_feeds(text)
    structure = MarkdownStructure()
    if not _may_have_structure(text):
        return structure
    fence_lines, heading_lines, pipe_lines, underlines = _structure_lines(text)
    fences = _fence_ranges(text, fence_lines) if fence_lines else []
    fence_starts = [a for a, _ in fences]

    def in_fence(pos: int) -> bool:
        i = bisect.bisect_right(fence_starts, pos) - 1
        return i >= 0 and fences[i][0] <= pos < fences[i][1]

    front_matter = _front_matter_end(text)
    headings = [(start, level, _atx_title(title), end) for start, level, title, end in heading_lines
                if start >= front_matter and not in_fence(start)]
    setext = _setext_headings(text, front_matter, in_fence, underlines)
    if setext:
        headings = sorted(headings + setext)
    levels: list[int] = []  # of the headings enclosing the current one, outermost first
    titles: list[str] = []
    for start, level, title, end in headings:
        while levels and levels[-1] >= level:
            levels.pop()
            titles.pop()
        levels.append(level)
        titles.append(title)
        structure.heading_starts.append(start)
        structure.heading_paths.append(tuple(titles))
        visible = _VISIBLE.search(text, end)
        structure.heading_text_starts.append(visible.start() if visible else len(text))

    blocks = [(a, b, "code") for a, b in fences]
    for start, end in _tables(text, pipe_lines):
        if in_fence(start):
            continue
        blocks.append((start, end, "table"))
        # the header row, and the delimiter row when the second line has a "-" (a table has two lines at least)
        first_end = text.find("\n", start, end)
        second_end = text.find("\n", first_end + 1, end)
        second_end = end if second_end < 0 else second_end
        header_end = second_end if text.find("-", first_end + 1, second_end) >= 0 else first_end
        # the source's own line ends (a lone CR stays a CR), without the CR of a final CRLF
        structure.table_headers[start] = source[start:header_end].rstrip("\r")
    structure.blocks = sorted(blocks)
    structure._block_starts = [b[0] for b in structure.blocks]
    return structure


def joined_structure(structures: Sequence[MarkdownStructure], starts: Sequence[int]) -> MarkdownStructure:
    """The structure of texts joined into one (:func:`chunkers._batches.joined_documents`), each parsed on its own
    and starting at ``starts[k]`` in the joined text: positions moved there, in order."""
    joined = MarkdownStructure()
    for structure, start in zip(structures, starts):
        joined.heading_starts.extend(position + start for position in structure.heading_starts)
        joined.heading_paths.extend(structure.heading_paths)
        joined.heading_text_starts.extend(position + start for position in structure.heading_text_starts)
        joined.blocks.extend((a + start, b + start, kind) for a, b, kind in structure.blocks)
        joined.table_headers.update((position + start, header) for position, header in structure.table_headers.items())
    joined._block_starts = [block[0] for block in joined.blocks]
    return joined


#: ``metadata["language"]`` values read for markdown structure (any case, spaces around): markdown and the names
#: of plain text (QA: "txt", "plaintext" or "" were read as code, without headings or tables)
MARKDOWN_LANGUAGES = ("markdown", "md", "text", "txt", "plaintext", "plain", "")


def is_markdown_language(language) -> bool:
    """Whether a document whose ``metadata["language"]`` is ``language`` is read for markdown structure: none
    given, one of :data:`MARKDOWN_LANGUAGES`; not code (``# comment`` is not a heading)."""
    return language is None or isinstance(language, str) and language.strip().lower() in MARKDOWN_LANGUAGES
