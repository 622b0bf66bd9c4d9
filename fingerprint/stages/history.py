"""The history stage: record the login and its identity links and read back the
windows the checks declared and what the links held, in one round trip (memory,
Redis, sync or awaited). A store that fails is reported, counted, and never fails the
login's check."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from fingerprint.history import HistoryStore, HistoryView, Link, LoginEvent, Windows

HISTORY_UNAVAILABLE = "history store unavailable"  # how not_evaluated reasons begin then


class HistoryStage:
    """One checker's history store, and what to count when it fails."""

    def __init__(self, store: HistoryStore, count: Callable[..., None]) -> None:
        self.store = store
        self._count = count  # (*counter names) -> None: the checker's counters
        # A store that records a login and its links in one call (Redis: one script,
        # one round trip where two calls made two); others take two calls.
        self._fetch_links = getattr(store, "record_and_fetch_links", None)
        self._afetch_links = getattr(store, "arecord_and_fetch_links", None)

    def view(
        self,
        windows: Windows | None,
        event: LoginEvent,
        *,
        now: float | None,
        links: tuple[Link, ...],
    ) -> tuple[HistoryView | None, str | None]:
        """(the view, None), or (None, why there is none)."""
        if windows is None:
            return None, "no history check enabled"
        try:
            if links and self._fetch_links is not None:
                return self._fetch_links(event, windows, links, now=now), None
            view = self.store.record_and_fetch(event, windows, now=now)
            return self._with_links(view, windows, event, now, links), None
        except Exception as exc:  # a store outage must not fail the login check
            return None, self.unavailable(exc)

    async def aview(
        self,
        windows: Windows | None,
        event: LoginEvent,
        *,
        now: float | None,
        links: tuple[Link, ...],
    ) -> tuple[HistoryView | None, str | None]:
        """:meth:`view` with the round trips awaited (asyncio sockets with Redis)."""
        if windows is None:
            return None, "no history check enabled"
        fetch = getattr(self.store, "arecord_and_fetch", None)
        try:
            if links and self._afetch_links is not None:
                return await self._afetch_links(event, windows, links, now=now), None
            if fetch is None:
                view = self.store.record_and_fetch(event, windows, now=now)
            else:
                view = await fetch(event, windows, now=now)
            record = getattr(self.store, "arecord_links", None)
            if record is not None and links:  # awaited: never a sync round trip on the loop
                found = await record(links, event.ts, windows, now=now)
                return msgspec.structs.replace(view, links=found), None
            return self._with_links(view, windows, event, now, links), None
        except Exception as exc:
            return None, self.unavailable(exc)

    def _with_links(
        self,
        view: HistoryView,
        windows: Windows,
        event: LoginEvent,
        now: float | None,
        links: tuple[Link, ...],
    ) -> HistoryView:
        """The view with the identity links this login adds (a store that keeps none
        leaves ``links`` None: the identity checks then say so)."""
        record = getattr(self.store, "record_links", None)
        if record is None:
            return view
        found = record(links, event.ts, windows, now=now) if links else {}
        return msgspec.structs.replace(view, links=found)

    def unavailable(self, exc: Exception) -> str:
        """Count a check that goes on without history, and say why."""
        self._count("degraded", "lost_writes", *timeout_counter(exc))
        return f"{HISTORY_UNAVAILABLE}: {type(exc).__name__}: {exc}"[:300]


def timeout_counter(exc: Exception) -> tuple[str, ...]:
    # redis-py's own TimeoutError (TLS connections) is no builtin TimeoutError.
    timed_out = isinstance(exc, TimeoutError) or type(exc).__name__ == "TimeoutError"
    return ("history_timeouts",) if timed_out else ()
