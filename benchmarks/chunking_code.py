"""The `ast` chunker (cAST) against text chunkers on code, with span gold derived from CoSQA.

No dataset here has span gold over code files, so this builds it the way benchmarks/chunking_passages.py does
for prose: CoSQA's Python functions (every gold function plus random others) are shuffled with a fixed seed and
joined, ``--group`` at a time and separated by a blank line, into module files; a query's gold span is its
function. Then the Chroma protocol: chunk, embed every chunk on its own with MiniLM, top 5 chunks by cosine
over the whole pool, character recall / precision / IoU. Sizes differ in kind (cAST counts non-whitespace
characters, the text chunkers tokens), so each family runs at several sizes and the comparison is on the
recall–IoU plane; a paired randomisation test compares ast with the text chunker of the nearest mean chunk size.
The ast rows are also scored as ragloom indexes them (``rag.types.structure_prefix``: the scope path first).

    HF_HUB_OFFLINE=1 python benchmarks/chunking_code.py [--passages 6267] [--group 20]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chunking_passages import load_joined, per_query_scores  # noqa: E402
from chunkers import get_chunker  # noqa: E402
from evals.significance import randomisation_test  # noqa: E402
from rag.types import structure_prefix  # noqa: E402

#: cAST's budget is non-whitespace characters; its token ceiling is lifted so that the budget decides.
CHUNKERS = {
    "ast 300": {"op": "ast", "language": "python", "max_chars": 300, "chunk_size": 2048},
    "ast 600": {"op": "ast", "language": "python", "max_chars": 600, "chunk_size": 2048},
    "ast 1200": {"op": "ast", "language": "python", "max_chars": 1200, "chunk_size": 2048},
    "recursive 100": {"op": "recursive", "chunk_size": 100},
    "recursive 200": {"op": "recursive", "chunk_size": 200},
    "recursive 400": {"op": "recursive", "chunk_size": 400},
    "token 100": {"op": "token", "chunk_size": 100},
    "token 200": {"op": "token", "chunk_size": 200},
    "token 400": {"op": "token", "chunk_size": 400},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="cosqa")
    parser.add_argument("--passages", type=int, default=6267, help="gold functions plus random others, in all")
    parser.add_argument("--group", type=int, default=20, help="functions per module file")
    parser.add_argument("--only", nargs="*", choices=list(CHUNKERS), help="chunkers to run")
    args = parser.parse_args()
    documents, queries, resources, query_vectors = load_joined(args.dataset, args.passages, args.group,
                                                               ("files", "functions"))
    embedder = resources.embedder
    print("| chunker | chunks | mean chars | recall | precision | IoU | fallbacks |")
    print("|---|---|---|---|---|---|---|")
    results, indexed = {}, {}
    for name, spec in CHUNKERS.items():
        if args.only and name not in args.only:
            continue
        params = dict(spec)
        chunks = get_chunker(params.pop("op"), **params).chunk_documents(documents)
        scores = per_query_scores(chunks, embedder.embed([c.text for c in chunks]), query_vectors, queries)
        mean_chars = float(np.mean([len(c.text) for c in chunks]))
        results[name] = (mean_chars, [s.recall for s in scores], [s.iou for s in scores])
        fallbacks = sum(1 for c in chunks if c.metadata.get("fallback"))
        print(f"| {name} | {len(chunks)} | {mean_chars:.0f} | {np.mean([s.recall for s in scores]):.3f} | "
              f"{np.mean([s.precision for s in scores]):.4f} | {np.mean([s.iou for s in scores]):.4f} | "
              f"{fallbacks} |", flush=True)
        if name.startswith("ast"):  # as ragloom indexes them: the scope path (enclosing definitions) first
            prefixed = per_query_scores(chunks, embedder.embed([structure_prefix(c) + c.text for c in chunks]),
                                        query_vectors, queries)
            indexed[name] = ([s.recall for s in prefixed], [s.recall for s in scores])
            print(f"| {name}, indexed text (scope path first) | {len(chunks)} | {mean_chars:.0f} | "
                  f"{np.mean(indexed[name][0]):.3f} | {np.mean([s.precision for s in prefixed]):.4f} | "
                  f"{np.mean([s.iou for s in prefixed]):.4f} | {fallbacks} |", flush=True)
    for name, (prefixed, plain) in indexed.items():
        print(f"{name}: scope path first, recall {np.mean(prefixed) - np.mean(plain):+.3f} "
              f"(p = {randomisation_test(prefixed, plain):.3f})")
    print("\nast against the text chunker of the nearest mean chunk size (paired randomisation test):")
    for name, (size, recall, iou) in results.items():
        if not name.startswith("ast"):
            continue
        for family in ("recursive", "token"):
            rivals = [(abs(np.log(r[0] / size)), n) for n, r in results.items() if n.startswith(family)]
            if not rivals:
                continue
            rival = min(rivals)[1]
            _, rival_recall, rival_iou = results[rival]
            print(f"  {name} ({size:.0f} chars) vs {rival} ({results[rival][0]:.0f} chars): recall "
                  f"{np.mean(recall) - np.mean(rival_recall):+.3f} (p = {randomisation_test(recall, rival_recall):.3f}), "
                  f"IoU {np.mean(iou) - np.mean(rival_iou):+.4f} (p = {randomisation_test(iou, rival_iou):.3f})")


if __name__ == "__main__":
    main()
