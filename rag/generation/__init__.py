"""Generators turn a question and its context into a cited answer; language-model generators also
``complete`` arbitrary prompts (for query rewriting, LLM relevance filters, LLM chunkers).

``create_generator(spec, resources)`` builds one from a spec — a name or a mapping with ``name`` and options:

    create_generator("extractive", resources)                      # offline default
    create_generator({"name": "openai", "model": "llama3", "base_url": "http://localhost:11434/v1"}, resources)
    create_generator({"name": "hf", "model": "/models/qwen2.5-0.5b-instruct"}, resources)

Options are validated by each generator's ``Params`` model: an unknown key is a ConfigError naming it and
listing the valid ones.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from pydantic import ValidationError

from rag.errors import ConfigError
from rag.generation.base import NO_CONTEXT_ANSWER, GenerationError, Generator, GeneratorParams, LLMGenerator
from rag.generation.extractive import ExtractiveGenerator
from rag.generation.hf import HFGenerator
from rag.generation.openai import OpenAIGenerator

if TYPE_CHECKING:
    from rag.resources import Resources

GENERATORS: dict[str, type[Generator]] = {
    "extractive": ExtractiveGenerator,
    "openai": OpenAIGenerator,
    "hf": HFGenerator,
}
DEFAULT_GENERATOR = "extractive"


def register_generator(cls: type[Generator]) -> type[Generator]:
    """Class decorator adding a third-party generator under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} needs a class attribute 'name'")
    GENERATORS[cls.name] = cls
    return cls


def completion_generators() -> list[str]:
    """Names of the generators that can ``complete`` prompts."""
    return sorted(name for name, cls in GENERATORS.items() if cls.can_complete)


def option_scoring_generators() -> list[str]:
    """Names of the generators that can ``score_options`` (a choice among fixed answers)."""
    return sorted(name for name, cls in GENERATORS.items() if cls.can_score_options)


def parse_generator_spec(spec: Mapping[str, Any] | str | None,
                         path: str = "generator") -> tuple[type[Generator], GeneratorParams]:
    """The generator class and its validated options for ``spec``, without creating anything."""
    if spec is None:
        spec = DEFAULT_GENERATOR
    if isinstance(spec, str):
        name, options = spec, {}
    elif isinstance(spec, Mapping):
        name = spec.get("name")
        if not isinstance(name, str):
            raise ConfigError(f"needs a 'name' ({', '.join(sorted(GENERATORS))})", f"{path}.name")
        options = {k: v for k, v in spec.items() if k != "name"}
    else:
        raise ConfigError(f"must be a generator name or a mapping with 'name', got {type(spec).__name__}", path)
    cls = GENERATORS.get(name)
    if cls is None:
        raise ConfigError(f"unknown generator {name!r}; valid: {', '.join(sorted(GENERATORS))}",
                          f"{path}.name" if isinstance(spec, Mapping) else path)
    try:
        params = cls.Params(**options)
    except ValidationError as exc:
        errors = exc.errors()
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])  # typos first
        loc = ".".join(str(p) for p in err["loc"])
        valid = ", ".join(["name", *cls.Params.model_fields])
        if err["type"] == "extra_forbidden":
            message = f"unknown key {err['loc'][-1]!r} for generator {name!r}; valid keys: {valid}"
        elif err["type"] == "missing":
            message = f"is required by generator {name!r}"
        elif err["type"] == "value_error" and "error" in err.get("ctx", {}):  # a validator's own message
            message = str(err["ctx"]["error"])
        else:
            message = f"{err['msg']} (got {err.get('input')!r})"
        raise ConfigError(message, f"{path}.{loc}" if loc else path) from None
    except ConfigError as exc:  # raised by a Params validator, its path relative to the generator's options
        raise ConfigError(exc.message, f"{path}.{exc.path}" if exc.path else path) from None
    return cls, params


def create_generator(spec: Mapping[str, Any] | str | None, resources: "Resources | None" = None) -> Generator:
    """A ready generator for ``spec`` (models load lazily, on the first answer)."""
    cls, params = parse_generator_spec(spec)
    return cls(params, resources)


__all__ = [
    "GENERATORS", "NO_CONTEXT_ANSWER", "ExtractiveGenerator", "GenerationError", "Generator", "GeneratorParams",
    "HFGenerator", "LLMGenerator", "OpenAIGenerator", "completion_generators", "create_generator",
    "option_scoring_generators", "parse_generator_spec", "register_generator",
]
