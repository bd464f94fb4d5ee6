"""What a selection strategy returns: the chunks it wants, in the order they should be admitted."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Proposal:
    """``order``: candidate indices to admit, first to last (each admitted only if it still fits).
    ``fill``: how leftover budget is used afterwards — ``"rank"`` (remaining candidates in rank order),
    ``"gain"`` (remaining candidates in rank order whose marginal utility is still positive) or ``None``."""

    order: tuple[int, ...]
    fill: str | None = "gain"
