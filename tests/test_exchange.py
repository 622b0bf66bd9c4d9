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
from fingerprint.exchange import Inbox, OwnerEnded, Peers
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


UNREAD = "unread by its owner"


def run_worker(index: int, owners: list[int], inboxes: list[Inbox], batch: int, out: Any) -> None:
    """One worker in lockstep: its own lines sent as they come, the others' taken;
    what it took goes to ``out`` (a line its owner never read: ``UNREAD``)."""
    peers = Peers(index, inboxes, batch=batch)
    seen: list[tuple[int, Any]] = []
    for line, owner in enumerate(owners):
        if owner == index:
            peers.send(observation(line))
            continue
        try:
            seen.append((line, peers.take(owner)))
        except OwnerEnded:
            seen.append((line, UNREAD))
    peers.end()
    peers.close()
    out.send(seen)


def run_workers(views: list[list[int]], batch: int) -> list[Any]:
    """A worker per view (the owners of the lines it reads, in order), each in its own
    process as the run's workers are; what each took, or a failure if one waited
    ``_WAIT`` seconds."""
    context = multiprocessing.get_context("fork")  # as the run's workers are made
    inboxes: list[Inbox] = [context.Queue() for _ in views]
    pipes = [context.Pipe(duplex=False) for _ in views]
    processes = [
        context.Process(target=run_worker, args=(i, view, inboxes, batch, pipes[i][1]))
        for i, view in enumerate(views)
    ]
    for process in processes:
        process.start()
    try:
        results = []
        for index, (receiver, _) in enumerate(pipes):
            assert receiver.poll(_WAIT), f"worker {index} deadlocked"
            results.append(receiver.recv())
    finally:
        for process in processes:
            process.join(_WAIT)
            if process.is_alive():
                process.kill()
    assert [process.exitcode for process in processes] == [0] * len(views)
    return results


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
    results = run_workers([owners] * workers, batch)
    for index, seen in enumerate(results):
        assert seen == [(line, observation(line)) for line, o in enumerate(owners) if o != index]


@settings(max_examples=25, deadline=None)
@given(
    st.integers(2, 4).flatmap(
        lambda workers: st.tuples(
            st.just(workers),
            st.lists(st.integers(0, workers - 1), max_size=300),
            st.lists(st.integers(0, 300), min_size=workers, max_size=workers),
        )
    ),
    st.sampled_from([1, 3, 64]),
)
def test_workers_that_read_different_lengths_of_a_changing_input_never_wait_forever(
    views: tuple[int, list[int], list[int]], batch: int
) -> None:
    """An input that grows or is truncated while the workers read it: each reads its
    own length of it. A line its owner read arrives as always; one its owner never
    read is reported as such, and nobody waits for it."""
    _, owners, lengths = views
    results = run_workers([owners[:length] for length in lengths], batch)
    for index, seen in enumerate(results):
        assert seen == [
            (line, observation(line) if line < lengths[owner] else UNREAD)
            for line, owner in enumerate(owners[: lengths[index]])
            if owner != index
        ]
