"""Two workers as two stages: one process reads and begins each login, the other
keeps all the history, finishes each check and writes.

A check splits where history starts: reading, decoding, validating and everything
before history (enrichment, the session checks, the login as history keeps it) on
one side; the history round trip, the checks that read it, the grade and the row on
the other. The second is the larger (the parent's CPU is 1.17-1.19x the reader's on
the generator's 200,000 lines, 1.32-1.37x on the few-UA log: benchmarks/README.md),
so two workers go at the parent's pace. Sharding by account
(:mod:`fingerprint.exchange`) instead makes every worker read, order and record
every other worker's lines too, ~18% more CPU each. So ``--workers 2`` runs as a
pipeline: the reader (a forked child) sends each login it has begun
(:meth:`fingerprint.checker.Checker.begin`) down a pipe as MessagePack, in the order
the reorder buffer lets lines go; the parent finishes each one in that order
(:meth:`~fingerprint.checker.Checker.finish`), which is the order one process checks
them in, and writes the outcomes in input order. The reader keeps the device memo,
the parent all of history. More workers than two shard by account as before: a
pipeline has one history stage, so it stops near 2x.

With ``--sort auto`` the reader starts before the parent has scanned the input: it
begins lines as they stream and holds its frames (up to :data:`_HELD_BYTES`) until
the parent's scan says the input streams as it is (:class:`Gate`). The scan and the
reader's first ~1.7 s of work on 200,000 lines then overlap instead of following
each other. When the input must be sorted, the parent stops that reader, sorts, and
starts another on the sorted input: the first one's work is dropped unseen.

A login whose values MessagePack cannot carry goes whole, and the parent checks it
from the start: the same code, the same report. Validation refuses the one kind we
know of (text with a lone surrogate); this is the net under the ones we do not.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import select
import struct
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import IO, Any

import msgspec

from fingerprint.checker import Begun, Checker
from fingerprint.errors import InvalidSessionError
from fingerprint.inputs import Blank, LazyItem, Line, Reject, Text, decode_line
from fingerprint.pipeline import (
    InputOrder,
    OrderStats,
    Outcome,
    Released,
    ReorderBuffer,
    Shard,
    _arrive,
    _prepare,
    _reject,
    check_line,
    noted_ahead,
)


class _Login(msgspec.Struct, tag=1, array_like=True):
    """A line's login, begun."""

    seq: int
    file: str
    line: int
    ahead_by: float | None
    begun: Begun


class _Whole(msgspec.Struct, tag=2, array_like=True):
    """A line the parent checks from the start: its text (JSON) or record (CSV)."""

    seq: int
    file: str
    line: int
    late_by: float | None
    ahead_by: float | None
    now: float | None
    raw: bytes
    record: dict[str, Any] | None


class _Rejected(msgspec.Struct, tag=3, array_like=True):
    seq: int
    reject: Reject


class _Blank(msgspec.Struct, tag=4, array_like=True):
    seq: int
    file: str
    line: int


_Message = _Login | _Whole | _Rejected | _Blank


class _Frame(msgspec.Struct, array_like=True):
    """Messages in release order, and how far the reader has read (for progress).
    The last frame also carries the reorder buffer's counts and the inputs that
    shrank while read."""

    bytes_read: int
    messages: list[_Message]
    order: OrderStats | None = None
    shrunk: list[tuple[str, int, int]] | None = None


_LENGTH = struct.Struct("<I")
_FRAME_MESSAGES = 64  # a frame costs a write and a read; the parent waits for at most this


def _address_sent(value: Any) -> Any:
    """An IP address as it travels: IPv4 as its integer (read back in ~0.3 µs, where
    parsing the text takes ~2 µs), IPv6 as its text."""
    if isinstance(value, ipaddress.IPv4Address):
        return int(value)
    if isinstance(value, ipaddress.IPv6Address):
        return str(value)
    raise NotImplementedError(f"{type(value).__name__} cannot be sent")


_ENCODE = msgspec.msgpack.Encoder(enc_hook=_address_sent).encode
_DECODE = msgspec.msgpack.Decoder(_Frame).decode


# Frames a reader holds at most before the parent's go-ahead (:class:`Gate`), then it
# waits: the scan of 200,000 lines takes ~1.7 s, in which a reader begins ~20,000
# logins (~26 MB of frames).
_HELD_BYTES = 64 << 20
_GO, _STOP = b"\x01", b"\x00"


class Gate:
    """The reader's end of the parent's answer to "does the input stream as it is?":
    go (send what was begun), or stop (the parent sorts the input and starts another
    reader). An end of file is a stop: the parent is gone."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._answer: bool | None = None
        os.set_blocking(fd, False)

    def poll(self) -> bool | None:
        """The answer, or None while the parent is still scanning."""
        if self._answer is None:
            try:
                self._answer = os.read(self._fd, 1) == _GO
            except BlockingIOError:
                return None
            os.close(self._fd)
        return self._answer

    def wait(self) -> bool:
        while (answer := self.poll()) is None:
            select.select([self._fd], [], [])
        return answer


def answer_gate(fd: int, *, go: bool) -> None:
    """The parent's side of :class:`Gate`: answer once, and close. A reader already
    gone hears nothing; its pipe's end tells the parent (a worker failed)."""
    try:
        with contextlib.suppress(BrokenPipeError):
            os.write(fd, _GO if go else _STOP)
    finally:
        os.close(fd)


class _Refused(Exception):
    """The parent answered stop: nothing this reader began will be read."""


class _FrameWriter:
    """Frames of messages, each frame its length and its MessagePack; held back while
    ``gate`` has not answered."""

    def __init__(self, out: IO[bytes], gate: Gate | None = None) -> None:
        self._out = out
        self._messages: list[_Message] = []
        # Per message, how to send its line whole instead (None: a message that
        # always encodes).
        self._wholes: list[Callable[[], _Whole] | None] = []
        self.bytes_read = 0
        self._gate = gate
        self._held: list[bytes] = []
        self._held_bytes = 0

    def send(self, message: _Message, whole: Callable[[], _Whole] | None = None) -> None:
        self._messages.append(message)
        self._wholes.append(whole)
        if len(self._messages) >= _FRAME_MESSAGES:
            self.flush()

    def flush(
        self, *, order: OrderStats | None = None, shrunk: list[tuple[str, int, int]] | None = None
    ) -> None:
        frame = _Frame(self.bytes_read, self._messages, order, shrunk)
        try:
            data = _ENCODE(frame)
        except _CANNOT_ENCODE:  # rare: find the logins to send whole, encode again
            pairs = zip(self._messages, self._wholes, strict=True)
            frame.messages = [_encodable(message, whole) for message, whole in pairs]
            data = _ENCODE(frame)
        self._messages, self._wholes = [], []
        if self._gate is not None and not self._let_go(data, last=order is not None):
            return
        self._write(data)

    def _write(self, data: bytes) -> None:
        self._out.write(_LENGTH.pack(len(data)))
        self._out.write(data)
        # At once: the parent waits for whole frames, and a writer holding several
        # in its buffer would then wait, blocked, while the parent works through them.
        self._out.flush()

    def _let_go(self, data: bytes, *, last: bool) -> bool:
        """Hold ``data`` while the gate has room and no answer (False); else wait for
        the answer, write what was held and say ``data`` may follow (True), or raise
        :class:`_Refused`."""
        assert self._gate is not None
        answer = self._gate.poll()
        if answer is None and not last and self._held_bytes + len(data) <= _HELD_BYTES:
            self._held.append(data)
            self._held_bytes += len(data)
            return False
        self.release()
        return True

    def release(self) -> None:
        """Wait for the gate's answer (if any is awaited): write what was held, or
        raise :class:`_Refused`."""
        gate, self._gate = self._gate, None
        if gate is None:
            return
        if not gate.wait():
            raise _Refused
        for data in self._held:
            self._write(data)
        self._held, self._held_bytes = [], 0


_CANNOT_ENCODE = (TypeError, ValueError, OverflowError, NotImplementedError, msgspec.EncodeError)


def _encodable(message: _Message, whole: Callable[[], _Whole] | None) -> _Message:
    if whole is None:
        return message
    try:
        _ENCODE(message)
    except _CANNOT_ENCODE:
        return whole()
    return message


def read_and_begin(
    checker: Checker,
    items: Callable[..., Iterable[LazyItem]],
    out: IO[bytes],
    *,
    max_skew: float,
    max_lines: int,
    gate: Gate | None = None,
    until_out_of_order: bool = False,
) -> bool:
    """The reader's side: every line in the order one process checks them, begun
    (or rejected, or whole), framed to ``out``. ``items`` is the plan's
    :meth:`~fingerprint.sorting.InputPlan.items`. With a ``gate``, nothing is sent
    before the parent answers: False if it answered stop (nothing was sent).
    ``until_out_of_order``: stop at the first line that comes late or far ahead (as
    :func:`fingerprint.pipeline.check_stream` does); the last frame's counts say so."""
    writer = _FrameWriter(out, gate)
    try:
        _read_and_begin(
            checker,
            items,
            writer,
            max_skew=max_skew,
            max_lines=max_lines,
            until_out_of_order=until_out_of_order,
        )
    except _Refused:
        return False
    except Exception:
        # Met while the parent still scans the same input (which then reports it
        # itself, or sorts): raised only if the parent goes ahead.
        try:
            writer.release()
        except _Refused:
            return False
        raise
    return True


def _read_and_begin(
    checker: Checker,
    items: Callable[..., Iterable[LazyItem]],
    writer: _FrameWriter,
    *,
    max_skew: float,
    max_lines: int,
    until_out_of_order: bool,
) -> None:
    shrunk: list[tuple[str, int, int]] = []

    def bytes_read(count: int) -> None:
        writer.bytes_read = count

    def on_shrunk(path: str, read: int, size: int) -> None:
        shrunk.append((path, read, size))

    naive_tz = checker.config.time_zone
    buffer: ReorderBuffer[Line | int] = ReorderBuffer(max_skew, max_lines)
    counts = buffer.stats
    one = Shard()
    for seq, item in enumerate(items(bytes_read, on_shrunk=on_shrunk)):
        arrived = _arrive(item, seq, one, naive_tz, None)
        if isinstance(arrived, Reject):
            writer.send(_Rejected(seq, arrived))
        elif isinstance(arrived, Blank):
            writer.send(_Blank(seq, arrived.file, arrived.line))
        else:
            held, ts = arrived
            released = buffer.push(seq, held, ts)
            if until_out_of_order and not counts.in_order:
                writer.flush(order=counts, shrunk=shrunk)  # the last frame: out of order
                return
            for ready in released:
                _begin(checker, ready, writer)
    for ready in buffer.drain():
        _begin(checker, ready, writer)
    writer.flush(order=buffer.stats, shrunk=shrunk)


def _begin(checker: Checker, ready: Released[Line | int], writer: _FrameWriter) -> None:
    line = _prepare(checker, ready, None)
    item, seq = ready.item, ready.seq
    assert not isinstance(item, int)  # one shard: every line is its own
    if isinstance(line.prepared, InvalidSessionError):
        writer.send(_rejected(item, seq, line.prepared))
        return
    assert line.prepared is not None
    try:
        begun = checker.begin(
            line.prepared,
            session_id=f"{item.file}:{item.line}",
            late_by=ready.late_by,
            now=line.now,
        )
    except InvalidSessionError as exc:
        writer.send(_rejected(item, seq, exc))
        return

    def whole() -> _Whole:
        record = None if item.raw else dict(item.record)
        return _Whole(seq, item.file, item.line, ready.late_by, ready.ahead_by, line.now,
                      item.raw, record)  # fmt: skip

    writer.send(_Login(seq, item.file, item.line, ready.ahead_by, begun), whole)


def _rejected(item: Line, seq: int, exc: InvalidSessionError) -> _Rejected:
    reject = _reject(item, seq, exc).reject
    assert reject is not None
    return _Rejected(seq, reject)


def finished(
    checker: Checker,
    incoming: IO[bytes],
    *,
    order_stats: OrderStats,
    on_bytes: Callable[[int], None] | None = None,
    on_shrunk: Callable[[str, int, int], None] | None = None,
) -> Iterator[Outcome]:
    """The parent's side: every outcome in input order, each login finished in the
    order the reader sent it. Stops at the reader's last frame; raises
    :class:`EOFError` if the pipe ends before it (the reader stopped or failed)."""
    order = InputOrder()
    naive_tz = checker.config.time_zone
    while True:
        frame = _read_frame(incoming)
        if on_bytes is not None and frame.bytes_read:
            on_bytes(frame.bytes_read)
        for message in frame.messages:
            yield from order.add(_outcome(checker, message, naive_tz))
        if frame.order is not None:  # the last frame
            order_stats.merge(frame.order)
            for path, read, size in frame.shrunk or ():
                if on_shrunk is not None:
                    on_shrunk(path, read, size)
            return


def _read_frame(incoming: IO[bytes]) -> _Frame:
    head = incoming.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError("the reader ended before its last frame")
    (size,) = _LENGTH.unpack(head)
    data = incoming.read(size)
    if len(data) < size:
        raise EOFError("the reader ended in the middle of a frame")
    return _DECODE(data)


def _outcome(checker: Checker, message: _Message, naive_tz: Any) -> Outcome:
    if isinstance(message, _Login):
        report = checker.finish(_with_addresses(message.begun))
        outcome = Outcome(message.seq, message.file, message.line, report=report)
        return noted_ahead(outcome, message.ahead_by)
    if isinstance(message, _Whole):
        return noted_ahead(_whole(checker, message, naive_tz), message.ahead_by)
    if isinstance(message, _Rejected):
        reject = message.reject
        return Outcome(message.seq, reject.file, reject.line, reject=reject)
    return Outcome(message.seq, message.file, message.line, blank=True)


def _whole(checker: Checker, message: _Whole, naive_tz: Any) -> Outcome:
    if message.record is not None:
        line: Line | Reject = Line(message.file, message.line, message.record, b"")
    else:
        line = decode_line(Text(message.file, message.line, message.raw), naive_tz)
    if isinstance(line, Reject):  # the reader decoded it: this does not happen
        return Outcome(message.seq, line.file, line.line, reject=line)
    return check_line(checker, line, message.seq, message.late_by, None, message.now)


def _with_addresses(begun: Begun) -> Begun:
    """The begun login with its addresses as objects again (:func:`_address_sent`)."""
    session, network = begun.session, begun.features.network
    # As they travel, whatever the records' types say: integers (IPv4) or text (IPv6).
    sent: Any = session.ip
    sent_network: Any = network.ip
    address = _address(sent)
    network_address = address if sent_network == sent else _address(sent_network)
    msgspec.structs.force_setattr(session, "ip", address)
    msgspec.structs.force_setattr(network, "ip", network_address)
    return begun


# The parent's share of the work is the larger: each address is read back once per
# login (the session's; the network record's is the same one) and remembered. An LRU,
# not a memo that starts over when full: on the generator's log (46,964 addresses in
# 196,370 logins) that one spent ~0.8 µs a login, this one 0.37 (building the address
# every time: 0.26); on a log of few addresses (919) 0.07 against 0.085.
@lru_cache(maxsize=4_096)
def _address(sent: int | str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.IPv4Address(sent) if isinstance(sent, int) else ipaddress.IPv6Address(sent)
