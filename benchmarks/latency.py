"""Decision-service latency: ``Checker.check`` p50/p99, memory store vs Redis on loopback.

    python -m benchmarks.latency [--calls 20000] [--accounts 2000]

Starts its own redis-server on a free loopback port (Debian's redis-server), warms
both checkers on the same generated sessions, then times each call with
``perf_counter_ns``. A benchmark, not a test: it reports, it asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from typing import Any

from benchmarks.replay import LogClock, arrivals
from fingerprint import Checker, CheckerConfig
from fixtures.generate import generate_sessions
from tests.redis_server import RedisServer, require_redis_server


def _sessions(calls: int, accounts: int) -> list[dict[str, Any]]:
    sessions = generate_sessions(calls, accounts, seed=11)
    for session in sessions:
        session.pop("_label", None)
    return sessions


def _measure(
    checker: Checker, log_clock: LogClock, sessions: list[dict[str, Any]]
) -> dict[str, float]:
    """Each login arrives at its own time (``log_clock``, the checker's clock)."""
    warm = len(sessions) // 4
    times = arrivals(sessions)
    for session, arrival in zip(sessions[:warm], times, strict=False):  # warm-up
        log_clock.now = arrival
        checker.check(session)
    gc.collect()
    gc.freeze()  # what a service does after warm-up: no full collections on history
    timings = []
    for session, arrival in zip(sessions[warm:], times[warm:], strict=True):
        log_clock.now = arrival
        started = time.perf_counter_ns()
        checker.check(session)
        timings.append((time.perf_counter_ns() - started) / 1000)
    timings.sort()
    return {
        "calls": len(timings),
        "p50_us": round(timings[len(timings) // 2], 1),
        "p99_us": round(timings[int(len(timings) * 0.99)], 1),
        "mean_us": round(statistics.fmean(timings), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--accounts", type=int, default=2_000)
    args = parser.parse_args()
    sessions = _sessions(args.calls, args.accounts)
    log_clock = LogClock()
    print("memory:", _measure(Checker(clock=log_clock), log_clock, sessions))
    server = RedisServer(require_redis_server())
    server.start()
    try:
        config = CheckerConfig(history=server.url, history_timeout=1.0)
        print("redis: ", _measure(Checker(config, clock=log_clock), log_clock, sessions))
    finally:
        server.close()


if __name__ == "__main__":
    main()
