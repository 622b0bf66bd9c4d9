"""Where a warm ``Checker.check`` spends its time, stage by stage (memory store).

    python -m benchmarks.stages [--calls 12000] [--accounts 1200]

The same sessions and warm-up as ``benchmarks.latency``. Each stage of the check is
wrapped in a ``perf_counter_ns`` timer (the wrappers add ~0.2 µs a stage), then
every call is split into its stages; the table gives each stage's p50 and p99 and
its share of the summed time. The rows are the checker's own internal steps, so
this script reads private names: it explains the latency benchmark, it is not API.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import fingerprint.checker as checker_module
from benchmarks.latency import _sessions
from benchmarks.replay import LogClock, arrivals
from fingerprint import Checker

Timings = dict[str, list[int]]


def _timed(name: str, function: Callable[..., Any], timings: Timings) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter_ns()
        try:
            return function(*args, **kwargs)
        finally:
            timings[name].append(time.perf_counter_ns() - started)

    return wrapper


def _instrument(checker: Checker, timings: Timings) -> None:
    """Wrap the check's stages: instance attributes shadow the methods, and the
    checker module's names for the stage functions it calls are replaced."""
    methods = {
        "validate (device memo, msgspec)": "_parse_with_memo",
        "stability features (7d, 30d)": "_stability",
    }
    for label, name in methods.items():
        setattr(checker, name, _timed(label, getattr(checker, name), timings))
    enricher = checker._enricher
    enricher.enrich = _timed(  # type: ignore[method-assign]
        "enrich (UA, geo, device, identity)", enricher.enrich, timings
    )
    store = checker._history
    store.record_and_fetch = _timed(  # type: ignore[method-assign]
        "history store: record and read", store.record_and_fetch, timings
    )
    rollup = checker._accounts
    rollup.add = _timed("account rollup", rollup.add, timings)  # type: ignore[method-assign]
    for label, name in _MODULE_STAGES.items():
        setattr(checker_module, name, _timed(label, getattr(checker_module, name), timings))


# Stage functions the checker module calls by these names.
_MODULE_STAGES = {
    "checks (both halves)": "run_checks",
    "login event": "login_event",
    "grade and report": "graded_report",
}


def _percentile(values: list[int], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=12_000)
    parser.add_argument("--accounts", type=int, default=1_200)
    args = parser.parse_args()
    sessions = _sessions(args.calls, args.accounts)
    log_clock = LogClock()  # each login arrives at its own time (benchmarks.replay)
    checker = Checker(clock=log_clock)
    times = arrivals(sessions)
    warm = len(sessions) // 4
    for session, arrival in zip(sessions[:warm], times, strict=False):
        log_clock.now = arrival
        checker.check(session)
    gc.collect()
    gc.freeze()
    timings: Timings = defaultdict(list)
    originals = {name: getattr(checker_module, name) for name in _MODULE_STAGES.values()}
    _instrument(checker, timings)
    try:
        for session, arrival in zip(sessions[warm:], times[warm:], strict=True):
            log_clock.now = arrival
            started = time.perf_counter_ns()
            checker.check(session)
            timings["(whole check)"].append(time.perf_counter_ns() - started)
    finally:
        for name, function in originals.items():
            setattr(checker_module, name, function)
    _print(timings)


def _print(timings: Timings) -> None:
    calls = len(timings["(whole check)"])
    whole = sum(timings["(whole check)"])
    staged = sum(sum(v) for k, v in timings.items() if k != "(whole check)")
    print(f"{calls} warm calls; µs per call (a stage timed twice a call is summed per call)")
    print(f"{'stage':36s} {'mean':>8s} {'p50':>8s} {'p99':>8s} {'share':>6s}")
    for name, values in sorted(timings.items(), key=lambda item: -sum(item[1])):
        per_call = _per_call(values, calls)
        mean = sum(values) / calls / 1000
        print(
            f"{name:36s} {mean:8.1f} {_percentile(per_call, 0.5):8.1f} "
            f"{_percentile(per_call, 0.99):8.1f} {sum(values) / whole:6.1%}"
        )
    rest = (whole - staged) / calls / 1000
    print(
        f"{'rest (contexts, summary, report)':36s} {rest:8.1f} {'':>8s} {'':>8s} "
        f"{(whole - staged) / whole:6.1%}"
    )


def _per_call(values: list[int], calls: int) -> list[int]:
    """A stage timed k times a call (the checks run in two halves): sum each call's k."""
    k = max(1, len(values) // calls)
    return [sum(values[i : i + k]) for i in range(0, k * calls, k)]


if __name__ == "__main__":
    main()
