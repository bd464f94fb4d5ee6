"""A chunk whose first word counts more on the chunk's own text than in the whole text's tokenization: " naïve"
is two cl100k tokens of the document, "naïve" alone three, "😀" alone two. The splitter packs by the whole text's
tokens (:meth:`chunkers._splitter.RecursiveSplitter.estimate`), so such a chunk packed full is over on its own
text; the exact fit (:func:`chunkers._exact_fit.split_exact_spans`) would cut it again, carry its last word into
the next chunk, also full, and so on through a run-on text, until the carrying stops and leaves a word or two
alone between full chunks (run-on text at 20 tokens: 924 such fragments in 6,586 chunks). Packing lowers such a
chunk's cap by the excess instead (:func:`start_corrected_end`)."""
from __future__ import annotations

import bisect
import re
from typing import TYPE_CHECKING

import numpy as np

from rag.tokens import TiktokenTokenizer

if TYPE_CHECKING:
    from chunkers._splitter import RecursiveSplitter

_FIRST_WORD = re.compile(r"\s*+\S++\s")  # a chunk's first word and the whitespace character after it
#: how far into a chunk its first word is looked for (:func:`start_excess`)
FIRST_WORD_SEARCH = 64
#: chunks with this much room left by estimate are not looked at: one word counting 16 tokens more without the
#: space before it than with it would take a run of letters BPE merges wholly differently
START_EXCESS_BOUND = 16


def measures_start_excess(splitter: RecursiveSplitter) -> bool:
    """Tiktoken encodings only: a word-piece tokenizer splits a word alike after a space or not."""
    return isinstance(splitter.tokenizer, TiktokenTokenizer)


def start_excess(splitter: RecursiveSplitter, start: int, end: int, slack: int = 0) -> int:
    """Tokens a chunk starting at ``start`` (and ending by ``end``) counts on its own text over its estimate at its
    first word, tokenized there without the text before it, when that can be more than ``slack`` (the chunk's room
    left by estimate): a word of n UTF-8 bytes counts at most n tokens and is estimated at one at least, so a word
    of at most ``slack + 1`` bytes is not tokenized (most chunks, which end at a sentence with room left). 0 at a
    tokenization's edge or when no word ends within :data:`FIRST_WORD_SEARCH` characters."""
    if not measures_start_excess(splitter) or start == 0 or start in splitter.index.edges:
        return 0
    word = _FIRST_WORD.match(splitter.text, start, min(end, start + FIRST_WORD_SEARCH))
    if word is None or len(word.group().encode("utf-8", "surrogatepass")) - 1 <= slack:
        return 0
    return max(0, splitter.tokenizer.count(word.group()) - splitter.estimate(start, word.end()))


def start_corrected_end(splitter: RecursiveSplitter, edges: np.ndarray, i: int, j: int, cap_token: int, cap: int,
                        limit: int, room: int) -> int:
    """The end (an index into ``edges``) of the chunk ``edges[i]..edges[j]`` packed greedily, with its cap lowered
    by its :func:`start_excess` when its own text is over ``limit``. A chunk holding a heading is left as it is (it
    ends where the heading rules say), and so is one whose text fits (its estimate can be over elsewhere, and it is
    then full as it is: on chroma-chunking at 50 tokens, lowering the cap of every such chunk moved 6 of 8,883)."""
    start, end = edges.item(i), edges.item(j)
    headings = splitter.heading_array
    if len(headings) and bisect.bisect_right(headings, start) < bisect.bisect_left(headings, end):
        return j
    # an excess within the room the chunk has left changes nothing: the lowered cap still reaches its end
    excess = start_excess(splitter, start, end, max(0, room))
    if not excess or splitter.index.counts([(start, end)])[0] <= limit:
        return j
    lowered = cap_token - excess
    if lowered < len(splitter.bounds):
        cap = min(cap, splitter.bounds[lowered])
    return max(min(j, int(np.searchsorted(edges, cap, "right")) - 1), i + 1)
