"""Per-account and per-device windows behind a small store protocol.

A check never touches storage: the checker asks the store, in one call, to record
the current login and hand back what came before it inside the windows. That one
call is the unit a shared store (Redis) makes atomic.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class LoginEvent:
    """What history keeps of one login: only what history checks read."""

    ts: float  # epoch seconds
    session_id: str
    account_id: str
    device_id: str | None
    ip: str
    province: str | None
    latitude: float | None
    longitude: float | None
    accuracy_km: int | None
    ip_anonymous: bool
    network: str | None = None  # the IP's /24 (IPv4) or /48 (IPv6)
    asn: int | None = None
    network_type: str | None = None  # wifi, cellular, ...
    carrier: str | None = None
    hour: int | None = None  # local hour of day (0-23), for login-time regularity


@dataclass(frozen=True, slots=True)
class HistoryView:
    """The logins before the current one, inside the windows, oldest first."""

    account_events: tuple[LoginEvent, ...]
    device_accounts: tuple[tuple[float, str], ...] = ()  # (ts, account_id) on the same device


@dataclass(frozen=True, slots=True)
class Windows:
    account_seconds: float
    device_seconds: float
    max_events_per_account: int = 200
    max_accounts_per_device: int = 200


class HistoryStore(Protocol):
    def record_and_fetch(self, event: LoginEvent, windows: Windows) -> HistoryView:
        """Append ``event`` and return the history before it, atomically."""
        ...

    def record_device(self, event: LoginEvent, windows: Windows) -> None:
        """Append only the device side of ``event`` (a login another shard checks)."""
        ...


@dataclass(slots=True)
class _AccountWindow:
    times: list[float] = field(default_factory=list)
    events: list[LoginEvent] = field(default_factory=list)
    last_seen: float = 0.0


class MemoryHistoryStore:
    """In-process, thread-safe, bounded store.

    Memory grows with the accounts and devices active inside the window, not with
    the number of logins: entries are trimmed on each touch and idle keys evicted in
    least-recently-active order once the newest timestamp passes their window.
    """

    def __init__(self) -> None:
        self._accounts: OrderedDict[str, _AccountWindow] = OrderedDict()
        # device -> account -> newest login time on that device
        self._devices: OrderedDict[str, dict[str, float]] = OrderedDict()
        self._watermark = float("-inf")
        self._lock = threading.Lock()

    def record_and_fetch(self, event: LoginEvent, windows: Windows) -> HistoryView:
        with self._lock:
            self._watermark = max(self._watermark, event.ts)
            before = self._record_account(event, windows)
            device = self._record_device(event, windows) if event.device_id else ()
            self._evict_idle(windows)
        return HistoryView(account_events=before, device_accounts=device)

    def record_device(self, event: LoginEvent, windows: Windows) -> None:
        if not event.device_id:
            return
        with self._lock:
            self._watermark = max(self._watermark, event.ts)
            self._record_device(event, windows)
            self._evict_idle(windows)

    def _record_account(self, event: LoginEvent, windows: Windows) -> tuple[LoginEvent, ...]:
        window = self._accounts.get(event.account_id)
        if window is None:
            window = _AccountWindow()
            self._accounts[event.account_id] = window
        else:
            self._accounts.move_to_end(event.account_id)
        window.last_seen = max(window.last_seen, event.ts)
        # Insert in time order: late lines must still land where they belong.
        position = bisect.bisect_right(window.times, event.ts)
        window.times.insert(position, event.ts)
        window.events.insert(position, event)
        start = bisect.bisect_left(window.times, event.ts - windows.account_seconds)
        earlier = tuple(window.events[start:position])
        self._trim_account(window, windows)
        return earlier

    def _trim_account(self, window: _AccountWindow, windows: Windows) -> None:
        cutoff = bisect.bisect_left(window.times, window.last_seen - windows.account_seconds)
        overflow = len(window.times) - cutoff - windows.max_events_per_account
        cutoff += max(0, overflow)
        if cutoff:
            del window.times[:cutoff]
            del window.events[:cutoff]

    def _record_device(self, event: LoginEvent, windows: Windows) -> tuple[tuple[float, str], ...]:
        assert event.device_id is not None
        accounts = self._devices.get(event.device_id)
        if accounts is None:
            accounts = {}
            self._devices[event.device_id] = accounts
        else:
            self._devices.move_to_end(event.device_id)
        low = event.ts - windows.device_seconds
        earlier = tuple((ts, account) for account, ts in accounts.items() if ts >= low)
        if accounts.get(event.account_id, float("-inf")) < event.ts:
            accounts.pop(event.account_id, None)  # re-insert: dict order is recency order
            accounts[event.account_id] = event.ts
        if len(accounts) > windows.max_accounts_per_device:
            for stale in list(accounts)[: len(accounts) - windows.max_accounts_per_device]:
                del accounts[stale]
        return earlier

    def _evict_idle(self, windows: Windows) -> None:
        horizon = self._watermark - windows.account_seconds
        while self._accounts:
            key, window = next(iter(self._accounts.items()))
            if window.last_seen >= horizon:
                break
            del self._accounts[key]
        device_horizon = self._watermark - windows.device_seconds
        while self._devices:
            key, accounts = next(iter(self._devices.items()))
            if accounts and max(accounts.values()) >= device_horizon:
                break
            del self._devices[key]

    def accounts(self) -> int:
        return len(self._accounts)

    def devices(self) -> int:
        return len(self._devices)
