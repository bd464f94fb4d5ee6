"""The generator contract: ``answer(question, contexts) -> Answer`` and, for language models, ``complete``.

A generator is a long-lived resource (created once per pipeline by ``Resources.generator``), configured by a
pydantic ``Params`` model whose unknown keys are errors. ``model_calls`` counts the model invocations it made.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from pydantic import BaseModel, ConfigDict, Field

from rag.errors import RagloomError
from rag.state import Answer, Citation
from rag.types import Chunk

if TYPE_CHECKING:
    from rag.resources import Resources

#: What every generator answers when it is given no context at all.
NO_CONTEXT_ANSWER = "No context was retrieved for this question, so it cannot be answered from the documents."


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """``text`` up to (not including) the earliest occurrence of any stop string (empty ones ignored): what a
    generator returns when the model wrote past a stop it could not be told about."""
    cut = len(text)
    for stop in stops:
        if stop:
            found = text.find(stop)
            if found != -1:
                cut = min(cut, found)
    return text[:cut]


class GenerationError(RagloomError):
    """A language model could not produce a completion (server unreachable, bad reply, ...)."""


class GeneratorParams(BaseModel):
    """Base of every generator's options: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class LLMParams(GeneratorParams):
    """Options shared by the language-model generators."""

    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = greedy decoding")
    max_tokens: int = Field(256, ge=1, description="longest answer, in model tokens")
    max_context_chars: int = Field(12000, ge=200, description="context passages beyond this are cut from the prompt")


class Generator:
    """Turns a question and its context into an :class:`~rag.state.Answer`."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[GeneratorParams]] = GeneratorParams
    #: Whether :meth:`complete` is available (only language-model generators can continue a prompt).
    can_complete: ClassVar[bool] = False
    #: Whether :meth:`score_options` is available (a local model that gives the log-probability of a text).
    can_score_options: ClassVar[bool] = False

    def __init__(self, params: GeneratorParams, resources: "Resources | None" = None):
        self.params = params
        self.resources = resources
        self.model_calls = 0

    def answer(self, question: str, contexts: Sequence[Chunk]) -> Answer:
        raise NotImplementedError

    def complete(self, prompt: str, max_tokens: int = 256, stop: list[str] | None = None) -> str:
        """The model's continuation of ``prompt``, cut before the first ``stop`` string."""
        from rag.generation import completion_generators

        raise GenerationError(
            f"the {self.name!r} generator cannot complete prompts (it only extracts answers from context); "
            f"operators that call complete() need a language-model generator: {', '.join(completion_generators())}"
        )

    def score_options(self, prompt: str, options: Sequence[str]) -> list[float]:
        """The log-probability of each option as the continuation of ``prompt`` (a choice among fixed answers)."""
        from rag.generation import option_scoring_generators

        raise GenerationError(f"the {self.name!r} generator cannot score options; generators that can: "
                              f"{', '.join(option_scoring_generators())}")

    def no_context_answer(self) -> Answer:
        return Answer(NO_CONTEXT_ANSWER, (), self.name, 0)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.params.model_dump().items())
        return f"{type(self).__name__}({shown})"


class LLMGenerator(Generator):
    """A generator backed by a language model: prompts with numbered context, parses ``[chunk_id]`` citations.

    Subclasses implement :meth:`_complete`; :meth:`complete` validates arguments and counts calls.
    """

    can_complete = True
    #: Where an answer ends if the model keeps writing new questions (base models do).
    ANSWER_STOPS: ClassVar[tuple[str, ...]] = ("\nQuestion:",)

    def complete(self, prompt: str, max_tokens: int = 256, stop: list[str] | None = None) -> str:
        if not isinstance(prompt, str):
            raise GenerationError(f"complete() needs a prompt string, got {type(prompt).__name__}")
        if int(max_tokens) < 1:
            raise GenerationError(f"complete() needs max_tokens >= 1, got {max_tokens}")
        stops = [stop] if isinstance(stop, str) else [s for s in (stop or []) if s]
        text = self._complete(prompt, int(max_tokens), stops)
        self.model_calls += 1
        return text

    def _complete(self, prompt: str, max_tokens: int, stop: list[str]) -> str:
        raise NotImplementedError

    def answer(self, question: str, contexts: Sequence[Chunk]) -> Answer:
        from rag.generation.prompts import answer_prompt, parse_citations

        contexts = list(contexts)
        if not contexts:
            return self.no_context_answer()
        params: Any = self.params
        prompt = answer_prompt(question, contexts, max_chars=params.max_context_chars)
        text = self.complete(prompt, max_tokens=params.max_tokens, stop=list(self.ANSWER_STOPS)).strip()
        citations: tuple[Citation, ...] = parse_citations(text, contexts)
        return Answer(text, citations, self.name, 1)
