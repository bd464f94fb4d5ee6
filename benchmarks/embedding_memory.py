"""Resident memory of a process that keeps embedding: the ``semantic`` chunker over scifact's abstracts, one at a
time, as a service would. Every ``--every`` abstracts it prints the RSS, then the RSS after glibc's
``malloc_trim(0)`` hands freed heap back to the system: a leak grows both, memory glibc merely keeps grows only the
first. Run it again with ``MALLOC_MMAP_THRESHOLD_=131072`` in the environment to see the setting README suggests.
The embedding cache goes to a temporary folder, so every window is embedded.

    HF_HUB_OFFLINE=1 python benchmarks/embedding_memory.py [--documents 200] [--every 50] [--chunk-size 128]
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCIFACT = ROOT.parent / "shared" / "datasets" / "scifact" / "corpus.jsonl"


def rss_mb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--chunk-size", type=int, default=128)
    parser.add_argument("--corpus", type=Path, default=SCIFACT)
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"{args.corpus} not found (--corpus: a corpus.jsonl)")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["RAGLOOM_CACHE"] = cache
        from chunkers import get_chunker
        from rag.documents import read_documents
        from rag.resources import Resources

        texts = [document.text for document in read_documents(args.corpus)][: args.documents]
        embedder = Resources().embedder
        chunker = get_chunker("semantic", chunk_size=args.chunk_size).use_embedder(embedder)
        chunker.chunk("Warm up. The model. Now.")
        libc = ctypes.CDLL("libc.so.6")
        print(f"MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', '(unset)')}; "
              f"after loading: {rss_mb()} MB")
        began = time.perf_counter()
        for done, text in enumerate(texts, 1):
            chunker.chunk(text)
            if done % args.every == 0 or done == len(texts):
                gc.collect()
                before = rss_mb()
                libc.malloc_trim(0)
                print(f"{done:5d} abstracts: RSS {before} MB, after malloc_trim {rss_mb()} MB "
                      f"({time.perf_counter() - began:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
