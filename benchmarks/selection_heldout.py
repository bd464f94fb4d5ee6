"""Held-out check of ``select``'s ``smoothing`` weight on a span dataset: the weight is chosen on some questions
and the gain over ``topk`` is reported on the others, so the claim is not fitted to the questions it is made on.

Splits: leave-one-document-out (chroma-chunking's questions each have their evidence in one of five corpus
documents of different genres: choose on the questions of four, test on the fifth) and two fixed splits by
question index (even/odd, first/second half; each half used once for choosing and once for testing). The weight
is chosen by the sum of the span-recall gains at all budgets (criterion ``all``) or at the target budget only
(``target``). A paired bootstrap gives 95 % intervals of the held-out gain. First stage as in
``selection_budget.py`` (token chunks, MiniLM, top 100).

    HF_HUB_OFFLINE=1 python benchmarks/selection_heldout.py --dataset chroma-chunking --chunk-size 128
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from selection_budget import DATASETS, first_stage  # noqa: E402

from evals.datasets import load_beir  # noqa: E402
from evals.metrics import span_scores  # noqa: E402
from rag.operators import RunContext  # noqa: E402
from rag.registry import create  # noqa: E402
from rag.resources import Resources  # noqa: E402

WEIGHTS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def span_recalls(queries, candidates, budget: int, **params) -> np.ndarray:
    """Per-query span recall of the context ``select`` chooses."""
    op = create("select", {"budget_tokens": budget, "when_nothing_fits": "empty", **params})
    ctx = RunContext(None, Resources())
    out = []
    for query, hits in zip(queries, candidates):
        context, _ = op.select(hits, ctx)
        out.append(span_scores([(h.chunk.doc_id, h.chunk.start, h.chunk.end) for h in context],
                               query.references).recall)
    return np.array(out)


def bootstrap(gains: np.ndarray, rounds: int = 10_000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = gains[rng.integers(0, len(gains), size=(rounds, len(gains)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="chroma-chunking")
    parser.add_argument("--chunk-size", type=int, default=128)
    parser.add_argument("--overlap", type=int, default=0)
    parser.add_argument("--title", choices=["auto", "on", "off"], default="auto",
                        help="embed title + text (auto: only for whole documents, like the protocols)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--target", type=int, default=1000, help="budget of the claim")
    parser.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS))
    parser.add_argument("--default", type=float, default=0.3, help="the shipped default weight, also reported")
    args = parser.parse_args()

    dataset = load_beir(DATASETS / args.dataset if not Path(args.dataset).exists() else args.dataset)
    queries, candidates = first_stage(dataset, args.chunk_size, args.overlap, 100, None,
                                     {"auto": None, "on": True, "off": False}[args.title])
    weights = sorted(set(args.weights) | {args.default})
    budgets = args.budgets
    gains = {}  # (weight, budget) -> per-query gain over topk
    for budget in budgets:
        base = span_recalls(queries, candidates, budget, strategy="topk")
        for w in weights:
            gains[w, budget] = span_recalls(queries, candidates, budget, strategy="smoothed", smoothing=w) - base
        print(f"# budget {budget}: topk {base.mean():.3f}", file=sys.stderr, flush=True)

    n = len(queries)
    group = np.array([q.references[0][0] for q in queries])
    splits: dict[str, list[tuple[str, np.ndarray]]] = {
        "leave one document out": [(d, group == d) for d in sorted(set(group))],
        "even / odd question": [("odd→even", np.arange(n) % 2 == 0), ("even→odd", np.arange(n) % 2 == 1)],
        "first / second half": [("2nd→1st", np.arange(n) < n // 2), ("1st→2nd", np.arange(n) >= n // 2)],
    }
    criteria = {"all": budgets, "target": [args.target]}

    print(f"\n{args.dataset}: token chunks {args.chunk_size} (overlap {args.overlap}, title {args.title}), MiniLM top 100, "
          f"{n} questions; smoothed vs topk, Δ span recall\n")
    print("| weight | " + " | ".join(f"Δ @ {b}" for b in budgets) + " | per document @ " + str(args.target) + " |")
    print("|---|" + "---|" * (len(budgets) + 1))
    for w in weights:
        per_doc = ", ".join(f"{d} {gains[w, args.target][group == d].mean():+.3f}" for d in sorted(set(group)))
        print(f"| {w:g} | " + " | ".join(f"{gains[w, b].mean():+.3f}" for b in budgets) + f" | {per_doc} |")

    print("\nHeld out (weight chosen on the other part, gain measured on this part):\n")
    print("| split | criterion | chosen weights | " + " | ".join(f"held-out Δ @ {b} [95 % CI]" for b in budgets) + " |")
    print("|---|---|---|" + "---|" * len(budgets))
    for split, parts in splits.items():
        for criterion, scored in criteria.items():
            held = {b: np.zeros(n) for b in budgets}
            chosen = []
            for name, test in parts:
                train = ~test
                w = max(weights, key=lambda w: sum(gains[w, b][train].mean() for b in scored))
                chosen.append(f"{name}: {w:g}")
                for b in budgets:
                    held[b][test] = gains[w, b][test]
            cells = " | ".join(f"{held[b].mean():+.3f} [{bootstrap(held[b])[0]:+.3f}, {bootstrap(held[b])[1]:+.3f}]"
                               for b in budgets)
            print(f"| {split} | {criterion} | {'; '.join(chosen)} | {cells} |")
    cells = " | ".join(f"{gains[args.default, b].mean():+.3f} [{bootstrap(gains[args.default, b])[0]:+.3f}, "
                       f"{bootstrap(gains[args.default, b])[1]:+.3f}]" for b in budgets)
    print(f"| all questions | default {args.default:g} | – | {cells} |")


if __name__ == "__main__":
    main()
