"""How the recursive chunker reads markdown structure (chunkers/_markdown.py): fences inside list items,
ATX titles ending in ``#``, setext headings, and what is *not* structure (indented code, thematic breaks,
table delimiter rows, front matter); CR-only line ends (old Mac files) read as line feeds."""
from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chunkers import get_chunker
from chunkers._block_rules import before_last_line_break
from chunkers._markdown import list_item_starts, parse_markdown
from chunkers._sentences import sentence_cuts
from chunkers._splitter import RecursiveSplitter
from rag.tokens import get_tokenizer

LIST_FENCE = ("1. Send the pre-alert, word for word:\n\n"
              "    ```text\n    Dear all,\n\n    the release is on Monday.\n    ```\n")
FENCE = "```text\n    Dear all,\n\n    the release is on Monday.\n    ```\n"


def recursive(size, **params):
    return get_chunker("recursive", chunk_size=size, **params)


def headings(text):
    structure = parse_markdown(text)
    return [(text[start:].split("\n", 1)[0], path) for start, path in zip(structure.heading_starts,
                                                                           structure.heading_paths)]


def test_a_fence_indented_inside_a_list_item_is_kept_whole_when_it_fits():
    chunks = recursive(20).chunk_text(LIST_FENCE)
    assert any(FENCE in c.text for c in chunks), [c.text for c in chunks]
    start = LIST_FENCE.index("    ```text")
    assert parse_markdown(LIST_FENCE).blocks == [(start, len(LIST_FENCE), "code")]


@pytest.mark.parametrize("text", [
    "* `linker` {Function}\n  * `specifier` {string} The module:\n    ```mjs\n    import foo from 'foo';\n\n    ```\n",
    "- step\n\n  more about it\n\n     ```\n     make\n     ```\n",  # content offset 2: a fence up to 5 spaces
])
def test_nested_and_multi_paragraph_list_items_hold_indented_fences(text):
    (start, end, kind), = parse_markdown(text).blocks
    assert kind == "code" and text[start:end].lstrip().startswith("```") and end == len(text)


def test_inline_code_opens_no_fence_and_a_fence_line_with_an_info_string_closes_none():
    # QA: "```foo``` is ..." opened a fence that swallowed the rest of the document (its headings lost), and
    # "``` js" inside a fence closed it (the fence's "# comment" became a heading)
    inline = "# A\n\n```foo``` is inline code.\n\n## B\n\ntext\n"
    structure = parse_markdown(inline)
    assert structure.blocks == [] and structure.heading_paths == [("A",), ("A", "B")]
    fence = "# A\n\n```\ncode\n``` js\n# inside still\n```\n\n## B\n\ntext\n"
    structure = parse_markdown(fence)
    assert structure.blocks == [(5, fence.index("\n\n## B") + 1, "code")]
    assert structure.heading_paths == [("A",), ("A", "B")]


@pytest.mark.parametrize("text", [
    "Example:\n\n    ```\n    code\n\n    more\n    ```\n\nAfter.\n",  # top level: an indented code block
    "- item\n\n        ```\n        code\n        ```\n",  # past the item's content offset + 3: indented code
    "1. Item\n\nA paragraph ends the list.\n\n    ```\n    code\n    ```\n",
])
def test_backticks_in_an_indented_code_block_open_no_fence(text):
    assert parse_markdown(text).blocks == []


@pytest.mark.parametrize("line, title", [
    ("# C#", "C#"), ("## Using F# ##", "Using F#"), ("### Title ###   ", "Title"), ("# Issue #12", "Issue #12"),
    ("## Escaped \\#", "Escaped \\#"),
])
def test_an_atx_title_keeps_a_hash_not_preceded_by_a_space(line, title):
    chunks = recursive(50).chunk_text(f"{line}\n\nText.\n")
    assert chunks[0].metadata["heading_path"] == [title]


SETEXT = ("Guide\n=====\n\nIntro paragraph about the guide, long enough to fill a chunk of its own here.\n\n"
          "Install\n-------\nRun pip install ragloom to get it, then read on for the details.\n\n"
          "### Options\n\nSome options.\n\n"
          "Use\n---\n\nCall it.\n\n"
          "Reference\n=========\n\nThe end.\n")


def test_setext_headings_start_chunks_and_nest_with_atx_headings():
    assert headings(SETEXT) == [
        ("Guide", ("Guide",)), ("Install", ("Guide", "Install")), ("### Options", ("Guide", "Install", "Options")),
        ("Use", ("Guide", "Use")), ("Reference", ("Reference",))]
    chunks = recursive(25, pack_sections=False).chunk_text(SETEXT)
    starts = {c.text.split("\n", 1)[0]: c.metadata["heading_path"] for c in chunks}
    assert starts["Install"] == ["Guide", "Install"] and starts["Use"] == ["Guide", "Use"]
    assert starts["Reference"] == ["Reference"]
    for c in chunks:  # the text line of a setext heading only ever opens a chunk, with its underline
        assert all(line not in ("Install", "Use", "Reference") for line in c.text.split("\n")[1:]), c.text


def test_a_multi_line_paragraph_underlined_is_one_heading_from_its_first_line():
    text = "Intro.\n\nRelease notes\nfor 1.0\n-------\n\nBody.\n"
    assert headings(text) == [("Release notes", ("Release notes for 1.0",))]


@pytest.mark.parametrize("text", [
    "Some text.\n\n---\n\nMore text.\n",  # after a blank line: a thematic break
    "- item one\n---\n",  # after a list item: a thematic break
    "> quoted\n---\n",
    "    indented code\n---\n",
    "```\nTitle\n---\n```\n",  # inside a fence
    "| a | b |\n|---|---|\n| 1 | 2 |\n",  # a table's delimiter row
    "a | b\n--|--\n1 | 2\n",
    "Term\n=\n",  # one character: a formula sign more often than an underline (see the module doc)
])
def test_lines_that_are_no_setext_underline(text):
    assert headings(text) == []


def test_front_matter_holds_no_heading():
    text = "---\ntitle: Guide\n# a YAML comment\nlayout: page\n---\n\nBody text.\n\nSection\n-------\n\nMore.\n"
    assert headings(text) == [("Section", ("Section",))]
    assert recursive(50).chunk_text(text)[0].metadata.get("heading_path") is None


def test_a_heading_title_ends_at_a_carriage_return():
    # CR-only line ends: the title ran to the next line feed, i.e. the whole document, on every chunk
    text = "# Intro\rFirst section body. It goes on.\r\r## Details\rSecond section body here.\r"
    assert parse_markdown(text).heading_paths[0] == ("Intro",)


CR_DOC = ("# Guide\n\nWhat the guide covers, in one paragraph of plain text.\n\n"
          "## Install\n\nRun the installer:\n\n```sh\npip install ragloom\n# a comment, no heading\n```\n\n"
          "## Options\n\n| name | value |\n|---|---|\n" + "".join(f"| option {i} | value {i} |\n" for i in range(12))
          + "\nSetup\n-----\n\n- first step\n- second step\n")


def cr_only(text):
    return text.replace("\n", "\r")


def structure_of(text):
    structure = parse_markdown(text)
    return (structure.heading_starts, structure.heading_paths, structure.heading_text_starts, structure.blocks,
            list(structure.table_headers), list_item_starts(text))


@pytest.mark.parametrize("text", [
    CR_DOC, SETEXT, LIST_FENCE,
    "---\ntitle: Guide\n# a YAML comment\n---\n\nSection\n-------\n\nMore.\n",
    "* `linker` {Function}\n  * `specifier` {string} The module:\n    ```mjs\n    import foo from 'foo';\n\n    ```\n",
    "Intro.\n\nRelease notes\nfor 1.0\n-------\n\n## Closing #\n",
])
def test_cr_only_text_has_the_structure_of_its_lf_copy(text):
    assert structure_of(text)[0] or structure_of(text)[3]  # something to find
    assert structure_of(cr_only(text)) == structure_of(text)


def test_cr_only_document_chunks_like_its_lf_copy():
    # sections packed together follow the token counts, which differ ("\r\r" is not "\n\n"): compared without
    lf = recursive(30, pack_sections=False).chunk_text(CR_DOC)
    cr = recursive(30, pack_sections=False).chunk_text(cr_only(CR_DOC))
    # a split table's header in metadata is the document's own text, CR line end included (as CRLF keeps its CR)
    headers = {c.metadata.pop("table_header") for c in cr if "table_header" in c.metadata}
    assert headers == {"| name | value |\r|---|---|"}
    assert sum("table_header" in c.metadata for c in lf) >= 2  # the table is split at its rows (line starts)
    for c in lf:
        c.metadata.pop("table_header", None)
    assert [(c.start, c.end, c.metadata) for c in cr] == [(c.start, c.end, c.metadata) for c in lf]


LINES = "A first line with no period\nA second one. Dr. Who\nthird line\n\n  Etc.\nA last line.\n"


def test_a_lone_cr_ends_a_sentence_as_a_line_feed_does():
    # (69: the line break after "Etc." ends its sentence too, as a line break before a capital does; "third line"
    # goes on from "Dr. Who": a hard wrap)
    assert sentence_cuts(cr_only(LINES)) == sentence_cuts(LINES) == [28, 42, 64, 69]
    assert sentence_cuts("One line\r\nTwo. Three\r\n\r\nFour\rFive") == [10, 15, 24, 29]  # a CRLF: one break


def test_a_lone_cr_starts_a_line_for_the_splitter_as_a_line_feed_does():
    tokenizer = get_tokenizer()
    lf = RecursiveSplitter(LINES, tokenizer).line_starts.tolist()
    assert RecursiveSplitter(cr_only(LINES), tokenizer).line_starts.tolist() == lf
    assert RecursiveSplitter("a\r\nb\rc\nd\r", tokenizer).line_starts.tolist() == [3, 5, 7, 9]  # a CRLF: after its LF


PARAGRAPHS = "First paragraph, one line.\n\nSecond paragraph\nover two lines.\n \n\t\nThird, after blank lines.\n"


def test_a_lone_cr_ends_paragraphs_for_the_splitter_as_a_line_feed_does():
    tokenizer = get_tokenizer()
    lf = RecursiveSplitter(PARAGRAPHS, tokenizer)
    cr = RecursiveSplitter(cr_only(PARAGRAPHS), tokenizer)
    assert cr.blank_line_ends(0, len(PARAGRAPHS)) == lf.blank_line_ends(0, len(PARAGRAPHS)) == [28, 65]
    crlf = PARAGRAPHS.replace("\n", "\r\n")
    assert RecursiveSplitter(crlf, tokenizer).blank_line_ends(0, len(crlf)) == [30, 71]
    # a fence that fits only without its final line break ends before it, CR or LF
    fence = "Text before.\n\n```\ncode\n```\n\nAfter."
    for text in (fence, cr_only(fence)):
        assert before_last_line_break(RecursiveSplitter(text, tokenizer), 14, 27) == 26


def test_cr_only_paragraphs_are_kept_whole_by_the_sentence_chunker():
    text = "Cats purr. Dogs bark. Birds sing.\n\nFish swim. Frogs jump. Bees hum.\n"
    for source in (text, cr_only(text)):
        # greedy packing would take "Fish swim." into the first chunk; each paragraph fits, so neither is cut
        chunks = get_chunker("sentence", chunk_size=18).chunk_text(source)
        assert [(c.start, c.end) for c in chunks] == [(0, 35), (35, 68)]


# ---------------------------------------------------------------- small sections packed together (pack_sections)

FAQ = "# FAQ\n\nQuestions people ask.\n\n" + "".join(
    f"## Question {i}\n\nA short answer number {i}.\n\n" for i in range(12))


def test_small_whole_sections_share_a_chunk_and_every_chunk_ends_where_a_section_does():
    packed, apart = recursive(60).chunk_text(FAQ), recursive(60, pack_sections=False).chunk_text(FAQ)
    assert len(apart) == 13 and len(packed) <= 4  # one chunk per heading, or full chunks of whole sections
    section_edges = set(parse_markdown(FAQ).heading_starts) | {len(FAQ)}
    for c in packed:
        assert c.token_count <= 60 and c.end in section_edges  # no section is cut
    assert packed[0].metadata["heading_path"] == ["FAQ"]  # the headings enclosing all of the chunk
    assert all(c.metadata["heading_path"] == ["FAQ"] for c in packed[1:])


def test_without_pack_sections_every_heading_starts_a_chunk_even_when_the_document_fits_whole():
    # QA: a document under chunk_size came back as one chunk holding every section, with no heading path
    text = "# Install\n\nRun pip install ragloom.\n\n# Usage\n\nCall ragloom index.\n\n# License\n\nApache-2.0.\n"
    for size in (12, 200):
        chunks = recursive(size, pack_sections=False).chunk_text(text)
        assert [c.metadata["heading_path"] for c in chunks] == [["Install"], ["Usage"], ["License"]]
    assert len(recursive(200).chunk_text(text)) == 1  # packed, they share one


def test_with_overlap_a_small_section_keeps_the_chunk_that_opens_it():
    # QA: the next chunk, extended back over the whole small section, held it and the section's chunk was dropped
    text = ("# Intro\n\nShort intro.\n\n# Install\n\n" + "Run the installer and wait for it to finish. " * 8 +
            "\n\n# Usage\n\n" + "Call the tool with a path and read the report. " * 8 + "\n")
    for pack_sections in (True, False):
        chunks = recursive(64, overlap=16, pack_sections=pack_sections).chunk_text(text)
        assert chunks[0].text == "# Intro\n\nShort intro.\n\n" and chunks[0].metadata["heading_path"] == ["Intro"]
        assert chunks[1].start > 0 and chunks[1].metadata["heading_path"] == ["Install"]
        for c in chunks:
            assert c.token_count <= 64


def test_overlap_never_starts_inside_a_heading_or_at_a_closing_fence():
    # QA: repeated text opened with a setext underline cut from its title, or with a stray closing fence
    setext = ("% Rust Release Notes\n\nVersion 1.95 (2026-04-16)\n==========================\n\n"
              "<a id=\"1.95-Language\"></a>\n\nLanguage\n--------\n- [Stabilize `if let` guards on match arms]"
              "(https://github.com/rust-lang/rust/")
    fence = "Intro line.\n\n```python\n" + "".join(f"value_{i} = compute({i})\n" for i in range(12)) + "```\n\n" + \
        "After the fence comes plain text that goes on for a while. " * 6
    closing = fence.index("```\n\nAfter")
    for size, overlap in ((64, 16), (40, 10), (30, 12), (20, 8)):  # (20, 8) started a chunk at the closing fence
        for c in recursive(size, overlap=overlap).chunk_text(setext):
            assert not c.text.lstrip("\n").startswith(("===", "---")) and c.token_count <= size
        for c in recursive(size, overlap=overlap).chunk_text(fence):
            assert c.start != closing and c.token_count <= size


def test_the_heading_path_of_packed_sections_follows_nesting_not_titles():
    # two sections titled "Example", one after the other: one chunk holds both, enclosed by "Guide" only
    text = "# Guide\n\n## Example\n\nFirst one.\n\n## Example\n\nSecond one.\n"
    (chunk,) = recursive(100).chunk_text(text)
    assert chunk.metadata["heading_path"] == ["Guide"]
    (chunk,) = recursive(100).chunk_text("## Example\n\nFirst one.\n\n## Example\n\nSecond one.\n")
    assert "heading_path" not in chunk.metadata


def test_a_section_too_big_to_join_whole_starts_its_own_chunk():
    text = "# A\n\nShort.\n\n# B\n\n" + "Long sentence about B goes here. " * 20 + "\n"
    chunks = recursive(60).chunk_text(text)
    assert chunks[0].text == "# A\n\nShort.\n\n" and chunks[1].text.startswith("# B")
    # a bare parent heading is not left at the end of a chunk of packed sections
    nested = "# A\n\nShort.\n\n# B\n\n## B.1\n\nShort too.\n\n## B.2\n\n" + "A long sentence on B. " * 20
    assert not any(c.text.rstrip().endswith("# B") for c in recursive(60).chunk_text(nested))


@pytest.mark.parametrize("body", [
    "Long sentence about B goes here. " * 20,  # one paragraph line: cut at sentences
    "Long sentence about B goes here.\n" * 20,  # a block of lines: cut at lines
    "- Long sentence about B goes here.\n" * 20,  # a list: cut at items
], ids=["sentences", "lines", "items"])
def test_a_heading_stays_with_the_first_piece_of_a_block_too_big_to_follow_it_whole(body):
    # (with the pieces packed below the heading first, a heading of a few tokens fitted next to the first one
    # only by chance: a piece of 57 tokens left room for "## B", not for "## Part B.1")
    for text in ("# A\n\nShort.\n\n## Part B.1\n\n" + body + "\n", "## Part B.1\n" + body + "\nMore.\n"):
        chunks = recursive(60).chunk_text(text)
        heading = next(c for c in chunks if "## Part B.1" in c.text)
        assert "Long sentence" in heading.text, [c.text for c in chunks]  # not a chunk of its own


@pytest.mark.parametrize("text, path", [
    (" # A\n\n## B\n\ntext b\n", ["A", "B"]),  # a bare heading indented by a space starts the chunk
    ("  A\n===\nB\n---\ntext b\n", ["A", "B"]),  # setext, indented
    (" ## X\n\n# Y\n\n### Z\n\ntext\n", ["Y", "Z"]),
])
def test_the_heading_path_of_a_chunk_starting_with_an_indented_bare_heading_is_its_texts(text, path):
    for pack_sections in (True, False):
        (chunk,) = recursive(200, pack_sections=pack_sections).chunk_text(text)
        assert chunk.metadata["heading_path"] == path


def test_with_overlap_the_heading_path_is_that_of_the_text_a_chunk_adds_not_of_the_overlap_it_repeats():
    text = ("# Guide\n\n## Install\n\nRun the installer and wait. " + "It copies files. " * 6 +
            "\n\n## Usage\n\nCall the tool with a path. " + "It prints a report. " * 6 + "\n")
    for pack_sections in (True, False):
        chunks = recursive(40, overlap=10, pack_sections=pack_sections).chunk_text(text)
        usage = next(c for c in chunks if "## Usage" in c.text)
        assert usage.text.startswith("It copies files.")  # the overlap, from the section before
        assert usage.metadata["heading_path"] == ["Guide", "Usage"]


def test_a_heading_whose_next_paragraph_fits_alone_but_not_with_it_goes_with_its_first_piece():
    text = "# Title\n\nintro.\n\n## Heading two\n\n" + " ".join(["word"] * 17) + ".\n\n## Next\n\nmore.\n"
    for pack_sections in (True, False):
        chunks = recursive(20, pack_sections=pack_sections).chunk_text(text)
        heading = next(c for c in chunks if "## Heading two" in c.text)
        assert heading.text.startswith("## Heading two\n\nword word"), [c.text for c in chunks]
    # a code fence that fits alone stays whole, the heading apart (as before)
    fence = "```\n" + "x = 1\n" * 3 + "```\n"  # 19 tokens, 23 with the heading
    chunks = recursive(20).chunk_text("# Title\n\nintro.\n\n## Heading two\n\n" + fence)
    assert fence in [c.text for c in chunks]


def test_a_run_of_bare_headings_too_long_for_one_chunk_is_packed_not_split_into_one_chunk_each():
    text = "".join(f"## Heading number {i}\n\n" for i in range(10)) + "Lorem ipsum dolor sit amet, elit. " * 3
    for pack_sections in (True, False):
        chunks = recursive(20, pack_sections=pack_sections).chunk_text(text)
        assert [c.text.count("## ") for c in chunks[:3]] == [3, 3, 3]  # was one heading per chunk
        assert chunks[3].text.startswith("## Heading number 9\n\nLorem")  # the last keeps its text
    # a sub-heading is never taken away from its text: the parent stays alone when both do not fit with it
    alone = recursive(20).chunk_text("# Part\n\n## Chapter\n\n" + "Long sentence about the chapter here. " * 10)
    assert alone[0].text == "# Part\n\n" and alone[1].text.startswith("## Chapter\n\nLong sentence")


@pytest.mark.parametrize("pack_sections", [True, False])
def test_blank_lines_before_the_first_heading_open_its_chunk(pack_sections):
    # QA: a whitespace-only chunk ending at the first heading got the path of the document's *last* heading;
    # then it got none, and it was still a chunk without content
    from rag.types import Document

    text = "\n# Intro\n\n" + "This is the introduction. " * 30 + "\n\n# Appendix\n\nBye.\n"
    chunks = recursive(128, pack_sections=pack_sections).chunk(Document("d", text))
    assert chunks[0].text.startswith("\n# Intro\n\nThis is")
    assert chunks[0].metadata["heading_path"] == ["Intro"]
    if not pack_sections:  # (packed, the last chunk holds the end of Intro and all of Appendix: no common path)
        assert chunks[-1].metadata["heading_path"] == ["Appendix"]


@pytest.mark.parametrize("language", [None, "markdown", "Markdown", " MD ", "md", "text", "txt", "PlainText",
                                      "plain", ""])
def test_markdown_is_read_for_any_spelling_of_markdown_and_by_the_ast_fallback(language):
    # QA: "Markdown" or " markdown" turned markdown off in recursive, and the ast chunker's fallback for "md" too
    from rag.types import Document

    text = "# Title\n\n" + "Some words here. " * 40 + "\n\n## Part\n\nMore words.\n"
    metadata = {} if language is None else {"language": language}
    for chunker in (recursive(60), get_chunker("ast", chunk_size=60)):
        chunks = chunker.chunk(Document("d", text, metadata))
        assert chunks[0].metadata["heading_path"] == ["Title"], chunker  # (none when not read as markdown)


def test_a_parameter_called_name_is_an_unknown_key_not_a_type_error():
    from rag.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown key 'name'"):
        get_chunker("token", name="x")


@pytest.mark.parametrize("overlap", [0, 10, 40])
def test_a_fence_that_fits_the_chunk_size_stays_whole_with_overlap(overlap):
    # QA: with overlap, blocks were packed to chunk_size - overlap, so a fence that fit chunk_size was cut
    from rag.types import Document

    fence = "```python\n" + "".join(f"x{i} = {i}\n" for i in range(12)) + "```\n"  # 77 tokens
    text = "Intro paragraph.\n\n" + fence + "\nOutro paragraph, a few more words here.\n"
    document = Document("d", text)
    chunks = recursive(80, overlap=overlap).chunk(document)
    a = text.index(fence)
    assert any(c.start <= a and c.end >= a + len(fence) for c in chunks)
    assert all(c.token_count <= 80 and text[c.start:c.end] == c.text for c in chunks)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)


@pytest.mark.parametrize("overlap", [10, 40])
def test_with_overlap_a_fence_with_room_only_without_its_last_line_break_stays_whole(overlap):
    # QA: with overlap a fence needs a token of room, counted with its last line break: one of exactly
    # chunk_size - 1 tokens without it was cut (19 of the 35 fences cut in the markdown checker's 228 files)
    fence = "```python\n" + "".join(f"x{i} = {i}\n" for i in range(12)) + "```\n"  # 77 tokens, 76 without "\n"
    text = "Intro paragraph.\n\n" + fence + "\nOutro paragraph, a few more words here.\n"
    chunks = recursive(77, overlap=overlap).chunk_text(text)
    a = text.index(fence)
    assert any(c.start <= a and c.end >= a + len(fence) - 1 for c in chunks)
    assert all(c.token_count <= 77 and text[c.start:c.end] == c.text for c in chunks)
    assert not any(c.text.isspace() for c in chunks)


@pytest.mark.parametrize("pack_sections", [True, False])
def test_a_fence_that_fits_only_without_its_last_line_break_stays_whole_before_a_heading(pack_sections):
    # QA: with a heading after it, such a fence was cut before its closing line ("```\n" opened the heading's
    # chunk); its line break now opens the heading's chunk, which keeps its heading path
    fence = "```python\n" + "".join(f"x{i} = {i}\n" for i in range(12)) + "```\n"  # 77 tokens, 76 without "\n"
    text = "Intro paragraph.\n\n" + fence + "\n# Next\n\nSome text here.\n"
    chunks = recursive(76, pack_sections=pack_sections).chunk_text(text)
    assert [c.text for c in chunks] == ["Intro paragraph.\n\n", fence[:-1], "\n\n# Next\n\nSome text here.\n"]
    assert chunks[2].metadata["heading_path"] == ["Next"]


def test_a_heading_stands_alone_before_a_fence_that_fits_only_without_its_last_line_break():
    # QA: the estimate counted the fence a token over, so the heading was joined to its first piece and the fence
    # cut (node's docs, undici's, pip's: 8 chunkings of 6,666 markdown files at 32 / 64 / 128 tokens)
    fence = "```python\n" + "".join(f"x{i} = {i}\n" for i in range(12)) + "```\n"  # 77 tokens, 76 without "\n"
    for after in ("\nSome text after it.\n", "\n## Next\n\nSome text here.\n"):
        chunks = recursive(76).chunk_text("## Example\n\n" + fence + after)
        assert [c.text for c in chunks] == ["## Example\n\n", fence[:-1], "\n" + after]
        assert chunks[1].metadata["heading_path"] == ["Example"]


def test_a_fence_that_fits_only_without_its_last_line_break_stays_whole_before_a_fence_with_room():
    fence = "```python\n" + "".join(f"x{i} = {i}\n" for i in range(12)) + "```\n"  # 76 tokens without "\n"
    small = "```python\nprint(x0)\n```\n"
    chunks = recursive(76).chunk_text(fence + "\n" + small)
    assert [c.text for c in chunks] == [fence[:-1], "\n\n" + small]
    # a next fence without room for the line break: cut before the closing line, and no chunk of whitespace
    # alone nor a next fence cut for it
    chunks = recursive(76).chunk_text(fence + "\n" + fence + "\n" + small)
    assert [c.text for c in chunks] == [fence[:-4], "```\n\n", fence[:-1], "\n\n" + small]


@pytest.mark.parametrize("overlap", [10, 20])
def test_with_overlap_a_heading_stays_with_the_fence_it_opens_when_both_fit(overlap):
    # QA: packed to chunk_size - overlap, the heading ended the chunk before and the fence was a chunk alone
    fence = "```python\n" + "".join(f"x{i} = {i}\n" for i in range(10)) + "```\n"  # 68 tokens with the heading
    text = "# Intro\n\nSome intro text.\n\n## Code\n\n" + fence + "\nAfter text.\n"
    chunks = recursive(72, overlap=overlap).chunk_text(text)
    holder = next(c for c in chunks if "## Code" in c.text)
    assert "## Code\n\n" + fence[:-1] in holder.text and holder.metadata["heading_path"] == ["Intro", "Code"]
    assert all(c.token_count <= 72 and text[c.start:c.end] == c.text for c in chunks)


def test_with_overlap_no_chunk_adds_only_the_whitespace_after_a_fence():
    # QA: a fence made whole again left the blank line after it a span of its own, so a chunk repeated the
    # fence's last lines and added only "\n" (0.4 % of the overlapping chunks of node's docs at 32-200 tokens)
    text = ("Run it with `node --disable-warning=ExperimentalWarning`:\n\n"
            "```mjs\nimport sys from 'node:sys';\nimport vm from 'node:vm';\n\nvm.measureMemory();\n```\n\n"
            "```cjs\nconst sys = require('node:sys');\nconst vm = require('node:vm');\n\nvm.measureMemory();\n```\n\n"
            "### `--disable-wasm-trap-handler`\n\nBy default, Node.js enables trap-handler-based bound checks.\n")
    chunks = recursive(32, overlap=8).chunk_text(text)
    assert not any(text[before.end:after.end].isspace() for before, after in zip(chunks, chunks[1:]))
    assert all(c.token_count <= 32 and text[c.start:c.end] == c.text for c in chunks)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)


class CountingSlices(str):
    """A text that counts the characters its slices copy (``sliced``): how much a function reads of it."""

    def __new__(cls, text: str):
        counting = super().__new__(cls, text)
        counting.sliced = 0
        return counting

    def __getitem__(self, key):
        if isinstance(key, slice):
            self.sliced += len(range(*key.indices(len(self))))
        return str.__getitem__(self, key)


def test_heading_paths_read_each_chunk_not_all_the_text_since_its_heading():
    # QA (all.html of node's docs, 8.4 MB, a few "#" lines early on): every chunk's heading path sliced the text
    # from the last heading to the chunk, 13.8 s for the document; the work must grow with the text, not its square
    from chunkers._sections import Sections

    text = "# Title\n\n" + "Plain words in one long section. " * 20_000
    spans = [(a, min(a + 600, len(text))) for a in range(0, len(text), 600)]
    counting = CountingSlices(text)
    metadata = Sections(counting, parse_markdown(text)).metadata(spans)
    assert all(meta["heading_path"] == ["Title"] for meta in metadata)
    assert counting.sliced < 10 * len(text)


def test_overlap_reads_a_long_code_fence_from_each_candidate_start_not_to_its_end():
    # QA: whether repeated text would open at a fence's closing line was asked by slicing from each candidate
    # start to the fence's end: overlap over an 80,000-line fence took 1.5 s, 8.6x the time of a 20,000-line one
    from types import SimpleNamespace

    from chunkers._overlap import _inside_markup

    text = "# T\n\n```python\n" + "".join(f"x_{i} = compute({i})\n" for i in range(20_000)) + "```\r\n\r\n"
    structure = parse_markdown(text)
    (fence_start, fence_end, kind), = structure.blocks
    counting = CountingSlices(text)
    splitter = SimpleNamespace(structure=structure, text=counting)
    line_starts = [i + 1 for i, c in enumerate(text) if c == "\n" and fence_start < i + 1 < fence_end]
    closing = text.index("```\r\n", fence_start + 3)
    assert [p for p in line_starts if _inside_markup(splitter, p)] == [closing]  # the closing line, only
    assert _inside_markup(splitter, closing + 2) and not _inside_markup(splitter, fence_start)
    assert counting.sliced < 10 * len(text)


_LINE_PROBE_TEXT = st.lists(st.sampled_from(["\n", "\r\n", "\r", " ", "   ", "    ", "\t", "#", "##", "`", "```",
                                                "~~~~", "=", "==", "-", "---", "*", "+", "1.", "12)",
                                                "1234567890.", "|", "a", " a", "- a", "1. a", "12)\tb", "\n   ",
                                                "\n```", "\n==", "\n#"]), max_size=40).map("".join)


@settings(max_examples=600, deadline=None)
@given(text=_LINE_PROBE_TEXT)
@example(text="    # four spaces\n   # three\n\t==\n    ==\n   --\n| a\n```x\r\n~~~")
@example(text="==\nx\n\t# tab\n  \t# two and a tab\r\n")
def test_the_one_pass_line_scan_finds_what_a_pattern_for_each_kind_of_line_finds(text):
    # fences, ATX headings, pipe table lines and setext underlines are found in one pass of one pattern; each
    # kind's own backtracking pattern, run on its own, must find the same lines
    import re

    from chunkers._markdown import _structure_lines

    padded = "\n" + text
    # (a backtick fence's info string holds no backtick; bare: nothing but spaces after the marker)
    fences = [(m.start(), len(m.group(1)), m.group(2), m.end() if padded.startswith("\n", m.end()) else len(text),
               not m.group(3).strip())
              for m in re.finditer(r"\n([ \t]*)(`{3,}(?=[^`\n]*(?:\n|$))|~{3,})([^\n]*)", padded)]
    headings = [(m.start(), len(m.group(1)), m.group(2), m.end() - 1)
                for m in re.finditer(r"\n[ \t]{0,3}(#{1,6})[ \t]+([^\r\n]*)", padded)]
    pipes = [(m.start(), m.end() - 1) for m in re.finditer(r"\n[ \t]*\|[^\n]*", padded)]
    underlines = [(m.start() + 1, 1 if m.group(1)[0] == "=" else 2, m.end())  # in the text itself: never its first line
                  for m in re.finditer(r"\n {0,3}(={2,}|-{2,})[ \t]*(?=\r?\n|$)", text)]
    assert _structure_lines(text) == (fences, headings, pipes, underlines)


@settings(max_examples=600, deadline=None)
@given(text=_LINE_PROBE_TEXT)
def test_the_possessive_line_probes_match_what_their_backtracking_forms_match(text):
    # the probes' runs were made possessive for speed: a pattern that needed to give part of a run back would
    # now miss a match
    import re

    from chunkers import _markdown, _splitter

    for fast, backtracking in ((_markdown._UNDERLINE, r"\n {0,3}(={2,}|-{2,})[ \t]*(?=\r?\n|$)"),
                               (_markdown._LIST_ITEM_WITH_TEXT, r"\n[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+(?=[^\s\x00])"),
                               (_splitter._BLANK_LINES, r"\n(?:[ \t]*\r?\n)+")):
        expected = [(m.span(), m.groups()) for m in re.finditer(backtracking, text)]
        assert [(m.span(), m.groups()) for m in fast.finditer(text)] == expected, fast.pattern
