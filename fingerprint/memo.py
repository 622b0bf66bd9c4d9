"""One small bounded memo for the per-value caches of the hot path.

A hit is one dict lookup done in C (``memo[key]``): the memo *is* a dict, and the
work runs only from ``__missing__``. Bounded the cheapest way: when full it starts
over (cleared whole), so a hit never pays for bookkeeping (an LRU's move-to-front)
and a refill costs one computation per key still in use. Thread-safe: lookups are
atomic dict reads; a miss computes outside the lock (two threads may compute the
same key once each, with the same answer) and stores under it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedMemo(dict[K, V], Generic[K, V]):
    """``memo[key]`` is ``compute(key)``, computed once while kept.

    ``keep(key)`` false: computed every time and never kept (long client-supplied
    texts must not fill the memo). Without ``compute``, ``memo[key]`` of an absent key
    raises ``KeyError`` and answers are stored with :meth:`put`.
    """

    __slots__ = ("_compute", "_keep", "_lock", "max_entries")

    def __init__(
        self,
        max_entries: int,
        compute: Callable[[K], V] | None = None,
        *,
        keep: Callable[[K], bool] | None = None,
    ) -> None:
        super().__init__()
        if max_entries < 1:
            raise ValueError("a memo keeps at least one entry")
        self.max_entries = max_entries
        self._compute = compute
        self._keep = keep
        self._lock = threading.Lock()

    def __missing__(self, key: K) -> V:
        if self._compute is None:
            raise KeyError(key)
        return self.put(key, self._compute(key))

    def put(self, key: K, value: V) -> V:
        """Keep ``value`` for ``key`` (unless ``keep`` refuses it); returns ``value``."""
        if self._keep is None or self._keep(key):
            with self._lock:
                if len(self) >= self.max_entries:
                    self.clear()
                self[key] = value
        return value

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled (e.g. with a checker sent to a worker) as an empty memo: answers are
        # recomputed there, and the lock cannot be pickled.
        return (_empty_memo, (self.max_entries, self._compute, self._keep))

    def __repr__(self) -> str:
        return f"BoundedMemo({len(self)}/{self.max_entries})"


def _empty_memo(
    max_entries: int, compute: Callable[[K], V] | None, keep: Callable[[K], bool] | None
) -> BoundedMemo[K, V]:
    return BoundedMemo(max_entries, compute, keep=keep)


__all__ = ["BoundedMemo"]
