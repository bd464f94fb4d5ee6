"""Generators: extractive answer quality and latency on hotpotqa-100, and the bundled Gemma 3 270M GGUF's
load time, generation speed and scoring speed.

    HF_HUB_OFFLINE=1 python benchmarks/bench_generation.py [--lm] [--hf-queries 10]

Extractive: every query gets the top-10 bm25s passages (title + text) of the hotpotqa-100 corpus as context.
"answer recall" = share of queries (yes/no answers excluded) whose gold answer string occurs in the answer
text (case-insensitive); "gold cited" = share whose answer cites at least one gold passage. The ceiling is the
share whose gold answer occurs anywhere in the 10 passages. Baseline: the first 3 sentences of the top passage
("lead-3"). Latency is per query, cold (fresh embedding cache) and warm (second pass).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "hotpotqa-100"


def load_hotpot():
    corpus = [json.loads(line) for line in open(DATASET / "corpus.jsonl")]
    queries = [json.loads(line) for line in open(DATASET / "queries.jsonl")]
    gold: dict[str, set[str]] = {}
    for line in list(open(DATASET / "qrels" / "test.tsv"))[1:]:
        qid, doc, score = line.split("\t")
        if int(score) > 0:
            gold.setdefault(qid, set()).add(doc)
    return corpus, [q for q in queries if q["_id"] in gold], gold


def contexts_per_query(corpus, queries, k=10):
    import bm25s
    import Stemmer

    from rag.types import Chunk

    stemmer = Stemmer.Stemmer("english")
    texts = [f"{d.get('title', '')}. {d['text']}".strip(". ") for d in corpus]
    retriever = bm25s.BM25(k1=0.9, b=0.4)
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    ids, _ = retriever.retrieve(bm25s.tokenize([q["text"] for q in queries], stopwords="en", stemmer=stemmer,
                                               show_progress=False), k=k, show_progress=False)
    chunks = [Chunk(f"{d['_id']}#0", d["_id"], t, 0, len(t), len(t.split())) for d, t in zip(corpus, texts)]
    return [[chunks[i] for i in row] for row in ids]


def score_answers(name, answers, queries, contexts, gold, seconds):
    factual = [i for i, q in enumerate(queries) if q["answers"][0].lower() not in ("yes", "no")]
    hit = sum(any(a.lower() in answers[i].text.lower() for a in queries[i]["answers"]) for i in factual)
    cited = sum(bool({c.chunk_id.split("#")[0] for c in answers[i].citations} & gold[queries[i]["_id"]])
                for i in range(len(queries)))
    words = statistics.mean(len(a.text.split()) for a in answers)
    return {"method": name, "answer_recall": hit / len(factual), "gold_cited": cited / len(queries),
            "mean_words": words, "ms_per_query": 1000 * seconds / len(queries), "factual_queries": len(factual)}


def bench_extractive(weights=(0.0, 1.0)):
    from rag.generation import create_generator
    from rag.generation.extractive import context_sentences
    from rag.resources import Resources
    from rag.state import Answer, Citation

    corpus, queries, gold = load_hotpot()
    contexts = contexts_per_query(corpus, queries)
    factual = [i for i, q in enumerate(queries) if q["answers"][0].lower() not in ("yes", "no")]
    ceiling = sum(any(a.lower() in " ".join(c.text for c in contexts[i]).lower() for a in queries[i]["answers"])
                  for i in factual) / len(factual)
    rows = []
    resources = Resources()
    resources.embedder.st  # load the model outside the timed region
    variants = [("extractive (defaults)", {})] + [
        (f"extractive, semantic_weight {w}", {"semantic_weight": w}) for w in weights]
    for label, options in variants:
        generator = create_generator({"name": "extractive", **options}, resources)
        passes = []
        for _ in range(2):  # cold then warm embedding cache
            started = time.perf_counter()
            answers = [generator.answer(q["text"], ctx) for q, ctx in zip(queries, contexts)]
            passes.append(time.perf_counter() - started)
        row = score_answers(label, answers, queries, contexts, gold, passes[1])
        row["cold_ms_per_query"] = 1000 * passes[0] / len(queries)
        rows.append(row)
    started = time.perf_counter()
    lead = []
    for ctx in contexts:
        picked = [s for s in context_sentences(ctx[:1])][:3]
        lead.append(Answer(" ".join(s.text for s in picked), tuple(Citation(s.chunk_id, s.text) for s in picked)))
    rows.append(score_answers("lead-3 of the top passage (baseline)", lead, queries, contexts, gold,
                              time.perf_counter() - started))
    return rows, ceiling, len(queries)


def bench_gemma(hf_queries: int):
    import torch

    from rag.generation import create_generator
    from rag.lm import load_causal_lm

    out = {"torch_threads": torch.get_num_threads()}
    started = time.perf_counter()
    lm = load_causal_lm("gemma3-270m")
    lm.model
    out["load_s"] = time.perf_counter() - started
    lm.generate("Warm up", max_new_tokens=2)
    prompt = "Retrieval-augmented generation combines a retriever with a language model. It"
    started = time.perf_counter()
    text = lm.generate(prompt, max_new_tokens=64, stop=None)
    seconds = time.perf_counter() - started
    new_tokens = len(lm.encode(text))
    out.update(gen_tokens=new_tokens, gen_s=seconds, gen_tokens_per_s=new_tokens / seconds, sample=text[:160])
    corpus, queries, gold = load_hotpot()
    document = " ".join(d["text"] for d in corpus[:12])
    sentences = [s.text + " " for s in __import__("rag.generation.extractive", fromlist=["x"]).context_sentences(
        [__import__("rag.types", fromlist=["Chunk"]).Chunk("d#0", "d", document, 0, len(document), 0)])]
    n_tokens = sum(len(lm.encode(s)) for s in sentences)
    started = time.perf_counter()
    ppl = lm.sentence_perplexities(sentences)
    seconds = time.perf_counter() - started
    out.update(ppl_sentences=len(sentences), ppl_tokens=n_tokens, ppl_s=seconds, ppl_tokens_per_s=n_tokens / seconds,
               ppl_median=float(statistics.median(ppl)))
    if hf_queries:
        contexts = contexts_per_query(corpus, queries)[:hf_queries]
        generator = create_generator({"name": "hf", "model": "gemma3-270m", "max_tokens": 48,
                                      "max_context_chars": 3000})
        started = time.perf_counter()
        answers = [generator.answer(q["text"], ctx) for q, ctx in zip(queries[:hf_queries], contexts)]
        seconds = time.perf_counter() - started
        out["hf_answer"] = score_answers("hf gemma3-270m (base model)", answers, queries[:hf_queries], contexts,
                                         gold, seconds)
        out["hf_examples"] = [{"q": q["text"], "gold": q["answers"], "answer": a.text[:200]}
                              for q, a in zip(queries[:3], answers[:3])]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lm", action="store_true", help="also measure the bundled Gemma 3 270M GGUF")
    parser.add_argument("--hf-queries", type=int, default=10)
    parser.add_argument("--no-extractive", action="store_true")
    parser.add_argument("--weights", default="0,1", help="semantic_weight values compared with the defaults")
    parser.add_argument("--cache", help="embedding cache directory (default: a fresh one, so 'cold' is cold)")
    args = parser.parse_args()
    os.environ["RAGLOOM_CACHE"] = args.cache or tempfile.mkdtemp(prefix="ragloom-bench-")
    if not args.no_extractive:
        rows, ceiling, n = bench_extractive(tuple(float(w) for w in args.weights.split(",") if w))
        print(f"hotpotqa-100, {n} queries, top-10 bm25s passages as context; "
              f"ceiling (answer string anywhere in the context): {ceiling:.3f}")
        print("| method | answer recall | gold cited | mean words | ms/query warm | ms/query cold |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            cold = f"{r['cold_ms_per_query']:.1f}" if "cold_ms_per_query" in r else "-"
            print(f"| {r['method']} | {r['answer_recall']:.3f} | {r['gold_cited']:.3f} | {r['mean_words']:.1f} | "
                  f"{r['ms_per_query']:.2f} | {cold} |")
    if args.lm:
        print(json.dumps(bench_gemma(args.hf_queries), indent=1, default=str))


if __name__ == "__main__":
    main()
