"""The token chunker: fixed token windows with exact character offsets and a hard size ceiling."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chunkers import get_chunker
from rag.errors import ConfigError
from rag.tokens import get_tokenizer

TRICKY_ALPHABET = st.sampled_from(
    list("ab cd\n\r\t.,") + ["日", "本", "語", "😀", "👍🏽", "é", "e\u0301", "ع", "ب", "\u200d", "\r\n", "𝔘"]
)
tricky_text = st.lists(TRICKY_ALPHABET, max_size=120).map("".join)
any_text = st.text(max_size=300)


def assert_chunk_invariants(text, chunks, chunk_size):
    tokenizer = get_tokenizer()
    for c in chunks:
        assert text[c.start:c.end] == c.text
        assert c.token_count == tokenizer.count(c.text)
        assert c.tokenizer == tokenizer.identity  # the count says which tokenizer measured it
        assert c.token_count <= chunk_size or c.metadata.get("oversize")
    assert all(a.start <= b.start for a, b in zip(chunks, chunks[1:]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(tricky_text, any_text), chunk_size=st.integers(1, 12))
def test_token_chunk_offsets_are_exact_and_sizes_within_limit(text, chunk_size):
    chunks = get_chunker("token", chunk_size=chunk_size).chunk_text(text)
    assert_chunk_invariants(text, chunks, chunk_size)
    # Without overlap the chunks tile the text exactly.
    assert "".join(c.text for c in chunks) == text
    assert all(a.end == b.start for a, b in zip(chunks, chunks[1:]))


def test_a_last_whitespace_window_after_a_joiner_keeps_the_whitespace():
    # found by the property below in CI: the last window, whitespace alone, moved its start past the joiner's
    # tokens to where nothing was left, and the space was in no chunk
    chunks = get_chunker("token", chunk_size=2, overlap=1).chunk_text("\u200d ")
    assert [(c.start, c.end) for c in chunks] == [(0, 1), (1, 2)]


@settings(max_examples=100, deadline=None)
@given(text=st.one_of(tricky_text, any_text), chunk_size=st.integers(2, 12), data=st.data())
def test_token_chunks_with_overlap_cover_text_and_keep_offsets(text, chunk_size, data):
    overlap = data.draw(st.integers(0, chunk_size - 1))
    chunks = get_chunker("token", chunk_size=chunk_size, overlap=overlap).chunk_text(text)
    assert_chunk_invariants(text, chunks, chunk_size)
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert covered == set(range(len(text)))


def test_window_boundary_inside_multibyte_character_keeps_offsets_exact():
    # Each emoji is several cl100k tokens, so 1- and 2-token windows end inside characters.
    text = "😀👍🏽日本語" * 5
    for size in (1, 2, 3):
        chunks = get_chunker("token", chunk_size=size).chunk_text(text)
        assert "".join(c.text for c in chunks) == text
        assert_chunk_invariants(text, chunks, size)


def test_only_an_indivisible_character_may_exceed_the_size_and_it_is_reported():
    chunks = get_chunker("token", chunk_size=1).chunk_text("😀")
    assert [c.text for c in chunks] == ["😀"]
    assert chunks[0].token_count > 1 and chunks[0].metadata["oversize"] is True


def test_token_chunks_carry_document_metadata_and_stable_ids():
    chunker = get_chunker("token", chunk_size=4)
    chunks = chunker.chunk_text("one two three four five six seven", doc_id="d1", metadata={"lang": "en"})
    assert [c.id for c in chunks] == [f"d1#{i}" for i in range(len(chunks))]
    assert all(c.metadata["lang"] == "en" for c in chunks)


def test_empty_and_whitespace_only_text():
    chunker = get_chunker("token", chunk_size=4)
    assert chunker.chunk_text("") == []
    chunks = chunker.chunk_text(" \n\t \r\n ")
    assert "".join(c.text for c in chunks) == " \n\t \r\n "


def test_overlap_not_below_chunk_size_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match="overlap"):
        get_chunker("token", chunk_size=8, overlap=8)


@pytest.mark.parametrize("overlap", [0, 5])
def test_a_window_ending_inside_a_character_ends_before_it_instead_of_leaving_it_a_chunk_of_its_own(overlap):
    # a window rounded up to the end of a character of several tokens had chunk_size + 1 tokens, was cut again, and
    # the character became a chunk of its own: 20 single characters in 100 chunks of this text at size 20
    from rag.types import Document

    text = ("北京是中华人民共和国的首都，也是全国的政治、文化中心。燕山山脉位于北京北部，创造了独特的地理环境。"
            "서울특별시는 한강을 끼고 있다. 👩‍👩‍👧‍👦 emoji family. ") * 6
    chunker = get_chunker("token", chunk_size=20, overlap=overlap)
    chunks = chunker.chunk_text(text)
    tokenizer = get_tokenizer()
    assert all(c.token_count == tokenizer.count(c.text) <= 20 for c in chunks)
    assert "".join(text[c.start:c.end] for c in chunks) == text if not overlap else chunks[-1].end == len(text)
    assert sum(tokenizer.count(c.text) < 10 for c in chunks[:-1]) == 0, [c.text for c in chunks if c.token_count < 10]
    documents = [Document("a", text), Document("b", text[:50])]
    assert chunker.chunk_documents(documents) == [c for d in documents for c in chunker.chunk(d)]  # batched alike


KOREAN = ("대한민국은 민주공화국이다. 모든 권력은 국민으로부터 나온다. 서울은 한국의 수도이며 인구가 많은 도시입니다. "
          "오늘은 날씨가 맑고 따뜻합니다. Tokenization splits unbelievably long words into pieces. ") * 8


@pytest.mark.parametrize("overlap", [0, 7])
def test_word_piece_windows_end_and_start_at_words_so_no_piece_of_a_word_is_left_a_chunk_of_its_own(overlap):
    # with a word-piece tokenizer a window ending inside a word (a ## piece, a Hangul syllable's jamo) re-tokenized
    # the cut word on its own: one more token, cut again, and its last syllable left as a chunk (50 of 493 chunks)
    from rag.types import Document

    tokenizer = get_tokenizer("minilm")
    chunker = get_chunker("token", chunk_size=24, overlap=overlap, tokenizer="minilm")
    chunks = chunker.chunk_text(KOREAN)
    assert all(c.token_count == tokenizer.count(c.text) <= 24 for c in chunks)
    assert not any(c.metadata.get("oversize") for c in chunks)
    inside_word = [(c.start, c.end) for c in chunks
                   if any(0 < p < len(KOREAN) and KOREAN[p - 1].isalnum() and KOREAN[p].isalnum()
                          for p in (c.start, c.end))]
    assert not inside_word, inside_word
    assert sum(c.token_count < 12 for c in chunks[:-1]) == 0, [c.text for c in chunks if c.token_count < 12]
    documents = [Document("a", KOREAN), Document("b", KOREAN[:60])]
    assert chunker.chunk_documents(documents) == [c for d in documents for c in chunker.chunk(d)]  # batched alike


@pytest.mark.parametrize("overlap", [0, 3])
def test_windows_do_not_cut_a_letter_from_its_combining_mark_or_a_zwj_emoji(overlap):
    # QA: a window ended between "e" and U+0301, so the next chunk opened with a bare accent; 11 of 14 chunks of a
    # run of family emoji were cut inside one, though a whole emoji (18 tokens) fits 32
    from chunkers.token import splits_grapheme
    from rag.types import Document

    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466"
    for text, size in [("Caf\u00e9 " + "e\u0301" * 40 + " done.", 8), ((family + " ") * 30, 32),
                       ("Line one.\r\n" * 20, 5)]:
        chunker = get_chunker("token", chunk_size=size, overlap=overlap)
        chunks = chunker.chunk_text(text)
        assert all(c.token_count <= size and text[c.start:c.end] == c.text for c in chunks)
        assert not [c.start for c in chunks if splits_grapheme(text, c.start)]
        assert not [c.end for c in chunks if splits_grapheme(text, c.end)]
        documents = [Document("a", text), Document("b", text[:25])]
        assert chunker.chunk_documents(documents) == [c for d in documents for c in chunker.chunk(d)]
