"""The independent markdown parser and the structure metrics of benchmarks/chunking_markdown.py, on a small
hand-checked document (words stand in for tokens, so no tokenizer is loaded)."""
import importlib.util
import sys
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "chunking_markdown.py"
_spec = importlib.util.spec_from_file_location("chunking_markdown", _SCRIPT)
chunking_markdown = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = chunking_markdown  # its dataclasses look their module up there
_spec.loader.exec_module(chunking_markdown)

TEXT = """# Title

Intro line one
continues here.

<!-- YAML
changes:
  - version: v1
-->

## Setup ##

- item one
  continued
- item two

```py
a = 1
b = 2
```

| h1 | h2 |
|----|----|
| 1  | 2  |
| 3  | 4  |

Sub
---

# C#

~~~
```
# not a heading
~~~
"""


def words(texts):
    return [len(text.split()) for text in texts]


def spans_of(blocks):
    return [TEXT[b.start:b.end] for b in blocks]


def test_parser_finds_headings_fences_tables_and_items_outside_comments_and_fences():
    layout = chunking_markdown.parse_layout(TEXT, words)
    assert spans_of(layout.headings) == ["# Title", "## Setup ##", "Sub\n---", "# C#"]
    # closing #s dropped, "C#" kept; the setext "Sub" is level 2, a sibling of "Setup"
    assert layout.paths == [("Title",), ("Title", "Setup"), ("Title", "Sub"), ("C#",)]
    assert spans_of(layout.fences) == ["```py\na = 1\nb = 2\n```", "~~~\n```\n# not a heading\n~~~"]
    assert [b.tokens for b in layout.fences] == [8, 7]
    assert spans_of(layout.items) == ["- item one\n  continued", "- item two"]  # not the YAML list in the comment
    (table,) = layout.tables
    assert TEXT[table.start:table.end] == "| h1 | h2 |\n|----|----|\n| 1  | 2  |\n| 3  | 4  |"
    assert TEXT[table.start:table.header_end] == "| h1 | h2 |\n|----|----|"
    assert table.tokens == 16


def test_score_counts_cuts_inside_structure():
    layout = chunking_markdown.parse_layout(TEXT, words)
    cuts = [TEXT.index("2\n```"), TEXT.index("| 3"), TEXT.index("Sub"), TEXT.index("~~~")]
    edges = [0, *cuts, len(TEXT)]
    spans = list(zip(edges, edges[1:]))
    # chunks: ...b = |2 ``` | table rows 1-2 | row 3 | Sub --- # C# | ~~~ fence ~~~
    metadata = [{"heading_path": ["Title"]}, {}, {"table_header": "| h1 | h2 |\n|----|----|\n"}, {},
                {"heading_path": ["C#"]}]
    counts = chunking_markdown.score(TEXT, layout, spans, 7, [1] * len(spans), metadata)
    assert counts["cuts"] == 4
    assert counts["cuts_mid_line"] == 1 and counts["cuts_mid_word"] == 0
    assert (counts["large_fence_cuts"], counts["large_fence_cuts_between_lines"]) == (1, 0)
    assert (counts["fences_fit"], counts["fences_fit_whole"]) == (1, 1)  # the ~~~ fence, 7 words
    assert (counts["tables_fit"], counts["split_tables"], counts["table_cuts_between_rows"]) == (0, 1, 1)
    assert (counts["table_continuations"], counts["table_continuations_with_header"]) == (1, 1)
    assert counts["cuts_at_heading"] == 1  # "Sub" starts a chunk
    assert counts["orphan_headings"] == 1  # the chunk ending with "# C#"
    assert counts["cuts_mid_item"] == 0
    assert (counts["heading_paths"], counts["heading_paths_equal"]) == (5, 2)
    assert counts["covered_chars"] == counts["visible_chars"]
    # without metadata a continuation carries the header only in its text, which starts with "| 3"
    plain = chunking_markdown.score(TEXT, layout, spans, 7, [1] * len(spans))
    assert plain["table_continuations_with_header"] == 0


def test_score_flags_a_cut_inside_a_list_item_and_uncovered_text():
    layout = chunking_markdown.parse_layout(TEXT, words)
    inside = TEXT.index("  continued")
    counts = chunking_markdown.score(TEXT, layout, [(0, inside), (inside, TEXT.index("- item two"))], 7, [1, 1])
    assert counts["cuts_mid_item"] == 1 and counts["cuts_mid_line"] == 0
    assert 0 < counts["covered_chars"] < counts["visible_chars"]


def test_locate_searches_forward_past_repeated_text():
    text = "ab\n\nab  ab"
    assert chunking_markdown.locate(text, ["ab", "ab", "ab", "zz"]) == [(0, 2), (4, 6), (8, 10), None]


def test_the_expected_heading_path_of_a_chunk_is_what_encloses_all_of_it_by_depth():
    # headings at 0 (# G), 10 (## Example), 30 (## Example again), 50 (# H)
    layout = chunking_markdown.Layout(path_starts=[0, 10, 30, 50],
                                      paths=[("G",), ("G", "Example"), ("G", "Example"), ("H",)])
    assert layout.enclosing_path(12, 29) == ("G", "Example")
    assert layout.enclosing_path(12, 31) == ("G",)  # two sections of one title: enclosed by their parent only
    assert layout.enclosing_path(12, 51) == ()
