"""Attributes made on first use, once, however many threads ask at the same moment (a service's first requests):
an embedding model loaded four times at once costs four loads of time and memory."""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

T = TypeVar("T")

#: One lock for every first use: what is made under it (a model, a cache) may itself make something on first use.
_MAKING = threading.RLock()


def made_once(owner: object, attribute: str, make: Callable[[], T]) -> T:
    """``owner.<attribute>``, set to ``make()`` the first time it is None; a thread asking while another makes it
    waits for that one."""
    value = getattr(owner, attribute)
    if value is None:
        with _MAKING:
            value = getattr(owner, attribute)
            if value is None:
                value = make()
                setattr(owner, attribute, value)
    return value
