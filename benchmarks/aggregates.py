"""What running aggregates would cost in memory, beside history's packed windows.

Issue 20 asks for history "as running aggregates where the features allow (counts,
distinct sets, last values per window), instead of decoding and re-walking the window
on every login". The stability features read, per account and per window (7 and 30
days), counts by device, /24, hour, address, ASN, province, carrier and network type.
A sliding window can only take a login's counts back out when the login leaves it, so
the logins themselves stay (history's packed records, ~36 bytes each); the aggregates
come on top of them.

This runs the checker over a log, then, for every account history holds, compares the
bytes of its packed window (records and symbol table) with the bytes of those counters
built from the same logins, one ``collections.Counter`` per feature and window (values
already held by the windows are not counted twice). Run as
``python -m benchmarks.aggregates LOG [--lines N]``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from fingerprint.checker import Checker, CheckerConfig
from fingerprint.errors import InvalidSessionError
from fingerprint.history import LoginEvent, MemoryHistoryStore, _unpack

_DAY = 86_400.0
_WINDOWS_DAYS = (7.0, 30.0)  # the stability check's windows in the shipped rules


def deep_size(root: object, seen: set[int]) -> int:
    """Bytes of ``root`` and what it holds (containers followed), each object once."""
    total, stack = 0, [root]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, tuple | list | set | frozenset):
            stack.extend(item)
    return total


def counters(events: Sequence[LoginEvent]) -> list[Counter[Any]]:
    """The counts the stability features read, for each window ending at the newest."""
    newest = events[-1].ts
    found: list[Counter[Any]] = []
    for days in _WINDOWS_DAYS:
        inside = [e for e in events if e.ts >= newest - days * _DAY]
        for field in ("device_id", "network", "hour", "ip", "asn", "province"):
            found.append(Counter(getattr(e, field) for e in inside))
        found.append(Counter(e.carrier for e in inside))
        found.append(Counter(e.network_type for e in inside))
    return found


def measure(lines: Iterable[bytes]) -> dict[str, float]:
    checker = Checker(CheckerConfig(track_accounts=0), clock=None)
    for line in lines:
        try:
            checker.check(orjson.loads(line))
        except (InvalidSessionError, orjson.JSONDecodeError):
            continue
    store = checker._history
    assert isinstance(store, MemoryHistoryStore)
    seen: set[int] = set()
    alive: list[object] = []  # keep what is measured alive: ids must not be reused
    packed = extra = logins = 0
    for account, window in store._accounts.items():
        packed += deep_size(window.records, seen) + deep_size(window.symbols, seen)
        events = list(_unpack(account, window, 0, window.logins()))
        alive.append(events)
        logins += len(events)
        state = counters(events)
        alive.append(state)
        extra += deep_size(state, seen)
    accounts = max(1, len(store._accounts))
    return {
        "accounts": len(store._accounts),
        "logins": logins,
        "packed_bytes_per_account": round(packed / accounts),
        "aggregate_bytes_per_account": round(extra / accounts),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log")
    parser.add_argument("--lines", type=int, default=40_000)
    args = parser.parse_args(argv)
    with open(args.log, "rb") as handle:
        result = measure(itertools.islice(handle, args.lines))
    for name, value in result.items():
        print(f"{name}: {value}")
    ratio = result["aggregate_bytes_per_account"] / max(1.0, result["packed_bytes_per_account"])
    print(f"aggregates / packed window: {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
