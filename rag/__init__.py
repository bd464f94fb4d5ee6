"""ragloom: retrieval-augmented generation pipelines from small operators, declared in YAML."""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Pipeline", "Document", "Chunk", "Hit", "__version__"]

from rag.types import Chunk, Document, Hit


def __getattr__(name: str):
    if name == "Pipeline":
        from rag.pipeline import Pipeline

        return Pipeline
    raise AttributeError(name)
