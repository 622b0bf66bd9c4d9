"""A decision service's burst: N concurrent ``Checker.acheck`` calls on one event loop,
history in Redis on loopback. How many reports came back without history, and how
long the calls took.

    python -m benchmarks.concurrency [--calls 1000] [--timeouts 0.05,0.5,2] [--rounds 3]

Starts its own redis-server on a free loopback port. Each round is one burst of
``--calls`` calls started together (``asyncio.gather``) on a warm checker (a first
burst warms caches and history, untimed); calls beyond the 64 connections queue
for one. A benchmark, not a test: it reports, it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from fingerprint import Checker, CheckerConfig
from fixtures.generate import generate_sessions
from tests.redis_server import RedisServer, require_redis_server


def _sessions(calls: int, rounds: int) -> list[list[dict[str, Any]]]:
    sessions = generate_sessions(calls * (rounds + 1), max(1, calls // 4), seed=13)
    for session in sessions:
        session.pop("_label", None)
    return [sessions[n * calls : (n + 1) * calls] for n in range(rounds + 1)]


def _lost(report: Any) -> bool:
    return any(r.startswith("history store unavailable") for r in report.not_evaluated.values())


async def _burst(checker: Checker, sessions: list[dict[str, Any]]) -> dict[str, float]:
    async def timed(session: dict[str, Any]) -> tuple[float, Any]:
        started = time.perf_counter()
        report = await checker.acheck(session)
        return time.perf_counter() - started, report

    started = time.perf_counter()
    results = await asyncio.gather(*(timed(s) for s in sessions))
    wall = time.perf_counter() - started
    latencies = sorted(seconds * 1000 for seconds, _ in results)
    return {
        "calls": len(results),
        "without_history": sum(_lost(report) for _, report in results),
        "wall_ms": round(wall * 1000, 1),
        "p50_ms": round(latencies[len(latencies) // 2], 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)], 1),
        "max_ms": round(latencies[-1], 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
    }


def _run(url: str, timeout: float, bursts: list[list[dict[str, Any]]]) -> None:
    checker = Checker(CheckerConfig(history=url, history_timeout=timeout))
    # A round is a fresh asyncio.run: a new event loop each time, as a test runner
    # or a per-request loop would make.
    asyncio.run(_burst(checker, bursts[0]))  # warm-up, untimed
    for n, burst in enumerate(bursts[1:], 1):
        measured = asyncio.run(_burst(checker, burst))
        print(f"history_timeout={timeout:g} s round {n}: {measured}")
    stats = getattr(checker, "stats", None)
    if stats is not None:
        print(f"history_timeout={timeout:g} s stats: {stats()}")
    checker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeouts", default="0.05,0.5,2", help="history_timeout values")
    args = parser.parse_args()
    bursts = _sessions(args.calls, args.rounds)
    server = RedisServer(require_redis_server())
    server.start()
    try:
        for timeout in (float(t) for t in args.timeouts.split(",")):
            _run(server.url, timeout, bursts)
    finally:
        server.close()


if __name__ == "__main__":
    main()
