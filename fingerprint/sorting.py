"""Putting the CLI's input in time order, in bounded memory.

History checks must see each account's logins in time order. The reorder buffer
(:class:`fingerprint.pipeline.ReorderBuffer`) fixes lines a little out of order as
they stream; this module decides whether that is enough, and sorts the input when it
is not. A batch run that can take back everything it did checks an input whose
samples are in order (:func:`sampled_in_order`) without this scan, and scans (then
sorts) only when its own buffer meets a line out of order
(:func:`fingerprint.batch._speculates`); otherwise the scan comes first:

1. **Scan.** Every line's time is read (its ``ts`` alone, by
   :func:`fingerprint.inputs.read_head`, then the checker's own timestamp parse) and
   fed to a buffer like the one the check uses. If that buffer would release every
   line in time order (nothing late, nothing far ahead), the input streams as it is
   and reports come out in input order.
2. **Sort**, otherwise. Files that are each in time order are merged by time as
   they are, as ``sort -m`` does; the others are read into sorted runs of at most
   :data:`RUN_BYTES` of line text, written to a temporary folder, and everything is
   merged with :func:`heapq.merge`. Reports then come out in time order. Ties keep
   input order (file by file, line by line): a stable sort.

The temporary folder lives in a :class:`tempfile.TemporaryDirectory` held by
:func:`open_plan`, so it is removed however the run ends (an exception, Ctrl-C, or
SIGTERM once the CLI turns it into an unwinding exception). stdin, which can be read
only once, is copied there first when it has to be scanned.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import os
import pickle
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import IO, Literal

from fingerprint.inputs import (
    LazyItem,
    Line,
    Text,
    input_size,
    open_input,
    read_lazy_items,
    sample_reader,
    sampled_lines,
)
from fingerprint.pipeline import (
    MAX_HELD_LINES,
    OrderStats,
    ReorderBuffer,
    ScannedHeads,
    item_time,
)
from fingerprint.runner import counted_items, iter_items
from fingerprint.session import DEFAULT_NAIVE_TZ

SortMode = Literal["auto", "always", "never"]
SORT_MODES: tuple[SortMode, ...] = ("auto", "always", "never")

# Line text held in memory while a run is being sorted (plus ~150 bytes of Python
# objects a line): the sort's whole memory, whatever the input's size.
RUN_BYTES = 32 << 20
# Runs (and files in order) merged at once: one open file and read buffer each.
FAN_IN = 128
_READ_BUFFER = 1 << 16

# A run entry: (time, input position, the item: JSON lines as their text).
_Entry = tuple[float, int, LazyItem]


@dataclass(frozen=True)
class OrderOptions:
    sort: SortMode = "auto"
    max_skew: float = 300.0
    max_lines: int = MAX_HELD_LINES
    naive_tz: tzinfo = DEFAULT_NAIVE_TZ  # the checker's: times must parse as it parses them
    shards: int = 1  # the workers: with several, the scan keeps each line's owner


@dataclass
class _Source:
    """One input: ``path`` as given (``-`` for stdin), ``real`` where to read it."""

    path: str
    real: str
    items: int = 0  # items read by the scan
    in_order: bool = True  # every line at or after the one before it


@dataclass
class InputPlan:
    """How to read the input: as it is, or merged by time from runs and files."""

    sources: list[_Source]
    stats: OrderStats = field(default_factory=OrderStats)
    runs: list[str] = field(default_factory=list)  # spilled sorted runs
    merged: list[int] = field(default_factory=list)  # sources merged as they are
    folders: list[str] = field(default_factory=list)  # the temporary folder, to clean up
    naive_tz: tzinfo = DEFAULT_NAIVE_TZ
    # Each line's owner and time as the scan read them, for the workers of a sharded
    # run: kept when the input streams as it is (the workers read what the scan read).
    heads: ScannedHeads | None = None

    def items(
        self,
        on_progress: Callable[[int], None] | None = None,
        *,
        on_shrunk: Callable[[str, int, int], None] | None = None,
    ) -> Iterator[LazyItem]:
        """Every item, in the order to check them, JSON lines as their text (the
        check decodes each once, :func:`fingerprint.pipeline.check_stream`). Can be
        called again (each worker reads the plan for itself). The callbacks are
        :func:`iter_items`'s, for input read as it is; sorted input was read (and
        spilled) before."""
        if not self.stats.sorted:
            return _stream(self.sources, on_progress, on_shrunk)
        return self._merged()

    @property
    def scanned_items(self) -> int:
        """The items (lines and CSV rows) the scan read: those a sorted plan holds."""
        return sum(source.items for source in self.sources)

    def _merged(self) -> Iterator[LazyItem]:
        offsets = list(itertools.accumulate((s.items for s in self.sources), initial=0))
        streams: list[Iterator[_Entry]] = [_read_run(path) for path in self.runs]
        for index in self.merged:
            source = self.sources[index]
            streams.append(_keyed(_source_items(source), offsets[index], self.naive_tz))
        for _, _, item in heapq.merge(*streams, key=_key):
            yield item


@contextmanager
def open_plan(paths: list[str], options: OrderOptions, *, scan: bool = True) -> Iterator[InputPlan]:
    """Scan (unless ``never``), sort when needed, and remove every temporary file on
    the way out, whatever the way out is. ``scan=False``: the plan as the input
    streams, for :func:`scan_plan` and :func:`sort_plan` later (a two-stage run
    begins lines while its other process scans)."""
    with tempfile.TemporaryDirectory(prefix="fingerprint-sort-") as scratch:
        planned = plan_input if scan else streaming_plan
        yield planned(paths, options, Path(scratch))


def plan_input(paths: list[str], options: OrderOptions, scratch: Path) -> InputPlan:
    plan = streaming_plan(paths, options, scratch)
    if not scan_plan(plan, options):
        sort_plan(plan)
    return plan


def streaming_plan(paths: list[str], options: OrderOptions, scratch: Path) -> InputPlan:
    """The input as it streams, not yet scanned; inputs that can be read only once
    (:func:`read_once`) copied to ``scratch`` first when a scan will read them."""
    sources = [_Source(p, p) for p in paths]
    plan = InputPlan(sources, naive_tz=options.naive_tz, folders=[str(scratch)])
    if options.sort == "never":
        return plan
    for index, source in enumerate(sources):
        if read_once(source.path):  # stdin, a FIFO, <(zcat log.gz): keep a copy to read again
            source.real = str(scratch / ("stdin" if source.path == "-" else f"input-{index}"))
            with _read_side(source.path) as original, open(source.real, "wb") as copy:
                shutil.copyfileobj(original, copy, 1 << 20)
    return plan


def _read_side(path: str) -> AbstractContextManager[IO[bytes]]:
    """The input's bytes: stdin is ours to read, not to close."""
    return nullcontext(sys.stdin.buffer) if path == "-" else open(path, "rb")


def read_once(path: str) -> bool:
    """stdin (``-``), or not a regular file (a named pipe, ``<(zcat log.gz)``, a
    device): what one read takes, a second would not find again (or would share with
    the first, reading at the same time)."""
    if path == "-":
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:  # reading it reports why
        return False


# Places an input is sampled at before it is checked unscanned (:func:`sampled_in_order`),
# shared by its files (each keeps at least MIN_SAMPLES, and its first and last line);
# a large file also one every SAMPLE_SPACING bytes, up to MAX_SAMPLES. Lines out of
# order between two places are met only by the check, which then starts over: at 64
# places, a 200,000-line log could hide a block of ~3,000 lines out of order, at
# 1,024 places ~200 (~20 ms of sampling, ~0.03% of checking it; benchmarks/README.md).
SAMPLES = 64
MIN_SAMPLES = 8
SAMPLE_SPACING = 256 << 10
MAX_SAMPLES = 1024


def sampled_in_order(
    plan: InputPlan, options: OrderOptions, on_progress: Callable[[int], None] | None = None
) -> bool:
    """Read in input order, do the times at evenly spaced places of each input (its
    first and last line among them) rise, each at most the skew behind the newest
    before it? About a millisecond for a small file, ~20 ms for a large one (up to
    1,024 places); a gzip file is decompressed once to find them (8-10 µs a line), and
    ``on_progress`` gets the input bytes read so far (compressed), as
    :meth:`InputPlan.items` gives them. A log concatenated from
    several servers' logs (each spanning the whole period), reversed or shuffled
    fails it, and so do files that overlap in time (one server's file, then
    another's); it is scanned first. An input that passes (one file in order, a
    day's files in order) is checked as it streams, and still taken back if a line
    comes out of order between the samples. A CSV file's samples are its rows, read
    with its header (:func:`fingerprint.inputs.sample_reader`). False for an input
    that cannot be sampled (a gzip file that breaks off) and for samples without two
    times to compare: no evidence is no pass."""
    shared = max(MIN_SAMPLES, SAMPLES // max(1, len(plan.sources)))
    order = _SampleOrder(options)
    done = 0  # the input bytes of the sources before this one
    for source in plan.sources:
        read = None if on_progress is None else _counted_on(done, on_progress)
        stop = functools.partial(order.breaks, sample_reader(source.path))
        size = input_size(source.real) or 0
        count = max(shared, min(MAX_SAMPLES, size // SAMPLE_SPACING))
        lines = sampled_lines(source.real, count, name=source.path, on_progress=read, stop=stop)
        done += size
        if lines is None or order.broken:
            return False
    return order.timed >= 2


class _SampleOrder:
    """The samples' times, in input order: does each come at most the skew behind
    the newest before it?"""

    def __init__(self, options: OrderOptions) -> None:
        self._options = options
        self.newest = float("-inf")
        self.timed = 0
        self.broken = False

    def breaks(self, read: Callable[[bytes], LazyItem | None], raw: bytes) -> bool:
        """Take the next sample (``read`` makes it an item); True once one came too
        far behind."""
        item = read(raw)
        ts = None if item is None else item_time(item, self._options.naive_tz)
        if ts is None:  # blank, a reject, the end of the file
            return self.broken
        self.timed += 1
        if ts < self.newest - self._options.max_skew:
            self.broken = True
        elif ts > self.newest:
            self.newest = ts
        return self.broken


def _counted_on(done: int, on_progress: Callable[[int], None]) -> Callable[[int], None]:
    """``on_progress`` for a file whose bytes count on from ``done``."""
    return lambda read: on_progress(done + read)


def scan_plan(
    plan: InputPlan, options: OrderOptions, on_progress: Callable[[int], None] | None = None
) -> bool:
    """Scan a :func:`streaming_plan` (unless ``never``): True when the input streams
    as it is, False when :func:`sort_plan` must sort it. ``on_progress`` gets the
    input bytes read so far, as :meth:`InputPlan.items` gives them."""
    if options.sort == "never":
        return True
    heads = ScannedHeads.for_shards(options.shards)
    plan.stats = _scan(plan.sources, options, heads, on_progress)
    if options.sort == "auto" and plan.stats.in_order:
        plan.heads = heads
        return True
    return False


def sort_plan(plan: InputPlan, on_progress: Callable[[int], None] | None = None) -> None:
    """Sort a scanned plan by time, in its temporary folder (see the module's notes).
    ``on_progress`` gets the input bytes read so far (files in order are not read:
    they are merged as they are when the plan is checked)."""
    plan.stats.sorted = True
    _sort(plan, Path(plan.folders[0]), on_progress)


# --- scan -----------------------------------------------------------------------------


def _scan(
    sources: list[_Source],
    options: OrderOptions,
    heads: ScannedHeads | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> OrderStats:
    """What the check's reorder buffer would meet, and which files are in order;
    ``heads`` (if given) notes each line's owner and time."""
    buffer: ReorderBuffer[None] = ReorderBuffer(options.max_skew, options.max_lines)
    seq = 0
    naive_tz = options.naive_tz
    for source, items in _read_in_turn(sources, on_progress):
        previous = float("-inf")
        for item in items:
            source.items += 1
            seq += 1
            # The time read alone (see item_time), and with heads the line's owner.
            ts = item_time(item, naive_tz) if heads is None else heads.scan(item, naive_tz)
            if ts is None:
                continue
            source.in_order = source.in_order and ts >= previous
            previous = max(previous, ts)
            buffer.push(seq, None, ts)
    buffer.drain()
    return buffer.stats


# --- sort -----------------------------------------------------------------------------


def _sort(plan: InputPlan, scratch: Path, on_progress: Callable[[int], None] | None = None) -> None:
    ordered = [i for i, s in enumerate(plan.sources) if s.in_order]
    if len(ordered) > FAN_IN // 2:  # too many to keep open: sort them like the rest
        ordered = []
    plan.merged = ordered
    plan.stats.merged_files = len(ordered)
    runs: list[str] = []
    offsets = list(itertools.accumulate((s.items for s in plan.sources), initial=0))
    spilled = [i for i in range(len(plan.sources)) if i not in ordered]
    # Files in order are merged as they are, not read here: told as done at once, so
    # the sort's share of the input reaches the whole of it.
    in_order = sum(input_size(plan.sources[i].real) or 0 for i in ordered)
    reads = _read_in_turn([plan.sources[i] for i in spilled], on_progress, done=in_order)
    for index, (_, items) in zip(spilled, reads, strict=True):
        runs.extend(_spill(_keyed(items, offsets[index], plan.naive_tz), scratch))
    plan.stats.spilled_runs = len(runs)
    while len(runs) + len(ordered) > FAN_IN:  # merge runs in groups until few enough
        group, runs = runs[:FAN_IN], runs[FAN_IN:]
        runs.append(_write_run(heapq.merge(*map(_read_run, group), key=_key), scratch))
        for path in group:
            os.unlink(path)
    plan.runs = runs


def _spill(entries: Iterable[_Entry], scratch: Path) -> Iterator[str]:
    """Sorted runs of at most :data:`RUN_BYTES` of line text, each written to a file.

    JSON lines go to disk as their text, decoded when read back (cheaper than
    pickling the decoded record, ~10x its size); CSV rows, which have no text, as
    their record."""
    run: list[_Entry] = []
    size = 0
    for entry in entries:
        run.append(entry)
        item = entry[2]
        size += len(item.raw) + 150 if isinstance(item, Line | Text) else 150
        if size >= RUN_BYTES:
            run.sort(key=_key)
            yield _write_run(run, scratch)
            run, size = [], 0
    if run:
        run.sort(key=_key)
        yield _write_run(run, scratch)


def _write_run(entries: Iterable[_Entry], scratch: Path) -> str:
    handle, path = tempfile.mkstemp(prefix="run-", dir=scratch)
    with os.fdopen(handle, "wb", buffering=_READ_BUFFER) as out:
        for ts, seq, item in entries:
            pickle.dump((ts, seq, item), out, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def _read_run(path: str) -> Iterator[_Entry]:
    with open(path, "rb", buffering=_READ_BUFFER) as handle:
        while True:
            try:
                entry: _Entry = pickle.load(handle)
            except EOFError:
                return
            yield entry


def _key(entry: _Entry) -> tuple[float, int]:
    return entry[0], entry[1]


def _keyed(items: Iterable[LazyItem], offset: int, naive_tz: tzinfo) -> Iterator[_Entry]:
    """Items with their sort key: a line's time, or for a line without one (a reject
    to be) and a blank line the time of the line before, so they stay beside it."""
    previous = float("-inf")
    for seq, item in enumerate(items, offset):
        ts = item_time(item, naive_tz)
        if ts is not None:
            previous = ts
        yield previous, seq, item


# --- reading --------------------------------------------------------------------------


def _source_items(source: _Source) -> Iterator[LazyItem]:
    stream, _ = open_input(source.real)
    try:
        yield from read_lazy_items(source.path, stream)
    finally:
        _close(source, stream)


def _read_in_turn(
    sources: list[_Source], on_progress: Callable[[int], None] | None, *, done: int = 0
) -> Iterator[tuple[_Source, Iterator[LazyItem]]]:
    """Each source with its items, one after the other: the caller reads a source's
    items whole before asking for the next. ``on_progress`` gets the input bytes read
    so far over them all (compressed bytes for gzip, as the check counts them), after
    the ``done`` bytes already accounted for."""
    for source in sources:
        read = [0]
        yield source, _counted_items(source, on_progress, done, read)
        done += read[0]


def _counted_items(
    source: _Source, on_progress: Callable[[int], None] | None, done: int, read: list[int]
) -> Iterator[LazyItem]:
    stream, counter = open_input(source.real)
    try:
        yield from counted_items(read_lazy_items(source.path, stream), counter, on_progress, done)
        if counter is not None and on_progress is not None:
            read[0] = counter.bytes_read
            on_progress(done + read[0])
    finally:
        _close(source, stream)


def _close(source: _Source, stream: IO[bytes]) -> None:
    if source.real != "-":
        stream.close()


def _stream(
    sources: list[_Source],
    on_progress: Callable[[int], None] | None,
    on_shrunk: Callable[[str, int, int], None] | None,
) -> Iterator[LazyItem]:
    """The input as it is; stdin from its copy when the scan made one."""
    if all(s.real == s.path for s in sources):
        paths = [s.path for s in sources]
        yield from iter_items(paths, on_progress, on_shrunk=on_shrunk, lazy=True)
        return
    for source in sources:
        yield from _source_items(source)
