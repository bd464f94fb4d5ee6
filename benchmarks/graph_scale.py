"""Graph structure at scale: build time and graph_ppr latency on a synthetic corpus (default 100k passages).

    python benchmarks/graph_scale.py [--passages 100000] [--queries 100]

Passages are three template sentences naming entities drawn from a Zipf-distributed pool of invented
two-word names (so a few entities are common, most are rare, as in encyclopaedic text), each with a title
entity. Embeddings come from a hashing embedder (character trigrams, 256 dims) so the numbers measure the
graph — extraction, reference-counted store, sparse view, Personalized PageRank — not MiniLM (which alone
would take ~50 min for 100k passages on 2 cores; see REFERENCE.md). Synonym linking is off (its all-pairs
comparison is the part that does not scale without an ANN index).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.operators import RunContext  # noqa: E402
from rag.state import QueryState  # noqa: E402
from rag.types import Chunk  # noqa: E402

SYLLABLES = "ka lo mi ra ten vor sel dun bri gal os ue an tor mel fin har kel zu pra dor lin ves qua".split()
TEMPLATES = ["{a} was founded near {b} by members of {c}.", "{a} later worked with {b} in the {c} region.",
             "The {a} award was given to {b} after the {c} festival.", "{a} is the sister city of {b}."]


class HashingEmbedder:
    identity = "hashing-trigrams-256"
    dim = 256

    def embed(self, texts):
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            padded = f"  {text.lower()}  "
            for i in range(len(padded) - 2):
                out[row, zlib.crc32(padded[i:i + 3].encode()) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    embed_queries = embed


class Resources:
    embedder = HashingEmbedder()


class MinimalIndex:
    def __init__(self, chunks, structures):
        self.chunks = {c.id: c for c in chunks}
        self.structures = structures

    def chunk(self, chunk_id):
        return self.chunks[chunk_id]

    def structure(self, name):
        return self.structures[name]


def invented_names(n: int, rng: np.random.Generator) -> list[str]:
    names = set()
    while len(names) < n:
        words = ["".join(rng.choice(SYLLABLES, size=rng.integers(2, 4))).capitalize() for _ in range(2)]
        names.add(" ".join(words))
    return sorted(names)


def synthetic_corpus(n_passages: int, seed: int = 0) -> tuple[list[Chunk], list[str]]:
    rng = np.random.default_rng(seed)
    names = invented_names(n_passages * 2, rng)
    zipf = np.minimum(rng.zipf(1.3, size=n_passages * 12), len(names)) - 1
    chunks, cursor = [], 0
    for i in range(n_passages):
        title = names[i]
        sentences = []
        for _ in range(3):
            a, b, c = (names[j] for j in zipf[cursor:cursor + 3])
            cursor += 3
            sentences.append(TEMPLATES[rng.integers(len(TEMPLATES))].format(a=title if not sentences else a, b=b, c=c))
        text = " ".join(sentences)
        chunks.append(Chunk(f"s{i}#0", f"s{i}", text, 0, len(text), 0, {"title": title}))
    return chunks, names


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    from graph.structure import GraphStructure
    from rag.registry import create

    chunks, _ = synthetic_corpus(args.passages)
    resources = Resources()
    structure = GraphStructure(synonyms=False)
    t0 = time.perf_counter()
    structure.add(chunks, resources)
    added = time.perf_counter() - t0
    t0 = time.perf_counter()
    graph = structure.compiled()
    compiled = time.perf_counter() - t0
    print(f"{args.passages} passages: add {added:.1f} s ({args.passages / added:.0f} passages/s), "
          f"compile {compiled:.1f} s; {graph.n_entities} entities, {len(graph.hubs)} hubs pruned, "
          f"{graph.transition.nnz // 2} edges")

    ctx = RunContext(MinimalIndex(chunks, {"graph": structure}), resources)
    op = create("graph_ppr", {"top_k": 10})
    rng = np.random.default_rng(1)
    seconds, ppr_only = [], []
    for i in rng.choice(len(chunks), size=args.queries, replace=False):
        title = chunks[i].metadata["title"]
        query = f"Which city is the sister city of the place where {title} was founded?"
        t = time.perf_counter()
        op(QueryState(query), ctx)
        seconds.append(time.perf_counter() - t)
        reset = np.zeros(graph.n_passages + graph.n_entities)
        reset[graph.n_passages + graph.entity_index.get(title.lower(), 0)] = 1.0
        t = time.perf_counter()
        graph.personalized_pagerank(reset, 0.5)
        ppr_only.append(time.perf_counter() - t)
    print(f"graph_ppr query (linking + PPR + hits): median {1000 * statistics.median(seconds):.1f} ms, "
          f"p95 {1000 * float(np.percentile(seconds, 95)):.1f} ms; PPR power iteration alone: median "
          f"{1000 * statistics.median(ppr_only):.1f} ms")


if __name__ == "__main__":
    main()
