"""Chunk boundaries of the token, recursive and sentence chunkers on the chroma-chunking corpus, for checking that
a speed change leaves the output byte-for-byte identical.

Writes one line per chunk, ``config doc_id start end token_count metadata``, at sizes 100 / 200 / 400::

    HF_HUB_OFFLINE=1 python benchmarks/chunk_boundaries.py before.txt   # on the old commit
    HF_HUB_OFFLINE=1 python benchmarks/chunk_boundaries.py after.txt    # on the new one
    cmp before.txt after.txt
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chunking_quality import DATASET, read_dataset  # noqa: E402
from chunkers import get_chunker  # noqa: E402

CONFIGS = [(op, {"chunk_size": size, **extra}) for size in (100, 200, 400)
           for op, extra in (("recursive", {}), ("recursive", {"markdown": False}), ("sentence", {}),
                             ("sentence", {"overlap_sentences": 1}), ("token", {}), ("token", {"overlap": 20}))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the file to write, one line per chunk")
    args = parser.parse_args()
    documents, _ = read_dataset(DATASET)
    with open(args.out, "w") as out:
        for op, params in CONFIGS:
            chunker = get_chunker(op, **params)
            name = f"{op}{json.dumps(params, sort_keys=True, separators=(',', ':'))}"
            for chunk in chunker.chunk_documents(documents):
                out.write(f"{name} {chunk.doc_id} {chunk.start} {chunk.end} {chunk.token_count} "
                          f"{json.dumps(chunk.metadata, sort_keys=True)}\n")


if __name__ == "__main__":
    main()
