"""Where a sharded run's CPU goes: ``fingerprint check`` with each worker's CPU and,
with ``--stages``, each pipeline stage's CPU per line.

    python -m benchmarks.shards LOG [--workers 2] [--stages]

Runs the command line in this process (``-o /dev/null -q``), with each worker's
entry point wrapped so the worker prints its own ``getrusage`` when it ends, and the
parent its own at exit. ``--stages`` also times the pipeline's steps with
``time.process_time`` (~1 µs a call, so the totals grow a little): the check of an
own line, its preparation (validation, memo key, the device identity), its
observation for the peers, writing its row, and for the others' lines the head read
(the parent's scan; a worker's only where the scan kept no owner, see
``pipeline.ScannedHeads``), waiting for and recording their observations. It reads
private names: it explains the sharded-run figures of benchmarks/README.md, it is
not API.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from fingerprint import batch, cli, exchange, pipeline
from fingerprint import checker as checker_module

_SECONDS: collections.defaultdict[str, float] = collections.defaultdict(float)
_CALLS: collections.Counter[str] = collections.Counter()

# (module or class, function name, label)
_STAGES: list[tuple[Any, str, str]] = [
    (pipeline, "check_line", "own line: check"),
    (checker_module.Checker, "prepare", "own line: prepare"),
    (checker_module.Checker, "observation", "own line: observation"),
    (batch, "_emit", "own line: write its row"),
    (pipeline, "read_head", "any line: head read"),
    (pipeline, "decode_line", "own line: decode"),
    (exchange.Peers, "take", "other's line: wait for its observation"),
    (checker_module.Checker, "record_observation", "other's line: record it"),
]


def _timed(label: str, function: Callable[..., Any]) -> Callable[..., Any]:
    clock = time.process_time

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return function(*args, **kwargs)
        finally:
            _SECONDS[label] += clock() - started
            _CALLS[label] += 1

    return wrapper


def _usage(name: str) -> str:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return f"{name} (pid {os.getpid()}): user {usage.ru_utime:.2f} s, sys {usage.ru_stime:.2f} s"


def _stage_lines() -> list[str]:
    return [
        f"    {label:42s} {seconds:7.2f} s {_CALLS[label]:8d} calls "
        f"{1e6 * seconds / _CALLS[label]:7.1f} µs"
        for label, seconds in sorted(_SECONDS.items(), key=lambda item: -item[1])
    ]


def _instrument_workers() -> None:
    run_worker = batch._shard_main

    def worker(*args: Any, **kwargs: Any) -> None:
        _SECONDS.clear()  # a forked worker starts with the parent's counts
        _CALLS.clear()
        try:
            run_worker(*args, **kwargs)
        finally:
            print("\n".join([_usage("worker"), *_stage_lines()]), file=sys.stderr)

    batch._shard_main = worker


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shards", description=__doc__)
    parser.add_argument("log")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stages", action="store_true", help="time the pipeline's stages")
    args = parser.parse_args(argv)
    if args.stages:
        for owner, name, label in _STAGES:
            setattr(owner, name, _timed(label, getattr(owner, name)))
    _instrument_workers()
    parent = os.getpid()

    def report_parent() -> None:
        if os.getpid() == parent:  # the workers report from their own wrapper
            print("\n".join([_usage("parent"), *_stage_lines()]), file=sys.stderr)

    atexit.register(report_parent)
    command = ["check", args.log, "-o", os.devnull, "-q", "--workers", str(args.workers)]
    return cli.main(command)


if __name__ == "__main__":
    raise SystemExit(main())
