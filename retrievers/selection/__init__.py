"""Budgeted context selection: choose which hits reach the generator under a token budget.

Strategies (the ``strategy`` of ``op: select``) are pure functions ``(pool, budget) -> Proposal``; the
``select`` operator (``retrievers/select.py``) turns a proposal into a context with exact token accounting
(:mod:`retrievers.selection.spans`), so no strategy can break the budget.
"""
