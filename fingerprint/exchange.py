"""Observations passed between the workers of a sharded run.

Each worker checks the lines of its accounts, and every worker's history must also
hold what other accounts' lines add to the shared sides (a device's accounts, an
address's accounts, identity links), exactly when a one-process run would record
them. The owner of a line validates it anyway, so it computes that observation
(:meth:`fingerprint.checker.Checker.observation`) and sends it to the other workers;
they record it when the line's turn comes, without decoding or validating the line.

Every worker meets the lines in the same order (the reorder buffer sees the same
times), so the observations of one owner arrive in the order its peers consume them:
a peer takes the next one from that owner's stream, with no line numbers to match.

No deadlock: a worker flushes what it has prepared before it waits, and it prepares
every line of its own up to the line it is checking. A worker waits only for a line
ahead of the checking position of its owner, who prepared (and so sent) it.
Sending never blocks: a queue's feeder thread writes the pipe.

The workers read the input each for itself, so an input that changes while they read
it (a log that grows, or is truncated) can give them different lines. A worker that
reaches the end of its input says so (``END``): a peer waiting for a line that owner
never read learns it (:class:`OwnerEnded`) instead of waiting forever. A worker that
needs nothing more says so too (``DONE``, its last message) and keeps reading until
every peer has: so whatever a worker sends is read, even by a peer that read fewer
lines and needs none of it, and no sender waits on a full pipe nobody drains.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from fingerprint.checker import Observation

# Observations per message: a message costs a pipe write (~20 µs) and a peer waits
# for a line only until its owner has sent this many more.
BATCH = 64

# A message, as MessagePack: the sender's index, its kind, and for OBSERVATIONS the
# sender's next observations.
OBSERVATIONS, END, DONE = 0, 1, 2
Message = tuple[int, int, list[Observation | None]]
_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(Message).decode


class OwnerEnded(Exception):
    """The owner of a line reached the end of its input before that line: it never
    read it, because the input changed while the workers read it."""


class Inbox(Protocol):
    """The part of a ``multiprocessing.Queue`` a worker uses."""

    def put(self, obj: Any) -> None: ...

    def get(self, block: bool = True, timeout: float | None = None) -> Any: ...

    def close(self) -> None: ...

    def join_thread(self) -> None: ...

    def cancel_join_thread(self) -> None: ...


class Peers:
    """One worker's link to the others: ``inboxes[i]`` is worker ``i``'s queue."""

    def __init__(self, index: int, inboxes: Sequence[Inbox], *, batch: int = BATCH) -> None:
        self.index = index
        self._inbox = inboxes[index]
        self._outboxes = [box for i, box in enumerate(inboxes) if i != index]
        self._batch = batch
        self._outgoing: list[Observation | None] = []
        self._received: dict[int, deque[Observation | None]] = {
            i: deque() for i in range(len(inboxes)) if i != index
        }
        self._ended: set[int] = set()  # peers that have read all their input
        self._has_ended = False
        self._done: set[int] = set()  # peers that need nothing more

    def send(self, observation: Observation | None) -> None:
        """This worker's next line, as its peers record it (None: nothing to record)."""
        self._outgoing.append(observation)
        if len(self._outgoing) >= self._batch:
            self.flush()

    def flush(self) -> None:
        """Send what is prepared (encoded once, whatever the number of peers)."""
        if not self._outgoing:
            return
        message = _ENCODE((self.index, OBSERVATIONS, self._outgoing))
        self._outgoing = []
        self._broadcast(message)

    def end(self) -> None:
        """Send what is prepared, then that this worker has read all its input."""
        self.flush()
        if not self._has_ended:
            self._has_ended = True
            self._broadcast(_ENCODE((self.index, END, [])))

    def take(self, owner: int) -> Observation | None:
        """The next line of ``owner``'s, waiting for it if it has not arrived; raises
        :class:`OwnerEnded` if ``owner`` ended its input without it."""
        waiting = self._received[owner]
        while not waiting:
            if owner in self._ended:
                raise OwnerEnded(owner)
            self._receive()
        return waiting.popleft()

    def close(self, *, delivered: bool = True) -> None:
        """Say this worker needs nothing more, read until every peer has said the same,
        then wait until what it sent is written. Every worker reads its inbox until
        each peer's ``DONE``, the last message a peer sends, so that wait always ends.
        ``delivered=False`` (a worker that stops early): say the same, so no peer waits
        for it, but do not wait for peers that may never read."""
        if not delivered:
            self._outgoing = []  # lines it may not have finished: nothing to stand for
        self.end()
        self._broadcast(_ENCODE((self.index, DONE, [])))
        if delivered:
            while len(self._done) < len(self._received):
                self._receive()
        for box in self._outboxes:
            if not delivered:
                box.cancel_join_thread()
            box.close()
            if delivered:
                box.join_thread()

    def _broadcast(self, message: bytes) -> None:
        for box in self._outboxes:
            box.put(message)

    def _receive(self) -> None:
        try:
            message = self._inbox.get(block=False)
        except queue.Empty:
            self.flush()  # a peer may be waiting for what this worker prepared
            message = self._inbox.get()
        sender, kind, observations = _DECODE(message)
        if kind == OBSERVATIONS:
            self._received[sender].extend(observations)
        elif kind == END:
            self._ended.add(sender)
        else:
            self._done.add(sender)
