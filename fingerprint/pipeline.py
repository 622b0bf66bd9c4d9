"""Ordering and sharding for the CLI: reorder by time, write in input order, split
work across processes by account with results identical to one process.

Order contract (documented in the README):

* History checks see each account's sessions in time order, as long as lines are
  no more than ``max_skew`` seconds out of order. A later line is checked when it
  arrives and its report says so (a warning, and ``late_arrival_seconds`` in the
  evidence of history findings).
* Output is always in input order (file by file, line by line), whatever the
  number of workers: reports and rejects are held only until every earlier line is
  done, which is at most the skew window.
"""

from __future__ import annotations

import heapq
import itertools
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fingerprint.checker import Checker, Prepared
from fingerprint.errors import InvalidSessionError
from fingerprint.inputs import Blank, Item, Line, Reject
from fingerprint.report import Report


@dataclass(frozen=True, slots=True)
class Outcome:
    """One input item after checking. ``seq`` is its position in the whole input."""

    seq: int
    file: str
    line: int
    report: Report | None = None
    reject: Reject | None = None
    blank: bool = False
    foreign: bool = False  # another shard's line: holds its place, never emitted


P = TypeVar("P")


@dataclass(order=True)
class _Pending(Generic[P]):
    ts: float
    seq: int
    item: P = field(compare=False)


class ReorderBuffer(Generic[P]):
    """Holds lines until no line more than ``max_skew`` seconds older can still come.

    ``push`` returns the lines that are now safe to check, oldest first, plus the
    line itself when it arrived later than the skew allows (with how late it is).
    """

    def __init__(self, max_skew: float) -> None:
        self.max_skew = max_skew
        self._heap: list[_Pending[P]] = []
        self._newest = float("-inf")

    def push(self, seq: int, item: P, ts: float | None) -> list[tuple[P, int, float | None]]:
        if ts is None:  # no usable time: it will be a reject; nothing to order
            return [(item, seq, None)]
        if ts < self._newest - self.max_skew:
            return [(item, seq, self._newest - ts)]
        self._newest = max(self._newest, ts)
        heapq.heappush(self._heap, _Pending(ts, seq, item))
        return self._release(self._newest - self.max_skew)

    def _release(self, horizon: float) -> list[tuple[P, int, float | None]]:
        ready: list[tuple[P, int, float | None]] = []
        while self._heap and self._heap[0].ts <= horizon:
            pending = heapq.heappop(self._heap)
            ready.append((pending.item, pending.seq, None))
        return ready

    def drain(self) -> list[tuple[P, int, float | None]]:
        return self._release(float("inf"))

    @property
    def clock(self) -> float | None:
        """The run's clock: what "now" is for the lines this buffer releases (the
        checker judges a login's time and runs history's windows on it)."""
        return None if self._newest == float("-inf") else self._newest

    def __len__(self) -> int:
        return len(self._heap)


class InputOrder:
    """Re-emits outcomes in ``seq`` order, holding only those that came early."""

    def __init__(self) -> None:
        self._next = 0
        self._step = 1
        self._held: dict[int, Outcome] = {}

    def add(self, outcome: Outcome) -> Iterator[Outcome]:
        self._held[outcome.seq] = outcome
        while self._next in self._held:
            ready = self._held.pop(self._next)
            self._next += self._step
            if not ready.foreign:
                yield ready

    def skip(self, seq: int) -> Iterator[Outcome]:
        """A position this stream will never produce (another shard's line)."""
        return self.add(Outcome(seq, "", 0, foreign=True))

    def __len__(self) -> int:
        return len(self._held)


def shard_of(record: Any, seq: int, shards: int) -> int:
    """Stable shard by account, so each account's history lives in one process."""
    if shards == 1:
        return 0
    account = record.get("account_id") if isinstance(record, dict) else None
    if isinstance(account, str | int) and not isinstance(account, bool):
        return zlib.crc32(str(account).encode("utf-8", "surrogatepass")) % shards
    return seq % shards


@dataclass
class Shard:
    index: int = 0
    count: int = 1


def check_stream(
    checker: Checker,
    items: Iterable[Item],
    *,
    max_skew: float,
    shard: Shard | None = None,
) -> Iterator[Outcome]:
    """Check the items this shard owns, in time order per account, yielding outcomes
    in input order. Lines of other shards still feed the device history, so device
    sharing sees every account, exactly as one process would.

    Lines are validated before they enter the reorder buffer: a bad line is rejected
    at once and never moves the buffer's clock.
    """
    shard = shard or Shard()
    buffer: ReorderBuffer[tuple[Line, Prepared, bool]] = ReorderBuffer(max_skew)
    order = InputOrder()
    for seq, item in zip(itertools.count(), items, strict=False):
        if isinstance(item, Blank | Reject):
            if seq % shard.count != shard.index:
                yield from order.skip(seq)
            elif isinstance(item, Reject):
                yield from order.add(Outcome(seq, item.file, item.line, reject=item))
            else:
                yield from order.add(Outcome(seq, item.file, item.line, blank=True))
            continue
        mine = shard_of(item.record, seq, shard.count) == shard.index
        try:
            prepared = checker.prepare(item.record)
        except InvalidSessionError as exc:
            yield from order.add(_reject(item, seq, exc)) if mine else order.skip(seq)
            continue
        ts = prepared.session.ts.timestamp()
        for ready, ready_seq, late_by in buffer.push(seq, (item, prepared, mine), ts):
            yield from _settle(checker, ready, ready_seq, late_by, order, buffer.clock)
    for ready, ready_seq, late_by in buffer.drain():
        yield from _settle(checker, ready, ready_seq, late_by, order, buffer.clock)


def _settle(
    checker: Checker,
    ready: tuple[Line, Prepared, bool],
    seq: int,
    late_by: float | None,
    order: InputOrder,
    now: float | None,
) -> Iterator[Outcome]:
    item, prepared, mine = ready  # ownership was decided once, when the line arrived
    # The log's own clock, never the machine's: a replayed log is in the past.
    now = prepared.session.ts.timestamp() if now is None else now
    if not mine:
        checker.observe_device(prepared, now=now)
        return order.skip(seq)
    return order.add(check_line(checker, item, seq, late_by, prepared, now))


def check_line(
    checker: Checker,
    item: Line,
    seq: int,
    late_by: float | None = None,
    prepared: Prepared | None = None,
    now: float | None = None,
) -> Outcome:
    """One line's outcome: its report, or its reject with the reason. ``now``: the
    run's clock (default: the checker's)."""
    try:
        report = checker.check(
            prepared or item.record,
            session_id=f"{item.file}:{item.line}",
            late_by=late_by,
            now=now,
        )
    except InvalidSessionError as exc:
        return _reject(item, seq, exc)
    return Outcome(seq, item.file, item.line, report=report)


def _reject(item: Line, seq: int, exc: InvalidSessionError) -> Outcome:
    raw = item.raw_text() if item.raw else repr(item.record)[:65_536]
    return Outcome(seq, item.file, item.line, reject=Reject(item.file, item.line, str(exc), raw))
