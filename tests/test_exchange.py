"""Observations between a sharded run's workers (fingerprint.exchange): each worker
gets every other worker's observations in the order it meets their lines, and no
order of lines makes the workers wait for each other forever, even in lockstep (a
worker that checks each line as it comes, preparing nothing ahead)."""

from __future__ import annotations

import multiprocessing
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fingerprint.checker import Observation
from fingerprint.exchange import Inbox, Peers
from fingerprint.history import LoginEvent

_WAIT = 60.0  # seconds: a worker still waiting after this is deadlocked


def observation(line: int) -> Observation | None:
    """Line ``line``'s observation; every third line's owner records nothing. Links
    and a missing clock now and then: every field crosses the pipe."""
    if line % 3 == 0:
        return None
    event = LoginEvent(float(line), -line, f"a{line}", f"d{line}", "10.0.0.1", *[None] * 4, False)
    links = ((f"r:{line}", (f"m{line}", "m")),) if line % 2 else ()
    return Observation(event=event, links=links, clock=None if line % 5 == 0 else line + 0.5)


def run_worker(index: int, owners: list[int], inboxes: list[Inbox], batch: int, out: Any) -> None:
    """One worker in lockstep: its own lines sent as they come, the others' taken;
    what it took goes to ``out``."""
    peers = Peers(index, inboxes, batch=batch)
    seen = []
    for line, owner in enumerate(owners):
        if owner == index:
            peers.send(observation(line))
        else:
            seen.append((line, peers.take(owner)))
    peers.close()
    out.send(seen)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(2, 4).flatmap(
        lambda workers: st.tuples(
            st.just(workers), st.lists(st.integers(0, workers - 1), max_size=300)
        )
    ),
    st.sampled_from([1, 3, 64]),
)
def test_every_worker_gets_each_line_of_the_others_in_order(
    workers_and_owners: tuple[int, list[int]], batch: int
) -> None:
    workers, owners = workers_and_owners
    context = multiprocessing.get_context("fork")  # as the run's workers are made
    inboxes: list[Inbox] = [context.Queue() for _ in range(workers)]
    pipes = [context.Pipe(duplex=False) for _ in range(workers)]
    processes = [
        context.Process(target=run_worker, args=(i, owners, inboxes, batch, pipes[i][1]))
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        for index, (receiver, _) in enumerate(pipes):
            assert receiver.poll(_WAIT), f"worker {index} deadlocked"
            expected = [(line, observation(line)) for line, o in enumerate(owners) if o != index]
            assert receiver.recv() == expected
    finally:
        for process in processes:
            process.join(_WAIT)
            if process.is_alive():
                process.kill()
    assert [process.exitcode for process in processes] == [0] * workers
