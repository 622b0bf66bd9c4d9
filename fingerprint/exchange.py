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

# A message: the sender's index and its next observations, as MessagePack.
Message = tuple[int, list[Observation | None]]
_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(Message).decode


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

    def send(self, observation: Observation | None) -> None:
        """This worker's next line, as its peers record it (None: nothing to record)."""
        self._outgoing.append(observation)
        if len(self._outgoing) >= self._batch:
            self.flush()

    def flush(self) -> None:
        """Send what is prepared (encoded once, whatever the number of peers)."""
        if not self._outgoing:
            return
        message = _ENCODE((self.index, self._outgoing))
        self._outgoing = []
        for box in self._outboxes:
            box.put(message)

    def take(self, owner: int) -> Observation | None:
        """The next line of ``owner``'s, waiting for it if it has not arrived."""
        waiting = self._received[owner]
        while not waiting:
            self._receive()
        return waiting.popleft()

    def close(self, *, delivered: bool = True) -> None:
        """Send the rest and wait until it is written; ``delivered=False`` (a stopped
        run): do not wait for peers that may never read it."""
        if delivered:
            self.flush()
        for box in self._outboxes:
            if not delivered:
                box.cancel_join_thread()
            box.close()
            if delivered:
                box.join_thread()

    def _receive(self) -> None:
        try:
            message = self._inbox.get(block=False)
        except queue.Empty:
            self.flush()  # a peer may be waiting for what this worker prepared
            message = self._inbox.get()
        sender, observations = _DECODE(message)
        self._received[sender].extend(observations)
