"""The service's clock while a benchmark replays a log: each login arrives at its own
time.

The generated logs are dated from a fixed day (``fixtures.generate.START``). Timed
against the machine's clock, a benchmark would measure a different thing as the
calendar moves on: once the log is older than the history window, the memory store
evicts every account as idle (history always empty), and a log replayed into the
future is refused as dated ahead of the clock. With this clock a run measures the
same calls on any day.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fingerprint import CheckerConfig
from fingerprint.pipeline import line_time


class LogClock:
    """A clock the replay sets to each login's time before the call (outside the
    timed region); the checker reads it as it would read the wall clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def arrivals(records: Sequence[dict[str, Any]]) -> list[float]:
    """Each record's time as the checker reads it (epoch seconds)."""
    naive_tz = CheckerConfig().time_zone
    times = []
    for record in records:
        ts = line_time(record, naive_tz)
        if ts is None:
            raise ValueError(f"a benchmark record without a valid ts: {record.get('ts')!r}")
        times.append(ts)
    return times
