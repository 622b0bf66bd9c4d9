"""A stop signal that reaches a worker after its work, while the interpreter exits.

CI met it once (issue 20's stop of 2026-12-06): a worker had saved its result and was
in multiprocessing's exit when the parent, stopping the run on another worker's
error, sent it SIGTERM. The worker's handler raised there, printed a traceback and
turned its exit status into 1. These tests hold a worker in that exit (a finalizer
that waits for the test) and signal it there, so the moment is certain, not a race.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import select
import signal
import sys
import threading
from collections.abc import Iterator
from multiprocessing import util
from pathlib import Path
from typing import Any

import pytest

from fingerprint import batch, stopping
from fingerprint.cli import main
from tests.conftest import FIXTURES

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks workers")

LABELLED = FIXTURES / "labelled.jsonl"
_WAIT_SECONDS = 60.0  # for a worker or a thread to end; generous for a loaded machine


class ExitHold:
    """Workers register a finalizer that says "in my exit" (with its pid) and waits;
    a thread of the test signals each such worker there, then lets it go on."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self._ready_r, self._ready_w = os.pipe()
        self._go_r, self._go_w = os.pipe()
        self._parent = os.getpid()
        self.signalled: list[int] = []

    def register(self) -> None:
        """In a worker, after its work: hold it in multiprocessing's exit."""
        if os.getpid() != self._parent:
            util.Finalize(None, self._hold, exitpriority=100)

    def _hold(self) -> None:
        os.write(self._ready_w, os.getpid().to_bytes(8, "little"))
        os.read(self._go_r, 1)

    def _signal_each(self, done: threading.Event) -> None:
        """Every worker that reports, however many (a held worker nobody lets go
        would hang the run): the test counts them."""
        while not done.is_set():
            readable, _, _ = select.select([self._ready_r], [], [], 0.05)
            if readable:
                pid = int.from_bytes(os.read(self._ready_r, 8), "little")
                os.kill(pid, self.signum)
                self.signalled.append(pid)
                os.write(self._go_w, b"g")

    @contextlib.contextmanager
    def signalling(self) -> Iterator[None]:
        done = threading.Event()
        thread = threading.Thread(target=self._signal_each, args=(done,), daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(_WAIT_SECONDS)
            for fd in (self._ready_r, self._ready_w, self._go_r, self._go_w):
                os.close(fd)


def _worker(parent: int, hold: ExitHold) -> None:
    with stopping.as_worker(parent, lambda: None):
        pass  # the work
    hold.register()


@pytest.mark.parametrize("signum", stopping.STOP_SIGNALS)
def test_a_worker_signalled_in_its_exit_exits_as_its_work_ended(
    capfd: pytest.CaptureFixture[str], signum: int
) -> None:
    hold = ExitHold(signum)
    context = multiprocessing.get_context("fork")
    with hold.signalling():
        with stopping.signals_deferred():  # as the batch forks: handlers first
            process = context.Process(target=_worker, args=(os.getpid(), hold))
            process.start()
        process.join(_WAIT_SECONDS)
    assert hold.signalled == [process.pid]
    assert process.exitcode == 0
    assert "Traceback" not in capfd.readouterr().err


def _held_after(monkeypatch: pytest.MonkeyPatch, name: str, hold: ExitHold) -> None:
    """``batch.<name>``, a worker's work (the reader's or a shard's), registers the hold
    when it is done."""
    work = getattr(batch, name)

    def then_hold(*args: Any, **kwargs: Any) -> None:
        work(*args, **kwargs)
        hold.register()

    monkeypatch.setattr(batch, name, then_hold)


@pytest.mark.parametrize(
    ("workers", "work", "held"),
    [("3", "_shard_main", 3), ("2", "_reader_main", 1)],
    ids=["shards", "reader"],
)
def test_a_worker_signalled_after_its_work_leaves_the_run_whole(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    workers: str,
    work: str,
    held: int,
) -> None:
    """Its result was saved (shards) or every frame sent (the reader): the run ends as
    if no signal had come, with no traceback."""
    alone, signalled = tmp_path / "alone.jsonl", tmp_path / "signalled.jsonl"
    assert main(["check", str(LABELLED), "-q", "--workers", "1", "-o", str(alone)]) == 0
    hold = ExitHold(signal.SIGTERM)
    _held_after(monkeypatch, work, hold)
    with hold.signalling():
        status = main(["check", str(LABELLED), "-q", "--workers", workers, "-o", str(signalled)])
    assert len(hold.signalled) == held
    assert status == 0
    assert signalled.read_bytes() == alone.read_bytes()
    assert "Traceback" not in capfd.readouterr().err


def _stopped_worker(parent: int, signum: int) -> None:
    with stopping.as_worker(parent, lambda: None):
        raise stopping.interruption(signum)  # a stop the work did not handle itself


@pytest.mark.parametrize("signum", stopping.STOP_SIGNALS)
def test_a_stop_the_work_left_unhandled_ends_the_worker_quietly_with_its_status(
    capfd: pytest.CaptureFixture[str], signum: int
) -> None:
    context = multiprocessing.get_context("fork")
    with stopping.signals_deferred():
        process = context.Process(target=_stopped_worker, args=(os.getpid(), signum))
        process.start()
    process.join(_WAIT_SECONDS)
    assert process.exitcode == 128 + signum
    assert "Traceback" not in capfd.readouterr().err


class _StopAtTheEdge:
    """``as_worker`` as a stop landing at the ``with``'s edge finds it: the work has
    returned, and the signal's exception is raised in the context manager's exit
    frame, before the generator's own ``except`` can run (CI, 2026-12-07)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        raise stopping.interruption(signal.SIGTERM)


def test_a_stop_at_the_edge_of_the_work_ends_the_worker_quietly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stopping, "as_worker", lambda parent, on_orphaned: _StopAtTheEdge())
    done: list[bool] = []
    with pytest.raises(SystemExit) as exited:
        stopping.run_as_worker(os.getpid(), lambda: None, lambda: done.append(True))
    assert done == [True]
    assert exited.value.code == 128 + signal.SIGTERM
