"""The answer prompt shared by the language-model generators, and parsing ``[chunk_id]`` citations back.

Passages are shown with their chunk ids in brackets and the model is asked to cite them the same way
(the citation format of ALCE, Gao et al. 2023, "Enabling Large Language Models to Generate Text with
Citations"). Parsing accepts ``[a#0]``, ``[a#0, b#2]``, ``[a#0][b#2]`` and the passage numbers ``[1]`` some
models write instead of ids; unknown ids are ignored.
"""
from __future__ import annotations

import re
from typing import Sequence

from rag.state import Citation
from rag.types import Chunk, structure_prefix

ANSWER_INSTRUCTIONS = (
    "Answer the question using only the context passages below. After each sentence of your answer, cite "
    "the passages that support it by their id in square brackets, for example [{example}]. If the passages "
    "do not contain the answer, say that the context does not answer the question."
)

_BRACKETS = re.compile(r"\[([^\[\]\n]{1,200})\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def format_context(contexts: Sequence[Chunk], max_chars: int) -> str:
    """The passages as ``Passage 1 [id]:\\ntext`` blocks, cut so the whole stays within ``max_chars``."""
    blocks: list[str] = []
    used = 0
    for number, chunk in enumerate(contexts, start=1):
        header = f"Passage {number} [{chunk.id}]:\n"
        room = max_chars - used - len(header)
        if room <= 0:
            break
        text = (structure_prefix(chunk) + chunk.text).strip()
        blocks.append(header + text[:room])
        used += len(header) + min(len(text), room) + 2
    return "\n\n".join(blocks)


def answer_prompt(question: str, contexts: Sequence[Chunk], max_chars: int = 12000) -> str:
    """A completion-style prompt (it works with and without a chat template) ending in ``Answer:``."""
    example = contexts[0].id if contexts else "doc#0"
    return (f"{ANSWER_INSTRUCTIONS.format(example=example)}\n\n{format_context(contexts, max_chars)}\n\n"
            f"Question: {question.strip()}\nAnswer:")


def _cited_ids(inside: str, contexts: Sequence[Chunk], ids: set[str]) -> list[str]:
    found = []
    for part in re.split(r"[,;]\s*|\s+and\s+", inside):
        part = part.strip().strip("'\"`")
        if part.lower().startswith("passage "):
            part = part[len("passage "):].strip()
        if part in ids:
            found.append(part)
        elif part.isdigit() and 1 <= int(part) <= len(contexts):
            found.append(contexts[int(part) - 1].id)
    return found


def parse_citations(text: str, contexts: Sequence[Chunk]) -> tuple[Citation, ...]:
    """One :class:`Citation` per (answer sentence, cited chunk), the sentence stripped of its markers.

    Markers that open a sentence (``It rains. [a#0] Then ...``) belong to the sentence before. Order follows
    the answer; a chunk cited twice by the same sentence is listed once.
    """
    ids = {c.id for c in contexts}
    sentences: list[tuple[str, list[str]]] = []
    for sentence in _SENTENCE_END.split(text):
        cited: list[str] = []
        leading: list[str] = []
        kept = []
        position = 0
        for match in _BRACKETS.finditer(sentence):
            found = _cited_ids(match.group(1), contexts, ids)
            if not found:
                continue
            opening = not sentence[position:match.start()].strip() and not kept
            (leading if opening and sentences else cited).extend(found)
            kept.append(sentence[position:match.start()])
            position = match.end()
        kept.append(sentence[position:])
        if leading:
            previous_text, previous_ids = sentences[-1]
            previous_ids.extend(i for i in leading if i not in previous_ids)
        plain = re.sub(r"\s+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", "".join(kept))).strip()
        sentences.append((plain, [i for n, i in enumerate(cited) if i not in cited[:n]]))
    return tuple(Citation(chunk_id, plain) for plain, cited in sentences if plain for chunk_id in cited)
