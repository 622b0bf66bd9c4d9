"""Batch runs over session logs, in one process or sharded across several.

Sharding is by account (so each account's history lives in one process) and every
process reads every line, feeding other shards' logins into its device history, so
the reports are identical to a one-process run. Each worker writes formatted rows
prefixed with their input position; the parent merges the workers' files in input
order and copies the bytes, so the merge costs no JSON work.
"""

from __future__ import annotations

import gc
import heapq
import multiprocessing
import os
import pickle
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from fingerprint.checker import Checker, CheckerConfig
from fingerprint.outputs import RowFormat, jsonl_line
from fingerprint.pipeline import Outcome, Shard, check_stream
from fingerprint.rollup import AccountRollup
from fingerprint.runner import RunStats, iter_items


@dataclass(frozen=True)
class BatchOptions:
    paths: list[str]
    config: CheckerConfig
    fmt: str = "jsonl"
    by_account: bool = False
    only_flagged: bool = False
    max_skew: float = 300.0
    workers: int = 1


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...


@dataclass
class BatchSinks:
    output: Sink
    rejects: Sink | None = None
    progress: Any = None  # fingerprint.summary.Progress


@dataclass
class _ShardResult:
    stats: RunStats
    rows: str  # file of framed (key, row bytes) records, sorted by key
    rejects: str
    accounts: int = 0
    account_grades: dict[str, int] = field(default_factory=dict)


def run_batch(options: BatchOptions, sinks: BatchSinks, checker: Checker | None = None) -> RunStats:
    """Check every input; write rows and rejects; return the merged statistics.

    ``checker`` (fresh, built from ``options.config``) saves building another; forked
    workers inherit it. Raises KeyboardInterrupt after writing what was done.
    """
    checker = checker or Checker(options.config)
    if options.workers <= 1:
        return _run_single(options, sinks, checker)
    return _run_sharded(options, sinks, checker)


# --- one process --------------------------------------------------------------------


def _run_single(options: BatchOptions, sinks: BatchSinks, checker: Checker) -> RunStats:
    stats = RunStats(files=len(options.paths))
    fmt = RowFormat(options.fmt, options.by_account)
    sinks.output.write(fmt.header)
    rollup = AccountRollup(_grade_order(checker), None) if options.by_account else None
    update = sinks.progress.update if sinks.progress else None
    items = iter_items(options.paths, update)
    try:
        for outcome in _counted(
            check_stream(checker, items, max_skew=options.max_skew), stats, sinks.progress
        ):
            _emit(outcome, options, fmt, sinks, rollup)
    except KeyboardInterrupt:
        stats.interrupted = True
    if rollup is not None:
        _write_accounts(rollup, options, fmt, sinks.output, stats)
    _close(checker, stats)
    if stats.interrupted:
        raise _Interrupted(stats)
    return stats


def _close(checker: Checker, stats: RunStats) -> None:
    """Keep the whois counters for the summary, then release the checker's resources."""
    counters = checker.whois_stats() or {}
    stats.whois.update({k: v for k, v in counters.items() if isinstance(v, int)})
    checker.close()


def _emit(
    outcome: Outcome,
    options: BatchOptions,
    fmt: RowFormat,
    sinks: BatchSinks,
    rollup: AccountRollup | None,
) -> None:
    if outcome.reject is not None:
        if sinks.rejects is not None:
            sinks.rejects.write(jsonl_line(outcome.reject.to_dict()))
        return
    report = outcome.report
    if report is None:
        return
    if rollup is not None:
        rollup.add(report, report.features.get("device_id"))
    elif report.findings or not options.only_flagged:
        sinks.output.write(fmt(report.to_dict()))


def _write_accounts(
    rollup: AccountRollup,
    options: BatchOptions,
    fmt: RowFormat,
    out: Sink,
    stats: RunStats,
    framed: _FramedSinks | None = None,
) -> None:
    for summary in sorted(rollup, key=lambda s: s.account_id):
        stats.account_grades[summary.worst_grade or "?"] += 1
        if framed is not None:
            framed.key = summary.account_id.encode("utf-8", "surrogatepass")
        if summary.checks or not options.only_flagged:
            out.write(fmt(summary.to_dict()))
    stats.accounts = len(rollup)


def _counted(outcomes: Iterator[Outcome], stats: RunStats, progress: Any) -> Iterator[Outcome]:
    for outcome in outcomes:
        stats.lines += 1
        if outcome.blank:
            stats.blank += 1
        elif outcome.reject is not None:
            stats.add_reject(outcome.reject)
        elif outcome.report is not None:
            stats.add_report(outcome.report)
        if progress is not None and stats.lines % 4096 == 0:
            progress.lines(stats.lines)
        if stats.lines % _FREEZE_EVERY == 0:
            # History holds millions of long-lived objects; a full collection walks
            # them all (seconds at 2 M lines). Freezing what exists moves it out of
            # the collector's way; refcounting still frees it when history drops it.
            gc.freeze()
        yield outcome


def _grade_order(checker: Checker) -> list[str]:
    return [band.grade for band in checker.rules.grading.bands]


_FREEZE_EVERY = 50_000


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C after the partial results were written; carries the statistics."""

    def __init__(self, stats: RunStats) -> None:
        super().__init__()
        self.stats = stats


# --- several processes ----------------------------------------------------------------


def _run_sharded(options: BatchOptions, sinks: BatchSinks, checker: Checker) -> RunStats:
    # fork: workers inherit the parsed options and start in milliseconds.
    context = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="fingerprint-") as scratch:
        results_dir = Path(scratch)
        progress = context.Array("q", options.workers)  # lines done per worker
        processes = [
            context.Process(
                target=_shard_main,
                args=(options, checker, Shard(i, options.workers), str(results_dir), progress),
            )
            for i in range(options.workers)
        ]
        for process in processes:
            process.start()
        interrupted = _wait(processes, progress, sinks.progress)
        results = [_load_result(results_dir, i) for i in range(options.workers)]
        stats = _merge(options, sinks, results)
        stats.interrupted = stats.interrupted or interrupted
    if stats.interrupted:
        raise _Interrupted(stats)
    return stats


def _wait(processes: list[Any], counters: Any, progress: Any) -> bool:
    interrupted = False
    while any(p.is_alive() for p in processes):
        try:
            for process in processes:
                process.join(timeout=0.2)
                if progress is not None:
                    progress.lines(sum(counters))
        except KeyboardInterrupt:
            # Workers got the same SIGINT; they write what they have and stop.
            interrupted = True
    failed = [p.exitcode for p in processes if p.exitcode not in (0, None)]
    if failed and not interrupted:
        raise RuntimeError(f"worker process failed (exit codes {failed})")
    return interrupted


def _shard_main(
    options: BatchOptions, checker: Checker, shard: Shard, results_dir: str, counters: Any
) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stats = RunStats(files=len(options.paths))
    fmt = RowFormat(options.fmt, options.by_account)
    rollup = AccountRollup(_grade_order(checker), None) if options.by_account else None
    rows_path = os.path.join(results_dir, f"rows-{shard.index}")
    rejects_path = os.path.join(results_dir, f"rejects-{shard.index}")
    with open(rows_path, "wb") as rows, open(rejects_path, "wb") as rejects:
        framed = _FramedSinks(rows, rejects)
        sinks = BatchSinks(output=framed.output, rejects=framed.rejects)
        stream = check_stream(
            checker, iter_items(options.paths), max_skew=options.max_skew, shard=shard
        )
        try:
            for outcome in _counted(stream, stats, None):
                framed.key = b"%d" % outcome.seq
                _emit(outcome, options, fmt, sinks, rollup)
                if stats.lines % 1024 == 0:
                    counters[shard.index] = stats.lines
        except KeyboardInterrupt:
            stats.interrupted = True
        if rollup is not None:
            _write_accounts(rollup, options, fmt, framed.output, stats, framed)
    _close(checker, stats)
    counters[shard.index] = stats.lines
    result = _ShardResult(stats, rows_path, rejects_path)
    with open(os.path.join(results_dir, f"result-{shard.index}"), "wb") as handle:
        pickle.dump(result, handle)


class _FramedSinks:
    """Writes each row as ``<key length>:<row length>\\n<key><row>`` behind the
    current key, so rows may hold any bytes (CSV cells with newlines included)."""

    def __init__(self, rows: IO[bytes], rejects: IO[bytes]) -> None:
        self.key = b""
        self.output = _FramedFile(self, rows)
        self.rejects = _FramedFile(self, rejects)


class _FramedFile:
    def __init__(self, owner: _FramedSinks, handle: IO[bytes]) -> None:
        self._owner = owner
        self._handle = handle

    def write(self, data: bytes) -> None:
        key = self._owner.key
        self._handle.write(b"%d:%d\n" % (len(key), len(data)) + key + data)


def _load_result(results_dir: Path, index: int) -> _ShardResult:
    path = results_dir / f"result-{index}"
    if not path.exists():  # the worker died before writing anything
        return _ShardResult(RunStats(interrupted=True), "", "")
    with path.open("rb") as handle:
        result: _ShardResult = pickle.load(handle)
    return result


def _merge(options: BatchOptions, sinks: BatchSinks, results: list[_ShardResult]) -> RunStats:
    stats = RunStats(files=len(options.paths))
    for result in results:
        stats.merge(result.stats)
    numeric = not options.by_account
    sinks.output.write(RowFormat(options.fmt, options.by_account).header)
    _merge_files([r.rows for r in results if r.rows], sinks.output, numeric)
    if sinks.rejects is not None:
        _merge_files([r.rejects for r in results if r.rejects], sinks.rejects, True)
    return stats


def _merge_files(paths: list[str], out: Sink, numeric: bool) -> None:
    handles = [open(p, "rb") for p in paths]  # noqa: SIM115 - closed below
    try:
        streams = [_framed_rows(h, numeric) for h in handles]
        for _, row in heapq.merge(*streams, key=lambda pair: pair[0]):
            out.write(row)
    finally:
        for handle in handles:
            handle.close()


def _framed_rows(handle: IO[bytes], numeric: bool) -> Iterator[tuple[Any, bytes]]:
    while header := handle.readline():
        key_length, _, row_length = header.rstrip(b"\n").partition(b":")
        key = handle.read(int(key_length))
        row = handle.read(int(row_length))
        yield (int(key) if numeric else key), row
