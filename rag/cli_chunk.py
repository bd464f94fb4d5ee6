"""``ragloom chunk``: run one chunker on files, report its sizes (and MoC's quality measures), write the chunks."""
from __future__ import annotations

import json
import math
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from evals.chunk_quality import SizeTally, chunk_quality
from rag.documents import InputSize, utf8_size
from rag.encodings import without_lone_surrogates
from rag.errors import ConfigError, RagloomError
from rag.jsonl import json_line, write_jsonl_atomically
from rag.types import Chunk, Document


def _chunker_spec(args) -> tuple[str, dict]:
    """``(op, params)`` of the chunker ``ragloom chunk`` runs: a pipeline's ``index.chunker`` (``--config``),
    or ``--op`` with ``--set KEY=VALUE`` params (values read as YAML: numbers, booleans, ``{op: ...}``; a dotted
    key sets a nested param, ``generator.name=hf``)."""
    from rag.yaml_io import loads_yaml

    if args.config:
        if args.set:
            raise RagloomError("--set goes with --op; with --config, edit the pipeline's index.chunker")
        from rag.config import load_config

        chunker = load_config(args.config).index.chunker
        return chunker.op, dict(chunker.params)
    params = {}
    given: dict[str, str] = {}  # key -> the value typed for it
    for pair in args.set or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RagloomError(f"--set takes KEY=VALUE (e.g. chunk_size=200), got {pair!r}")
        if given.setdefault(key, value) != value:
            raise RagloomError(f"--set {key} is given twice ({key}={given[key]}, then {key}={value}): give it once")
        try:  # as a config file reads it (YAML 1.2 scalars: "no" is a string, 10:00 is not 600)
            parsed = loads_yaml(value) if value else ""
        except ConfigError as exc:
            raise RagloomError(f"--set {key}: {value!r} is not a YAML value ({exc.message})") from None
        if isinstance(parsed, dict) and any(":" in str(k) and v is None for k, v in parsed.items()):
            # YAML reads {op:semantic} as the key "op:semantic" with no value
            raise RagloomError(f"--set {key}: {value!r} has a key with a colon and no value; in YAML a colon needs "
                               "a space after it: {op: semantic, chunk_size: 30}")
        # a dotted key sets a nested param: generator.model=PATH is generator: {model: PATH}
        *parents, leaf = key.split(".")
        if parents and parents[0] not in params:  # a mapping param keeps its default's other keys
            params[parents[0]] = _default_mapping(args.op, parents[0])
        target = params
        for depth, parent in enumerate(parents):
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise RagloomError(f"--set {key}: {'.'.join(parents[:depth + 1])} is already set to a value, not a "
                                   "mapping")
        target[leaf] = parsed
    return args.op, params


def _default_mapping(op: str, key: str) -> dict:
    """A copy of chunker ``op``'s default for param ``key`` when that is a plain mapping (late chunking's
    ``boundaries``), so ``--set boundaries.chunk_size=100`` changes only that key; else ``{}`` (a config model such
    as ``embedder`` fills in its own defaults)."""
    import copy

    from rag.errors import ConfigError
    from rag.registry import get_spec

    try:
        field = get_spec(op, "chunker").cls.Params.model_fields.get(key)
    except ConfigError:  # an unknown op: reported when the chunker is created
        return {}
    default = field.get_default(call_default_factory=True) if field is not None else None
    return copy.deepcopy(default) if isinstance(default, dict) else {}


def _as_read(params: dict, chunker) -> dict:
    """Each given param with the value the chunker's validated params hold for it (the given value when the
    chunker keeps no such field)."""
    read = chunker.params.model_dump(mode="json") if hasattr(chunker.params, "model_dump") else {}
    return {key: read.get(key, value) for key, value in params.items()}


@dataclass
class ChunkRun:
    """What ``ragloom chunk`` keeps of a run while its chunks stream to the output: counts, sizes, the first
    ``show`` chunks, and every chunk only when a causal LM scores them (``keep_all``); with ``progress``, a line
    on stderr rewritten after each group of documents (cleared at the end), out of ``expected`` when the input
    was checked first."""

    show: int = 0
    keep_all: bool = False
    progress: bool = False
    expected: InputSize | None = None
    documents: int = 0
    megabytes: float = 0.0
    seconds: float = 0.0
    oversize: int = 0
    #: documents a chunker did not chunk its own way, by reason (the ast chunker's text fallback: "recursive
    #: (parse errors)")
    fallbacks: Counter = field(default_factory=Counter)
    tokenizer: str | None = None
    sizes: SizeTally = field(default_factory=SizeTally)
    shown: list[Chunk] = field(default_factory=list)
    kept: list[Chunk] = field(default_factory=list)

    def chunks(self, chunker, documents: Iterable[Document]) -> Iterator[Chunk]:
        """Every document's chunks, in order, chunked a group at a time as :meth:`chunkers.base.Chunker.iter_chunks`
        does (the same chunks as all at once: memory follows the longest document, not the corpus, except with
        ``--quality``, which scores every chunk at the end), and tallied as they go."""
        import chunkers.base

        started_run = time.perf_counter()
        shown_progress = False
        try:
            for group in chunkers.base.document_groups(documents, chunkers.base.GROUP_CHARACTERS):
                started = time.perf_counter()
                chunks = chunker.chunk_documents(group)
                self.seconds += time.perf_counter() - started
                self.documents += len(group)
                self.megabytes += sum(map(utf8_size, group)) / 1e6
                self.oversize += sum(bool(c.metadata.get("oversize")) for c in chunks)
                self.fallbacks.update(reason for _, reason in {(c.doc_id, c.metadata["fallback"]) for c in chunks
                                                                if c.metadata.get("fallback")})
                self.tokenizer = self.tokenizer or next((c.tokenizer for c in chunks), None)
                self.sizes.add(chunks)
                self.shown.extend(chunks[:self.show - len(self.shown)])
                if self.keep_all:
                    self.kept.extend(chunks)
                if self.progress:  # one line, rewritten after each group
                    print(f"\r{self._progress_line(time.perf_counter() - started_run)}", end="", file=sys.stderr,
                          flush=True)
                    shown_progress = True
                yield from chunks
        finally:
            if shown_progress:
                print("\r\033[K", end="", file=sys.stderr, flush=True)  # the summary takes its place

    def _progress_line(self, seconds: float) -> str:
        expected = self.expected
        if expected is None:
            return (f"chunking: {self.documents:,} documents, {self.megabytes:,.1f} MB, {len(self.sizes.tokens):,} "
                    f"chunks, {seconds:.0f} s")
        left = seconds * (expected.megabytes / self.megabytes - 1) if self.megabytes else 0.0
        return (f"chunking: {self.documents:,} / {expected.documents:,} documents, {self.megabytes:,.1f} / "
                f"{expected.megabytes:,.1f} MB, {len(self.sizes.tokens):,} chunks, {seconds:.0f} s, "
                f"about {max(left, 0.0):.0f} s left")


def _load_quality_lm(model: str):
    """The causal LM ``--quality`` names, loaded: a path that is no model, or a model that does not load, is an
    error before any chunking."""
    from rag.lm import load_causal_lm
    from rag.lm_files import check_local_lm

    try:
        check_local_lm(model)
        lm = load_causal_lm(model)
        lm.model  # noqa: B018 (loads it)
    except RagloomError as exc:
        raise RagloomError(f"--quality {model}: {getattr(exc, 'message', exc)}") from None
    return lm


def _finite_or_null(value):
    """``value`` with every float that is not finite (a mean over nothing) replaced by None, in nested dicts and
    lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_null(v) for v in value]
    return value


def _chunk_summary(op: str, params: dict, chunker, run: ChunkRun, lm=None, window: int | None = None) -> dict:
    """What ``ragloom chunk`` reports (and ``--json`` prints): the run, and ``evals.chunk_quality``'s size statistics,
    plus MoC's Boundary Clarity and Chunk Stickiness under the causal LM ``lm`` (over ``run.kept``), with the
    settings and pair counts behind them (``quality``)."""
    sized = getattr(chunker, "boundary_chunker_", chunker)  # late chunking: its boundary chunker sets the sizes
    limit = getattr(sized.params, "chunk_size", None)
    max_chars = getattr(sized.params, "max_chars", None)  # the ast chunker's budget, in non-whitespace characters
    scores = chunk_quality(run.kept, lm=lm, limit=limit, window=window) if lm is not None else {}
    return {
        # the given params as the chunker read them ("--set chunk_size=100.0" is 100)
        "chunker": {"op": op, **_as_read(params, chunker)}, "documents": run.documents,
        "megabytes": round(run.megabytes, 6), "seconds": round(run.seconds, 3), "limit": limit,
        "tokenizer": run.tokenizer, "oversize": run.oversize,
        **({"max_chars": max_chars} if max_chars is not None else {}),
        **({"fallbacks": dict(run.fallbacks)} if run.fallbacks else {}),
        # an LLM-guided chunker's calls and the answers that named no usable boundary (its fallback packed those)
        **({"model_calls": chunker.model_calls, "unusable_answers": chunker.unusable_answers}
           if hasattr(chunker, "unusable_answers") else {}),
        "size": run.sizes.statistics(limit),
        **{key: value for key, value in scores.items() if key != "size"},
    }


def _load_model(chunker) -> float | None:
    """Load the model a chunker computes with (perplexity's causal LM, an llm chunker's hf generator's, semantic's
    embedding model) before the run is timed, so its time and MB/s are the chunking's (loading the bundled causal LM
    takes 5 s, converting it the first time ~1 min; semantic on 2 kB took 20 s, most of it loading); the seconds it
    took, or None for a chunker without one."""
    started = time.perf_counter()
    if hasattr(type(chunker), "embedder"):
        chunker.embedder.st  # noqa: B018 (loads it)
        return time.perf_counter() - started
    lm = getattr(chunker, "lm", None) if hasattr(type(chunker), "lm") else None
    if lm is None and hasattr(type(chunker), "generator"):
        lm = getattr(chunker.generator, "lm", None)
    if lm is None or not hasattr(lm, "model"):
        return None
    lm.model  # noqa: B018 (loads it, if building it did not)
    return time.perf_counter() - started


def _lm_passes(chunks, window: int | None) -> tuple[int, int]:
    """The LM passes ``evals.chunk_quality`` makes: ``(chunks alone, chunk pairs)``; the pairs are stickiness's
    (each chunk given every earlier chunk of its document, or the ``window`` before it), which hold boundary
    clarity's."""
    from evals.chunk_quality import by_document, stickiness_pairs

    groups = [group for group in by_document(chunks) if len(group) > 1]
    return len({c.text for group in groups for c in group}), len(stickiness_pairs(groups, window=window))


def _count(n: int, noun: str) -> str:
    """``"1 chunk"``, ``"2 chunks"``."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _print_chunk_summary(console, summary: dict, shown: list[Chunk], embeds_chunks: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    from evals.chunk_quality import FRAGMENT_TOKENS

    op, params = summary["chunker"]["op"], {k: v for k, v in summary["chunker"].items() if k != "op"}
    megabytes, seconds, size = summary["megabytes"], summary["seconds"], summary["size"]
    volume = (f"{megabytes:.2f} MB" if megabytes >= 0.1 else f"{megabytes * 1000:.1f} kB" if megabytes >= 0.001
              else f"{round(megabytes * 1e6)} B")
    spec = ", ".join(f"{k}={v!r}" for k, v in params.items())
    console.print(f"[bold]{escape(op)}[/]({escape(spec)}): {summary['documents']} document(s), {volume} -> "
                  f"{_count(size['chunks'], 'chunk')} in {seconds:.2f} s ({megabytes / max(seconds, 1e-9):.2f} MB/s)")
    if size["chunks"]:
        t, c = size["tokens"], size["chars"]
        console.print(f"tokens per chunk ({summary['tokenizer']}): mean {t['mean']:.1f}, median {t['median']:g}, "
                      f"p95 {t['p95']:.0f}, max {t['max']:.0f}" + (f" (limit {summary['limit']})" if summary["limit"] else "")
                      + f"; characters: mean {c['mean']:.0f}"
                      + (f" (max_chars {summary['max_chars']} counts non-whitespace characters)"
                         if "max_chars" in summary else "")
                      + f"; oversize: {summary['oversize']}")
        # chunks of a few tokens that are not a document's end: what a cut left over
        console.print(f"fragments (<= {FRAGMENT_TOKENS} tokens, not a document's last chunk): {size['fragments']}; "
                      f"whitespace-only: {size['whitespace_only']}")
    if "fallbacks" in summary:
        # "recursive (parse errors)": the chunker that took over, and why
        reasons = ", ".join(f"{reason.removeprefix('recursive (').removesuffix(')')}: {count}"
                            for reason, count in sorted(summary["fallbacks"].items()))
        console.print(f"documents chunked as text (recursive) instead: {sum(summary['fallbacks'].values())} "
                      f"({escape(reasons)})")
    if "model_load_seconds" in summary:
        console.print(f"the model was loaded first, in {summary['model_load_seconds']:.1f} s (not in the time above)")
    if "model_calls" in summary:
        unusable = summary["unusable_answers"]
        console.print(f"LLM calls: {summary['model_calls']}; unusable answers: {unusable}"
                      + (" (no boundary named in the window: each of those windows became one chunk)" if unusable
                         else ""))
    if "boundary_clarity" in summary:
        clarity, stickiness = (f"{summary[key]:.3f}" if not math.isnan(summary[key]) else "n/a"
                               for key in ("boundary_clarity", "chunk_stickiness"))
        console.print(f"boundary clarity {clarity} (higher: cleaner cuts), chunk stickiness {stickiness} (lower: more "
                      "self-contained chunks)" + ("; n/a: no document has two chunks" if "n/a" in clarity else ""))
        unscored = summary["quality"]["unscored_pairs"]
        if unscored:
            console.print(f"{_count(unscored, 'chunk pair')} left out of both: a chunk of no tokens (whitespace only)")
    if embeds_chunks:
        console.print(f"[dim]{op} computes its chunk vectors when indexing; these are its boundaries")
    if shown:
        # where a chunk sits: its markdown heading path or its code scope (class / function names)
        paths = [c.metadata.get("heading_path") or c.metadata.get("scope_path") or [] for c in shown]
        columns = ["chunk", "span", "tokens"] + (["where"] if any(paths) else []) + ["text"]
        table = Table(*columns, box=None, padding=(0, 1))
        encoding = console.encoding or "utf-8"

        def printable(text: str) -> str:  # a character the terminal's encoding lacks is shown as '?'
            return escape(without_lone_surrogates(text).encode(encoding, "replace").decode(encoding))

        for c, path in zip(shown, paths):
            text = " ".join(c.text.split())
            where = [printable(" > ".join(map(str, path)))] if any(paths) else []
            table.add_row(printable(c.id), f"{c.start}-{c.end}", str(c.token_count), *where,
                          printable(text if len(text) <= 100 else text[:97] + "..."))
        console.print(table)


def _check_out_is_not_an_input(out: str | None, source: Path) -> None:
    """An error when ``--out`` would replace the input file, or be read as a document of the input directory (one
    there now, whose text the chunks would replace, or a new one, which the next run would chunk as text)."""
    from rag.documents import is_read_in_folder

    if not out or out == "-":
        return
    target, source_path = Path(out).resolve(), source.resolve()
    if target == source_path and source_path.is_file():
        raise RagloomError(f"--out {out} is the input file: the chunks would replace the text they come from")
    # where the folder's reading meets the file: its own name (a symlink inside the folder leading out of it is read
    # there as a document) and where it leads
    named = Path(out).absolute().parent.resolve() / Path(out).name
    if source_path.is_dir() and any(path.is_relative_to(source_path) and is_read_in_folder(
            path.relative_to(source_path)) for path in (named, target)):
        if target.is_file():
            raise RagloomError(f"--out {out} is a document of the input directory {source}: the chunks would replace "
                               "the text they come from")
        raise RagloomError(f"--out {out} would be read as a document of the input directory {source}: the next run "
                           "would chunk the chunks; write them outside it, or to a .jsonl file")


def cmd_chunk(args) -> int:
    from rich.console import Console

    from rag.documents import check_documents, input_path, iter_documents
    from rag.registry import create

    for option, name, wanted in (("--out", args.out, "a file name, or - for stdout"),
                                 ("--config", args.config, "a pipeline YAML file"),
                                 ("--quality", args.quality, "a model directory or .gguf file, or --quality alone")):
        if name == "":  # else read as no option at all
            raise RagloomError(f"{option} is empty: give {wanted}")
    if args.show < 0:
        raise RagloomError(f"--show must be 0 or more, got {args.show}")
    if args.quality_window is not None and args.quality_window < 1:
        raise RagloomError(f"--quality-window must be at least 1, got {args.quality_window}")
    if args.quality_window is not None and not args.quality:
        raise RagloomError("--quality-window sets the window of --quality's scores: give --quality too")
    source = input_path(args.input)
    _check_out_is_not_an_input(args.out, source)
    op, params = _chunker_spec(args)
    try:
        chunker = create(op, params, "chunker", "chunker")
    except ConfigError as exc:
        if args.config:  # named by the config's file and line already
            raise
        # what the user typed: --op NAME, --set KEY=VALUE
        where = "--op" if exc.path == "chunker.op" else f"--set {exc.path.removeprefix('chunker.')}"
        raise RagloomError(f"{where}: {exc.message}") from None
    if not args.config:  # late chunking's params against the embedder an index would run: the default one
        from rag.config import EmbedderConfig

        try:
            type(chunker).check_embedder(params, EmbedderConfig())
        except ConfigError as exc:
            raise RagloomError(f"--set {exc.path}: {exc.message} (the default embedder, "
                               f"{EmbedderConfig().model})") from None
    to_stdout = args.out == "-"
    # progress on a terminal (not with --json, whose output is parsed, nor between chunks printed to the terminal)
    progress = sys.stderr.isatty() and not args.json and not (to_stdout and sys.stdout.isatty())
    # A folder or a JSON Lines file is read once first, so an input error (a file that is not utf-8, a bad line)
    # stops the run before any work (a few % of it: reading is 50-100x faster than chunking), not part way. Not one
    # other file: its one document is the first read anyway, and it may be a pipe, which reads only once.
    checked = source.is_dir() or source.is_file() and source.suffix.lower() == ".jsonl"
    expected = check_documents(source, args.encoding) if checked else None
    quality_lm = _load_quality_lm(args.quality) if args.quality else None  # fails now, not after the chunking
    load_seconds = _load_model(chunker)
    run = ChunkRun(show=args.show, keep_all=bool(args.quality), progress=progress, expected=expected)
    chunks = run.chunks(chunker, iter_documents(source, args.encoding))
    if to_stdout:
        for c in chunks:
            print(json_line(c.to_json(), sys.stdout.encoding or "utf-8"))
    elif args.out:
        write_jsonl_atomically(Path(args.out), (c.to_json() for c in chunks))
    else:
        deque(chunks, maxlen=0)
    if quality_lm is not None:
        alone, pairs = _lm_passes(run.kept, args.quality_window)
        print(f"scoring with {args.quality}: {_count(alone, 'chunk')} alone and {_count(pairs, 'chunk pair')}, one LM "
              "pass each", file=sys.stderr)
    summary = _chunk_summary(op, params, chunker, run, quality_lm, args.quality_window)
    if quality_lm is not None:
        summary["quality"] = {"lm": args.quality, **summary["quality"]}
    if load_seconds is not None:
        summary["model_load_seconds"] = round(load_seconds, 3)
    if args.json:
        if args.show:  # the chunks --show prints, as the --out lines are
            summary["shown"] = [c.to_json() for c in run.shown]
        # a score with nothing to score is null: NaN is no JSON (jq and JavaScript reject it)
        print(json.dumps(_finite_or_null(summary), indent=2, ensure_ascii=False, default=str, allow_nan=False),
              file=sys.stderr if to_stdout else sys.stdout)
        return 0
    console = Console(stderr=to_stdout)
    _print_chunk_summary(console, summary, run.shown, chunker.embeds_chunks)
    if args.out and not to_stdout:
        console.print(f"wrote {_count(summary['size']['chunks'], 'chunk')} to {args.out}")
    return 0
