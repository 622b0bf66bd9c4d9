"""Batch runs over session logs: in one process, in two stages (two workers), or
sharded across several.

Two workers are a reader that begins each login and a parent that keeps all of
history, finishes each check and writes (:mod:`fingerprint.pipelined`). With more,
sharding is by account (so each account's history lives in one process). A worker
checks its accounts' lines and records what the other workers observed of theirs
(their devices' and addresses' accounts, identity links; :mod:`fingerprint.exchange`),
so the reports are identical to a one-process run. Each worker writes formatted rows
prefixed with their input position; the parent merges the workers' files in input
order and copies the bytes, so the merge costs no JSON work.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import heapq
import multiprocessing
import multiprocessing.connection
import os
import pickle
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from fingerprint.checker import Checker, CheckerConfig
from fingerprint.errors import FingerprintError
from fingerprint.exchange import Inbox, Peers
from fingerprint.outputs import Output, RowFormat, jsonl_line
from fingerprint.pipeline import MAX_HELD_LINES, Outcome, Shard, check_stream
from fingerprint.pipelined import Gate, answer_gate, finished, read_and_begin
from fingerprint.rollup import AccountRollup
from fingerprint.runner import PROGRESS_EVERY, RunStats
from fingerprint.sorting import (
    InputPlan,
    OrderOptions,
    SortMode,
    open_plan,
    sampled_in_order,
    scan_plan,
    sort_plan,
)
from fingerprint.stopping import (
    STOP_SIGNALS,
    is_stop,
    orphaned,
    run_as_worker,
    signal_number,
    signals_deferred,
)


@dataclass(frozen=True)
class BatchOptions:
    paths: list[str]
    config: CheckerConfig
    fmt: str = "jsonl"
    by_account: bool = False
    only_flagged: bool = False
    max_skew: float = 300.0
    workers: int = 1
    sort: SortMode = "auto"  # see fingerprint.sorting: sort when streaming is not exact
    max_held_lines: int = MAX_HELD_LINES  # the reorder buffer's bound in lines


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...


@dataclass
class BatchSinks:
    output: Sink
    rejects: Sink | None = None
    progress: Any = None  # fingerprint.summary.Progress
    # Told once, as soon as it happens, when sessions start to be graded without
    # history because the store is unreachable (the count comes at the end).
    warn: Callable[[str], None] | None = None
    # Temporary files the caller made for this run: if the parent process is killed
    # outright, its workers remove them (and their own scratch folder) as they go.
    temporaries: list[str] = field(default_factory=list)


@dataclass
class _ShardResult:
    stats: RunStats
    rows: str  # file of framed (key, row bytes) records, sorted by key
    rejects: str
    accounts: int = 0
    account_grades: dict[str, int] = field(default_factory=dict)
    error: str | None = None  # why the worker could not finish


def run_batch(options: BatchOptions, sinks: BatchSinks, checker: Checker | None = None) -> RunStats:
    """Check every input; write rows and rejects; return the merged statistics.

    ``checker`` (fresh, built from ``options.config``) saves building another; forked
    workers inherit it. A stop signal (Ctrl-C, or SIGTERM under
    :func:`fingerprint.stopping.stop_on_signals`) raises :class:`Interrupted` with the
    counts so far, once every worker has stopped (within about a second).
    """
    checker = checker or Checker(options.config)
    pipelined = _pipelined(options, checker)
    order = OrderOptions(
        options.sort,
        options.max_skew,
        options.max_held_lines,
        checker.config.time_zone,
        shards=1 if pipelined else options.workers,  # only shards read the scan's owners
    )
    with (
        _young_collections_spaced(),
        # Its temporary files go with it; scanned below, when it must be.
        open_plan(options.paths, order, scan=False) as plan,
    ):
        speculate = _speculates(options, sinks, checker, pipelined=pipelined) and (
            sampled_in_order(plan, order, _stage_when_read(sinks.progress, SAMPLING))
        )
        if speculate and pipelined:
            return _run_pipelined(options, sinks, checker, plan, order, speculate=True)
        if speculate:
            return _run_single(options, sinks, checker, plan, order)
        # Two stages scan while the reader begins lines (fingerprint.pipelined's notes).
        if pipelined and options.sort == "auto":
            return _run_pipelined(options, sinks, checker, plan, order)
        _scanned(plan, order, sinks.progress)
        if options.workers <= 1:
            return _run_single(options, sinks, checker, plan)
        if pipelined:
            return _run_pipelined(options, sinks, checker, plan)
        return _run_sharded(options, sinks, checker, plan)


def _speculates(
    options: BatchOptions, sinks: BatchSinks, checker: Checker, *, pipelined: bool
) -> bool:
    """Check the input as it streams, before knowing it is in time order, and start
    over sorted if a line comes late or far ahead (``--sort auto``)?

    Most logs are in time order: the scan that proves it reads every line a second
    time (~69,000 instructions a line, 7-8% of a one-worker run's; benchmarks/README.md).
    Starting over must leave no trace of the first attempt, so only: one process or
    two stages (shards need the scan's owners), reports and rejects in our own
    temporary files (:meth:`Output.rewind`; a pipe or a terminal cannot be
    unwritten), and a checker that can forget what it checked
    (:attr:`Checker.can_forget`: its own memory history, no registry lookups). The
    caller also samples the input (:func:`fingerprint.sorting.sampled_in_order`), so
    that a log plainly out of order (several servers' files that overlap in time, a
    reversed or shuffled export) is scanned first, not checked in part twice."""
    sinks_rewind = all(
        isinstance(sink, Output) and sink.rewindable
        for sink in (sinks.output, sinks.rejects)
        if sink is not None
    )
    return (
        options.sort == "auto"
        and (options.workers <= 1 or pipelined)
        and sinks_rewind
        and checker.can_forget
    )


def _start_over(
    options: BatchOptions, sinks: BatchSinks, checker: Checker, plan: InputPlan, order: OrderOptions
) -> RunStats:
    """Take back a run that checked its input as it streamed (:func:`_speculates`) and
    met a line out of order: what it wrote and the history it kept. Then scan (and
    sort) the plan; the statistics of the check it starts again from zero."""
    for sink in (sinks.output, sinks.rejects):
        if isinstance(sink, Output):
            sink.rewind()
    checker.forget()
    _scanned(plan, order, sinks.progress)
    return RunStats(files=len(options.paths))


def _scanned(plan: InputPlan, order: OrderOptions, progress: Any = None) -> None:
    """Scan a plan (unless ``--sort never``), and sort it when it must be: what
    :func:`fingerprint.sorting.plan_input` does (the scan's counts are the summary's).
    ``progress`` shows each as a stage of the run."""
    if order.sort == "never":
        return
    if not scan_plan(plan, order, _stage(progress, SCANNING)):
        sort_plan(plan, _stage(progress, SORTING))


SCANNING, SORTING = "scanning for time order", "sorting by time"
SAMPLING = "sampling for time order"  # a gzip file, decompressed to find its samples


def _stage(progress: Any, label: str) -> Callable[[int], None] | None:
    """Start a stage of the run's progress; the callback its input bytes go to."""
    if progress is None:
        return None
    progress.stage(label)
    return progress.update  # type: ignore[no-any-return]


def _stage_when_read(progress: Any, label: str) -> Callable[[int], None] | None:
    """:func:`_stage`, started at the first bytes read: a stage that reads nothing (the
    samples of a plain file, ~1 ms) shows nothing."""
    if progress is None:
        return None
    started = False

    def update(bytes_read: int) -> None:
        nonlocal started
        if not started:
            progress.stage(label)
            started = True
        progress.update(bytes_read)

    return update


def _checking(progress: Any, plan: InputPlan) -> None:
    """The check's stage. A sorted plan is read from our own runs, not the input's
    bytes: its share is of the lines the scan counted."""
    if progress is not None:
        progress.stage(total_lines=plan.scanned_items if plan.stats.sorted else None)


def _pipelined(options: BatchOptions, checker: Checker) -> bool:
    """Two workers run as two stages (:mod:`fingerprint.pipelined`): one reads and
    begins each login, one keeps the history and finishes it. Generator's 200k
    lines: 1.66-1.75x one worker's throughput, where two account shards gave
    1.48-1.50x (benchmarks/README.md). Not with ``--whois``: its lookups' records stay in the
    process that made them. More workers shard by account."""
    return options.workers == 2 and not checker.config.whois


# How many more container objects made than freed start a young collection during a
# run (CPython's default: 700). A run frees as many sessions as it reads (the reorder
# buffer lets old lines go, history and the memos drop old entries), so that count
# creeps up while the young generation fills with the lines still held; every
# collection then walks thousands of live sessions to free almost nothing. On the
# generator's 200,000 lines: 725 young collections cost 1.08 s at 700 and 26 cost
# 0.29 s at 10,000, with the same peak RSS (benchmarks/README.md).
_YOUNG_COLLECTION_THRESHOLD = 10_000


@contextlib.contextmanager
def _young_collections_spaced() -> Iterator[None]:
    """Space young collections for the run (forked workers inherit it), then give the
    process back its own thresholds. A collector turned off (threshold 0) stays off;
    thresholds someone else set meanwhile (another run in another thread, the
    caller) are theirs, and stay."""
    before = gc.get_threshold()
    if not 0 < before[0] < _YOUNG_COLLECTION_THRESHOLD:
        yield
        return
    spaced = (_YOUNG_COLLECTION_THRESHOLD, *before[1:])
    gc.set_threshold(*spaced)
    try:
        yield
    finally:
        if gc.get_threshold() == spaced:
            gc.set_threshold(*before)


# --- one process --------------------------------------------------------------------


def _run_single(
    options: BatchOptions,
    sinks: BatchSinks,
    checker: Checker,
    plan: InputPlan,
    unscanned: OrderOptions | None = None,
) -> RunStats:
    """One process. ``unscanned``: the plan is not scanned; check it as it streams,
    and if a line comes out of order, start over with it scanned (and sorted)."""
    stats = RunStats(files=len(options.paths))
    try:
        until_out_of_order = unscanned is not None
        _check_single(options, sinks, checker, plan, stats, until_out_of_order=until_out_of_order)
        if unscanned is not None and not stats.order.in_order:
            stats = _start_over(options, sinks, checker, plan, unscanned)
            _check_single(options, sinks, checker, plan, stats)
    finally:
        _close(checker, stats)
    return stats


def _check_single(
    options: BatchOptions,
    sinks: BatchSinks,
    checker: Checker,
    plan: InputPlan,
    stats: RunStats,
    *,
    until_out_of_order: bool = False,
) -> None:
    stats.order.merge(plan.stats)
    _checking(sinks.progress, plan)
    update = sinks.progress.update if sinks.progress else None
    items = plan.items(update, on_shrunk=stats.add_shrunk_input)
    stream = check_stream(
        checker,
        items,
        max_skew=options.max_skew,
        max_lines=options.max_held_lines,
        stats=stats.order,
        until_out_of_order=until_out_of_order,
    )
    try:
        _write_outcomes(stream, options, sinks, checker, stats)
    except KeyboardInterrupt as interrupt:
        stats.interrupted = True
        raise Interrupted(stats, signal_number(interrupt)) from None


def _write_outcomes(
    outcomes: Iterator[Outcome],
    options: BatchOptions,
    sinks: BatchSinks,
    checker: Checker,
    stats: RunStats,
) -> None:
    """Write and count the outcomes of a run whose process writes them itself (one
    process, or the parent of two stages): rows in input order, then accounts."""
    fmt = RowFormat(options.fmt, options.by_account)
    rollup = AccountRollup(_grade_order(checker), None) if options.by_account else None
    sinks.output.write(fmt.header)
    for outcome in _counted(outcomes, stats, sinks.progress, sinks.warn):
        _emit(outcome, options, fmt, sinks, rollup)
    if rollup is not None:
        _write_accounts(rollup, options, fmt, sinks.output, stats)
    if sinks.progress is not None:
        sinks.progress.lines(stats.lines)


# --- two stages (fingerprint.pipelined) ----------------------------------------------


def _run_pipelined(
    options: BatchOptions,
    sinks: BatchSinks,
    checker: Checker,
    plan: InputPlan,
    unscanned: OrderOptions | None = None,
    *,
    speculate: bool = False,
) -> RunStats:
    """The reader is a forked child; this process finishes the checks and writes, as
    ``_run_single`` does. A reader that fails stops the run (exit 1); one that alone
    received a stop signal stops it as an interrupt. ``unscanned``: the plan is not
    scanned yet; this process scans it while the reader begins lines, then lets the
    reader go on, or stops it, sorts and starts another. With ``speculate``
    (:func:`_speculates`) nobody scans it first: the reader sends what it begins at
    once and stops at the first line out of order; this process then takes back
    what it did, scans (and sorts) the plan and starts another reader."""
    stats = RunStats(files=len(options.paths))
    try:
        if unscanned is not None and speculate:

            def unscanned_reader() -> tuple[Any, IO[bytes]]:
                return _start_reader(options, sinks, checker, plan, until_out_of_order=True)

            _finish_all(options, sinks, checker, plan, stats, unscanned_reader)
            if stats.order.in_order:
                return stats
            stats = _start_over(options, sinks, checker, plan, unscanned)
            unscanned = None

        def start() -> tuple[Any, IO[bytes]]:
            if unscanned is None:
                return _start_reader(options, sinks, checker, plan)
            return _start_reader_overlapped(options, sinks, checker, plan, unscanned)

        _finish_all(options, sinks, checker, plan, stats, start)
    finally:
        _close(checker, stats)
    return stats


def _finish_all(
    options: BatchOptions,
    sinks: BatchSinks,
    checker: Checker,
    plan: InputPlan,
    stats: RunStats,
    start: Callable[[], tuple[Any, IO[bytes]]],
) -> None:
    """Start a reader, finish and write what it sends, and wait for it to end."""
    progress = sinks.progress
    reader: Any = None
    incoming: IO[bytes] | None = None
    try:
        reader, incoming = start()
        _checking(progress, plan)
        stats.order.merge(plan.stats)
        outcomes = finished(
            checker,
            incoming,
            order_stats=stats.order,
            on_bytes=progress.update if progress is not None else None,
            on_shrunk=stats.add_shrunk_input,
        )
        _write_outcomes(_or_reader_failed(outcomes, reader), options, sinks, checker, stats)
        reader.join()
    except KeyboardInterrupt as interrupt:
        signum = signal_number(interrupt)
        with signals_deferred():
            _stop([reader] if reader is not None else [], signum)
        stats.interrupted = True
        raise Interrupted(stats, signum) from None
    except BaseException:
        with signals_deferred():
            _stop([reader] if reader is not None else [], signal.SIGTERM)
        raise
    finally:
        # Only now: the reader stops on the signal passed on, never on a pipe closed
        # under it mid-write.
        if incoming is not None:
            incoming.close()


def _start_reader_overlapped(
    options: BatchOptions,
    sinks: BatchSinks,
    checker: Checker,
    plan: InputPlan,
    order: OrderOptions,
) -> tuple[Any, IO[bytes]]:
    """Start the reader on the input as it streams, then scan it here meanwhile: the
    reader goes on if the input streams as it is; else it is stopped (its work
    dropped unseen), the input sorted, and another reader started."""
    heard, answered = os.pipe()  # the reader hears at one end what is answered at the other
    try:
        reader, incoming = _start_reader(options, sinks, checker, plan, gate=(heard, answered))
    except BaseException:
        os.close(answered)
        raise
    finally:
        os.close(heard)  # the reader's end
    streams = False
    try:
        streams = scan_plan(plan, order, _stage(sinks.progress, SCANNING))
    finally:
        answer_gate(answered, go=streams)  # a scan that failed stops the reader too
        if not streams:  # it ends without sending anything
            incoming.close()
            reader.join()
    if streams:
        return reader, incoming
    sort_plan(plan, _stage(sinks.progress, SORTING))
    return _start_reader(options, sinks, checker, plan)


def _start_reader(
    options: BatchOptions,
    sinks: BatchSinks,
    checker: Checker,
    plan: InputPlan,
    gate: tuple[int, int] | None = None,
    *,
    until_out_of_order: bool = False,
) -> tuple[Any, IO[bytes]]:
    """Fork the reader; return it and the pipe it sends its frames down. ``gate``:
    the (reader's, this process's) ends of the pipe that answers :class:`Gate`.
    ``until_out_of_order``: see :func:`fingerprint.pipelined.read_and_begin`."""
    context = multiprocessing.get_context("fork")
    incoming_fd, outgoing_fd = os.pipe()
    _widen(outgoing_fd)
    # If this process dies before removing them, the reader removes these.
    leftovers = [*sinks.temporaries, *plan.folders]
    with signals_deferred():  # the child must install its own handlers first
        reader = context.Process(
            target=_worker_main,
            args=(_reader_main, options, checker, plan, outgoing_fd, incoming_fd),
            kwargs={
                "parent": os.getpid(),
                "leftovers": leftovers,
                "gate": gate,
                "until_out_of_order": until_out_of_order,
            },
            daemon=True,
        )
        try:
            reader.start()
        except BaseException:
            os.close(incoming_fd)
            raise
        finally:
            os.close(outgoing_fd)  # the reader's alone: its end is this pipe's end
    return reader, open(incoming_fd, "rb", buffering=_ROWS_BUFFER)


# Linux lets a pipe hold 1 MiB (its default maximum for any user) instead of 64 KiB,
# so the reader can run several frames ahead of the parent. Elsewhere pipes stay as
# they are: the reader then waits for the parent sooner, nothing else changes.
_PIPE_BYTES = 1 << 20


def _widen(fd: int) -> None:
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, set_size, _PIPE_BYTES)


# The reader's exit status when a stop signal reached it alone: 128 + the signal's
# number, as a shell reports it.
_STOPPED_STATUS = 128


def _or_reader_failed(outcomes: Iterator[Outcome], reader: Any) -> Iterator[Outcome]:
    """The outcomes, or why the reader's pipe ended before its last frame."""
    try:
        yield from outcomes
    except EOFError:
        reader.join()
        code = reader.exitcode
        if code is not None and code > _STOPPED_STATUS:  # signalled alone: stop the run
            raise KeyboardInterrupt from None
        raise FingerprintError(f"a worker process failed (exit codes [{code}])") from None


def _worker_main(
    work: Callable[..., None], *args: Any, parent: int, leftovers: list[str], **kwargs: Any
) -> None:
    """A forked worker's entry point: ``work`` (the reader's or a shard's) inside
    :func:`fingerprint.stopping.run_as_worker`, which stops it on a signal while it
    works, quietly with the shell's status even at the work's very edges, and leaves
    it to exit as it was once it is done."""
    run_as_worker(
        parent,
        lambda: _remove(leftovers),
        lambda: work(*args, parent=parent, leftovers=leftovers, **kwargs),
    )


def _reader_main(
    options: BatchOptions,
    checker: Checker,
    plan: InputPlan,
    outgoing_fd: int,
    incoming_fd: int,
    *,
    parent: int,
    leftovers: list[str],
    gate: tuple[int, int] | None = None,
    until_out_of_order: bool = False,
) -> None:
    os.close(incoming_fd)  # the parent's end
    if gate is not None:
        os.close(gate[1])  # the parent's end
    try:
        with open(outgoing_fd, "wb", buffering=_ROWS_BUFFER) as out:
            sent = read_and_begin(
                checker,
                plan.items,
                out,
                max_skew=options.max_skew,
                max_lines=options.max_held_lines,
                gate=Gate(gate[0]) if gate is not None else None,
                until_out_of_order=until_out_of_order,
            )
        if not sent and orphaned(parent, within=_PIPE_END_WAIT):  # the gate closed with it
            _remove(leftovers)
    except BrokenPipeError:
        # The parent closed its end: it is stopping the run (a signal, an error, a
        # full disk) and says why itself. The stop signal it passes on must not cut
        # this process's clean-up short (the input's generator closes on the way out).
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        if orphaned(parent, within=_PIPE_END_WAIT):
            _remove(leftovers)
        sys.exit(_STOPPED_STATUS + signal.SIGPIPE)
    except (KeyboardInterrupt, Exception) as exc:
        if not is_stop(exc):
            raise
        if orphaned(parent):  # nobody will read or remove what we wrote
            _remove(leftovers)
            return
        sys.exit(_STOPPED_STATUS + signal_number(exc))  # the parent reads it as a stop
    finally:
        # A first stop signal landing here has nothing left to stop: the frames are
        # sent, or how this reader ends is already decided.
        with contextlib.suppress(Exception, KeyboardInterrupt):
            checker.close()


# How long a reader that met the end of its pipe waits to learn whether the parent
# died (then it removes the parent's files) or is stopping the run (and removes them).
_PIPE_END_WAIT = 0.5


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


def _counted(
    outcomes: Iterator[Outcome],
    stats: RunStats,
    progress: Any,
    warn: Callable[[str], None] | None = None,
) -> Iterator[Outcome]:
    for outcome in outcomes:
        stats.lines += 1
        if outcome.blank:
            stats.blank += 1
        elif outcome.reject is not None:
            stats.add_reject(outcome.reject)
        elif outcome.report is not None:
            first = stats.history_degraded == 0
            stats.add_report(outcome.report)
            if warn is not None and first and stats.history_degraded:
                warn(HISTORY_WARNING)
        if progress is not None and stats.lines % PROGRESS_EVERY == 0:
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
# The workers' row files are written and merged through 1 MiB buffers: with the
# default 8 KiB, a system call every ~3 reports cost ~4 µs a report in a worker
# (measured: the framed write 6.4-6.9 µs a report, 2.8 µs with 1 MiB).
_ROWS_BUFFER = 1 << 20
HISTORY_WARNING = (
    "warning: the history store is unreachable: sessions are being graded without "
    "history checks (counted at the end)"
)
_STOP_SECONDS = 1.0  # workers still running this long after a stop are killed


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal (Ctrl-C, SIGTERM, ...); carries the statistics so far
    and the signal's number."""

    def __init__(self, stats: RunStats, signum: int) -> None:
        super().__init__()
        self.stats = stats
        self.signum = signum


# --- several processes ----------------------------------------------------------------


def _run_sharded(
    options: BatchOptions, sinks: BatchSinks, checker: Checker, plan: InputPlan
) -> RunStats:
    # fork: workers inherit the parsed options and start in milliseconds.
    context = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="fingerprint-") as scratch:
        results_dir = Path(scratch)
        # Per worker, in three runs: lines done, input bytes read, sessions graded
        # without history.
        counters = context.Array("q", 3 * options.workers)
        # If the parent dies before removing them, the workers remove these.
        leftovers = [scratch, *sinks.temporaries, *plan.folders]
        # Each worker's queue of its peers' observations (fingerprint.exchange).
        inboxes: list[Inbox] = [context.Queue() for _ in range(options.workers)]
        with signals_deferred():  # a child must install its own handlers first
            processes = [
                context.Process(
                    target=_worker_main,
                    args=(
                        _shard_main,
                        options,
                        checker,
                        plan,
                        Shard(i, options.workers),
                        scratch,
                        counters,
                    ),
                    kwargs={"parent": os.getpid(), "leftovers": leftovers, "inboxes": inboxes},
                    daemon=True,  # never outlive the parent, even on an error path
                )
                for i in range(options.workers)
            ]
            for process in processes:
                process.start()
        try:
            _checking(sinks.progress, plan)  # inside: a signal now still stops the workers
            _wait(processes, counters, sinks.progress, sinks.warn, results_dir)
        except KeyboardInterrupt as interrupt:
            signum = signal_number(interrupt)
            with signals_deferred():
                _stop(processes, signum)
                stats = _stopped_stats(options, results_dir, counters)
            raise Interrupted(stats, signum) from None
        except BaseException:
            with signals_deferred():
                _stop(processes, signal.SIGTERM)
            raise
        results = [_load_result(results_dir, i) for i in range(options.workers)]
        for result in results:
            if result.error:
                raise FingerprintError(result.error)
        if any(r.stats.interrupted for r in results):  # a worker alone was signalled
            stats = RunStats(files=len(options.paths))
            for result in results:
                stats.merge(result.stats)
            raise Interrupted(stats, signal.SIGINT)
        stats = _merge(options, sinks, results)
        stats.order.merge(plan.stats)
        return stats


def _wait(
    processes: list[Any],
    counters: Any,
    progress: Any,
    warn: Callable[[str], None] | None,
    results_dir: Path,
) -> None:
    """Until every worker is done, showing progress. A failed worker stops the run,
    and so does one that ended without finishing (an error, or a signal it alone
    received): the others would wait for its observations forever."""
    workers = len(processes)
    running = processes
    finished: set[int] = set()
    while running:
        multiprocessing.connection.wait([p.sentinel for p in running], timeout=0.2)
        running = [p for p in processes if p.is_alive()]
        if progress is not None:  # at the end too: the last figures are the totals
            progress.update(min(counters[workers : 2 * workers]))  # all read every byte
            progress.lines(sum(counters[:workers]))
        if warn is not None and sum(counters[2 * workers :]):
            warn(HISTORY_WARNING)
            warn = None
        failed = [p.exitcode for p in processes if p.exitcode not in (0, None)]
        if failed:
            raise FingerprintError(f"a worker process failed (exit codes {failed})")
        if running:
            _stop_unfinished(processes, results_dir, finished)


def _stop_unfinished(processes: list[Any], results_dir: Path, finished: set[int]) -> None:
    """Raise if a worker that has ended did not finish its lines (``finished``: the
    workers known to have finished)."""
    for index, process in enumerate(processes):
        if process.exitcode != 0 or index in finished:
            continue
        result = _load_result(results_dir, index)
        finished.add(index)
        if result.error:
            raise FingerprintError(result.error)
        if result.stats.interrupted:
            raise KeyboardInterrupt  # as if the parent was signalled: stop them all


def _stop(processes: list[Any], signum: int) -> None:
    """Pass the stop on (a supervisor may have signalled the parent alone), give the
    workers a moment to finish their ``finally`` blocks, then kill what is left."""
    for process in processes:
        if process.is_alive() and process.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(process.pid, signum)
    deadline = time.monotonic() + _STOP_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()


def _stopped_stats(options: BatchOptions, results_dir: Path, counters: Any) -> RunStats:
    """What the workers counted before they stopped (a killed one: its lines only)."""
    stats = RunStats(files=len(options.paths), interrupted=True)
    for index in range(options.workers):
        if (results_dir / f"result-{index}").exists():
            stats.merge(_load_result(results_dir, index).stats)
        else:
            stats.lines += counters[index]
    return stats


def _shard_main(
    options: BatchOptions,
    checker: Checker,
    plan: InputPlan,
    shard: Shard,
    results_dir: str,
    counters: Any,
    *,
    parent: int,
    leftovers: list[str],
    inboxes: list[Inbox],
) -> None:
    stats = RunStats(files=len(options.paths))
    peers = Peers(shard.index, inboxes)
    finished = False
    try:
        result = _shard_run(options, checker, plan, shard, results_dir, counters, stats, peers)
        finished = True
    except (KeyboardInterrupt, Exception) as exc:
        # A stop signal's exception can come out of C code as another error (see
        # stopping.stop_requested): a stop all the same.
        if is_stop(exc):
            if orphaned(parent):  # nobody will read or remove what we wrote
                _remove(leftovers)
                return
            stats.interrupted = True
            result = _ShardResult(stats, "", "")  # the parent wants only the counts now
        elif isinstance(exc, OSError):  # the scratch folder is full or gone: one line
            result = _ShardResult(stats, "", "", error=f"cannot write to {results_dir} ({exc})")
        else:
            raise
    finally:
        # A stop while waiting for the peers to finish (the run is being stopped) ends
        # the wait; this worker's own lines are done and its result stands.
        with contextlib.suppress(Exception, KeyboardInterrupt):
            peers.close(delivered=finished)  # a stopped run's peers may never read
        # A first stop signal landing in the close leaves the result as it stands.
        with contextlib.suppress(Exception, KeyboardInterrupt):
            _close(checker, stats)
    try:
        _save_result(results_dir, shard.index, result)
    except (KeyboardInterrupt, Exception) as exc:
        if is_stop(exc):
            # Stopped while saving: the parent is stopping the run, or this worker
            # alone was signalled. No result is what the parent reads as a stop.
            if orphaned(parent):  # nobody will read or remove what we wrote
                _remove(leftovers)
            return
        if isinstance(exc, OSError):
            sys.exit(1)  # the parent reports a failed worker
        raise


def _save_result(results_dir: str, index: int, result: _ShardResult) -> None:
    """Write the worker's result whole or not at all: the parent reads a result that
    exists (a stop can land half-way through the write)."""
    path = os.path.join(results_dir, f"result-{index}")
    partial = f"{path}.part"
    try:
        with open(partial, "wb") as handle:
            pickle.dump(result, handle)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise


def _shard_run(
    options: BatchOptions,
    checker: Checker,
    plan: InputPlan,
    shard: Shard,
    results_dir: str,
    counters: Any,
    stats: RunStats,
    peers: Peers,
) -> _ShardResult:
    fmt = RowFormat(options.fmt, options.by_account)
    rollup = AccountRollup(_grade_order(checker), None) if options.by_account else None
    rows_path = os.path.join(results_dir, f"rows-{shard.index}")
    rejects_path = os.path.join(results_dir, f"rejects-{shard.index}")
    bytes_slot = options.workers + shard.index
    degraded_slot = 2 * options.workers + shard.index

    def bytes_read(count: int) -> None:
        counters[bytes_slot] = count

    with (
        open(rows_path, "wb", buffering=_ROWS_BUFFER) as rows,
        open(rejects_path, "wb", buffering=_ROWS_BUFFER) as rejects,
    ):
        framed = _FramedSinks(rows, rejects)
        sinks = BatchSinks(output=framed.output, rejects=framed.rejects)
        items = plan.items(bytes_read, on_shrunk=stats.add_shrunk_input)
        stream = check_stream(
            checker,
            items,
            max_skew=options.max_skew,
            shard=shard,
            peers=peers,
            max_lines=options.max_held_lines,
            stats=stats.order,
            heads=plan.heads,
        )
        for outcome in _counted(stream, stats, None):
            framed.key = b"%d" % outcome.seq
            _emit(outcome, options, fmt, sinks, rollup)
            if stats.lines % PROGRESS_EVERY == 0:
                counters[shard.index] = stats.lines
                counters[degraded_slot] = stats.history_degraded
        if rollup is not None:
            _write_accounts(rollup, options, fmt, framed.output, stats, framed)
    counters[shard.index] = stats.lines
    counters[degraded_slot] = stats.history_degraded
    return _ShardResult(stats, rows_path, rejects_path)


def _remove(paths: list[str]) -> None:
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)


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
    handles = [open(p, "rb", buffering=_ROWS_BUFFER) for p in paths]  # noqa: SIM115 - closed below
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
