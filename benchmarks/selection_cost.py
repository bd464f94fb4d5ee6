"""Cost of ``op: select`` per query at 100 real candidates: cold and warm, per strategy and budget.

Candidates: chroma-chunking, token chunker 128, MiniLM, exact cosine, top 100 (the first stage of
``selection_budget.py``). For each query and each (budget, strategy), in interleaved order so every strategy
sees the same machine load:

- cold: a fresh ``select`` operator (no cached token counts or MinHash signatures) selects once;
- warm: the same operator selects again for the same query (everything per-chunk is cached).

Candidate chunks record the tokenizer of their ``token_count`` (``Chunk.tokenizer``, as every chunker's do), so
select counts only merged spans. ``--minhash`` gives select an index whose ``minhash`` structure
(retrievers/minhash.py) holds every candidate's MinHash signature, computed before timing as an index computes them
when it adds chunks; without it select computes the signatures of the chunks it has not seen.

Prints, per budget × strategy, the median, p95 and mean over queries of wall time and of CPU time
(``time.process_time``: the process's own work in all its threads — tiktoken counts in a thread pool — which
is less sensitive than wall time to other jobs on a shared machine), plus the load average before and after.
It never asserts on time.

    HF_HUB_OFFLINE=1 python benchmarks/selection_cost.py --limit 200 [--minhash]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from evals.datasets import load_beir  # noqa: E402
from rag.config import parse_index_config  # noqa: E402
from rag.index.store import Index  # noqa: E402
from rag.operators import RunContext  # noqa: E402
from rag.registry import create  # noqa: E402
from rag.resources import Resources  # noqa: E402
from retrievers.select import STRATEGIES  # noqa: E402
from selection_budget import DATASETS, first_stage  # noqa: E402


def timed(call) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="chroma-chunking")
    parser.add_argument("--chunk-size", type=int, default=128)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--budgets", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--limit", type=int, default=None, help="first N queries only")
    parser.add_argument("--neighbour-weight", type=float, default=0.0)
    parser.add_argument("--minhash", action="store_true",
                        help="read MinHash signatures from an index's minhash structure (computed before timing)")
    args = parser.parse_args()

    dataset = load_beir(DATASETS / args.dataset if not Path(args.dataset).exists() else args.dataset)
    queries, candidates = first_stage(dataset, args.chunk_size, 0, args.candidates, args.limit)
    index = None
    if args.minhash:  # what Index.add_documents does for the chunks, minus chunking and the other structures
        chunks = list({h.chunk.id: h.chunk for hits in candidates for h in hits}.values())
        index = Index(parse_index_config({"chunker": {"op": "token"}, "structures": ["minhash"]}))
        index.chunks.update((c.id, c) for c in chunks)
        index.structure("minhash").add(chunks)
    ctx = RunContext(index, Resources())
    ctx.resources.tokenizer().count("warm up the tokenizer")
    configs = [(b, s) for b in args.budgets for s in args.strategies]
    # times[config][kind] = list of (wall, cpu) per query
    times = {c: {"cold": [], "warm": []} for c in configs}
    load_before = load()
    for hits in candidates:
        for budget, strategy in configs:
            op = create("select", {"budget_tokens": budget, "strategy": strategy, "when_nothing_fits": "empty",
                                   "neighbour_weight": args.neighbour_weight})
            times[budget, strategy]["cold"].append(timed(lambda: op.select(hits, ctx)))
            times[budget, strategy]["warm"].append(timed(lambda: op.select(hits, ctx)))
    load_after = load()

    print(f"\n{args.dataset}: token chunker {args.chunk_size}, MiniLM top {args.candidates}, "
          f"{len(candidates)} queries, neighbour_weight={args.neighbour_weight}, "
          f"signatures {'from the minhash structure' if args.minhash else 'computed by select'}; "
          f"load average before {load_before}, "
          f"after {load_after} ({os.cpu_count()} CPUs)\n")
    print("ms per query (median / p95 / mean over queries)\n")
    print("| budget | strategy | warm wall | warm CPU | cold wall | cold CPU |")
    print("|---|---|---|---|---|---|")
    for budget, strategy in configs:
        cells = []
        for kind in ("warm", "cold"):
            seconds = 1000 * np.array(times[budget, strategy][kind])
            for column in (0, 1):
                ms = seconds[:, column]
                cells.append(f"{np.median(ms):.2f} / {np.percentile(ms, 95):.2f} / {ms.mean():.2f}")
        print(f"| {budget} | {strategy} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
