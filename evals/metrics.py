"""Every evaluation metric ragloom reports, each defined once with its formula.

Three families:

- **ranking** (on document ids, best first; ``qrels`` maps doc id → graded relevance, > 0 means relevant):
  nDCG@k, R@k, P@k, MRR@k, AP / MAP, hit rate@k, all-gold@k — as trec_eval defines them, except that
  nDCG uses the exponential gain 2^rel − 1 (Burges et al. 2005; identical to trec_eval's linear gain for
  binary judgements);
- **span** (chunking, on characters; the protocol of Smith & Troynikov 2024, "Evaluating Chunking Strategies
  for Retrieval", Chroma, as implemented in brandonstarxel/chunking_evaluation): recall, precision, IoU;
- **answer** (SQuAD, Rajpurkar et al. 2016): exact match and token F1 after SQuAD normalisation, and whether
  a gold answer appears in the context.

Averages over queries are plain means (``mean``); a query without any relevant document is left out of the
ranking averages (trec_eval does the same), a query without gold spans out of the span averages.

Metric names used in result files (``metric_name``): ``nDCG@10``, ``R@5``, ``P@5``, ``MRR@10``, ``MAP``,
``Hit@5``, ``AllGold@5``, ``span_recall``, ``span_precision``, ``span_iou``, ``EM``, ``F1``,
``answer_in_context``.
"""
from __future__ import annotations

import collections
import math
import re
import string
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

Qrels = Mapping[str, int]
Span = tuple[str, int, int]  # (doc_id, start, end), characters, end exclusive


# ----------------------------------------------------------------------------------------------- ranking

def _relevant(qrels: Qrels) -> set[str]:
    return {doc for doc, rel in qrels.items() if rel > 0}


def dedupe_ranking(ids: Iterable[str]) -> list[str]:
    """Keep each id at its first (best) rank: chunk hits → document ranking."""
    return list(dict.fromkeys(ids))


def ndcg_at_k(ranked: Sequence[str], qrels: Qrels, k: int) -> float:
    """nDCG@k = DCG@k / IDCG@k.

    DCG@k = Σ_{i=1..k} (2^{rel_i} − 1) / log2(i + 1), rel_i the judgement of the document at rank i (0 if
    unjudged); IDCG@k is the DCG@k of the judged documents sorted by relevance. 0 when nothing is relevant.
    """
    gains = [2.0 ** qrels.get(doc, 0) - 1.0 for doc in ranked[:k]]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted((rel for rel in qrels.values() if rel > 0), reverse=True)[:k]
    idcg = sum((2.0 ** rel - 1.0) / math.log2(i + 2) for i, rel in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], qrels: Qrels, k: int) -> float:
    """R@k = |gold ∩ top k| / |gold| (gold = documents with relevance > 0)."""
    gold = _relevant(qrels)
    return len(gold.intersection(ranked[:k])) / len(gold) if gold else 0.0


def precision_at_k(ranked: Sequence[str], qrels: Qrels, k: int) -> float:
    """P@k = |gold ∩ top k| / k (trec_eval divides by k even when fewer than k documents were returned)."""
    gold = _relevant(qrels)
    return len(gold.intersection(ranked[:k])) / k


def mrr_at_k(ranked: Sequence[str], qrels: Qrels, k: int) -> float:
    """MRR@k = 1 / rank of the first relevant document within the top k, 0 if there is none."""
    gold = _relevant(qrels)
    for i, doc in enumerate(ranked[:k]):
        if doc in gold:
            return 1.0 / (i + 1)
    return 0.0


def average_precision(ranked: Sequence[str], qrels: Qrels, k: int | None = None) -> float:
    """AP = Σ_{i: doc_i relevant, i ≤ k} P@i / |gold| (trec_eval ``map``; the mean over queries is MAP)."""
    gold = _relevant(qrels)
    if not gold:
        return 0.0
    found, total = 0, 0.0
    for i, doc in enumerate(ranked[:k] if k else ranked):
        if doc in gold:
            found += 1
            total += found / (i + 1)
    return total / len(gold)


def hit_rate_at_k(ranked: Sequence[str], qrels: Qrels, k: int) -> float:
    """Hit@k = 1 if at least one relevant document is in the top k, else 0 (mean over queries: hit rate)."""
    return 1.0 if _relevant(qrels).intersection(ranked[:k]) else 0.0


def all_gold_at_k(ranked: Sequence[str], qrels: Qrels, k: int) -> float:
    """AllGold@k = 1 if every relevant document is in the top k, else 0 (multi-hop: all supports found)."""
    gold = _relevant(qrels)
    return 1.0 if gold and gold.issubset(ranked[:k]) else 0.0


RANKING_METRICS = {
    "nDCG": ndcg_at_k,
    "R": recall_at_k,
    "P": precision_at_k,
    "MRR": mrr_at_k,
    "Hit": hit_rate_at_k,
    "AllGold": all_gold_at_k,
}


def parse_metric(name: str) -> tuple[str, int | None]:
    """``"nDCG@10"`` → ``("nDCG", 10)``; ``"MAP"`` → ``("MAP", None)``. Raises ValueError for unknown names."""
    base, _, cut = name.partition("@")
    if base == "MAP":
        return base, int(cut) if cut else None
    if base in RANKING_METRICS:
        if not cut.isdigit() or int(cut) < 1:
            raise ValueError(f"{name!r}: {base} needs a cutoff, e.g. {base}@10")
        return base, int(cut)
    if name in SPAN_METRICS or name in ANSWER_METRICS or name in COST_METRICS:
        return name, None
    raise ValueError(f"unknown metric {name!r}; known: {', '.join(known_metric_names())}")


def known_metric_names() -> list[str]:
    return [f"{b}@k" for b in RANKING_METRICS] + ["MAP", "MAP@k", *SPAN_METRICS, *ANSWER_METRICS, *COST_METRICS]


def ranking_scores(ranked: Sequence[str], qrels: Qrels, names: Iterable[str]) -> dict[str, float]:
    """The named ranking metrics (e.g. ``["nDCG@10", "R@100", "MAP"]``) for one query."""
    ranked = dedupe_ranking(ranked)
    scores: dict[str, float] = {}
    for name in names:
        base, k = parse_metric(name)
        if base == "MAP":
            scores[name] = average_precision(ranked, qrels, k)
        elif base in RANKING_METRICS:
            scores[name] = RANKING_METRICS[base](ranked, qrels, k)
    return scores


# -------------------------------------------------------------------------------------------------- spans

SPAN_METRICS = ("span_recall", "span_precision", "span_iou")


def merge_intervals(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of half-open intervals as sorted, disjoint intervals (touching ones merged)."""
    merged: list[list[int]] = []
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def _union_length(spans: Sequence[Span]) -> int:
    """Characters in any of ``spans``, each counted once (per document)."""
    by_doc: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    for doc, start, end in spans:
        by_doc[doc].append((start, end))
    return sum(end - start for intervals in by_doc.values() for start, end in merge_intervals(intervals))


def _covered_characters(retrieved: Sequence[Span], gold: Sequence[Span]) -> int:
    pieces: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    for doc, g_start, g_end in gold:
        for r_doc, r_start, r_end in retrieved:
            if r_doc == doc:
                lo, hi = max(g_start, r_start), min(g_end, r_end)
                if lo < hi:
                    pieces[doc].append((lo, hi))
    return sum(e - s for doc_pieces in pieces.values() for s, e in merge_intervals(doc_pieces))


@dataclass(frozen=True, slots=True)
class SpanScores:
    recall: float
    precision: float
    iou: float
    covered: int
    retrieved: int
    gold: int

    def as_metrics(self) -> dict[str, float]:
        return {"span_recall": self.recall, "span_precision": self.precision, "span_iou": self.iou}


def span_scores(retrieved: Sequence[Span], gold: Sequence[Span], union_retrieved: bool = False) -> SpanScores:
    """Character-level recall, precision and IoU of retrieved spans against gold spans.

    covered = |∪ (retrieved ∩ gold)| — gold characters covered by any retrieved span, each counted once;
    gold = |∪ gold| — gold characters, each counted once; retrieved = Σ |retrieved span| (every retrieved span
    counted in full, even if two overlap or it lies in another document — exactly what chunking_evaluation's
    ``sum_of_ranges`` does). recall = covered / gold; precision = covered / retrieved; IoU = covered /
    (retrieved + gold − covered). ``union_retrieved=True`` counts overlapping retrieved characters once instead
    (a stricter precision). Each is 0 when its denominator is 0. (chunking_evaluation sums the gold spans too,
    so a question whose references overlap could not reach recall 1 there; its own dataset has no such
    question, and there the two agree.)
    """
    gold_total = _union_length(gold)
    if union_retrieved:
        retrieved_total = _union_length(retrieved)
    else:
        retrieved_total = sum(max(0, e - s) for _, s, e in retrieved)
    covered = _covered_characters(retrieved, gold)
    union = retrieved_total + gold_total - covered
    return SpanScores(
        recall=covered / gold_total if gold_total else 0.0,
        precision=covered / retrieved_total if retrieved_total else 0.0,
        iou=covered / union if union else 0.0,
        covered=covered, retrieved=retrieved_total, gold=gold_total,
    )



def top_k_span_scores(chunks: Sequence[Any], chunk_vectors: np.ndarray, query_vectors: np.ndarray,
                      golds: Sequence[Sequence[Span]], k: int = 5, stable: bool = True) -> list[SpanScores]:
    """Per-query scores of the Chroma span protocol: each query's top ``k`` chunks by inner product (cosine for
    unit vectors) against its gold spans (:func:`span_scores`). ``stable`` breaks exact ties by chunk order (the
    first copy of identical chunks wins); ``False`` keeps numpy's default sort order, the rule
    benchmarks/chunking_quality.py's published table was measured with."""
    top = np.argsort(-(query_vectors @ chunk_vectors.T), axis=1, kind="stable" if stable else None)[:, :k]
    return [span_scores([(chunks[i].doc_id, chunks[i].start, chunks[i].end) for i in row], gold)
            for gold, row in zip(golds, top)]

# ------------------------------------------------------------------------------------------------ answers

ANSWER_METRICS = ("EM", "F1", "answer_in_context")
#: Costs the reports show (means per query, or totals: evals.runner.aggregate): the first three always, generator
#: calls where a flow generates with a model or when listed, a chunker's LLM calls where it makes some; listing one
#: in an experiment's ``metrics`` is allowed
COST_METRICS = ("context_tokens", "latency_ms", "embedding_model_calls", "generator_model_calls",
                "chunker_model_calls")

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation, drop articles (a, an, the), collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """EM = 1 if normalize(prediction) equals normalize(g) for some gold answer g, else 0."""
    pred = normalize_answer(prediction)
    return 1.0 if any(pred == normalize_answer(g) for g in golds) else 0.0


def _f1(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    """F1 = max over gold answers of 2·P·R/(P+R), P and R over the bags of normalised tokens (SQuAD)."""
    return max((_f1(prediction, g) for g in golds), default=0.0)


def answer_in_context(golds: Sequence[str], contexts: Sequence[str]) -> float:
    """1 if some normalised gold answer is a substring of the normalised, concatenated context, else 0."""
    context = normalize_answer(" ".join(contexts))
    return 1.0 if any(normalize_answer(g) and normalize_answer(g) in context for g in golds) else 0.0


# ----------------------------------------------------------------------------------------------- averages

def mean(values: Iterable[float]) -> float:
    """Arithmetic mean; NaN for no values (a metric that does not apply to any query)."""
    arr = np.fromiter(values, dtype=np.float64)
    return float(arr.mean()) if arr.size else float("nan")
