"""Metadata filters shared by every retriever: ``{"lang": "python", "year": [2023, 2024]}`` keeps chunks
whose metadata equals the value, or is one of the values when a list is given."""
from __future__ import annotations

from typing import Any, Mapping


def matches(metadata: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    for key, wanted in filters.items():
        value = metadata.get(key)
        if isinstance(wanted, (list, tuple, set, frozenset)):
            if value not in wanted:
                return False
        elif value != wanted:
            return False
    return True
