"""What late chunking needs of a sentence-transformers model, and does the way the model does: its sentence
vectors must be means of its token states (a chunk's pooled vector is such a mean over the chunk's tokens), the
modules after its pooling (a Dense projection, a Normalize) are applied to the pooled vectors, and each
macro-window opens with the prompt the model puts before every text it encodes."""
from __future__ import annotations

import numpy as np

from rag.errors import ConfigError


def check_mean_pooling(st_model, model_name: str) -> None:
    """A :class:`ConfigError` unless the model's sentence vector is the mean of its token states: a CLS or max
    pooled model's vectors live elsewhere, so a mean over a chunk's tokens would be compared with queries it does
    not resemble."""
    mode = _pooling_mode(st_model[_pooling_index(st_model, model_name)])
    if mode != "mean":
        raise ConfigError(f"late chunking mean-pools each chunk's token embeddings, but the embedding model "
                          f"{model_name!r} pools its sentence vectors with {mode!r}: pooled chunk vectors would not be "
                          "comparable with its query vectors; use a mean-pooling model (e.g. minilm), or "
                          "context_weight: 0 to embed the boundaries on their own", "embedder.model")


def modules_after_pooling(st_model, model_name: str) -> list:
    """The model's modules after its pooling (a Dense projection, a Normalize), which :func:`after_pooling` runs."""
    return list(st_model)[_pooling_index(st_model, model_name) + 1:]


def projects(modules: list) -> bool:
    """Whether ``modules`` (:func:`modules_after_pooling`) do more than scale vectors to unit length."""
    return any(type(module).__name__ != "Normalize" for module in modules)


def after_pooling(modules: list, vectors: np.ndarray) -> np.ndarray:
    """``vectors`` (means of token states) run through ``modules``, as the model's own sentence vectors are: a
    Dense head projects them to the model's output size."""
    import torch

    if not modules or not len(vectors):
        return vectors
    features = {"sentence_embedding": torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))}
    with torch.inference_mode():
        for module in modules:
            features = module(features)
    return features["sentence_embedding"].float().numpy()


def window_prompt(st_model) -> str:
    """The prompt sentence-transformers puts before every text the model encodes (its ``default_prompt_name``),
    '' when none: the macro-windows open with it as the chunks' own embeddings do."""
    name = getattr(st_model, "default_prompt_name", None)
    return (getattr(st_model, "prompts", None) or {}).get(name, "") if name else ""


def _pooling_index(st_model, model_name: str) -> int:
    for index, module in enumerate(st_model):
        if type(module).__name__ == "Pooling":  # by name: sentence-transformers 6 moved the class
            return index
    raise ConfigError(f"late chunking mean-pools token embeddings, but the embedding model {model_name!r} has no "
                      f"Pooling module (its modules: {', '.join(type(m).__name__ for m in st_model)})",
                      "embedder.model")


def _pooling_mode(pooling) -> str:
    """``'mean'``, ``'cls'``, ... (sentence-transformers 6 keeps it as ``pooling_mode``, older ones as flags)."""
    mode = getattr(pooling, "pooling_mode", None)
    if mode is None:
        mode = pooling.get_pooling_mode_str()
    if isinstance(mode, (list, tuple)):
        mode = "+".join(str(m) for m in mode)
    return str(mode)
