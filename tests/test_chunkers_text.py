"""What the text chunkers promise beyond offsets and sizes: markdown structure (recursive), sentence rules
(sentence), and the structure a chunk carries into what is indexed and read."""
from __future__ import annotations

import textwrap

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chunkers import get_chunker
from chunkers._sentences import sentence_cuts, sentence_spans
from chunkers._wraps import FUNCTION_WORDS, MIN_WRAP_WIDTH
from rag.generation.prompts import format_context
from rag.tokens import get_tokenizer
from rag.types import Chunk, Document, structure_prefix
from retrievers.bm25 import BM25Index
from retrievers.filtering import indexed_text

GUIDE = ("# Guide\n\nIntro paragraph about the guide.\n\n"
         "## Install\n\nRun pip install ragloom to get it.\n\n"
         "```python\nimport rag\n\n\nprint(rag)\n```\n\n"
         "## Use\n\n| name | value |\n|---|---|\n" + "".join(f"| row{i} | {i} |\n" for i in range(30)) +
         "\n### Deeper\n\nFinal words.\n")


def recursive(size, **params):
    return get_chunker("recursive", chunk_size=size, **params)


def test_chunks_carry_their_heading_path_and_never_end_with_the_next_heading():
    chunks = recursive(40, pack_sections=False).chunk_text(GUIDE)
    assert chunks[0].metadata["heading_path"] == ["Guide"]
    assert chunks[-1].text.startswith("### Deeper") and chunks[-1].metadata["heading_path"] == ["Guide", "Use", "Deeper"]
    for c in chunks:
        lines = c.text.rstrip("\n").split("\n")
        assert not any(line.startswith("#") for line in lines[1:]), c.text  # a heading only ever opens a chunk


def test_a_heading_joins_the_first_piece_of_a_block_too_big_to_follow_it_whole():
    chunks = recursive(40).chunk_text(GUIDE)
    assert not any(c.text.strip() in ("## Use", "# Guide", "## Install") for c in chunks)
    use = next(c for c in chunks if c.text.startswith("## Use"))
    assert "| row0 | 0 |" in use.text and "table_header" not in use.metadata  # it holds the header rows itself
    # a block that fits keeps its cut: the fence stays whole even if the heading must stand alone
    fence = "```\n" + "".join(f"line {i}\n" for i in range(6)) + "```\n"  # 28 tokens; 31 with the heading
    pieces = recursive(30).chunk_text("## Code\n\n" + fence)
    assert [c.text for c in pieces] == ["## Code\n\n", fence]


def test_a_code_fence_that_fits_is_kept_whole_blank_lines_and_all():
    fence = "```python\nimport rag\n\n\nprint(rag)\n```"
    assert any(fence in c.text for c in recursive(40).chunk_text(GUIDE))


def test_a_code_fence_exactly_at_the_limit_is_kept_whole_though_its_last_line_feed_joins_the_blank_line():
    # in the document "\n\n" after the closing fence is one token, so the fence's estimate is a token over the limit
    fence = "````\nx = 1\n````\n"
    assert get_tokenizer("cl100k_base").count(fence) == 9
    chunks = recursive(9).chunk_text("Intro.\n\n" + fence + "\nTail.")
    assert fence in [c.text for c in chunks]


def test_a_code_fence_that_fits_only_without_its_last_line_feed_is_kept_whole():
    # "```\n" + "\n" is "```" + "\n\n": with its line feed the fence is 19 tokens, without it 18 (found on the
    # Node.js API docs); the line feed goes with the blank line after it, LF or CRLF
    for newline in ("\n", "\r\n"):
        fence = newline.join(["```", "x = 1", "x = 1", "x = 1", "```"])
        assert get_tokenizer("cl100k_base").count(fence) == 18
        text = newline.join(["Intro.", "", fence, "", "After.", ""])
        assert fence in [c.text for c in recursive(18).chunk_text(text)]


NESTED = ("# Guide\n\nIntro text here.\n\n## Part A\n\n### A.1\n\nBody of A.1 is here.\n\n### A.2\n\nBody of A.2.\n\n"
          "## Part B\n\nBody B.\n")


@pytest.mark.parametrize("overlap", [0, 3])
def test_a_table_head_that_does_not_fit_with_its_heading_opens_the_next_chunk_whole(overlap):
    # QA: the heading took the table's first piece, the header row alone, and the delimiter row opened the next
    # chunk (36 of 3,160 generated tables at 16 and 32 tokens)
    head = "| lambda | iota | epsilon |\n|---|---|---|\n"
    rows = "| alpha | beta | gamma |\n| zeta | eta | theta |\n| mu | kappa | iota |\n"
    text = "Some text here.\n\n## Section 46\n\n" + head + rows + "\nMore text.\n"
    count = get_tokenizer().count
    limit = count(head) + 2 + overlap  # with overlap, pieces are cut to chunk_size - overlap, then extended back
    assert count("## Section 46\n\n" + head) > limit - overlap
    chunks = recursive(limit, overlap=overlap).chunk_text(text)
    assert any(c.text.startswith(head) for c in chunks)
    assert not any(c.text.endswith("| lambda | iota | epsilon |\n") for c in chunks)


def test_a_piece_of_a_header_row_too_long_for_a_chunk_does_not_carry_the_header_as_table_header():
    # QA (cosmetic): the second piece of the split header row repeated that same header row in its metadata
    head = "| " + " | ".join(f"column number {i} with a long title" for i in range(8)) + " |\n|" + "---|" * 8 + "\n"
    text = "# T\n\n" + head + "".join("| " + " | ".join(f"v{j}" for j in range(8)) + " |\n" for _ in range(10))
    chunks = recursive(40).chunk_text(text)
    header_row_end = text.index("\n|---")
    in_header_row = [c for c in chunks if text.index("| column") < c.start < header_row_end]
    assert in_header_row and not any("table_header" in c.metadata for c in in_header_row)
    assert all("table_header" in c.metadata for c in chunks if c.start > header_row_end)


def test_a_heading_directly_followed_by_a_sub_heading_shares_its_chunk_when_the_text_after_fits():
    chunks = recursive(30, pack_sections=False).chunk_text(NESTED)
    part_a = next(c for c in chunks if "## Part A" in c.text)
    assert part_a.text == "## Part A\n\n### A.1\n\nBody of A.1 is here.\n\n"
    assert part_a.metadata["heading_path"] == ["Guide", "Part A", "A.1"]  # the path of the chunk's text
    # when A.1's text does not fit with both headings, A.1 stays with its text, not with its parent
    assert "### A.1\n\nBody of A.1 is here.\n\n" in [c.text for c in recursive(14).chunk_text(NESTED)]


def test_a_list_is_cut_between_items_not_inside_an_item_that_fits():
    items = ["- First item that is long enough to wrap\n  onto a second line here.\n",
             "- Second item also long\n  and wrapping onto more.\n", "- Third item, the last one\n  with a continuation.\n"]
    text = "# Changes\n\n" + "".join(items)
    for size in (20, 30, 40):  # each item fits; the line cuts inside them were taken before
        chunks = recursive(size).chunk_text(text)
        assert all(c.text.startswith("- ") for c in chunks[1:]), (size, [c.text for c in chunks])


def test_pieces_of_a_split_table_repeat_its_header_rows_in_metadata():
    chunks = [c for c in recursive(40).chunk_text(GUIDE) if "| row" in c.text]
    assert len(chunks) > 3
    assert chunks[0].text.startswith("## Use\n\n| name | value |") and "table_header" not in chunks[0].metadata
    for c in chunks[1:]:
        assert c.metadata["table_header"] == "| name | value |\n|---|---|"
        assert structure_prefix(c) == "Guide > Use\n| name | value |\n|---|---|\n"
    crlf = [c for c in recursive(40).chunk_text(GUIDE.replace("\n", "\r\n")) if c.metadata.get("table_header")]
    assert crlf and all(c.metadata["table_header"] == "| name | value |\r\n|---|---|" for c in crlf)


def test_paragraphs_stay_whole_when_they_fit_and_sentences_come_before_words():
    paragraphs = ["First paragraph has one sentence here.", "Second one. It has two sentences, both short."]
    text = "\n\n".join(paragraphs * 6)
    chunks = recursive(30).chunk_text(text)
    assert all(c.text.strip().endswith(".") for c in chunks)  # no cut inside a sentence
    sentences = " ".join(f"Sentence {i} of one paragraph, with a few words." for i in range(30))
    assert all(c.text.rstrip().endswith(".") for c in recursive(30).chunk_text(sentences))  # cut between sentences


def test_markdown_structure_is_off_for_code_and_on_request():
    code = "# a comment, not a heading\nx = 1\n\n# another\ny = 2\n" * 20
    python = Document("m.py", code, {"language": "python"})
    assert not any(c.metadata.get("heading_path") for c in recursive(20).chunk(python))
    assert any(c.metadata.get("heading_path") for c in recursive(20).chunk(Document("m.md", code)))
    assert not any(c.metadata.get("heading_path") for c in recursive(40, markdown=False).chunk_text(GUIDE))


def test_sentence_rules_abbreviations_initials_decimals_cjk_and_line_breaks():
    text = ("Dr. Smith met J. R. R. Tolkien at 3.14 p.m. on Jan. 5. it was fine. Really! 日本語です。次の文。\n"
            "New line here e.g. this one. The U.S. is big.")
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "Dr. Smith met J. R. R. Tolkien at 3.14 p.m. on Jan. 5. it was fine. ", "Really! ", "日本語です。", "次の文。\n",
        "New line here e.g. this one. ", "The U.S. is big."]
    # an abbreviation right at the start of a short text, and a word just longer than any abbreviation
    assert sentence_spans("Dr. X") == [(0, 5)]
    assert [t[a:b] for t in ["Approxi. Then"] for a, b in sentence_spans(t)] == ["Approxi. ", "Then"]


@pytest.mark.parametrize("text, sentences", [
    # QA: a letter glued to what is before it was read as an initial ("37°C.", "nmol/L.", "fetuin-A.", "don’t.")
    ("Cells were kept at 37°C. The medium was replaced.", ["Cells were kept at 37°C. ", "The medium was replaced."]),
    ("Levels were 50 nmol/L. Participants with fetuin-A. A marker.",
     ["Levels were 50 nmol/L. ", "Participants with fetuin-A. ", "A marker."]),
    ("I sure don’t. I’m going.", ["I sure don’t. ", "I’m going."]),
    # ... and initials of more than one letter ended the sentence before the name
    ("Written by J.K. Rowling and (T.S. Eliot) with C.S.S. Ponchartrain.",
     ["Written by J.K. Rowling and (T.S. Eliot) with C.S.S. Ponchartrain."]),
    ("He moved to the U.S.A. The weather was fine.", ["He moved to the U.S.A. ", "The weather was fine."]),
    ("Asked J. Smith (A. Doe) too.", ["Asked J. Smith (A. Doe) too."]),
    # CJK: a fullwidth closing bracket stays with its sentence; the fullwidth period ends one, not between digits
    ("（これは注意です。）次の文です。【注意。】次へ。", ["（これは注意です。）", "次の文です。", "【注意。】", "次へ。"]),
    ("これはペンです．値は３．１４です．", ["これはペンです．", "値は３．１４です．"]),
])
def test_sentence_rules_for_units_initials_and_cjk_closers(text, sentences):
    assert [text[a:b] for a, b in sentence_spans(text)] == sentences


def test_a_lone_cr_reads_as_a_line_feed_for_the_wrap_rules():
    # QA: the wrap rules looked for "\n" only, so a wrapped abstract with CR line ends had more sentences (202 of
    # 300 scifact abstracts wrapped at 70 columns)
    text = ("= 0.001; internal capsule, 24.0 +/- 4.44 versus 33.1 +/- 0.6% p =\n0.006). Nonmyelinated fibers in the "
            "corpus callosum were visible by\ndiffusion tensor MRI as early as 28 wk; full-term and preterm infants")
    assert len(sentence_cuts(text)) == 1
    assert sentence_cuts(text.replace("\n", "\r")) == sentence_cuts(text)
    assert sentence_cuts("x " + text.replace("\n", "\r"), 2) == [cut + 2 for cut in sentence_cuts(text)]


def test_a_line_break_ends_a_sentence_after_an_abbreviation_and_a_list_number_stays_with_its_item():
    # QA: "etc.\n" and "h.\n\n" held the next line in their sentence; "1. " was a sentence of its own
    for text, sentences in [
        ("Incubated for 14-18 h.\n\nDNA hybridizations followed.", ["Incubated for 14-18 h.\n\n", "DNA hybridizations followed."]),
        ("Apples, pears, etc.\nBananas next.", ["Apples, pears, etc.\n", "Bananas next."]),
        ("Install it in two steps. 1. Download it. 2. Run it.", ["Install it in two steps. ", "1. Download it. ", "2. Run it."]),
        ("Steps:\n1. Mix.\n12. Bake.", ["Steps:\n", "1. Mix.\n", "12. Bake."]),
        ("Founded in 1990. Then it grew. Sales: 2017. Good.", ["Founded in 1990. ", "Then it grew. ", "Sales: 2017. ", "Good."]),
        ("It was 42. Then 2023. Done.", ["It was 42. ", "Then 2023. ", "Done."]),
    ]:
        assert [text[a:b] for a, b in sentence_spans(text)] == sentences


PROSE = ("The committee met on Tuesday to review the budget, and the members agreed that the plan was sound. "
         "It passed after a short debate about the costs of the new building. Dr. Who, etc. were not there. "
         "Work starts in May and should end before the winter, when the roads close. Ask Anna or Bob in Berlin or "
         "Rome about it.")


@pytest.mark.parametrize("width", [20, 33, 50, 60, 72])
def test_a_hard_wrapped_paragraph_has_the_sentences_it_has_on_one_line(width):
    # A line break inside a sentence reads as the space it replaced: before a lower-case word, and before a
    # capitalised one after a filled line (it would not have fit there) in text wrapped at MIN_WRAP_WIDTH or more.
    # Narrower, a break before a capital still ends a sentence ("Tuesday", "Bob", "Rome" open lines at 20 and 33).
    wrapped = textwrap.fill(PROSE, width)  # spaces turned into line feeds: same length, same offsets
    assert len(wrapped) == len(PROSE) and wrapped.count("\n") >= 3
    one_line = sentence_cuts(PROSE)
    assert len(one_line) == 4
    capital_breaks = {i + 1 for i, ch in enumerate(wrapped) if ch == "\n" and wrapped[i + 1].isupper()} - {*one_line}
    assert capital_breaks  # a name opens a line inside a sentence at every width
    # (after "the", "in", "or"... a line runs on at any width)
    after_function_word = {cut for cut in capital_breaks if wrapped[:cut].split()[-1] in FUNCTION_WORDS}
    cuts = sentence_cuts(wrapped)
    assert cuts == sorted({*one_line} | (capital_breaks - after_function_word if width < MIN_WRAP_WIDTH else set()))


WRAPPED = ("The committee met on Tuesday to review the budget, and the members\n"
           "agreed that the plan was sound after a long debate about what the\n"
           "National Office for the Budget would say about it in the spring.")


YEAR_WRAP = ("The committee met on Tuesday to review the budget, and the members\n"
             "agreed that the plan was sound after a long debate that ran to May 31,\n"
             "1999. The National Office for the Budget would then say what it thought.")
NUMBERED = YEAR_WRAP.replace("\n1999.", "\n12.")
NO_FUNCTION_WORD = WRAPPED.replace("what the\n", "what each\n")  # (a line ending in "the" runs on whatever follows)
FIRST_LINE_WRAP = ("The committee met on Tuesday to review the budget, and the members of\n"
                   "Parliament agreed that the plan was sound after a long debate about\n"
                   "what the National Office for the Budget would say about it in spring.")


IN_CAPITALS = ("THE SOFTWARE IS PROVIDED AS IS, WITHOUT WARRANTY OF ANY KIND, EXPRESS OR\n"
               "IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,\n"
               "FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE\n"
               "AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER\n"
               "LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE.")


@pytest.mark.parametrize(("text", "sentences"), [
    (WRAPPED, [WRAPPED]),  # "National" would not have fit on the line before: a wrap
    # the first line of a paragraph (of a text, or after a blank line) is measured by the two lines after it: a
    # paragraph of two lines has not enough of them
    (NO_FUNCTION_WORD[67:], ["agreed that the plan was sound after a long debate about what each\n",
                             "National Office for the Budget would say about it in the spring."]),
    (FIRST_LINE_WRAP, [FIRST_LINE_WRAP]),
    ("Intro.\n\n" + FIRST_LINE_WRAP, ["Intro.\n\n", FIRST_LINE_WRAP]),
    # a first line whose first word is longer than the line after it was taken for filled; badges are lines of their own
    ("Read this first.\n\n[![CI][ci]](https://github.com/tree-sitter/tree-sitter-c/actions/workflows/ci.yml)\n"
     "[![discord][discord]](https://discord.gg/w7nTvsVJhm)\n[![npm][npm]](https://www.npmjs.com/tree-sitter-c)",
     ["Read this first.\n\n", "[![CI][ci]](https://github.com/tree-sitter/tree-sitter-c/actions/workflows/ci.yml)\n",
      "[![discord][discord]](https://discord.gg/w7nTvsVJhm)\n", "[![npm][npm]](https://www.npmjs.com/tree-sitter-c)"]),
    ("It met.\n\n" + NO_FUNCTION_WORD[67:], ["It met.\n\n",
                                            "agreed that the plan was sound after a long debate about what each\n",
                                            "National Office for the Budget would say about it in the spring."]),
    # a title and the line under it, a line that ends a sentence in emphasis, a CamelCase name, columns, a colon
    ("-" * 30 + "\nThe Single UNIX(TM) Specification, Version 2\nCopyright (C) 1997 The Open Group\n",
     ["-" * 30 + "\n", "The Single UNIX(TM) Specification, Version 2\n", "Copyright (C) 1997 The Open Group\n"]),
    ("The version of the module that is bundled in this release is old.\n**It is deprecated.**\n"
     "In a future major version of the runtime this module will be removed.",
     ["The version of the module that is bundled in this release is old.\n", "**It is deprecated.**\n",
      "In a future major version of the runtime this module will be removed."]),
    ("To use the helper, set these two values in the file named config\n"
     "helper = !aws codecommit credential-helper $@ --profile default\n"
     "UseHttpPath = true and restart the program that reads it", [
         "To use the helper, set these two values in the file named config\n"
         "helper = !aws codecommit credential-helper $@ --profile default\n",
         "UseHttpPath = true and restart the program that reads it"]),
    ("Platform                  Implementation\nLinux, BSD, AIX           clock_gettime\n"
     "Windows                   GetTickCount", ["Platform                  Implementation\n",
                                                "Linux, BSD, AIX           clock_gettime\n",
                                                "Windows                   GetTickCount"]),
    (WRAPPED.replace("what the\n", "these:\n"), [WRAPPED[:WRAPPED.index("what")] + "these:\n",
                                                  WRAPPED[WRAPPED.index("National"):]]),
    # records (three lines in a row open with a capital), paragraphs a line each (wider than MAX_WRAP_WIDTH)
    ("Flower Fairies of the Spring ; Blackie , 1923 and later reprinted\nSpring Songs with Music ; Blackie , 1923 "
     "and reprinted\nFlower Fairies of the Summer ; Blackie , 1925", [
         "Flower Fairies of the Spring ; Blackie , 1923 and later reprinted\n",
         "Spring Songs with Music ; Blackie , 1923 and reprinted\n", "Flower Fairies of the Summer ; Blackie , 1925"]),
    ("the first paragraph " * 6 + "\n" + "and the second one " * 7 + "\nThird paragraph", [
        "the first paragraph " * 6 + "\n" + "and the second one " * 7 + "\n", "Third paragraph"]),
    # before a word that opens with a backtick, a bracket, a quote or a digit, likewise
    (WRAPPED.replace("\nNational", "\n`National`"), [WRAPPED.replace("\nNational", "\n`National`")]),
    (WRAPPED.replace("\nNational", "\n(National"), [WRAPPED.replace("\nNational", "\n(National")]),
    (WRAPPED.replace("\nNational", "\n2019 National"), [WRAPPED.replace("\nNational", "\n2019 National")]),
    # a year that ends a sentence is no list item's number (up to three digits: "12."): QA, hotpotqa wrapped
    (YEAR_WRAP, [YEAR_WRAP[:YEAR_WRAP.index("The N")], YEAR_WRAP[YEAR_WRAP.index("The N"):]]),
    (NUMBERED, [NUMBERED[:NUMBERED.index("12.")], NUMBERED[NUMBERED.index("12."):]]),
    # legal text in capitals: every line opens with one, but these are no records
    (IN_CAPITALS, [IN_CAPITALS[:IN_CAPITALS.index("IN NO")], IN_CAPITALS[IN_CAPITALS.index("IN NO"):]]),
    # a name with digits, hyphens or capitals inside, between lines of prose (not next to code: max_size)
    (WRAPPED.replace("\nNational Office", "\nCMV-IL10 Office"),
     [WRAPPED.replace("\nNational Office", "\nCMV-IL10 Office")]),
    (WRAPPED.replace("what the\nNational Office", "max_size the\nCMV-IL10 Office"), [
        WRAPPED[:WRAPPED.index("what")] + "max_size the\n", "CMV-IL10 Office" + WRAPPED[WRAPPED.index(" for the B"):]]),
    # a capitalised word closed by a quote or a bracket before its punctuation
    (WRAPPED.replace("\nNational Office", '\nOffice", the Budget'), [WRAPPED.replace("\nNational Office",
                                                                                    '\nOffice", the Budget')]),
    # lone CRs (an old Mac file) read as line feeds: its lines are measured too (QA: they were not)
    (NO_FUNCTION_WORD.replace("\n", "\r"), [NO_FUNCTION_WORD.replace("\n", "\r")]),
    (NO_FUNCTION_WORD, [NO_FUNCTION_WORD]),
])
def test_a_line_break_before_a_capital_is_a_wrap_only_after_a_filled_line_of_prose(text, sentences):
    assert [text[a:b] for a, b in sentence_spans(text)] == sentences


@pytest.mark.parametrize(("text", "word"), [
    # each line filled at the width of the lines around it, but not prose: a sentence starts at the word
    ("Flower Fairies of the Spring ; Blackie , 1923 ; reprinted 1930\n"  # records: three lines open with capitals
     "Spring Songs with Music ; Blackie , 1923 ; reprinted in 1931\nFlower Fairies of the Summer ; Blackie , 1925",
     "Flower Fairies of the Summer"),
    ("    matched against the values of the parameters in the given order\n"  # a definition under its term
     "    obj : module, class, exception, function, method, or attribute\n"
     "        The object to which the docstring belongs", "The object"),
    ("    >>> assert_in('foo', [4, 'foo', {}]) and assert_in('bar', [4])\n"  # a doctest's output
     "    >>> assert_in('bar', [4, 'foo', {}]) or assert_in('x', [])\n    Traceback (most recent call last):",
     "Traceback"),
    ('def draw(graph, filename, layout, program, arguments, format):\n'  # after a docstring
     '    """Draw a networkx graph with Pygraphviz, then write it out"""\n'
     "    Returns nothing unless the file cannot be written", "Returns"),
    ("    Demo of the histogram function with a few features shown\n"  # after an underline
     "    =========================================================\n"
     "    Demo of the histogram (hist) function with a few features", "Demo of the histogram (hist)"),
    ("Budget review\nThe committee met on Tuesday to review the budget and the plans\n"  # a paragraph's first line
     "National Office staff will report on it in the spring of the year", "National"),
    ("  alpha       float     weight of the first term in the sum\n"  # columns
     "  beta        float     weight of the second term in the sum\n  Gamma       float     weight of the third",
     "Gamma"),
    ("                \"TranscriptionJobName\": \"examplestarted\", \"Mode\": \"ok\",\n"  # JSON fields
     "                \"TranscriptionJobStatus\": \"COMPLETED\", \"Mode\": \"ok\",\n"
     "                \"OutputLocationType\": \"SERVICE_BUCKET\"", '"OutputLocationType'),
    ("  request: a JSON object that the server parses before it answers,\n"  # a key
     "  with the fields that the request sends to the server (see below)\n  \"url\":\"the address\"", '"url"'),
    ("This is the text of a paragraph that refers to a footnote like [this]\n"  # a link definition
     "one, and to the list of all the nodes that the document holds in\n[this]: https://example.com/this", "[this]:"),
    ("The steps that the installer runs on the machine, one after the other\n"  # a numbered or bulleted list
     "in the order given here, are the following ones, each one on a line\n1. download", "1. download"),
    ("The steps that the installer runs on the machine, one after the other\n"
     "in the order given here, are the following ones, each one on one line\n* download", "* download"),
    ("def draw(graph, filename, layout, program, arguments, format):\n"  # before code
     "    graph = nx.DiGraph(edges); draw(graph, filename, layout, prog)\n    x[0] = to_agraph(graph)", "x[0]"),
    ("    Draw a networkx graph with Pygraphviz, and then, once it is drawn,\n"  # a docstring's end
     '    write it to the file, in the format the caller asks for, or PNG\n    """', '"""'),
    ("def draw(graph, filename, layout, program, arguments, format):\n"  # before code
     "    graph = nx.DiGraph(edges); draw(graph, filename, layout, prog)\n    A = to_agraph(graph)", "A = "),
])
def test_a_filled_line_that_is_not_prose_still_ends_a_sentence_before_a_capital(text, word):
    assert any(text.startswith(word, cut) for cut in sentence_cuts(text))


@pytest.mark.parametrize(("text", "sentences"), [
    ("# Install\nrun it.", ["# Install\n", "run it."]),  # a heading line
    ("| a | b |\nnext row", ["| a | b |\n", "next row"]),  # a table row
    ("See:\n```js\nconst x = 1;\nlet y;\n```", ["See:\n", "```js\n", "const x = 1;\n", "let y;\n", "```"]),  # code
    ("A\n  ~~~\n  x = f(a)\n  return x\n  ~~~\nthat wraps\nhere", ["A\n  ", "~~~\n  ", "x = f(a)\n  ", "return x\n  ",
                                                             "~~~\n", "that wraps\nhere"]),
    ("One line\n\nand a paragraph", ["One line\n\n", "and a paragraph"]),  # a blank line: two line breaks
    ("It ends\n- a list item\n  wrapped here", ["It ends\n", "- a list item\n  wrapped here"]),
    ("Windows wraps\r\nthis line. Mac\rwraps too.", ["Windows wraps\r\nthis line. ", "Mac\rwraps too."]),
    ("a lower-cased\ntext is cut at\nevery line", ["a lower-cased\n", "text is cut at\n", "every line"]),
    ("A page ends\n\x0cthen the next", ["A page ends\n\x0c", "then the next"]),  # a form feed: not a wrap
    ("It ends here.\nthen a new line", ["It ends here.\n", "then a new line"]),  # a sentence end before the break
    ("Seen, e.g.\nhere and there", ["Seen, e.g.\nhere and there"]),  # an abbreviation does not end one
    # QA: records, key: value lines, paths and lettered items are separate lines, not a wrapped sentence
    ("Build It\n\nmake build\nmake test", ["Build It\n\n", "make build\n", "make test"]),  # the same first word
    ("Title: x\ndescription: y", ["Title: x\n", "description: y"]),
    ("Files: a.c\n  src/b.h", ["Files: a.c\n  ", "src/b.h"]),
    ("Steps\na) mix\nb. bake", ["Steps\n", "a) mix\n", "b. bake"]),
    ("Call it:\nfoo(bar)", ["Call it:\n", "foo(bar)"]),
    # a decorator, an underline (or overline), a docstring's quotes: the line after starts anew
    ("    @Wrapt.decorator\n    def universal(wrapped):", ["    @Wrapt.decorator\n    ", "def universal(wrapped):"]),
    ("Pip\n==========\npip freeze\n==========", ["Pip\n", "==========\n", "pip freeze\n", "=========="]),
    ('    """\n    the File to read', ['    """\n    ', "the File to read"]),
    ("Plain words\ndon't stop,\nwell-known ones either.", ["Plain words\ndon't stop,\nwell-known ones either."]),
])
def test_a_line_break_ends_a_sentence_unless_it_wraps_one_before_a_lower_case_word(text, sentences):
    assert [text[a:b] for a, b in sentence_spans(text)] == sentences


LOWER_WRAPS = ("We measured the expression of several genes in treated worms and\n"
               "found that the mRNA level of the gene encoding the antioxidant\n"
               "sod-3 rose within two days in animals matched by age and the\n"
               "age/sex profile of the controls did not change. Nothing else did.")


@pytest.mark.parametrize("text", [
    # a plain word with a closing bracket before its punctuation
    "Levels rose by 25 and 19 nmol/L in the treated and placebo groups (+25 and +19,\nrespectively). No change.",
    # after a filled line: a word that is no plain word ("sod-3", "age/sex")
    LOWER_WRAPS,
    # and a plain word that also opens the line before ("the")
    "The committee met twice during the year to review the results of\n"
    "the survey and the budget, and after a long discussion it asked\n"
    "the board to publish both reports before the end of the summer\nbreak. Nobody objected.",
])
def test_a_filled_line_of_prose_wraps_before_any_lower_case_word(text):
    assert sentence_cuts(text) == sentence_cuts(text.replace("\n", " "))


@pytest.mark.parametrize(("text", "word"), [
    (LOWER_WRAPS.replace("\nsod-3 rose", "\nsod-3=rose"), "sod-3="),  # code
    (LOWER_WRAPS.replace("\nsod-3 rose", "\nprint(rose)"), "print("),  # a call
    (LOWER_WRAPS.replace("\nsod-3 rose", "\nsod-3: rose"), "sod-3:"),  # a key
    # code (lines of site-packages that are filled at the width of their neighbours)
    ("                )\n                self.current_chunk.metadata[\"Code\"] = code_match.group(1)\n"
     "                self._complete_chunk_doc()", "self._complete"),
    ("                if i_level in config.attn_resolutions:\n"
     "                    attn.append(Emu3VQVAEAttentionBlock(config))\n"
     "                    attn_norms.append(Emu3VQVAESpatialNorm(quant_channels, block_in))", "attn_norms"),
    ("    exp = parser.read_csv(StringIO(data))\n    exp.replace(\"a\", '\"a', inplace=True)\n"
     "    tm.assert_frame_equal(df, exp)", "tm.assert"),
    # a paragraph of two lines (commands): its first line has no third to be measured by
    ("Then run:\n\n    env1/bin/python -m pip freeze > requirements.txt\n"
     "    env2/bin/python -m pip install -r requirements.txt\n\nDone.", "env2/bin"),
    # lines of base64: filled, but a word each
    ("MIIDWTCCAkGgAwIBAgIURg2b7y9gJ9hq3d8h5X1Jx0YQv6kwDQYJKoZIhvcNAQEL\n"
     "BQAwPzELMAkGA1UEBhMCVVMxCzAJBgNVBAgMAldBMRAwDgYDVQQHDAdTZWF0dGxl\n"
     "bGUxETAPBgNVBAoMCEV4YW1wbGVzMB4XDTI0MDEwMTAwMDAwMFoXDTI1MDEwMTAw", "bGUx"),
])
def test_a_filled_line_still_ends_a_sentence_before_lower_case_code_keys_and_data(text, word):
    assert any(text.startswith(word, cut) for cut in sentence_cuts(text))


AFTER_THE = ("He was born in Portland and attended the\n"
             "University of Oregon, where he played football for the\n"
             "Oregon Webfoots as a tackle from 1946 to 1949.")


@pytest.mark.parametrize(("text", "sentences"), [
    # a line that ends in "the", "of", "and"... runs on, whatever its width and however the lines open
    (AFTER_THE, [AFTER_THE]),
    ("Install these packages and then run the\n1. download step", ["Install these packages and then run the\n",
                                                                    "1. download step"]),  # a list number
    ("Set max_value = limit and\nReturn the total", ["Set max_value = limit and\n", "Return the total"]),  # code
])
def test_a_line_that_ends_in_a_function_word_runs_on(text, sentences):
    assert [text[a:b] for a, b in sentence_spans(text)] == sentences


def test_a_range_is_read_as_a_text_of_its_own_for_wraps():
    # QA: the line a range starts in was looked for before the range ("## " out of it: no heading, so a wrap)
    text = "## Install it\nthen run the tests."
    assert sentence_cuts(text, 3) == [3 + cut for cut in sentence_cuts(text[3:])] == []
    assert sentence_cuts(text) == [14]
    # nor the word after it: "e" ends the range, "e.g." (not a plain word) follows it in the text
    text = "Some text\ne.g. more"
    assert sentence_cuts(text, 0, 11) == sentence_cuts(text[:11]) == [] and sentence_cuts(text) == [10]


def test_a_wrapped_sentence_over_the_limit_is_cut_at_its_line_breaks_before_its_words():
    lines = [f"value_{i} = compute(value_{i - 1}, step={i})" for i in range(1, 9)]
    text = "Setup:\n" + "\n".join(lines) + "\n"
    tokenizer = get_tokenizer()
    limit = 2 * max(tokenizer.count(line + "\n") for line in lines)
    chunks = get_chunker("sentence", chunk_size=limit).chunk_text(text)
    assert len(chunks) > 2 and "".join(c.text for c in chunks) == text
    assert all(c.start == 0 or text[c.start - 1] == "\n" for c in chunks)


@pytest.mark.parametrize("keep_paragraphs", [True, False])
def test_a_sentence_over_only_by_its_estimate_is_not_cut(keep_paragraphs):
    # QA: the document's tokens put the space before "(x)" and the "(" in one token (" ("), so the sentence's
    # estimate was 9 and it was cut at a word, though its own text counts 8
    text = "First one here. (x) kappa iota epsilon beta lambda.) Epsilon delta alpha!\n"
    sentence = "(x) kappa iota epsilon beta lambda.)"
    assert get_tokenizer().count(sentence) == 8
    chunks = get_chunker("sentence", chunk_size=8, keep_paragraphs=keep_paragraphs).chunk_text(text)
    assert sentence in [c.text.strip() for c in chunks]


@pytest.mark.parametrize("keep_paragraphs", [True, False])
def test_a_sentence_filling_a_chunk_is_not_cut_for_its_trailing_space_when_the_next_sentence_is_split(keep_paragraphs):
    # QA: the space before "3" is a token of its own, so the first sentence with its space is one over the limit;
    # the space was packed after it and cut it at a word, though the next (long) sentence is split anyway
    sentence = "Alpha beta gamma."
    text = sentence + " 3 delta epsilon zeta eta theta iota kappa lambda mu nu xi."
    limit = get_tokenizer().count(sentence)
    assert get_tokenizer().count(sentence + " ") == limit + 1
    chunks = get_chunker("sentence", chunk_size=limit, keep_paragraphs=keep_paragraphs).chunk_text(text)
    assert chunks[0].text == sentence
    assert all(c.token_count <= limit for c in chunks)
    assert "".join(c.text for c in chunks) == text


def test_whitespace_too_long_to_open_the_next_sentence_leaves_the_sentences_around_it_whole():
    # QA of the change above: whitespace over the limit was still marked for splitting after it was joined to the
    # sentence after it, and the mark fell on another sentence ("(x) data." cut, and differently when batched);
    # whitespace that fills a chunk alone, joined, was packed after the sentence before it and cut that one
    from rag.types import Document

    long_sentence = " Alpha beta gamma delta epsilon zeta eta theta iota kappa lambda."
    sentence = get_chunker("sentence", chunk_size=4)
    text = "\n" + "\u3000" * 14 + long_sentence + " One two. (x) data."
    assert [c.text for c in sentence.chunk_text(text)][-2:] == ["One two. ", "(x) data."]
    batched = sentence.chunk_documents([Document("a", "One two. (x) data."),
                                        Document("b", "\n" + "\u3000" * 14 + long_sentence)])
    assert [c.text for c in batched if c.doc_id == "a"] == ["One two. ", "(x) data."]
    chunks = get_chunker("sentence", chunk_size=5).chunk_text("Alpha beta.\u2003\u2003\u2003" + long_sentence[1:])
    assert chunks[0].text == "Alpha beta."


@pytest.mark.parametrize("op", ["recursive", "sentence"])
@pytest.mark.parametrize("text", ["  " + "abcdefghij" * 20 + " end.", "\n\n" + "https://example.com/" + "a1b2c3" * 30,
                                  " \t " + "😀" * 30])
def test_whitespace_at_a_text_start_opens_the_first_piece_of_a_word_too_long_for_a_chunk(op, text):
    # QA: nothing before the whitespace could take it, so it was a chunk of its own, without content
    for size in (8, 16):
        chunks = get_chunker(op, chunk_size=size).chunk_text(text)
        assert "".join(c.text for c in chunks) == text
        assert all(c.token_count <= size for c in chunks)
        assert not any(c.text.isspace() for c in chunks), (size, [c.text for c in chunks[:2]])


@pytest.mark.parametrize("sentences", [
    ["Il a dit « Bonjour. » ", "Puis il est parti."],  # a French guillemet, after a space
    ["He said «Stop.» ", "Then he left."],
    ["Er sagte „Hallo.“ ", "Dann ging er."],  # a German closing quote
    ["Wait . . . what happened? ", "Nothing."],  # a spaced ellipsis
    ["See Sec. 3 and Eq. 4 for details. ", "Then Ch. 2."],
    ["Apples, pears, etc. ", "Then bananas. ", "Also etc. and more."],  # etc. ends a sentence before a capital
    ["Acme Inc. ", "The company grew."],
])
def test_guillemets_spaced_ellipses_and_sentence_final_abbreviations(sentences):
    # QA: each of these was cut in the wrong place
    text = "".join(sentences)
    assert [text[a:b] for a, b in sentence_spans(text)] == sentences


def test_a_sentence_that_fits_only_without_its_trailing_space_is_not_cut_at_a_word():
    # QA: 20 tokens of text, 21 with the space after it, at chunk_size 20: its last word opened the next chunk
    first = "Iota zeta alpha epsilon zeta iota zeta eta theta zeta lambda lambda beta kappa? "
    assert get_tokenizer().count(first.rstrip()) == 20 and get_tokenizer().count(first) == 21
    chunks = get_chunker("sentence", chunk_size=20).chunk_text(first + "Zeta delta alpha zeta beta!")
    assert [c.text for c in chunks] == [first.rstrip(), " Zeta delta alpha zeta beta!"]


@pytest.mark.parametrize("sentences", [
    ["كيف حالك؟ ", "أنا بخير. ", "شكرا"],  # Arabic question mark
    ["یہ پہلا جملہ ہے۔ ", "یہ دوسرا ہے۔"],  # Urdu full stop
    ["यह पहला वाक्य है। ", "यह दूसरा वाक्य है॥ ", "तीसरा"],  # Devanagari danda and double danda
    ["ሰላም ነው። ", "እንዴት ነህ፧ ", "ደህና"],  # Ethiopic full stop and question mark
    ["Բարեւ։ ", "Ինչպես ես"],  # Armenian full stop
    ["မင်္ဂလာပါ။ ", "နေကောင်းလား"],  # Myanmar full stop
    ["ﾃｽﾄです｡", "次の文｡"],  # halfwidth ideographic full stop, no space needed
])
def test_sentences_end_at_the_full_stops_and_question_marks_of_other_scripts(sentences):
    text = "".join(sentences)
    assert [text[a:b] for a, b in sentence_spans(text)] == sentences
    assert [text[a:b] for a, b in sentence_spans(text[:-1])] == [*sentences[:-1], sentences[-1][:-1]]


def test_lower_cased_text_is_cut_at_its_sentence_ends_but_not_after_abbreviations():
    cased = "Revenue rose 4% in 2017. The company paid e.g. taxes. It closed on Jan. 5. Sales fell."
    lower = cased.lower()
    assert [lower[a:b] for a, b in sentence_spans(lower)] == [
        "revenue rose 4% in 2017. ", "the company paid e.g. taxes. ", "it closed on jan. 5. ", "sales fell."]
    assert sentence_spans(lower) == sentence_spans(cased)
    # one capital letter makes the text cased: a lower-case letter after a period continues the sentence again
    assert len(sentence_spans("in 2017. the Company paid.")) == 1


def test_long_runs_of_sentence_punctuation_are_scanned_once():
    # each . used to restart a scan to the run's end: 30,000 dots took about 25 s (quadratic); now milliseconds
    assert sentence_spans("." * 30_000) == [(0, 30_000)]
    assert len(sentence_spans("!" * 30_000 + " Next one.")) == 2
    text = "Wait... What?! Yes." + "." * 5000 + " Done."
    assert [text[a:b] for a, b in sentence_spans(text)][:3] == ["Wait... ", "What?! ", "Yes." + "." * 5000 + " "]
    # a range starting inside a run still starts a sentence end there
    assert sentence_spans("Mr!. Bob", 3) == [(3, 5), (5, 8)]


def test_sentence_chunks_are_whole_sentences_and_overlap_repeats_the_last_one():
    text = " ".join(f"Sentence number {i} says something short." for i in range(20))
    chunks = get_chunker("sentence", chunk_size=25).chunk_text(text)
    assert all(c.text.startswith("Sentence number") and c.text.rstrip().endswith(".") for c in chunks)
    overlapped = get_chunker("sentence", chunk_size=25, overlap_sentences=1).chunk_text(text)
    for before, after in zip(overlapped, overlapped[1:]):
        last_sentence = before.text.rstrip().rsplit(". ", 1)[-1]
        assert after.text.startswith(last_sentence) and after.start < before.end


def test_sentence_chunks_keep_a_paragraph_that_fits_whole_and_pack_a_longer_one_sentence_by_sentence():
    short = ["Alpha one is here. Alpha two is here.", "Beta one is here. Beta two is here. Beta three is here.",
             "Gamma one is here."]  # each under 25 tokens
    long = " ".join(f"Delta {i} runs on for a while." for i in range(12))
    paragraphs = short * 3 + [long] + short
    text = "\n\n".join(paragraphs)
    spans, position = [], 0
    for paragraph in paragraphs:
        spans.append((position, position + len(paragraph)))
        position += len(paragraph) + 2
    short_spans = [span for span, paragraph in zip(spans, paragraphs) if paragraph != long]

    def split_paragraphs(chunks):
        return [(a, b) for a, b in short_spans if not any(c.start <= a and b <= c.end for c in chunks)]

    for overlap in (0, 1):
        chunks = get_chunker("sentence", chunk_size=25, overlap_sentences=overlap).chunk_text(text)
        assert split_paragraphs(chunks) == []
        assert len([c for c in chunks if "Delta" in c.text]) >= 3 and all(c.token_count <= 25 for c in chunks)
    flat = get_chunker("sentence", chunk_size=25, keep_paragraphs=False).chunk_text(text)
    assert split_paragraphs(flat)  # without the rule, chunks fill up and cut paragraphs


def test_a_paragraph_whose_text_fits_exactly_is_kept_whole_when_its_blank_lines_would_not_fit():
    # 'Eta ... kappa!' is 8 tokens, 9 with the CRLF blank lines after it: it was cut in the middle of its sentence
    text = "Alpha beta.\r\n\r\nEta eta theta theta zeta kappa!\r\n\r\nGamma delta."
    chunks = get_chunker("sentence", chunk_size=8).chunk_text(text)
    assert "Eta eta theta theta zeta kappa!" in [c.text.strip() for c in chunks], [c.text for c in chunks]
    assert "".join(c.text for c in chunks) == text and all(c.token_count <= 8 for c in chunks)


def test_sentence_overlap_repeats_only_whole_paragraphs_across_a_paragraph_break():
    four = " ".join(f"Point {i} of this part holds." for i in range(4))  # about 28 tokens: two do not fit in 40
    one = "A single short line here."
    long = " ".join(f"Delta {i} runs on for a while." for i in range(12))  # over the limit: packed sentence-wise
    paragraphs = [four] * 3 + [one] * 6 + [long] + [four] * 2
    text = "\n\n".join(paragraphs)
    starts, position = [], 0
    for paragraph in paragraphs:
        starts.append(position)
        position += len(paragraph) + 2
    long_span = (starts[9], starts[9] + len(long))
    for overlap in (1, 2, 3):
        chunks = get_chunker("sentence", chunk_size=40, overlap_sentences=overlap).chunk_text(text)
        assert all(c.token_count <= 40 for c in chunks)
        for chunk in chunks:  # a paragraph start, or a sentence inside the paragraph a chunk boundary cut
            assert chunk.start in starts or long_span[0] < chunk.start < long_span[1], (overlap, chunk.text)
        repeated = [after for before, after in zip(chunks, chunks[1:]) if after.start < before.end]
        assert any(c.text.startswith(one) for c in repeated)  # short paragraphs are still repeated whole
        assert any(long_span[0] < c.start < long_span[1] for c in repeated)  # and sentences inside a long one
    old = get_chunker("sentence", chunk_size=40, overlap_sentences=2, keep_paragraphs=False).chunk_text(text)
    assert any(c.start not in starts and not long_span[0] < c.start < long_span[1] for c in old)


def test_the_structure_prefix_goes_into_what_is_indexed_and_what_the_reader_sees():
    chunks = recursive(40).chunk_text(GUIDE, doc_id="guide")
    table_piece = next(c for c in chunks if c.metadata.get("table_header"))
    assert indexed_text(table_piece, with_title=False) == structure_prefix(table_piece) + table_piece.text
    titled = Chunk("t#0", "t", "body", 0, 4, 1, {"title": "Doc", "heading_path": ["A", "B"]})
    assert indexed_text(titled, with_title=True) == "Doc A > B\nbody"
    plain = Chunk("p#0", "p", "body", 0, 4, 1, {"title": "Doc"})
    assert indexed_text(plain, with_title=True) == "Doc body"  # chunks without structure: as before
    assert "Passage 1 [guide#" in format_context([table_piece], 2000)
    assert "Guide > Use\n| name | value |\n|---|---|\n| row" in format_context([table_piece], 2000)
    # a word only the heading has finds the rows under it
    index = BM25Index(with_title=False)
    index.add(chunks)
    deeper = next(c for c in chunks if c.metadata.get("table_header") and "row2" in c.text)
    rows, _ = index.search("use", 20)
    assert deeper.id in [index.ids_[row] for row in rows]


def test_recursive_overlap_repeats_at_most_overlap_tokens_from_a_boundary():
    from rag.tokens import get_tokenizer

    text = " ".join(f"Sentence {i} has a handful of plain words in it." for i in range(60))
    chunks = recursive(60, overlap=25).chunk_text(text)
    count = get_tokenizer().count
    assert len(chunks) > 5 and all(c.token_count <= 60 for c in chunks)
    for before, after in zip(chunks, chunks[1:]):
        assert before.start < after.start < before.end  # consecutive chunks share text
        shared = text[after.start:before.end]
        assert count(shared) <= 25 + 1  # the budget is estimated from whole-text tokens: a token of slack
        assert after.text.startswith("Sentence")  # it starts at a sentence, not mid-sentence
    plain = recursive(35).chunk_text(text)  # without overlap, chunks of chunk_size − overlap tile the text
    assert "".join(c.text for c in plain) == text


def test_recursive_overlap_must_be_below_the_chunk_size():
    import pytest

    from rag.errors import ConfigError

    with pytest.raises(ConfigError, match="overlap"):
        recursive(10, overlap=10)


def test_a_span_a_few_tokens_over_leaves_no_whitespace_chunk_and_no_word_cut_in_two():
    from chunkers._spans import fit_spans
    from rag.tokens import get_tokenizer

    tokenizer = get_tokenizer()
    # "four. " is 5 tokens with its space: the space left over opens the next span, which still fits
    text = "one two three four. five six. "
    assert fit_spans(text, [(0, 20), (20, len(text))], tokenizer, 5)[0] == [(0, 19), (19, len(text))]
    # the 7-token cut falls inside "zetaetaiotakappa": the cut moves back to where that word starts
    text = "alpha beta gamma delta epsilon zetaetaiotakappa lambda"
    spans, counts, _ = fit_spans(text, [(0, len(text))], tokenizer, 7)
    assert [text[a:b] for a, b in spans] == ["alpha beta gamma delta epsilon ", "zetaetaiotakappa lambda"]
    assert counts == [tokenizer.count(text[a:b]) for a, b in spans] and max(counts) <= 7


def test_sentences_packed_to_the_limit_by_estimate_never_make_a_whitespace_only_chunk():
    # packed by the document's tokens, the second-to-last chunk is one token over when counted on its own text
    # (its first word loses the space it was tokenized with); its trailing space used to become a chunk
    text = ("Aggregate to private to aggregate private maturity private were client. Tss of client acquisition "
            "maturity bank redeemed. Notes were notes amount client increase prior. Of of increase commitment "
            "commitment amount of private increase acquisition. Retail redeemed were increase bank logistics bank. ")
    chunks = get_chunker("sentence", chunk_size=11).chunk_text(text)
    assert "".join(c.text for c in chunks) == text
    assert all(c.text.strip() and c.token_count <= 11 for c in chunks), [c.text for c in chunks]


def test_sentences_with_overlap_never_make_a_whitespace_only_chunk():
    # a chunk overlapping the one before was cut at token boundaries only, and where a space is a token of its own
    # (between Hangul words under cl100k) the space after its last sentence was left a chunk of its own
    assert [c.text for c in get_chunker("sentence", chunk_size=12, overlap_sentences=2).chunk_text(
        "날씨가. 모든. 대한민국은. 권력은")] == ["날씨가. 모든. ", "모든. 대한민국은.", " 권력은"]
    words = "대한민국은 민주공화국이다 모든 권력은 국민으로부터 나온다 서울은 한국의 수도이며 날씨가 맑고".split()
    text = " ".join(words[i * 7 % len(words)] + ("." if i % 3 == 2 else "") for i in range(600))
    for size, overlap in ((32, 1), (12, 2)):
        chunks = get_chunker("sentence", chunk_size=size, overlap_sentences=overlap).chunk_text(text)
        assert all(c.text.strip() and c.token_count <= size for c in chunks), [c.text for c in chunks
                                                                                if not c.text.strip()]


@pytest.mark.parametrize("op", ["recursive", "sentence", "token"])
def test_the_space_after_a_word_longer_than_the_limit_is_not_left_a_chunk_of_its_own(op):
    # the word's last piece is full, so the space could not join it and became a whitespace-only last chunk
    for text in ("abcdefghij" * 30 + " ", ("e\u0301" * 50 + " ") * 2, "abcdefghij" * 30 + " \n"):
        chunks = get_chunker(op, chunk_size=20).chunk_text(text)
        assert "".join(c.text for c in chunks) == text
        assert all(c.text.strip() and c.token_count <= 20 for c in chunks), [c.text for c in chunks[-2:]]


@pytest.mark.parametrize("op", ["recursive", "sentence"])
@pytest.mark.parametrize("ending", ["\n \n\n", "\n\t\n\n", "\n\n \n", "\n  \n\n\n"])
def test_blank_lines_ending_a_text_after_a_full_chunk_take_the_last_word_along(op, ending):
    # QA: the chunk before ended in whitespace of its own ("epsilon\n" full at 8 tokens), so only its last token
    # could move, and the blank lines were a chunk without content
    text = "pa eta delta iota. kappa gamma eta alpha epsilon epsilon" + ending
    chunks = get_chunker(op, chunk_size=8).chunk_text(text)
    assert "".join(c.text for c in chunks) == text
    assert all(c.text.strip() and c.token_count <= 8 for c in chunks), [c.text for c in chunks[-2:]]
    assert chunks[-1].text == "epsilon" + ending


@pytest.mark.parametrize("overlap", [1, 2])
def test_an_overlapping_last_token_window_of_whitespace_alone_ends_the_text_with_content(overlap):
    # QA: the last window started at the whitespace the full window before ended in, so it held nothing else
    for text in ("a b\n\n\n  \n", "alpha beta gamma delta\n\n\n  \n"):
        chunks = get_chunker("token", chunk_size=3, overlap=overlap).chunk_text(text)
        assert all(c.text.strip() and c.token_count <= 3 for c in chunks), [c.text for c in chunks]
        assert chunks[-1].end == len(text) and chunks[-1].start > chunks[-2].start


def test_a_chunk_one_token_over_by_its_own_count_does_not_leave_a_one_word_chunk():
    # packed by the document's tokens every chunk is full; counted on their own texts several are a token over
    # (a first word without its space costs more), and their re-split used to leave lone words ("private ")
    text = ("Of increase maturity contributed private aggregate kichler logistics maturity client services were "
            "private contributed tss retail prior amount private the of and acquisition approximately increase "
            "services the client contributed maturity redeemed and maturity.")
    for size in (6, 10):
        chunks = get_chunker("recursive", chunk_size=size).chunk_text(text)
        assert "".join(c.text for c in chunks) == text
        assert all(c.token_count <= size for c in chunks)
        assert all(len(c.text.split()) > 1 for c in chunks), [c.text for c in chunks]


def test_a_huge_chunk_size_is_one_chunk_not_an_integer_overflow():
    # the packing cap was token index + limit in int64: IndexError at 2**63 - 1
    for name in ("sentence", "recursive", "token"):
        chunks = get_chunker(name, chunk_size=2**63 - 1).chunk_text("Hello world. Bye.")
        assert [c.text for c in chunks] == ["Hello world. Bye."]


def test_numeric_params_that_would_be_ignored_or_fail_late_are_config_errors():
    import pytest

    from rag.errors import ConfigError

    with pytest.raises(ConfigError, match="threshold"):  # NaN never cuts
        get_chunker("semantic", threshold=float("nan"))
    with pytest.raises(ConfigError, match="dtype"):  # was only reported once the LM loaded
        get_chunker("perplexity", dtype="float128")


def test_recursive_overlap_repeats_at_most_overlap_tokens_by_the_repeated_texts_own_count():
    # the budget was checked on the document's tokens: starting at a word, the repeated text lost the space before
    # it and counted one more ('indivisible character over the limit is ' is 9 tokens against overlap 8)
    text = ("chunker, including on\nCJK / emoji / combining marks / CRLF / lone surrogates; an indivisible character "
            "over the limit is flagged\n`metadata[\"oversize\"]`).\n\n")
    tokenizer = get_tokenizer()
    for source in (text, text * 20 + "Some closing words in a final sentence here."):
        chunks = get_chunker("recursive", chunk_size=32, overlap=8).chunk_text(source)
        repeated = [source[b.start:a.end] for a, b in zip(chunks, chunks[1:]) if b.start < a.end]
        assert repeated and all(tokenizer.count(r) <= 8 for r in repeated), repeated


def test_re_splits_for_carried_pieces_are_bounded_in_text_where_every_chunk_counts_over_its_estimate(monkeypatch):
    # ZWJ emoji families without a space are one pre-token: nearly every chunk counts a token or two over its
    # estimate, and each chunk a carried piece pushed over was re-split on its own (160,000 characters: 11 s)
    from chunkers import _exact_fit

    calls = []
    original = _exact_fit.exact_pieces
    monkeypatch.setattr(_exact_fit, "exact_pieces", lambda splitter, spans, counts, limit:
                        calls.append(len(spans)) or original(splitter, spans, counts, limit))
    text = "👩‍👩‍👧‍👦" * 1000
    chunks = get_chunker("recursive", chunk_size=200).chunk_text(text)
    assert "".join(c.text for c in chunks) == text and all(c.token_count <= 200 for c in chunks)
    assert len(calls) <= 1 + _exact_fit.CARRY_RESPLITS_MIN, calls  # the batched re-split, then the bounded carries


#: words that cost a token more without the space before them ("naïve", "😀", "東京") and words that do not
RUN_ON_WORDS = "the quick brown fox jumps over lazy dog alpha beta gamma delta café naïve 東京 emoji 😀".split()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(words=st.lists(st.sampled_from(RUN_ON_WORDS), min_size=1, max_size=400), limit=st.integers(5, 40))
@example(words="café naïve quick alpha 😀 emoji café beta emoji delta lazy 😀 jumps beta jumps fox alpha jumps beta "
               "fox brown gamma emoji fox delta naïve gamma lazy emoji 東京 😀 alpha".split(), limit=5)
def test_recursive_chunks_of_run_on_words_leave_no_two_neighbours_that_would_fit_together(words, limit):
    # QA: packed by estimate, a chunk opening with a word that counts a token more on its own text counted one over
    # the limit; its last word was carried into the next chunk, also full, and so on, and where the carrying
    # stopped the word stood alone between full chunks ('delta ' above; 924 of 6,586 chunks of a 500,000-character
    # line at 20 tokens). Any word with its space fits in 5 tokens, so no word has to be cut.
    text = " ".join(words)
    chunks = get_chunker("recursive", chunk_size=limit).chunk_text(text)
    assert "".join(c.text for c in chunks) == text and all(c.token_count <= limit for c in chunks)
    tokenizer = get_tokenizer()
    together = [(a.text, b.text) for a, b in zip(chunks, chunks[1:]) if tokenizer.count(text[a.start:b.end]) <= limit]
    assert not together, together


@pytest.mark.parametrize("overlap_sentences", [0, 1])
@pytest.mark.parametrize("keep_paragraphs", [True, False])
def test_a_sentence_chunk_over_by_its_own_count_closes_before_its_last_sentence(keep_paragraphs, overlap_sentences):
    # QA: packed by estimate (" 😀" is one token in context, two alone), the chunk counted 9 of 8 and was cut at
    # its last word, leaving "On " behind and "日本." a chunk of its own (with overlap too: a separate packing)
    from chunkers import get_chunker

    text = "and far a café. 😀 😀 dog.\n\nOn 日本.\n"
    chunker = get_chunker("sentence", chunk_size=8, keep_paragraphs=keep_paragraphs,
                          overlap_sentences=overlap_sentences)
    assert [c.text for c in chunker.chunk(Document("d", text))] == ["and far a café. ", "😀 😀 dog.\n\n", "On 日本.\n"]
    assert chunker.chunk_documents([Document("d", text), Document("e", text)])[:3] == chunker.chunk(Document("d", text))


@pytest.mark.parametrize("text, limit", [("🇺🇸" * 40, 20), ("日本語の文章を書きます漢字仮名混じり文鬱龘" * 30, 10)],
                         ids=["flag-emoji", "cjk"])
def test_a_sentence_longer_than_the_limit_is_cut_into_pieces_that_fit_without_fragments(text, limit):
    # QA: its pieces, cut by estimate, each counted a token over; cut again to the limit, every other chunk was the
    # last token or two of the one before (a lone regional indicator, a CJK character)
    from chunkers import get_chunker

    chunker = get_chunker("sentence", chunk_size=limit)
    chunks = chunker.chunk(Document("d", text))
    assert "".join(c.text for c in chunks) == text and all(c.token_count <= limit for c in chunks)
    assert min(c.token_count for c in chunks[:-1]) > limit // 2, [c.token_count for c in chunks]
    assert chunker.chunk_documents([Document("d", text), Document("e", text)])[:len(chunks)] == chunks


def test_sentence_overlap_never_repeats_only_whitespace():
    # QA: a paragraph opening with a space after a blank line made a unit of that space alone, and the next chunk
    # "repeated" it as its overlap (chroma-chunking's pubmed at 64 tokens: 2 of 5,762 overlaps)
    text = "".join(f"Genomic differences between strain {i} and strain HB3 were measured by CGH in run {i}. Click "
                   f"here for additional data file.\n\n Figure S{i} CGH of 3D7 versus HB3 for all chromosomes.\n"
                   for i in range(8))
    chunks = get_chunker("sentence", chunk_size=40, overlap_sentences=1).chunk_text(text)
    assert all(c.token_count <= 40 and text[c.start:c.end] == c.text for c in chunks)
    repeated = [text[b.start:a.end] for a, b in zip(chunks, chunks[1:]) if b.start < a.end]
    assert repeated and all(r.strip() for r in repeated), repeated
