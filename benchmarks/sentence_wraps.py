"""Sentence cuts on hard-wrapped prose: do the sentence rules find the same sentences in a paragraph wrapped at 60,
72 and 100 columns as on one line?

Prose paragraphs come from Python's own documentation (``pydoc_data.topics``, in every Python), node's API docs
and the common licences when the machine has them (their wrapped paragraphs joined onto one line), and scifact's
and hotpotqa-100's passages (../shared/datasets). Each is wrapped as editors and ``textwrap`` do (each line holds the
words that fit), by turning spaces into line feeds (same length, same offsets). The gold is the cuts of the
paragraph on one line; a *false* cut is one the wrapped text has and the gold does not (per line break inserted), a
*missed* cut the reverse. "every break" is what a splitter that ends a sentence at every line break gets (the gold
plus every wrap)::

    python benchmarks/sentence_wraps.py
"""
from __future__ import annotations

import glob
import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chunkers._sentences import sentence_cuts  # noqa: E402

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
WIDTHS = (60, 72, 100)
#: a line that starts markup, a list item, a literal block or a prompt: its paragraph is not plain prose
_MARKUP = re.compile(r"\s*(?:[-*+>|#=~`:.]|\d+[.)]|\.\.|>>>)")


def wrapped_paragraphs(text: str) -> list[str]:
    """The text's paragraphs of plain wrapped prose (two lines or more, the same indentation, no markup, some
    sentence punctuation), each joined onto one line."""
    out = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = paragraph.split("\n")
        if len(lines) < 2 or any(not line.strip() or _MARKUP.match(line) for line in lines):
            continue
        if len({len(line) - len(line.lstrip()) for line in lines}) != 1:
            continue  # a hanging indent: a definition list or code
        one_line = " ".join(line.strip() for line in lines)
        if len(one_line) > 150 and re.search(r"[.!?]\s", one_line) and not re.search(r"[{};=]\s*$", one_line):
            out.append(one_line)
    return out


def wrapped_at(text: str, width: int) -> str:
    """``text`` hard-wrapped at ``width`` columns as editors and ``textwrap`` do (a line holds as many words as fit
    in ``width``, a longer word a line of its own), by turning spaces into line feeds (same length, same offsets)."""
    out, column = list(text), 0
    for match in re.finditer(r"\S+", text):
        if column and column + 1 + len(match.group()) > width:
            out[match.start() - 1], column = "\n", len(match.group())
        else:
            column += (1 if column else 0) + len(match.group())
    return "".join(out)


def sources() -> dict[str, list[str]]:
    import pydoc_data.topics

    topics = pydoc_data.topics.topics.values()
    found = {"Python docs (pydoc topics)": [p for topic in topics for p in wrapped_paragraphs(topic)]}
    for name, pattern in (("node's API docs", "/usr/share/doc/nodejs/api/*.md"),
                          ("common licences", "/usr/share/common-licenses/*")):
        paragraphs = []
        for path in sorted(glob.glob(pattern)):
            try:
                paragraphs += wrapped_paragraphs(Path(path).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                continue
        if paragraphs:
            found[name] = paragraphs
    sample = random.Random(0)
    for name, size in (("scifact", 1000), ("hotpotqa-100", 1000)):
        corpus = DATASETS / name / "corpus.jsonl"
        if corpus.exists():
            texts = [json.loads(line)["text"] for line in corpus.open(encoding="utf-8")]
            texts = [t for t in texts if len(t) > 150 and "\n" not in t]
            found[f"{name} passages"] = sample.sample(texts, min(size, len(texts)))
    return found


def main() -> None:
    print("| source | paragraphs | line breaks | false cuts per break, every break | now | missed cuts |")
    print("|---|---|---|---|---|---|")
    for name, paragraphs in sources().items():
        breaks = false = false_every_break = missed = 0
        for paragraph in paragraphs:
            gold = set(sentence_cuts(paragraph))
            for width in WIDTHS:
                text = wrapped_at(paragraph, width)
                cuts = set(sentence_cuts(text))
                wraps = {i + 1 for i, character in enumerate(text) if character == "\n"}
                breaks += len(wraps)
                false += len(cuts - gold)
                false_every_break += len(wraps - gold)
                missed += len(gold - cuts)
        print(f"| {name} | {len(paragraphs):,} | {breaks:,} | {false_every_break / breaks:.3f} | "
              f"{false / breaks:.3f} | {missed} |")


if __name__ == "__main__":
    main()
