"""``op: select`` — choose the context the generator sees from ``state.hits`` under a hard token budget.

    - {op: select, budget_tokens: 1000, strategy: knapsack}

Tokens are counted with the generator's tokenizer (``tokenizer``, default the pipeline's, cl100k_base offline)
on the exact texts that end up in ``state.context``; chunks of one document that overlap or touch are merged
into one span when that costs no more (``merge_adjacent``), so overlapping text is paid once. The budget is a
guarantee: ``sum(count(h.chunk.text) for h in state.context) <= budget_tokens`` always holds. A chunk that
records the same tokenizer (``Chunk.tokenizer``, set by every chunker) is not counted again: its
``token_count`` is that count. Merged spans are always counted on their merged text.

When no candidate fits at all (the budget is smaller than every chunk) the default is a ``ConfigError`` naming
``budget_tokens`` and the smallest chunk's size — an empty context would silently turn every answer into
"I don't know". ``when_nothing_fits: empty`` instead returns an empty context and records a warning in the
step's note (``state.notes["select"]["warning"]``). No hits at all is not an error: the context is empty.

Near-duplicate redundancy compares MinHash signatures of the candidates' words, computed the first time the
operator sees a text — or read from the index when ``index.structures`` includes ``minhash``
(:mod:`retrievers.minhash`; same values), which makes a first sight of new candidates as cheap as a repeat.

Strategies: ``topk`` (rank order, baseline), ``density`` (greedy value per token), ``knapsack`` (exact DP over
token costs), ``gradient`` (SAGE: cut at the steep score drop, then fill), ``mcts`` (CORAG: tree search over
chunk sets for relevance − redundancy), ``smoothed`` (rank order over relevance smoothed along each document:
neighbours of strong hits move up). See :mod:`retrievers.selection.pool` for the shared utility.
"""
from __future__ import annotations

import logging
from typing import Callable, Literal, Sequence

import numpy as np
from pydantic import Field

from rag.errors import ConfigError
from rag.operators import RunContext, StepOperator
from rag.registry import OperatorParams, operator
from rag.state import QueryState
from rag.tokens import tokenizer_identity
from rag.types import Chunk, Hit
from retrievers.selection.pool import SIGNATURE_SIZE, CandidatePool, build_pool, word_signatures
from retrievers.selection.proposal import Proposal
from retrievers.selection.ranked import gradient, topk
from retrievers.selection.spans import ContextSpans

log = logging.getLogger(__name__)

STRATEGIES = ("topk", "density", "knapsack", "gradient", "mcts", "smoothed")
_CACHE_LIMIT = 200_000


def unique_hits(hits: tuple[Hit, ...]) -> list[Hit]:
    """Hits with repeated chunk ids removed (the first, best-ranked, occurrence kept)."""
    seen: set[str] = set()
    out = []
    for hit in hits:
        if hit.chunk.id not in seen:
            seen.add(hit.chunk.id)
            out.append(hit)
    return out


@operator("select", kind="step")
class Select(StepOperator):
    """Choose ``state.context`` from ``state.hits`` within ``budget_tokens`` generator tokens."""

    class Params(OperatorParams):
        budget_tokens: int = Field(gt=0, description="hard limit on the context's tokens")
        strategy: Literal["topk", "density", "knapsack", "gradient", "mcts", "smoothed"] = "topk"
        tokenizer: str | None = Field(None, description="tiktoken encoding; default: the pipeline's (cl100k_base)")
        merge_adjacent: bool = Field(True, description="merge overlapping/touching chunks of one document")
        when_nothing_fits: Literal["error", "empty"] = "error"
        max_candidates: int = Field(100, gt=0, description="only the best N hits are considered")
        normalization: Literal["minmax", "rank", "raw"] = Field("rank", description="hit scores → values: 1/(1+rank), "
                                                                "min-max over the candidates, or raw")
        redundancy_weight: float = Field(1.0, ge=0.0, description="λ in U(S) = Σv − λ·Σ R·(v_i+v_j)/2")
        near_duplicate: float = Field(0.8, gt=0.0, description="word Jaccard from which two chunks are redundant"
                                      " (> 1 disables)")
        neighbour_weight: float = Field(0.0, ge=0.0, le=1.0, description="a chunk touching a selected-worthy "
                                        "chunk of its document is worth at least this share of its value")
        smoothing: float = Field(0.3, ge=0.0, description="smoothed: share of each adjacent chunk's value added "
                                 "to a chunk's own (retrievers/selection/contiguity.py)")
        gradient_threshold: float = Field(0.1, gt=0.0, le=1.0, description="gradient: the score drop that cuts")
        simulations: int = Field(64, gt=0, description="mcts: number of simulations")
        exploration: float = Field(0.7, ge=0.0, description="mcts: UCT exploration constant")
        max_actions: int = Field(24, gt=0, description="mcts: children considered per node (best by value)")
        epsilon: float = Field(0.2, ge=0.0, le=1.0, description="mcts: chance a rollout step is random")
        seed: int = 0

    def __init__(self, **params):
        super().__init__(**params)
        self._token_counts: dict[tuple[str, str], int] = {}
        self._signature_rows: dict[str, int] = {}  # text → row of _signature_table
        self._signature_table = np.zeros((0, SIGNATURE_SIZE), dtype=np.uint32)

    # -- cached per-text work (texts repeat across queries over one index)
    def _counter(self, ctx: RunContext) -> Callable[[str], int]:
        """``count(text)`` through the cache: merged spans of neighbouring chunks recur across queries."""
        tokenizer = ctx.resources.tokenizer(self.params.tokenizer)
        cache, name = self._token_counts, tokenizer.name

        def count(text: str) -> int:
            found = cache.get((name, text))
            if found is None:
                if len(cache) > _CACHE_LIMIT:
                    cache.clear()
                found = cache[(name, text)] = tokenizer.count(text)
            return found

        return count

    def _costs(self, hits: list[Hit], ctx: RunContext) -> list[int]:
        """Each hit's exact token count with the select tokenizer: the chunk's own ``token_count`` when the chunk
        records that it was measured with the same tokenizer (``Chunk.tokenizer``, set by every chunker), else
        counted (chunks built by hand, chunks of an index written before chunks recorded their tokenizer, or
        chunked with another tokenizer)."""
        tokenizer = ctx.resources.tokenizer(self.params.tokenizer)
        key, identity = tokenizer.name, tokenizer.identity
        measured = [h.chunk.tokenizer is not None and tokenizer_identity(h.chunk.tokenizer) == identity for h in hits]
        cache = self._token_counts
        if len(cache) > _CACHE_LIMIT:  # before looking up, so nothing found below is dropped
            cache.clear()
        missing = list(dict.fromkeys(h.chunk.text for h, known in zip(hits, measured)
                                     if not known and (key, h.chunk.text) not in cache))
        # one text at a time: for a query's ~100 candidates, tiktoken's batch call spends more CPU handing texts
        # to its thread pool than the second core gives back (measured: 9.7 vs 5.4 ms CPU per 100 chunks)
        cache.update({(key, t): tokenizer.count(t) for t in missing})
        return [h.chunk.token_count if known else cache[(key, h.chunk.text)] for h, known in zip(hits, measured)]

    def _signatures(self, texts: list[str]) -> np.ndarray:
        """MinHash signature rows of ``texts`` (uint32), the missing ones computed in one batch; rows are kept in
        one growing table so a query's signatures are one fancy-index, not a stack of arrays."""
        rows = self._signature_rows
        if len(rows) > _CACHE_LIMIT:
            rows.clear()
        missing = list(dict.fromkeys(t for t in texts if t not in rows))
        if missing:
            first, table = len(rows), self._signature_table
            if first + len(missing) > len(table):  # grow by doubling (amortised O(1) per row)
                grown = np.empty((max(2 * len(table), first + len(missing), 256), table.shape[1]), dtype=np.uint32)
                grown[:first] = table[:first]
                self._signature_table = table = grown
            table[first:first + len(missing)] = word_signatures(missing)
            rows.update((t, first + i) for i, t in enumerate(missing))
        return self._signature_table[[rows[t] for t in texts]]

    def _chunk_signatures(self, chunks: Sequence[Chunk], ctx: RunContext) -> np.ndarray:
        """MinHash signature rows of ``chunks``: read from the index's ``minhash`` structure (computed at index
        time, :mod:`retrievers.minhash`) for the index's own chunks — same id, same text — and otherwise
        computed through :meth:`_signatures`."""
        index = ctx.index
        structure = index.structures.get("minhash") if index is not None else None
        if structure is None:
            return self._signatures([c.text for c in chunks])
        held = index.chunks

        def stored(row: int | None, chunk: Chunk) -> bool:  # the row was computed from this chunk's text
            own = held.get(chunk.id)
            return row is not None and own is not None and (own is chunk or own.text == chunk.text)

        rows = [row if stored(row, c) else None for row, c in zip(structure.rows_of([c.id for c in chunks]), chunks)]
        missing = [i for i, row in enumerate(rows) if row is None]
        if not missing:
            return structure.table_[rows]
        out = np.empty((len(chunks), SIGNATURE_SIZE), dtype=np.uint32)
        found = [i for i, row in enumerate(rows) if row is not None]
        out[found] = structure.table_[[rows[i] for i in found]]
        out[missing] = self._signatures([chunks[i].text for i in missing])
        return out

    def propose(self, pool: CandidatePool) -> Proposal:
        p = self.params
        budget = p.budget_tokens
        if p.strategy == "topk":
            return topk(pool, budget)
        if p.strategy == "gradient":
            return gradient(pool, budget, p.gradient_threshold)
        if p.strategy == "smoothed":
            from retrievers.selection.contiguity import smoothed

            return smoothed(pool, budget, p.smoothing)
        if p.strategy == "density":
            from retrievers.selection.density import density

            return density(pool, budget)
        if p.strategy == "knapsack":
            from retrievers.selection.knapsack import knapsack

            return knapsack(pool, budget)
        from retrievers.selection.mcts import mcts

        return mcts(pool, budget, simulations=p.simulations, exploration=p.exploration,
                    max_actions=p.max_actions, epsilon=p.epsilon, seed=p.seed)

    def select(self, hits: tuple[Hit, ...], ctx: RunContext) -> tuple[tuple[Hit, ...], dict]:
        """The context for ``hits`` and a summary for the trace."""
        p = self.params
        candidates = unique_hits(hits)[: p.max_candidates]
        summary = {"strategy": p.strategy, "budget_tokens": p.budget_tokens, "candidates": len(candidates)}
        if not candidates:
            return (), {**summary, "tokens": 0, "selected": 0}
        costs = self._costs(candidates, ctx)
        pool = build_pool(candidates, costs, normalization=p.normalization, redundancy_weight=p.redundancy_weight,
                          near_duplicate=p.near_duplicate, neighbour_weight=p.neighbour_weight,
                          signatures_of=lambda chunks: self._chunk_signatures(chunks, ctx))
        cost_by_id = {h.chunk.id: c for h, c in zip(candidates, costs)}
        spans = ContextSpans(self._counter(ctx), lambda h: cost_by_id[h.chunk.id], merge=p.merge_adjacent,
                             tokenizer=ctx.resources.tokenizer(p.tokenizer).identity)
        proposal = self.propose(pool)
        chosen = np.zeros(len(pool), dtype=bool)
        for i in proposal.order:
            if spans.try_admit(candidates[i], p.budget_tokens, costs[i]):
                chosen[i] = True
        if proposal.fill is not None:
            gains = pool.marginal_gains(chosen) if proposal.fill == "gain" else None
            for j in np.flatnonzero(~chosen if gains is None else ~chosen & (gains > 0)).tolist():
                if gains is not None and gains[j] <= 0:  # lowered by a chunk admitted in this loop
                    continue
                if spans.try_admit(candidates[j], p.budget_tokens, costs[j]):
                    chosen[j] = True
                    if gains is not None:
                        gains -= pool.penalty[j]
        context = spans.to_hits()
        summary.update(tokens=spans.total, selected=int(chosen.sum()), spans=len(context))
        if not context:
            smallest = int(min(costs))
            message = (f"{p.budget_tokens} is smaller than every candidate chunk (the smallest has {smallest} "
                       f"tokens with {ctx.resources.tokenizer(p.tokenizer).name}); raise budget_tokens or use "
                       "smaller chunks")
            if p.when_nothing_fits == "error":
                raise ConfigError(message, "budget_tokens")
            log.warning("select: %s", message)
            summary["warning"] = f"empty context: budget_tokens {message}"
        return context, summary

    def __call__(self, state: QueryState, ctx: RunContext) -> QueryState:
        context, summary = self.select(state.hits, ctx)
        return state.evolve(context=context).with_note("select", summary)
