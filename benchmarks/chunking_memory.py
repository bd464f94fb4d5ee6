"""Peak memory of ``ragloom chunk`` on one long document and on a folder larger than a chunking group.

Each case runs ``ragloom chunk INPUT --out FILE --json`` of this checkout in a fresh process and prints its peak
resident memory (the child's ``ru_maxrss``), wall time and throughput. Inputs are built in a temporary folder:
one document of ``--document-mb`` MB (scifact's abstracts joined with blank lines, repeated), and a folder of
``--folder-mb`` MB (copies of ``--folder``, by default Node.js's API docs when installed, else scifact's abstracts
written 500 to a file). Run it from two checkouts to compare them.

    HF_HUB_OFFLINE=1 python benchmarks/chunking_memory.py [--document-mb 100] [--folder-mb 170] [--op recursive]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.documents import read_documents  # noqa: E402

SCIFACT = ROOT.parent / "shared" / "datasets" / "scifact" / "corpus.jsonl"
NODE_DOCS = Path("/usr/share/doc/nodejs/api")
RUN_CLI = "import sys; from rag.cli import main; sys.exit(main(sys.argv[1:]))"


def abstracts(corpus: Path = SCIFACT) -> list[str]:
    if not corpus.exists():
        sys.exit(f"{corpus} not found: the inputs are built from scifact's abstracts (--corpus)")
    return [document.text for document in read_documents(corpus)]


def one_document(folder: Path, megabytes: float, corpus: Path) -> Path:
    text = "\n\n".join(abstracts(corpus)) + "\n\n"
    path = folder / "one.txt"
    path.write_text((text * (1 + int(megabytes * 1e6 // len(text))))[:int(megabytes * 1e6)], encoding="utf-8")
    return path


def many_documents(folder: Path, megabytes: float, source: Path | None, corpus: Path) -> Path:
    target = folder / "many"
    if source is None:  # scifact's abstracts, 500 to a file
        source = folder / "scifact-files"
        source.mkdir()
        texts = abstracts(corpus)
        for k in range(0, len(texts), 500):
            (source / f"part{k // 500:03d}.txt").write_text("\n\n".join(texts[k:k + 500]), encoding="utf-8")
    size = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    for copy in range(max(1, round(megabytes * 1e6 / size))):
        shutil.copytree(source, target / f"copy{copy:02d}")
    return target


def measure(label: str, source: Path, op: str) -> None:
    out = source.parent / f"{source.name}.chunks.jsonl"
    started = time.perf_counter()
    with tempfile.TemporaryFile() as log, tempfile.TemporaryFile() as stdout:
        child = subprocess.Popen([sys.executable, "-c", RUN_CLI, "chunk", str(source), "--op", op, "--out", str(out),
                                  "--json"], cwd=ROOT, stdout=stdout, stderr=log,
                                 env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not the largest of all children
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        if child.returncode:
            log.seek(0)
            sys.exit(f"{label}: ragloom chunk failed: {log.read().decode(errors='replace')[-500:]}")
        stdout.seek(0)
        summary = json.loads(stdout.read())
    peak = usage.ru_maxrss * 1024  # kilobytes on Linux
    print(f"{label:<34} {summary['megabytes']:7.1f} MB {summary['documents']:6d} docs {summary['size']['chunks']:8d} "
          f"chunks  peak {peak / 1e9:5.2f} GB  {seconds:6.1f} s ({summary['megabytes'] / seconds:5.1f} MB/s)")
    out.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--document-mb", type=float, default=100)
    parser.add_argument("--folder-mb", type=float, default=170)
    parser.add_argument("--folder", type=Path, default=NODE_DOCS if NODE_DOCS.is_dir() else None,
                        help="the folder copied to build the many-document input (default Node.js's API docs)")
    parser.add_argument("--op", default="recursive")
    parser.add_argument("--corpus", type=Path, default=SCIFACT, help="scifact's corpus.jsonl (default ../shared)")
    args = parser.parse_args()
    print(f"ragloom chunk --op {args.op}, this checkout ({ROOT}); peak = the process's maximum resident memory")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        measure("one document", one_document(folder, args.document_mb, args.corpus), args.op)
        measure(f"folder ({args.folder or 'scifact files'})",
                many_documents(folder, args.folder_mb, args.folder, args.corpus), args.op)


if __name__ == "__main__":
    main()
