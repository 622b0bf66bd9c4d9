"""Ordering and sharding for the CLI: reorder by time, write in input order, split
work across processes by account with results identical to one process.

Order contract (documented in the README, section "Order"):

* History checks see each account's sessions in time order. Lines up to
  ``max_skew`` seconds out of order are put back in order by a reorder buffer; a
  run whose input is more out of order than that is sorted first
  (:mod:`fingerprint.sorting`), unless the caller streams it on purpose.
* The buffer's clock cannot be moved by one line: it is the oldest time among the
  last :data:`CLOCK_LINES` lines, so a line far ahead (a wrong device clock) does not
  make the lines after it late. Such a line waits at most ``max_lines`` lines, then is
  checked on its own ("ahead").
* A line is *late* only when a line with a later time has already been checked; it
  is checked at once against the history it has, and its report says so.
* Output is in the order the lines are read (input order, or time order when the
  run sorted its input), whatever the number of workers: reports are held only until
  every earlier line is done, which is at most ``max_lines`` lines.
"""

from __future__ import annotations

import heapq
import itertools
import zlib
from array import array
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Generic, NamedTuple, TypeVar

import msgspec

from fingerprint.checker import Checker, Prepared
from fingerprint.errors import InvalidSessionError
from fingerprint.exchange import OwnerEnded, Peers
from fingerprint.inputs import (
    Blank,
    Head,
    LazyItem,
    Line,
    Reject,
    Text,
    decode_line,
    decode_text,
    read_head,
)
from fingerprint.report import Report
from fingerprint.session import Session, parse_timestamp

# How many of the most recent lines the buffer's clock is the oldest of: one line
# (or up to this many minus one in a row) far ahead cannot move it.
CLOCK_LINES = 64
# The most lines held for reordering. A held line costs ~10-20 kB (its decoded record,
# then its report waiting for earlier lines), so 4,096 lines are ~40-80 MB at worst.
# A log denser than this within the skew (60,000 lines in one second) is still
# bounded; in auto mode the run then sorts instead of streaming.
MAX_HELD_LINES = 4_096


class Outcome(msgspec.Struct, frozen=True):
    """One input item after checking. ``seq`` is its position in the whole input."""

    seq: int
    file: str
    line: int
    report: Report | None = None
    reject: Reject | None = None
    blank: bool = False
    foreign: bool = False  # another shard's line: holds its place, never emitted


@dataclass
class OrderStats:
    """How far the input was from time order, for the summary.

    ``reordered``: lines held back for a line with an earlier time that came after
    them (each at most the skew apart). ``late``: lines that came after a line with a
    later time had been checked, and by how many seconds at most. ``ahead``: lines so
    far ahead of the others that they were checked on their own after ``max_lines``
    lines, and by how many seconds ahead of the clock at most. ``sorted``: the run
    sorted its input by time (then ``late`` and ``ahead`` say what streaming it would
    have met).
    """

    reordered: int = 0
    late: int = 0
    max_late_seconds: float = 0.0
    ahead: int = 0
    max_ahead_seconds: float = 0.0
    sorted: bool = False
    merged_files: int = 0  # inputs each in time order, merged by time as ``sort -m``
    spilled_runs: int = 0  # sorted runs written to the temporary folder
    # Lines a worker of a sharded run read whose owner (the worker of their account)
    # never did: the input changed between the workers' reads. Not reported.
    unread_by_owner: int = 0

    @property
    def in_order(self) -> bool:
        """Streaming met no late and no far-ahead line: checked exactly in time order."""
        return self.late == 0 and self.ahead == 0

    def merge(self, other: OrderStats) -> None:
        """Workers' buffers see the same lines, so their counts agree: keep the largest."""
        for name in ("reordered", "late", "ahead", "merged_files", "spilled_runs"):
            setattr(self, name, max(getattr(self, name), getattr(other, name)))
        self.max_late_seconds = max(self.max_late_seconds, other.max_late_seconds)
        self.max_ahead_seconds = max(self.max_ahead_seconds, other.max_ahead_seconds)
        self.sorted = self.sorted or other.sorted
        self.unread_by_owner += other.unread_by_owner  # each worker counts its own

    def to_dict(self) -> dict[str, Any]:
        return {
            "sorted": self.sorted,
            "reordered": self.reordered,
            "late": self.late,
            "max_late_seconds": round(self.max_late_seconds, 3),
            "ahead": self.ahead,
            "max_ahead_seconds": round(self.max_ahead_seconds, 3),
            "merged_files": self.merged_files,
            "spilled_runs": self.spilled_runs,
            **({"unread_by_owner": self.unread_by_owner} if self.unread_by_owner else {}),
        }


P = TypeVar("P")


class Released(NamedTuple, Generic[P]):
    """A line the buffer lets go: ``late_by`` seconds behind lines already checked,
    or ``ahead_by`` seconds ahead of the clock when it is checked on its own. ``now``
    is the run's clock for it: the buffer's clock, or the line's own time when that
    is later and the line comes in time order (the last lines of the input)."""

    item: P
    seq: int
    late_by: float | None = None
    ahead_by: float | None = None
    now: float | None = None


_new_released = tuple.__new__


class ReorderBuffer(Generic[P]):
    """Holds lines until no line more than ``max_skew`` seconds older can still come,
    and never more than ``max_lines`` lines.

    ``push`` returns the lines now safe to check, in time order (ties in arrival
    order). The clock is the oldest time among the last :data:`CLOCK_LINES` lines, so
    no single line moves it; a line is released when it is ``max_skew`` behind the
    clock. A line still held after ``max_lines`` newer lines arrived is released
    then: with every line up to its time if it is the oldest held (a dense log), or
    on its own as "ahead" (a wrong clock), without moving what counts as late.
    """

    def __init__(self, max_skew: float, max_lines: int = MAX_HELD_LINES) -> None:
        self.max_skew = max_skew
        self.max_lines = max(1, max_lines)
        self.stats = OrderStats()
        self._heap: list[tuple[float, int, int]] = []  # (ts, seq, arrival)
        self._held: dict[int, tuple[float, int, P]] = {}  # arrival -> (ts, seq, item)
        self._arrivals: deque[int] = deque()  # held arrivals, oldest first (lazily pruned)
        self._recent: deque[tuple[int, float]] = deque()  # rising times: the window's min
        self._arrived = 0
        self._horizon = float("-inf")  # lines at or before it are released
        self._checked = float("-inf")  # newest time released in time order
        self._last_seq = -1  # largest seq released in time order

    def push(self, seq: int, item: P, ts: float | None) -> list[Released[P]]:
        if ts is None:  # no usable time: it will be a reject; nothing to order
            return [Released(item, seq, now=self.clock)]
        if ts < self._checked:
            late_by = self._checked - ts
            self.stats.late += 1
            self.stats.max_late_seconds = max(self.stats.max_late_seconds, late_by)
            return [Released(item, seq, late_by=late_by, now=self.clock)]
        arrival = self._arrived
        self._arrived = arrival + 1
        heapq.heappush(self._heap, (ts, seq, arrival))
        held = self._held
        held[arrival] = (ts, seq, item)
        arrivals = self._arrivals
        arrivals.append(arrival)
        self._advance_clock(arrival, ts)
        # Every line passes here (each worker's too, and the scan's): the loops are
        # entered only when they have work (with _release: 2.1 -> 1.75 µs a push).
        ready = self._release(self._horizon) if self._oldest_ts() <= self._horizon else []
        first = arrivals[0] if arrivals else None
        if first is not None and (first not in held or first < self._arrived - self.max_lines):
            self._release_aged(ready)
        return ready

    def drain(self) -> list[Released[P]]:
        return self._release(float("inf"))

    def __len__(self) -> int:
        return len(self._held)

    @property
    def clock(self) -> float | None:
        """The log's clock: the oldest time among the last :data:`CLOCK_LINES` lines
        (None before the first). One line far ahead never moves it, so no login is
        judged (``future_tolerance``) or history trimmed on a wrong device clock."""
        return self._recent[0][1] if self._recent else None

    def _advance_clock(self, arrival: int, ts: float) -> None:
        recent = self._recent
        while recent and recent[-1][1] >= ts:
            recent.pop()
        recent.append((arrival, ts))
        while recent[0][0] <= arrival - CLOCK_LINES:
            recent.popleft()
        horizon = recent[0][1] - self.max_skew
        if horizon > self._horizon:  # max() without its call: NaN leaves it, as max does
            self._horizon = horizon

    def _oldest_ts(self) -> float:
        heap, held = self._heap, self._held
        while heap and heap[0][2] not in held:  # released earlier on its own
            heapq.heappop(heap)
        return heap[0][0] if heap else float("inf")

    def _release(self, horizon: float) -> list[Released[P]]:
        ready: list[Released[P]] = []
        heap, held, pop = self._heap, self._held, heapq.heappop
        if not heap:  # (nothing was pushed with a time: no clock either)
            return ready
        checked, last_seq, clock = self._checked, self._last_seq, self._recent[0][1]
        while heap:
            if heap[0][2] not in held:  # released earlier on its own
                pop(heap)
                continue
            if not heap[0][0] <= horizon:  # (not ">": a NaN time is never released here)
                break
            ts, seq, arrival = pop(heap)
            item = held.pop(arrival)[2]
            checked = max(checked, ts)
            if seq < last_seq:  # a line that came after it was checked first
                self.stats.reordered += 1
            last_seq = max(last_seq, seq)
            # In field order, not through the named tuple's __new__: ~0.14 µs less a line.
            ready.append(_new_released(Released, (item, seq, None, None, max(clock, ts))))
        self._checked, self._last_seq = checked, last_seq
        return ready

    def _release_aged(self, ready: list[Released[P]]) -> None:
        arrivals, held = self._arrivals, self._held
        oldest_allowed = self._arrived - self.max_lines
        while arrivals and (arrivals[0] not in held or arrivals[0] < oldest_allowed):
            arrival = arrivals.popleft()
            entry = held.get(arrival)
            if entry is None:
                continue
            ts, seq, item = entry
            if ts - self._oldest_ts() <= self.max_skew:  # a dense log: keep time order
                ready.extend(self._release(ts))
                continue
            # Far ahead of lines that came after it: check it alone, leave the clock.
            del held[arrival]  # its heap entry is skipped when it comes up
            ahead_by = ts - max(self._checked, self._horizon)
            self.stats.ahead += 1
            self.stats.max_ahead_seconds = max(self.stats.max_ahead_seconds, ahead_by)
            ready.append(Released(item, seq, ahead_by=ahead_by, now=self.clock))


class InputOrder:
    """Re-emits outcomes in ``seq`` order, holding only those that came early."""

    def __init__(self) -> None:
        self._next = 0
        self._step = 1
        self._held: dict[int, Outcome] = {}

    def add(self, outcome: Outcome) -> Sequence[Outcome]:
        """The outcomes now due, in order (a tuple or a list: no generator made for
        each line, most of which are due as they come)."""
        held = self._held
        if outcome.seq == self._next and not held:  # the next one, nothing waiting
            self._next += self._step
            return () if outcome.foreign else (outcome,)
        held[outcome.seq] = outcome
        ready = []
        while self._next in held:
            due = held.pop(self._next)
            self._next += self._step
            if not due.foreign:
                ready.append(due)
        return ready

    def skip(self, seq: int) -> Sequence[Outcome]:
        """A position this stream will never produce (another shard's line)."""
        return self.add(Outcome(seq, "", 0, foreign=True))

    def __len__(self) -> int:
        return len(self._held)


def shard_of(record: Any, seq: int, shards: int) -> int:
    """Stable shard by account, so each account's history lives in one process.
    ``record``: the decoded record, or the session decoded from the line's text."""
    if shards == 1:
        return 0
    if isinstance(record, Session):
        account: Any = record.account_id
    else:
        account = record.get("account_id") if isinstance(record, dict) else None
    owner = account_shard(account, shards)
    return seq % shards if owner is None else owner


def account_shard(account: Any, shards: int) -> int | None:
    """The shard an account id (a text or an integer) names, or None for anything
    else, whose line goes by its position (:func:`shard_of`)."""
    if isinstance(account, str | int) and not isinstance(account, bool):
        return zlib.crc32(str(account).encode("utf-8", "surrogatepass")) % shards
    return None


@dataclass
class Shard:
    index: int = 0
    count: int = 1


def line_time(record: Any, naive_tz: tzinfo) -> float | None:
    """The time the checker will give this record (the same parse), or None when it
    has none it accepts (the line will be a reject). ``record``: the decoded record,
    or the session decoded from the line's text (its time already parsed)."""
    if isinstance(record, Session):
        return record.ts.timestamp()
    if not isinstance(record, dict):
        return None
    return _seconds(record.get("ts"), naive_tz)


def item_time(item: LazyItem, naive_tz: tzinfo) -> float | None:
    """:func:`line_time` of an item: None for a blank line or a reject. A JSON line
    not decoded yet has its ``ts`` read alone where that gives the same answer
    (:func:`fingerprint.inputs.read_head`), else it is decoded whole."""
    if isinstance(item, Text):
        head = read_head(item.raw)
        if head is not None:
            return _seconds(head.ts, naive_tz)
        item = decode_text(item)
    return line_time(item.record, naive_tz) if isinstance(item, Line) else None


def _seconds(value: Any, naive_tz: tzinfo) -> float | None:
    try:
        return parse_timestamp(value, naive_tz).timestamp()
    except (ValueError, TypeError, OverflowError):
        return None


def check_stream(
    checker: Checker,
    items: Iterable[LazyItem],
    *,
    max_skew: float,
    shard: Shard | None = None,
    peers: Peers | None = None,
    max_lines: int = MAX_HELD_LINES,
    stats: OrderStats | None = None,
    heads: ScannedHeads | None = None,
    until_out_of_order: bool = False,
) -> Iterator[Outcome]:
    """Check the items this shard owns, in time order per account, yielding outcomes
    in the order of ``items``.

    Lines are ordered by their time alone and checked when the buffer lets them go,
    so the order is the one :func:`fingerprint.sorting.plan_input` predicted. A JSON
    line still as its text is decoded once, on arrival: straight into its session
    where that is exact (:func:`fingerprint.inputs.read_session`), else into its
    record, validated (and rejected, naming the field) when it is let go. ``stats``
    (if given) receives the buffer's counts when the stream ends.

    One shard of several (``shard``) needs its ``peers``: lines of other shards
    still feed this shard's history with what their owners observed of them
    (:mod:`fingerprint.exchange`), so device sharing sees every account, exactly as
    one process would. Such a line is read only for its time and account, or not
    at all when the scan kept them (``heads``, for ``items`` as the scan read them).

    ``until_out_of_order``: stop at the first line that comes late or far ahead,
    before it is checked; ``stats`` then says so (``in_order`` is False). A batch run
    checks a log it has not scanned this way, and sorts it when it stops (a log in
    time order, the usual case, is then read once instead of twice).
    """
    shard = shard or Shard()
    if shard.count > 1 and peers is None:
        raise ValueError("a shard of several needs its peers")
    naive_tz = checker.config.time_zone
    buffer: ReorderBuffer[Line | int] = ReorderBuffer(max_skew, max_lines)
    counts = buffer.stats
    order = InputOrder()
    # Lines let go and prepared, not yet checked: a worker prepares (and sends the
    # observations of) its lines ahead of the line it checks, so its peers rarely wait.
    ready_lines: deque[_ReadyLine] = deque()
    lookahead = LOOKAHEAD if shard.count > 1 else 0
    for seq, item in zip(itertools.count(), items, strict=False):
        arrived = _arrive(item, seq, shard, naive_tz, heads)
        if isinstance(arrived, Blank | Reject):
            if seq % shard.count != shard.index:
                yield from order.skip(seq)
            elif isinstance(arrived, Reject):
                yield from order.add(Outcome(seq, arrived.file, arrived.line, reject=arrived))
            else:
                yield from order.add(Outcome(seq, arrived.file, arrived.line, blank=True))
            continue
        held, ts = arrived
        released = buffer.push(seq, held, ts)
        if until_out_of_order and not counts.in_order:
            if stats is not None:
                stats.merge(counts)
            return
        for ready in released:
            ready_lines.append(_prepare(checker, ready, peers))
        while len(ready_lines) > lookahead:
            yield from _settle(checker, ready_lines.popleft(), order, peers, buffer.stats)
    for ready in buffer.drain():
        ready_lines.append(_prepare(checker, ready, peers))
    if peers is not None:
        peers.end()
    while ready_lines:
        yield from _settle(checker, ready_lines.popleft(), order, peers, buffer.stats)
    if stats is not None:
        stats.merge(buffer.stats)


# Lines a worker of a sharded run prepares ahead of the one it checks (~5 MB of
# sessions at most): a peer waiting for one of them waits for a flush, not a check.
LOOKAHEAD = 1_024


class _ReadyLine(NamedTuple):
    """A line let go by the buffer: this shard's, validated (or why not), or the
    shard that owns it."""

    ready: Released[Line | int]
    prepared: Prepared | InvalidSessionError | None = None
    now: float | None = None


def _arrive(
    item: LazyItem, seq: int, shard: Shard, naive_tz: tzinfo, heads: ScannedHeads | None
) -> Blank | Reject | tuple[Line | int, float | None]:
    """The item as the buffer holds it, with its time: this shard's line decoded,
    another shard's as the number of its owner (its text is never decoded; its head
    is read unless the scan kept it, ``heads``)."""
    if shard.count > 1 and isinstance(item, Text):
        known = heads.owner(seq, item.raw) if heads is not None else None
        if known is not None:
            if known[0] != shard.index:
                return known
        else:
            head = read_head(item.raw)
            owner = None if head is None else head_shard(head, seq, shard.count)
            if owner is not None and owner != shard.index:
                assert head is not None
                return owner, _seconds(head.ts, naive_tz)
    if isinstance(item, Text):
        item = decode_line(item, naive_tz)
    if isinstance(item, Blank | Reject):
        return item
    owner = shard_of(item.record, seq, shard.count)
    held: Line | int = item if owner == shard.index else owner
    return held, line_time(item.record, naive_tz)


class ScannedHeads:
    """What the scan (:func:`fingerprint.sorting.plan_input`) read of each line of an
    input it lets stream as it is, kept for the workers of a sharded run so that
    they do not read the head of every line again: the line's owner and time, and a
    CRC-32 of its text.

    ~13 bytes a line (26 MB at 2 M lines), shared by the forked workers. A worker
    uses an entry only when its line's CRC matches: a file changed between the scan
    and the workers' reads (lines inserted, a file truncated and rewritten) moves the
    positions, and those lines are read again. An entry whose owner comes from its
    position (no usable account id) is not kept: equal texts then have equal entries
    wherever they sit.
    """

    __slots__ = ("_checks", "_owners", "_times", "shards")

    _UNKNOWN = 255  # owners fit a byte: kept for at most 254 shards

    @classmethod
    def for_shards(cls, shards: int) -> ScannedHeads | None:
        """Heads to keep for a run of ``shards`` workers, or None: one worker needs
        none, and more than 254 do not fit a byte."""
        return cls(shards) if 1 < shards < cls._UNKNOWN else None

    def __init__(self, shards: int) -> None:
        if not 1 < shards < self._UNKNOWN:
            raise ValueError(f"kept for 2 to {self._UNKNOWN - 1} shards, not {shards}")
        self.shards = shards
        self._owners = bytearray()
        self._times = array("d")
        self._checks = array("I")

    def scan(self, item: LazyItem, naive_tz: tzinfo) -> float | None:
        """:func:`item_time` of the next item, noting its owner and time."""
        if (
            isinstance(item, Text)
            and (head := read_head(item.raw)) is not None
            and (owner := _head_owner(head, self.shards)) is not None
        ):
            ts = _seconds(head.ts, naive_tz)
            self._owners.append(owner)
            self._times.append(_NAN if ts is None else ts)
            self._checks.append(zlib.crc32(item.raw))
            return ts
        self._owners.append(self._UNKNOWN)
        self._times.append(_NAN)
        self._checks.append(0)
        return item_time(item, naive_tz)

    def owner(self, seq: int, raw: bytes) -> tuple[int, float | None] | None:
        """The owner and time scanned for the line at ``seq`` (0-based), or None when
        the scan kept none or the text there is not the text scanned."""
        if seq >= len(self._owners):
            return None
        owner = self._owners[seq]
        if owner == self._UNKNOWN or self._checks[seq] != zlib.crc32(raw):
            return None
        ts = self._times[seq]
        return owner, None if ts != ts else ts  # NaN: the scan found no time

    def __len__(self) -> int:
        return len(self._owners)


_NAN = float("nan")


def _head_owner(head: Head, shards: int) -> int | None:
    """:func:`head_shard` where the line's content alone decides it (its account id),
    else None (its position decides it)."""
    account = head.account_id
    return None if _beyond_64_bits(account) else account_shard(account, shards)


def head_shard(head: Head, seq: int, shards: int) -> int | None:
    """:func:`shard_of` the line whose head this is, or None when only its record
    can tell: an integer account id beyond 64 bits, which the reader's decode reads
    otherwise than msgspec (tests/test_fuzz.py holds the two to the same answer)."""
    account = head.account_id
    if _beyond_64_bits(account):
        return None
    owner = account_shard(account, shards)
    return seq % shards if owner is None else owner


def _beyond_64_bits(account: Any) -> bool:
    return isinstance(account, int) and not -(2**63) <= account < 2**64


def _prepare(checker: Checker, ready: Released[Line | int], peers: Peers | None) -> _ReadyLine:
    """Validate this shard's line as it is let go (a bad line is rejected before it can
    move the clock), and send its peers what they record of it."""
    item = ready.item
    if isinstance(item, int):
        return _ReadyLine(ready)
    try:
        prepared = checker.prepare(item.record, identify=peers is not None)
    except InvalidSessionError as exc:
        if peers is not None:
            peers.send(None)
        return _ReadyLine(ready, exc)
    # The log's own clock, never the machine's: a replayed log is in the past.
    now = prepared.session.ts.timestamp() if ready.now is None else ready.now
    if peers is not None:
        peers.send(checker.observation(prepared, now=now))
    return _ReadyLine(ready, prepared, now)


def _settle(
    checker: Checker,
    line: _ReadyLine,
    order: InputOrder,
    peers: Peers | None,
    stats: OrderStats,
) -> Sequence[Outcome]:
    ready, seq = line.ready, line.ready.seq
    item = ready.item
    if isinstance(item, int):  # another shard's line: record what its owner saw
        assert peers is not None
        try:
            observation = peers.take(item)
        except OwnerEnded:  # the input changed under the workers: counted, warned of
            stats.unread_by_owner += 1
            return order.skip(seq)
        if observation is not None:
            checker.record_observation(observation)
        return order.skip(seq)
    if isinstance(line.prepared, InvalidSessionError):
        return order.add(_reject(item, seq, line.prepared))
    outcome = check_line(checker, item, seq, ready.late_by, line.prepared, line.now)
    return order.add(noted_ahead(outcome, ready.ahead_by))


def noted_ahead(outcome: Outcome, ahead_by: float | None) -> Outcome:
    """The outcome of a line the buffer let go on its own, far ahead of the others,
    with a warning saying so."""
    if ahead_by is None or outcome.report is None:
        return outcome
    note = f"checked out of time order: {ahead_by:.0f} s ahead of the other lines"
    report = outcome.report
    report = msgspec.structs.replace(report, warnings=(*report.warnings, note))
    return msgspec.structs.replace(outcome, report=report)


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
