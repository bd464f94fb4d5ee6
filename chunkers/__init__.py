"""Chunkers: each module registers one family; all return Chunks with exact character offsets."""
from __future__ import annotations

from typing import Any


def get_chunker(name: str, /, **params: Any):
    """The chunker registered as ``name``, configured with ``params`` (validated; errors name the key)."""
    from rag.registry import create

    return create(name, params, kinds="chunker")
