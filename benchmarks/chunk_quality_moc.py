"""Do MoC's gold-free chunk-quality metrics agree with gold-span retrieval? Measured on a slice of chroma-chunking.

MoC (Zhao et al. 2025) scores a chunking without labels, from a small causal LM's perplexities: Boundary Clarity
(BC, ``ppl(q | d) / ppl(q)`` over consecutive chunks, higher is better) and Chunk Stickiness (CS, structural
entropy of the graph linking chunk ``i`` to a later chunk ``j`` when ``K(i, j) = 1 − ppl(x_j | x_i) / ppl(x_j)``
exceeds a threshold, lower is better); ``evals/chunk_quality.py`` implements both. The paper reports that they
track downstream QA. Here each chunker gets BC, CS and the gold-based scores of benchmarks/chunking_quality.py
(the Chroma span protocol: all-MiniLM-L6-v2, top 5 chunks by cosine over the pooled chunks, character recall
and IoU), and the script reports the rank agreement between them across chunkers.

LM time is the limit, so every document is cut to its first ``--chars`` characters, and only the questions whose
gold spans all lie inside those slices are scored (retrieval runs over the pooled chunks of the slices). The LM is
slower still than that allows (Gemma 3 270M scores about 60 tokens/s on this 2-core machine), so BC and CS are
computed over the chunks of the same chunking that end within the first ``--lm-chars`` characters of each
document (a prefix of every document's chunk sequence; ``--lm-chars`` equal to ``--chars`` scores everything).

Settings fixed before any BC / CS value was seen (not tuned on the results):

- CS on the *incomplete* graph (MoC's default: chunk ``j`` is conditioned only on earlier chunks ``i < j``),
  threshold ``K = 0.5`` (``evals.chunk_quality``'s default, what ``ragloom chunk --quality`` reports) and no
  window (every earlier chunk of the slice, as in MoC; ``--window`` narrows it). CS at other thresholds is
  printed as a labelled, post-hoc sensitivity check, and so is the edge rule of the authors' released
  ``relation_eval.py``. The committed run (docs/results/chunk_quality_moc.md) had to use ``--window 1``: the
  full graph would have taken about an hour of LM time on this machine.
- Spearman's rho and Kendall's tau (with exact permutation p-values: the number of chunkers is tiny) of BC and of
  CS against recall and IoU, across all chunkers.

The "random cut" chunker is a deliberately bad baseline: chunks of about 200 tokens cut at random character
positions (mid-word, mid-sentence), built here as ragloom :class:`~rag.types.Chunk` values.

    HF_HUB_OFFLINE=1 python benchmarks/chunk_quality_moc.py [--chars 12000] [--lm-chars 3000] [--window 1] \
        [--json out.json]
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chunking_quality import DATASET, PLAIN, TOP_K, read_dataset  # noqa: E402
from chunkers import get_chunker  # noqa: E402
from evals.chunk_quality import boundary_clarity, chunk_stickiness, structural_entropy  # noqa: E402
from evals.metrics import top_k_span_scores  # noqa: E402
from rag.types import Chunk, Document, chunk_id  # noqa: E402

RANDOM_CUT = "random cut ~200"
#: cheapest LM work first (a 100-token chunking has twice the chunks, so about four times the CS pairs)
CHUNKERS = [RANDOM_CUT, "token 200", "recursive 200", "sentence 200", "semantic cluster 200", "recursive 100",
            "token 100"]
#: chunker configs not in benchmarks/chunking_quality.py's table
EXTRA: dict[str, dict] = {"token 100": {"op": "token", "chunk_size": 100}}
#: the primary (pre-registered) stickiness threshold and the post-hoc sensitivity thresholds
THRESHOLD = 0.5
SENSITIVITY = (0.2, 0.3, 0.8)
#: the edge rule of the authors' relation_eval.py: an edge where ppl(x_j | x_i) / ppl(x_j) > 0.8
AUTHORS_RATIO = 0.8


# -------------------------------------------------------------------------------------------------- the slice
def slice_corpus(documents: Sequence[Document], queries: Sequence[dict], chars: int
                 ) -> tuple[list[Document], list[dict]]:
    """The first ``chars`` characters of every document, and the queries whose gold spans all lie inside them."""
    sliced = [Document(d.id, d.text[:chars], d.metadata) for d in documents]
    length = {d.id: len(d.text) for d in sliced}
    kept = [q for q in queries
            if q["references"] and all(r["doc_id"] in length and r["end"] <= length[r["doc_id"]]
                                       for r in q["references"])]
    return sliced, kept


# ------------------------------------------------------------------------------------- the bad baseline chunker
def random_cut_chunks(document: Document, tokenizer, chunk_tokens: int = 200, spread: float = 0.25,
                      seed: int = 0) -> list[Chunk]:
    """Chunks of about ``chunk_tokens`` tokens cut at random character positions: a deliberately bad chunker.

    Each length is ``chunk_tokens`` × the document's mean characters per token × a factor drawn uniformly from
    ``[1 − spread, 1 + spread]``, so a cut lands anywhere (inside words and sentences) and sizes vary. The
    random stream depends on ``seed`` and the document id only; offsets are exact and cover the text.
    """
    text = document.text
    if not text:
        return []
    rng = np.random.default_rng([seed, zlib.crc32(document.id.encode("utf-8"))])
    chars_per_token = len(text) / max(1, tokenizer.count(text))
    chunks, start = [], 0
    while start < len(text):
        length = max(1, round(chunk_tokens * chars_per_token * rng.uniform(1 - spread, 1 + spread)))
        end = min(len(text), start + length)
        piece = text[start:end]
        chunks.append(Chunk(chunk_id(document.id, len(chunks)), document.id, piece, start, end,
                            tokenizer.count(piece), dict(document.metadata), tokenizer.identity))
        start = end
    return chunks


# ----------------------------------------------------------------------------------------------- LM bookkeeping
class MemoizedRatios:
    """A ``CausalLM`` whose ``perplexity_ratios`` scores each ``(context, text)`` pair once and times the LM.

    BC's pairs are CS's ``j = i + 1`` edges and CS is read at several thresholds: with the memo each runs the
    LM once. ``tokens`` counts the LM tokens scored (context + text, as tokenized by the LM)."""

    def __init__(self, lm):
        self.lm = lm
        self.cache: dict[tuple[str, str], float] = {}
        self.seconds = 0.0
        self.tokens = 0

    def perplexity_ratios(self, texts: Sequence[str], contexts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(k for k in zip(contexts, texts) if k not in self.cache))
        if missing:
            started = time.perf_counter()
            values = self.lm.perplexity_ratios([t for _, t in missing], [c for c, _ in missing])
            self.seconds += time.perf_counter() - started
            self.tokens += sum(self.lm.count_tokens(c) + self.lm.count_tokens(t) for c, t in missing)
            self.cache.update(zip(missing, map(float, values)))
        return np.array([self.cache[k] for k in zip(contexts, texts)], dtype=np.float64)


def _groups(chunks: Sequence[Chunk]) -> list[list[Chunk]]:
    groups: dict[str, list[Chunk]] = {}
    for c in chunks:
        groups.setdefault(c.doc_id, []).append(c)
    return [sorted(g, key=lambda c: (c.start, c.end)) for g in groups.values()]


def pair_ratios(memo: MemoizedRatios, chunks: Sequence[Chunk]) -> list[tuple[int, int, int, float]]:
    """``(document index, i, j, ppl(x_j | x_i) / ppl(x_j))`` for every ``i < j`` of a document, from the memo
    (call after :func:`evals.chunk_quality.chunk_stickiness` has scored the incomplete graph)."""
    out = []
    for d, group in enumerate(_groups(chunks)):
        texts = [c.text for c in group]
        for i, j in itertools.combinations(range(len(group)), 2):
            ratio = memo.cache.get((texts[i], texts[j]))
            if ratio is not None:
                out.append((d, i, j, ratio))
    return out


def authors_rule_stickiness(chunks: Sequence[Chunk], ratios) -> float:
    """CS with the edge rule of MoC's released relation_eval.py (incomplete graph): an edge ``i — j`` where
    ``ppl(x_j | x_i) / ppl(x_j) > 0.8``, i.e. ``K(i, j) < 0.2`` — the opposite direction of the paper's text."""
    sizes = [len(g) for g in _groups(chunks)]
    entropies = []
    for d, n in enumerate(sizes):
        edges = [(i, j) for dd, i, j, r in ratios if dd == d and np.isfinite(r) and r > AUTHORS_RATIO]
        entropies.append(structural_entropy(n, edges))
    return float(np.mean(entropies)) if entropies else math.nan


# ------------------------------------------------------------------------------------------ rank correlations
def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank."""
    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        ranks[values == value] = ranks[values == value].mean()
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson's correlation of the (tie-averaged) ranks; ``nan`` when either side is constant."""
    rx, ry = _ranks(np.asarray(x, float)), _ranks(np.asarray(y, float))
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def kendall(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b: ``Σ sign(Δx) sign(Δy) / sqrt((pairs − x ties)(pairs − y ties))`` over all pairs."""
    dx = np.sign(np.subtract.outer(np.asarray(x, float), np.asarray(x, float)))[np.triu_indices(len(x), 1)]
    dy = np.sign(np.subtract.outer(np.asarray(y, float), np.asarray(y, float)))[np.triu_indices(len(y), 1)]
    denominator = math.sqrt(np.count_nonzero(dx) * np.count_nonzero(dy))
    return float((dx * dy).sum() / denominator) if denominator else math.nan


def permutation_p(statistic, x: Sequence[float], y: Sequence[float]) -> float:
    """Exact two-sided p-value of ``statistic(x, y)`` over all orderings of ``y`` (n ≤ 8 keeps this cheap)."""
    observed = statistic(x, y)
    if not np.isfinite(observed):
        return math.nan
    values = [statistic(x, list(p)) for p in itertools.permutations(y)]
    return float(np.mean([abs(v) >= abs(observed) - 1e-12 for v in values]))


def agreement(results: dict[str, dict], metric: str, target: str) -> dict:
    names = [n for n in results if np.isfinite(results[n][metric])]
    x, y = [results[n][metric] for n in names], [results[n][target] for n in names]
    return {"n": len(names), "spearman": spearman(x, y), "spearman_p": permutation_p(spearman, x, y),
            "kendall": kendall(x, y), "kendall_p": permutation_p(kendall, x, y)}


# ------------------------------------------------------------------------------------------------- the runs
def chunk_slice(name: str, documents, resources, tokenizer) -> list[Chunk]:
    if name == RANDOM_CUT:
        return [c for d in documents for c in random_cut_chunks(d, tokenizer)]
    spec = dict(EXTRA.get(name) or PLAIN[name])
    chunker = get_chunker(spec.pop("op"), **spec)
    if hasattr(chunker, "use_embedder"):
        chunker.use_embedder(resources.embedder)
    return chunker.chunk_documents(documents)


def measure(name: str, documents, queries, query_vectors, resources, tokenizer, lm, lm_chars: int,
            window: int | None = None) -> dict:
    chunks = chunk_slice(name, documents, resources, tokenizer)
    by_id = {d.id: d.text for d in documents}
    assert all(by_id[c.doc_id][c.start:c.end] == c.text for c in chunks), f"{name}: inexact offsets"
    vectors = resources.embedder.embed([c.text for c in chunks])
    golds = [[(r["doc_id"], r["start"], r["end"]) for r in q["references"]] for q in queries]
    scores = top_k_span_scores(chunks, vectors, query_vectors, golds, TOP_K, stable=False)
    sizes = {"chunks": len(chunks), "mean_tokens": float(np.mean([c.token_count for c in chunks])),
             "mean_chars": float(np.mean([len(c.text) for c in chunks]))}
    memo = MemoizedRatios(lm)
    chunks = [c for c in chunks if c.end <= lm_chars]  # the LM metrics' prefix of every document
    load_before = os.getloadavg()[0]
    bc = boundary_clarity(memo, chunks)
    cs = chunk_stickiness(memo, chunks, threshold=THRESHOLD, graph="incomplete", window=window)
    sensitivity = {str(k): chunk_stickiness(memo, chunks, threshold=k, graph="incomplete", window=window)
                   for k in SENSITIVITY}
    ratios = pair_ratios(memo, chunks)
    strengths = np.array([1 - r for *_, r in ratios if np.isfinite(r)])
    adjacent = np.array([1 - r for _, i, j, r in ratios if j == i + 1 and np.isfinite(r)])
    return {
        **sizes, "lm_chunks": len(chunks),
        "bc": bc, "cs": cs, "cs_sensitivity": sensitivity,
        "cs_authors_rule": authors_rule_stickiness(chunks, ratios),
        "k_pairs": {"pairs": int(len(strengths)), "median": float(np.median(strengths)),
                    "p90": float(np.percentile(strengths, 90)), "max": float(strengths.max()),
                    "share_over_threshold": float((strengths > THRESHOLD).mean()),
                    "adjacent_median": float(np.median(adjacent))},
        "recall": float(np.mean([s.recall for s in scores])), "iou": float(np.mean([s.iou for s in scores])),
        "precision": float(np.mean([s.precision for s in scores])),
        "lm_seconds": memo.seconds, "lm_calls": len(memo.cache), "lm_tokens": memo.tokens,
        "lm_tokens_per_second": memo.tokens / memo.seconds if memo.seconds else math.nan,
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
    }


def render(results: dict[str, dict]) -> str:
    lines = [f"| chunker | chunks | mean tokens | chunks scored by the LM | BC ↑ | CS ↓ (K={THRESHOLD}) | recall "
             "| IoU | LM s |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['chunks']} | {r['mean_tokens']:.0f} | {r['lm_chunks']} | {r['bc']:.3f} | "
                     f"{r['cs']:.3f} | {r['recall']:.3f} | {r['iou']:.3f} | {r['lm_seconds']:.0f} |")
    return "\n".join(lines)


def render_diagnostics(results: dict[str, dict]) -> str:
    ks = ", ".join(f"K={k}" for k in SENSITIVITY)
    lines = [f"| chunker | K(i,j) pairs | median K | adjacent median K | p90 K | max K | share K>{THRESHOLD} "
             f"| CS at {ks} (post hoc) | CS, authors' rule (post hoc) | LM tokens/s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        p = r["k_pairs"]
        sens = " / ".join(f"{r['cs_sensitivity'][str(k)]:.3f}" for k in SENSITIVITY)
        lines.append(f"| {name} | {p['pairs']} | {p['median']:.3f} | {p['adjacent_median']:.3f} | {p['p90']:.3f} "
                     f"| {p['max']:.3f} | {p['share_over_threshold']:.3f} | {sens} | {r['cs_authors_rule']:.3f} "
                     f"| {r['lm_tokens_per_second']:.0f} |")
    return "\n".join(lines)


def correlations(results: dict[str, dict]) -> dict[str, dict]:
    out = {}
    for metric in ("bc", "cs"):
        for target in ("recall", "iou"):
            out[f"{metric} vs {target}"] = agreement(results, metric, target)
    flat = {n: {**r, **{f"cs@{k}": v for k, v in r["cs_sensitivity"].items()}, "cs_authors": r["cs_authors_rule"]}
            for n, r in results.items()}
    for metric in [f"cs@{k}" for k in SENSITIVITY] + ["cs_authors"]:
        out[f"{metric} vs recall (post hoc)"] = agreement(flat, metric, "recall")
    same_size = {n: r for n, r in results.items() if "200" in n}
    for metric in ("bc", "cs"):
        out[f"{metric} vs recall, ~200-token chunkers only"] = agreement(same_size, metric, "recall")
    return out


def render_correlations(table: dict[str, dict]) -> str:
    lines = ["| pair | n | Spearman ρ (exact p) | Kendall τ (exact p) |", "|---|---|---|---|"]
    for name, c in table.items():
        lines.append(f"| {name} | {c['n']} | {c['spearman']:+.3f} ({c['spearman_p']:.3f}) | "
                     f"{c['kendall']:+.3f} ({c['kendall_p']:.3f}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chars", type=int, default=12000, help="characters kept from the start of each document")
    parser.add_argument("--lm-chars", type=int, default=3000,
                        help="BC / CS over the chunks ending within this many characters of each document")
    parser.add_argument("--window", type=int, default=None,
                        help="CS links chunks at most this many apart (default: all pairs, as MoC)")
    parser.add_argument("--lm", default="gemma3-270m", help="causal LM for BC / CS (default the bundled GGUF)")
    parser.add_argument("--dtype", default="float32", help="LM dtype (float32 is load_causal_lm's default)")
    parser.add_argument("--only", nargs="*", help="chunker names to run (default: all)")
    parser.add_argument("--json", help="write the results here (and resume from it)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not DATASET.exists():
        sys.exit(f"dataset not found: {DATASET}")
    from rag.lm import load_causal_lm
    from rag.resources import Resources
    from rag.tokens import TiktokenTokenizer

    documents, queries = slice_corpus(*read_dataset(DATASET), args.chars)
    lm_chars = min(args.lm_chars, args.chars)
    print(f"slice: first {args.chars} characters of {len(documents)} documents; {len(queries)} questions with "
          f"every gold span inside; BC / CS over the chunks within the first {lm_chars}", flush=True)
    resources = Resources(embedder={"model": "minilm"})
    query_vectors = resources.embedder.embed_queries([q["text"] for q in queries])
    tokenizer = TiktokenTokenizer("cl100k_base")
    lm = load_causal_lm(args.lm, dtype=args.dtype)
    started = time.perf_counter()
    lm.model  # load once (~1 min), outside the timed LM work
    print(f"LM {lm.identity} loaded in {time.perf_counter() - started:.0f} s", flush=True)
    setup = {"chars": args.chars, "lm_chars": lm_chars, "window": args.window, "lm": lm.identity,
             "threshold": THRESHOLD}
    out = Path(args.json) if args.json else None
    saved = json.loads(out.read_text()) if out and out.exists() else {}
    same_setup = saved.get("setup") == setup
    results: dict[str, dict] = dict(saved.get("chunkers", {})) if same_setup else {}
    for name in CHUNKERS:
        if (args.only and name not in args.only) or name in results:
            continue
        results[name] = measure(name, documents, queries, query_vectors, resources, tokenizer, lm, lm_chars,
                                args.window)
        print(f"{name}: {json.dumps(results[name])}", flush=True)
        if out:
            out.write_text(json.dumps({"setup": setup,
                                       "questions": len(queries), "chunkers": results}, indent=1))
    ordered = {n: results[n] for n in CHUNKERS if n in results}
    table = correlations(ordered)
    if out:
        out.write_text(json.dumps({"setup": setup,
                                   "questions": len(queries), "chunkers": results, "correlations": table},
                                  indent=1))
    print(render(ordered), render_diagnostics(ordered), render_correlations(table), sep="\n\n")


if __name__ == "__main__":
    main()
