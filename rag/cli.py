"""The ``ragloom`` command line: index, query, run, chunk, validate, quickstart, ops, eval."""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

from rag.cli_chunk import cmd_chunk
from rag.errors import RagloomError

PACKAGE_DIR = Path(__file__).parent
QUICKSTART_CONFIG = PACKAGE_DIR / "configs" / "quickstart.yaml"
QUICKSTART_CORPUS = PACKAGE_DIR / "data" / "quickstart"
QUICKSTART_QUESTION = "What does late chunking do?"


def _console():
    from rich.console import Console

    return Console()


def _print_result(result, as_json: bool, show_trace: bool) -> None:
    if as_json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False, default=str))
        return
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table
    from rich.tree import Tree

    console = _console()
    console.print(Panel(escape(" ".join(result.answer.split())) or "(no answer: the flow has no generate step)",
                        title=f"[bold]{escape(result.query)}", title_align="left"))
    if result.citations:
        table = Table("cited chunk", "text", show_lines=False, box=None, padding=(0, 1))
        for c in result.citations:
            table.add_row(f"[cyan]{escape(c.chunk_id)}", escape(c.text if len(c.text) < 160 else c.text[:157] + "..."))
        console.print(table)
    elif result.hits:
        table = Table("#", "chunk", "score", "source", box=None)
        for rank, hit in enumerate(result.hits[:10], start=1):
            table.add_row(str(rank), escape(hit.chunk.id), f"{hit.score:.4f}", hit.source)
        console.print(table)
    if show_trace:
        tree = Tree(f"trace ({result.seconds * 1000:.1f} ms)")

        def add(node, events):
            for e in events:
                info = ", ".join(f"{k}={v}" for k, v in e.summary.items() if k not in ("top", "notes"))
                add(node.add(f"[bold]{e.name}[/] [dim]{escape(e.path)}[/] {e.seconds * 1000:.1f} ms {escape(info)}"),
                    e.children)

        add(tree, result.trace)
        console.print(tree)


def cmd_validate(args) -> int:
    """Checks every file given, reporting each (an error in one does not hide the others); exit code 2 if any
    failed."""
    failed = 0
    for path in args.configs:
        try:
            print(f"{path}: ok ({_validated(path)})")
        except RagloomError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    return 2 if failed else 0


def _validated(path: str) -> str:
    """What the valid config at ``path`` holds; raises :class:`RagloomError` naming what is wrong. An experiment's
    datasets are read too (files, references), as ``ragloom eval`` reads them before running anything."""
    from rag.config import is_experiment, load_config
    from rag.flow import compile_flow
    from rag.yaml_io import load_yaml

    if is_experiment(load_yaml(path)):
        from evals.datasets import read_dataset
        from evals.experiment import load_experiment

        experiment = load_experiment(path)
        for spec in experiment.datasets:
            read_dataset(spec.ref, experiment.source, split=spec.split)
        return (f"experiment {experiment.name}: {len(experiment.pipelines)} pipelines on "
                f"{', '.join(d.name for d in experiment.datasets)}")
    config = load_config(path)
    compile_flow(config.flow)
    return f"{config.name}: {len(config.flow)} steps, structures {', '.join(s.op for s in config.index.structures)}"


def cmd_index(args) -> int:
    from rag.documents import read_documents
    from rag.errors import IndexStoreError
    from rag.pipeline import Pipeline

    documents = read_documents(args.input, args.encoding)
    pipe = Pipeline.from_yaml(args.config)
    target = Path(args.index_dir)
    deleted = 0
    if (target / "CURRENT").exists() and not args.rebuild:
        try:
            pipe = Pipeline.load(target, pipe.config)
        except RagloomError as exc:
            raise IndexStoreError(f"{exc}\n(use --rebuild to replace the index in {target})") from None
        if args.prune:
            gone = set(pipe.index_.documents) - {d.id for d in documents}
            if gone:
                pipe.delete(gone)
                deleted = len(gone)
    report = pipe.index(documents, progress=not args.quiet)
    pipe.save(target)
    print(f"indexed {args.input} into {target}: {report['added']} added, {report['replaced']} replaced, "
          f"{report['unchanged']} unchanged, {deleted} deleted; {len(pipe.index_)} chunks in total "
          f"({pipe.resources.embedder.model_calls if pipe.resources._embedder else 0} texts embedded)")
    return 0


def cmd_delete(args) -> int:
    from rag.pipeline import Pipeline

    pipe = Pipeline.load(args.index_dir)
    removed = pipe.delete(args.doc_ids)
    pipe.save(args.index_dir)
    print(f"deleted {len(args.doc_ids)} document(s), {removed} chunk(s) from {args.index_dir}")
    return 0


def cmd_query(args) -> int:
    from rag.pipeline import Pipeline

    pipe = Pipeline.load(args.index_dir, args.config)
    _print_result(pipe.run(args.question, filters=_filters(args.filter)), args.json, args.trace)
    return 0


def cmd_run(args) -> int:
    from rag.documents import read_documents
    from rag.pipeline import Pipeline

    pipe = Pipeline.from_yaml(args.config)
    pipe.index(read_documents(args.input, args.encoding), progress=not args.json)
    _print_result(pipe.run(args.question, filters=_filters(args.filter)), args.json, args.trace)
    return 0


def cmd_quickstart(args) -> int:
    from rag.pipeline import Pipeline

    pipe = Pipeline.from_yaml(QUICKSTART_CONFIG)
    report = pipe.index(QUICKSTART_CORPUS)
    if not args.json:
        _console().print(f"[dim]indexed {report['added']} documents ({len(pipe.index_)} chunks) from {QUICKSTART_CORPUS}")
    _print_result(pipe.run(args.question), args.json, not args.json)
    return 0


def cmd_ops(args) -> int:
    from rich.table import Table

    from rag.errors import ConfigError
    from rag.registry import KINDS, registered

    if args.kind is not None and args.kind not in KINDS:
        raise ConfigError(f"unknown operator kind {args.kind!r}; valid: {', '.join(KINDS)}", "--kind")
    table = Table("op", "kind", "params", "what it does")
    for spec in registered(args.kind):
        params = ", ".join(f"{k}={_default_text(f)}" for k, f in spec.params_model.model_fields.items())
        table.add_row(spec.name, spec.kind, params, _plain_rst(spec.summary))
    _console().print(table)
    return 0


def _plain_rst(text: str) -> str:
    """A docstring line as plain text for a terminal: reST roles and double backquotes removed."""
    import re

    return re.sub(r":\w+:`([^`]*)`", r"\1", text).replace("``", "")


def _default_text(field) -> str:
    """How ``ragloom ops`` shows a parameter's default ('…' when it must be given)."""
    from pydantic_core import PydanticUndefined

    if field.is_required() or field.default is PydanticUndefined and field.default_factory is None:
        return "…"
    return repr(field.get_default(call_default_factory=True))


def cmd_eval(argv: Sequence[str]) -> int:
    try:
        from evals.cli import main as eval_main
    except ImportError as exc:
        raise RagloomError(f"the evaluation runner is not available: {exc}") from None
    return eval_main(list(argv))


def _filters(pairs: Sequence[str] | None) -> dict:
    filters: dict = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RagloomError(f"--filter takes KEY=VALUE (VALUE may be a,b,c for membership), got {pair!r}")
        filters[key] = value.split(",") if "," in value else value
    return filters


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ragloom", description="RAG pipelines from small operators, declared in YAML.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and warnings in detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("index", help="build or update an index directory from documents")
    p.add_argument("config", help="pipeline YAML")
    p.add_argument("input", help="a folder of text files, a .jsonl of {id, text, metadata}, or one file")
    p.add_argument("--index-dir", required=True, help="where the index is written (atomically)")
    p.add_argument("--encoding", default="utf-8", help="text encoding of the input files (default utf-8)")
    p.add_argument("--rebuild", action="store_true", help="replace an existing index built with another config")
    p.add_argument("--prune", action="store_true", help="delete indexed documents that are not in INPUT")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("query", help="answer a question from a saved index")
    p.add_argument("index_dir")
    p.add_argument("question")
    p.add_argument("--config", help="use this pipeline's flow instead of the saved one (same index section)")
    p.add_argument("--filter", action="append", metavar="KEY=VALUE", help="metadata filter (repeatable)")
    p.add_argument("--json", action="store_true", help="machine-readable result with trace")
    p.add_argument("--trace", action="store_true", help="print the step trace")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("run", help="index INPUT in memory and answer one question")
    p.add_argument("config")
    p.add_argument("input")
    p.add_argument("question")
    p.add_argument("--encoding", default="utf-8", help="text encoding of the input files (default utf-8)")
    p.add_argument("--filter", action="append", metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true")
    p.add_argument("--trace", action="store_true")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("delete", help="delete documents from a saved index")
    p.add_argument("index_dir")
    p.add_argument("doc_ids", nargs="+")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("chunk", help="chunk documents and report sizes (and write the chunks as JSONL)",
                       description="Chunk INPUT with one chunker and print size statistics. The chunker is --op "
                                   "with --set params, or a pipeline's index.chunker (--config).")
    p.add_argument("input", help="a folder of text files, a .jsonl of {id, text, metadata}, or one file")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--op", default="recursive", help="chunker operator (default recursive; see `ragloom ops "
                                                          "--kind chunker`)")
    source.add_argument("--config", help="pipeline YAML whose index.chunker is used")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="chunker param, value as YAML (repeatable); a dotted key sets a nested param, e.g. "
                        "generator.model=PATH")
    p.add_argument("--out", help="write the chunks as JSON Lines to this file, replaced only when the run succeeds "
                                 "(through a symlink, its target; a device or pipe such as /dev/null is written as "
                                 "it is; '-': stdout as they are made, summary to stderr). A folder or .jsonl input "
                                 "is read once first, so its errors stop the run before any chunk is made")
    p.add_argument("--show", type=int, default=0, metavar="N", help="print the first N chunks")
    p.add_argument("--quality", nargs="?", const="gemma3-270m", metavar="LM",
                   help="also MoC's boundary clarity and chunk stickiness under a causal LM (default the bundled "
                        "gemma3-270m; a local model directory or .gguf file); one LM pass per chunk pair, slow")
    p.add_argument("--quality-window", type=int, metavar="W",
                   help="chunk stickiness links each chunk to the W chunks before it only (default: all of its "
                        "document's earlier chunks, MoC's graph, whose cost grows with the square of the chunks)")
    p.add_argument("--encoding", default="utf-8", help="text encoding of the input files (default utf-8)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_chunk)

    p = sub.add_parser("validate", help="check pipeline and experiment configs without running them")
    p.add_argument("configs", nargs="+")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("quickstart", help="index the bundled sample corpus and answer a question, offline")
    p.add_argument("question", nargs="?", default=QUICKSTART_QUESTION)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("ops", help="list the registered operators and their parameters")
    p.add_argument("--kind", help="only this kind (chunker, structure, retriever, step, merge, router, judge)")
    p.set_defaults(func=cmd_ops)

    sub.add_parser("eval", help="run an evaluation experiment (see `ragloom eval --help`)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    verbose = "-v" in argv or "--verbose" in argv
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not verbose:
        _quiet_libraries()
    try:
        with _stopped_cleanly_by_signals():
            rest = [a for a in argv if a not in ("-v", "--verbose")]
            if rest and rest[0] == "eval":
                return cmd_eval(rest[1:])
            args = build_parser().parse_args(argv)
            return args.func(args)
    except _Terminated as exc:
        print(f"terminated ({signal.Signals(exc.signum).name})", file=sys.stderr)
        return 128 + exc.signum
    except RagloomError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # what reads the output stopped (`ragloom chunk ... --out - | head`): stop quietly,
        # exit status 1 as rich's console does for its own output (Python's documented recipe), without a second
        # error when Python flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # a file the command reads or writes (permissions, disk full, a file for a directory)
        if verbose:
            raise
        print(f"error: {exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


class _Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwinds the command like Ctrl-C (cleanups run), then exits with 128 + the signal."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _stopped_cleanly_by_signals():
    """While a command runs, SIGTERM and SIGHUP (``kill``, ``timeout``, a closed terminal) raise :class:`_Terminated`
    instead of ending the process where it stands, so a half-written temporary output file is removed as on
    Ctrl-C. Signals another handler already owns are left to it; the previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise _Terminated(signum)

    previous = {}
    for number in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if number is not None and signal.getsignal(number) is signal.SIG_DFL:
            previous[number] = signal.signal(number, stop)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _quiet_libraries() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("sentence_transformers", "transformers", "huggingface_hub", "faiss", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)


if __name__ == "__main__":
    raise SystemExit(main())
