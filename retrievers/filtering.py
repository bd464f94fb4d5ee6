"""Metadata filters pushed into retrievers: a boolean mask over a structure's rows, cached per filter.

Every retriever applies ``state.filters`` (see :func:`rag.filters.matches`) *before* taking its top k, so a
filtered query still gets k hits when k matching chunks exist.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rag.filters import matches
from rag.types import Chunk, structure_prefix


class FilterMasks:
    """Masks of the rows whose chunk metadata matches a filter; call :meth:`clear` when rows change."""

    def __init__(self, max_entries: int = 64):
        self.max_entries = max_entries
        self._masks: dict[str, np.ndarray] = {}

    def clear(self) -> None:
        self._masks.clear()

    def mask(self, ids: Sequence[str | None], filters: Mapping[str, Any],
             chunk_of: Callable[[str], Chunk]) -> np.ndarray:
        """``mask[i]`` is True when chunk ``ids[i]`` matches ``filters`` (``None`` ids — deleted rows — never do)."""
        key = json.dumps(filters, sort_keys=True, default=str)
        found = self._masks.get(key)
        if found is None or found.shape[0] != len(ids):
            found = np.fromiter((i is not None and matches(chunk_of(i).metadata, filters) for i in ids), dtype=bool, count=len(ids))
            if len(self._masks) >= self.max_entries:
                self._masks.pop(next(iter(self._masks)))
            self._masks[key] = found
        return found


def indexed_text(chunk: Chunk, with_title: bool) -> str:
    """What a structure indexes for a chunk: ``title + " " + text`` when the metadata has a title, the text
    preceded by the chunk's place in its document when the chunker recorded one (:func:`structure_prefix`)."""
    title = chunk.metadata.get("title") if with_title else None
    text = structure_prefix(chunk) + chunk.text
    return f"{title} {text}" if title else text

