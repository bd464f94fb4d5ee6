"""Token counts without re-encoding: the safe-cut shortcut must equal ``len(encode(text[a:b]))`` exactly, and the
parallel encoding of a long text must equal its single encoding."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chunkers._token_index import (TokenIndex, char_offsets, char_offsets_and_inside, codepoints, encode_ordinary,
                                  joined_token_char_bounds, safe_cut_mask, token_byte_lengths, token_char_bounds,
                                  utf8_char_index)
from rag.tokens import get_tokenizer

# Pieces chosen to sit at and around the safe-cut patterns (space before a letter, after a line feed) and
# to stress the cl100k pre-tokenizer: contractions, digit runs, punctuation runs, CRLF, unicode letters/spaces.
PIECES = [" ", "  ", "a", "Ab", "é", "日本", "\n", "\r\n", "\n\n", "'s", "'T", "123", "45678", ".", "...", "!?\n",
          "\t", "\u00a0", "\u3000", "😀", "e\u0301", "ب", "-", " -", "_", "\u2028", "x" * 12, "\f", "'", "$"]
adversarial = st.lists(st.sampled_from(PIECES), max_size=120).map("".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(adversarial, st.text(max_size=300)), data=st.data())
def test_span_counts_from_the_document_tokenization_equal_encoding_the_span(text, data):
    tokenizer = get_tokenizer()
    index = TokenIndex(text, tokenizer)
    n = len(text)
    spans = [tuple(sorted(data.draw(st.tuples(st.integers(0, n), st.integers(0, n))))) for _ in range(8)]
    spans.append((0, n))
    assert index.counts(spans) == [tokenizer.count(text[a:b]) for a, b in spans]


@settings(max_examples=100, deadline=None)
@given(text=st.one_of(adversarial, st.text(max_size=100), st.just("a\ud800b\udfff")))
def test_character_offsets_of_byte_offsets_round_up_inside_multibyte_characters(text):
    index = utf8_char_index(text)
    assert char_offsets(text, np.arange(len(index))).tolist() == index.tolist()
    data = text.encode("utf-8", "surrogatepass")
    _, inside = char_offsets_and_inside(text, np.arange(len(data) + 1))
    expected = [b < len(data) and data[b] & 0xC0 == 0x80 for b in range(len(data) + 1)]
    assert (inside.tolist() if inside is not None else [False] * len(expected)) == expected


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(adversarial, st.text(st.sampled_from("a \t\r\n\u3000é😀"), max_size=40)),
       piece=st.integers(1, 9))
def test_line_and_word_starts_scanned_a_piece_at_a_time_are_the_whole_texts(text, piece):
    from chunkers import _text_scans

    points = codepoints(text)
    breaks = (points == 10) | ((points == 13) & np.append(points[1:] != 10, True))  # a CR not before a LF
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_text_scans, "SCAN_PIECE", piece)
        for whole in (None, points):  # a piece at a time, or the whole text's code points at once
            assert _text_scans.line_starts_of(text, whole).tolist() == (np.flatnonzero(breaks) + 1).tolist()
            assert _text_scans.word_starts_from_space(_text_scans.space_of(text, whole)).tolist() == [
                i for i in range(1, len(text)) if text[i - 1].isspace() and not text[i].isspace()]


def test_array_encoding_equals_encode_ordinary_for_special_token_text_and_lone_surrogates():
    encoding = get_tokenizer().encoding
    for text in ["", "hello <|endoftext|> world", "<|fim_prefix|>x<|endofprompt|>", "a\ud800b \udfff", "plain"]:
        assert encode_ordinary(encoding, text).tolist() == encoding.encode_ordinary(text)


def test_safe_cuts_are_spaces_before_letters_and_starts_of_lines():
    text = "ab cd\nef  gh 12\n\nij"
    mask = safe_cut_mask(text)
    assert [p for p in range(len(text) + 1) if mask[p]] == [2, 6, 17]


def test_token_byte_lengths_table_matches_every_token_of_the_encoding():
    tokenizer = get_tokenizer()
    encoding = tokenizer.encoding
    table = token_byte_lengths(tokenizer)
    expected = []
    for token in range(encoding.max_token_value + 1):
        try:
            expected.append(len(encoding.decode_single_token_bytes(token)))
        except KeyError:  # an id no token has
            expected.append(0)
    assert table.tolist() == expected
    assert table[encoding.eot_token] == len("<|endoftext|>")



@settings(max_examples=150, deadline=None)
@given(text=st.one_of(adversarial, st.text(max_size=300)), data=st.data())
def test_word_starts_scanned_inside_spans_equal_the_whole_texts_word_starts_inside_them(text, data):
    from chunkers._sorted_positions import positions_inside
    from chunkers._splitter import RecursiveSplitter

    n = len(text)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, n), max_size=10))) | {0, n})
    spans = [(a, b) for a, b in zip(cuts, cuts[1:]) if data.draw(st.booleans())]
    starts = np.array([a for a, _ in spans], dtype=np.int64)
    ends = np.array([b for _, b in spans], dtype=np.int64)
    # spans that are a small part of a long text are scanned one by one, without the whole text's word starts
    padded = text + " word" * 2500
    splitter = RecursiveSplitter(padded, get_tokenizer(), markdown=False)
    scanned = splitter._word_starts_inside(starts, ends).tolist()
    assert "word_starts" not in splitter.__dict__
    assert scanned == positions_inside(splitter.word_starts, starts, ends).tolist()


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.integers(-3, 40), max_size=30), members=st.sets(st.integers(-3, 40), max_size=30))
def test_membership_by_binary_search_is_numpys_isin(values, members):
    from chunkers._sorted_positions import in_sorted

    sorted_array = np.array(sorted(members), dtype=np.int64)
    values = np.array(values, dtype=np.int64)
    assert in_sorted(values, sorted_array).tolist() == np.isin(values, sorted_array).tolist()


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.sampled_from(["- ", "-", "*", "+", "\t", "1.", "12)", "1234567890.", " ", "\n", "\r\n", "\r",
                                       "x", "\u00a0", "\u3000", "#"]), max_size=30))
def test_list_item_starts_are_the_lines_list_item_pattern_matches_with_text_after_the_marker(pieces):
    from chunkers._markdown import _LIST_ITEM, list_item_starts, with_line_feeds

    text = "".join(pieces)
    lf = with_line_feeds(text)
    expected = [m.start() for m in _LIST_ITEM.finditer(lf) if m.group(3) and m.group(4)[:1]
                and not m.group(4)[0].isspace()]
    assert list_item_starts(text) == expected


_MARKDOWN_PIECES = ["- ", "-", "* ", "+\t", "1. ", "12) ", "1234567890. ", " ", "  ", "\t", "\n", "\n\n", "\r\n", "\r",
                    "word ", "\u00a0", "# Title\n", "```\n", "~~~\n", "| a | b |\n", "|---|---|\n", "x"]


@settings(max_examples=200, deadline=None)
@given(pieces=st.lists(st.sampled_from(_MARKDOWN_PIECES), max_size=40), data=st.data())
def test_list_items_scanned_inside_spans_equal_the_whole_texts_list_items_inside_them(pieces, data):
    from chunkers._sorted_positions import positions_inside
    from chunkers._splitter import RecursiveSplitter

    text = "# Heading\n" + "".join(pieces)
    n = len(text)
    line_starts = [0] + [i + 1 for i, c in enumerate(text) if c in "\r\n"]  # spans often end where items start
    cuts = sorted(set(data.draw(st.lists(st.integers(0, n) | st.sampled_from(line_starts), max_size=10))) | {0, n})
    spans = [(a, b) for a, b in zip(cuts, cuts[1:]) if data.draw(st.booleans())]
    starts = np.array([a for a, _ in spans], dtype=np.int64)
    ends = np.array([b for _, b in spans], dtype=np.int64)
    # spans that are less than half of a long text are scanned one by one, without the whole text's list items
    padded = text + "\n\nPlain words after the lists." * 400
    splitter = RecursiveSplitter(padded, get_tokenizer())
    scanned = splitter._item_starts_inside(starts, ends).tolist()
    assert "item_starts" not in splitter.__dict__
    assert scanned == positions_inside(splitter.item_starts, starts, ends).tolist()


def test_spans_ending_with_the_space_before_a_word_are_counted_exactly():
    # the usual chunk end: a sentence or word boundary, the span keeping the space before the next word
    text = ("The quick brown fox. Jumps over 12 lazy dogs, again and again! Then it ends.\nNew line here  twice. "
            "Ünïcode wörds 日本 and ' quotes' too.")
    tokenizer = get_tokenizer()
    index = TokenIndex(text, tokenizer)
    word_starts = [i for i in range(1, len(text)) if text[i - 1] == " " and not text[i].isspace()]
    spans = [(a, b) for a in [0, *word_starts] for b in [*word_starts, len(text)] if b > a]
    assert index.counts(spans) == [tokenizer.count(text[a:b]) for a, b in spans]


def test_span_counts_are_integers_even_when_no_span_needs_a_piece_encoded():
    # spans from safe cut to safe cut are counted from the document's tokens alone; their counts came back as
    # floats (an empty batch of pieces), and the AST chunker's fallback then indexed an array with them
    text = "Late chunking pools tokens.\nEvery count is exact."
    index = TokenIndex(text, get_tokenizer())
    spans = [(0, len(text)), (0, 27), (28, len(text))]
    counts = index.counts(spans)
    assert counts == [get_tokenizer().count(text[a:b]) for a, b in spans]
    assert all(type(count) is int for count in counts)
    assert index.counts([]) == []


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(st.one_of(adversarial, st.text(max_size=60)), max_size=6),
       name=st.sampled_from(["cl100k_base", "minilm"]))
def test_bounds_of_joined_texts_are_each_texts_own_bounds_moved_to_where_it_starts(texts, name):
    tokenizer = get_tokenizer(name)
    expected, expected_inside, position = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=bool)], 0
    for text in texts:
        bounds, inside = token_char_bounds(text, tokenizer, with_inside=True)
        expected.append(bounds + position)
        expected_inside.append(np.zeros(len(bounds), dtype=bool) if inside is None else inside)
        position += len(text) + 1
    joined = "\x00".join(texts)
    bounds, inside = joined_token_char_bounds(texts, tokenizer, joined)
    assert np.array_equal(bounds, np.concatenate(expected))
    inside = np.zeros(len(bounds), dtype=bool) if inside is None else inside
    assert np.array_equal(inside, np.concatenate(expected_inside))  # which bounds were moved to a character's end
