"""Stopping a run on a signal, and worker processes that never outlive their parent.

SIGTERM and SIGHUP raise :class:`Stopped`, a KeyboardInterrupt, in the main thread,
so they unwind the stack exactly as Ctrl-C does: every ``finally`` block and context
manager runs (temporary files and folders are removed) and the CLI exits with
128 + the signal's number (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).

Workers are forked. On Linux the kernel sends each one SIGTERM the moment its parent
dies, whatever killed the parent (``prctl(PR_SET_PDEATHSIG)``); everywhere a thread
also watches the parent's pid and stops the worker, then kills it outright if it has
not finished within a grace period.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_GRACE_SECONDS = 2.0  # an orphaned worker that has not stopped by then is killed
_WATCH_SECONDS = 0.2


class Stopped(KeyboardInterrupt):
    """A stop signal other than SIGINT, raised where the main thread was running."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signal_number(interrupt: BaseException) -> int:
    """The signal behind an interruption: SIGINT for a plain KeyboardInterrupt."""
    return int(getattr(interrupt, "signum", signal.SIGINT))


def exit_status(interrupt: BaseException) -> int:
    """The shell's convention for a run ended by a signal: 128 + its number."""
    return 128 + signal_number(interrupt)


# Stop signals this process has received, in order. A signal's exception can be lost:
# raised while a C extension calls back into Python (maxminddb reading an address),
# it comes out as that extension's own error (a TypeError). The run asks this list.
_received: list[int] = []


def stop_requested() -> int | None:
    """The first stop signal this process received, if any."""
    return _received[0] if _received else None


def is_stop(exc: BaseException) -> bool:
    """Whether ``exc`` is, or stands in for, a stop signal's exception."""
    return isinstance(exc, KeyboardInterrupt) or stop_requested() is not None


def interruption(signum: int) -> KeyboardInterrupt:
    """The exception a stop signal raises (see :func:`signal_number`)."""
    return KeyboardInterrupt() if signum == signal.SIGINT else Stopped(signum)


class Work:
    """The work a :func:`stop_on_signals` block guards. ``done``: set it once the
    work has ended, its status decided, right after the call that ran it and with a
    plain attribute store (CPython runs signal handlers at calls and loops, so none
    runs between that return and the store); from then on a stop signal is ignored
    where the block ignores them afterwards (``then_ignore``)."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False


@contextlib.contextmanager
def stop_on_signals(*, then_ignore: bool = False) -> Iterator[Work]:
    """SIGTERM and SIGHUP raise :class:`Stopped` and Ctrl-C KeyboardInterrupt while
    inside, each recorded (:func:`stop_requested`); the previous handlers come back on
    leaving. A signal that was ignored when we started (``nohup``) stays
    ignored. Outside the main thread nothing changes (Python allows handlers only there).

    ``then_ignore``: for a program whose work ends with the block (the command line):
    on leaving, the signals it handled are ignored instead. What is left is the
    interpreter's exit (~0.1 s after 40,000 lines, longer after millions), and the
    run's status is decided: a Ctrl-C there printed a traceback, a SIGTERM turned a
    finished run, its outputs written, into one killed. The same from the moment the
    block's :class:`Work` is marked done: a signal landing between the work's end and
    this function's own exit raised there, out of the caller's reach."""
    work = Work()
    if threading.current_thread() is not threading.main_thread():
        yield work
        return

    def raise_stopped(signum: int, _frame: FrameType | None) -> None:
        if then_ignore and work.done:
            return  # nothing left to stop: the program exits with the work's status
        _received.append(signum)
        raise interruption(signum)

    _received.clear()  # a new run (the library may run several in one process)
    previous = {}
    for signum in STOP_SIGNALS:
        current = signal.getsignal(signum)
        if current is signal.SIG_IGN:
            continue
        if signum == signal.SIGINT and current is not signal.default_int_handler:
            continue  # someone else's Ctrl-C handler (a notebook, a service)
        previous[signum] = current
        signal.signal(signum, raise_stopped)
    try:
        yield work
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_IGN if then_ignore else handler)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold stop signals while inside; they are delivered on leaving. Wrapped around
    cleanup (so a second Ctrl-C cannot cut it short) and around forking (so a child
    never runs its parent's handlers before it has installed its own)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def become_worker(parent_pid: int, on_orphaned: Callable[[], None]) -> None:
    """Set up a freshly forked worker (its stop signals are still blocked, see
    :func:`signals_deferred`): every stop signal raises once in the main thread (a
    terminal's Ctrl-C reaches parent and workers alike, and the parent forwards what
    only it received) and the worker dies with its parent. ``on_orphaned`` removes
    what the parent can no longer remove; the worker calls it itself when it stops
    and :func:`orphaned` is true, and the watch thread calls it before killing a
    worker that did not stop in time. Workers call it through :func:`as_worker`."""

    _received.clear()  # what the parent received is not this worker's

    def stop(signum: int, _frame: FrameType | None) -> None:
        for each in STOP_SIGNALS:  # once: later signals must not cut the cleanup short
            signal.signal(each, signal.SIG_IGN)
        _received.append(signum)
        raise interruption(signum)

    for signum in STOP_SIGNALS:
        # A Ctrl-C or hang-up the program was started ignoring (a job run in the
        # background, nohup) stays ignored, as the parent leaves it (stop_on_signals):
        # one process or several, the run goes on. Not SIGTERM: the parent stops its
        # workers with it (batch._stop).
        if signum != signal.SIGTERM and signal.getsignal(signum) is signal.SIG_IGN:
            continue
        signal.signal(signum, stop)
    _die_with_parent(parent_pid, on_orphaned)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


@contextlib.contextmanager
def as_worker(parent_pid: int, on_orphaned: Callable[[], None]) -> Iterator[None]:
    """A forked worker's work: :func:`become_worker` on entering; on leaving (the work
    done, given up or failed) stop signals are ignored. What is left then is the
    interpreter's exit (multiprocessing's finalizers, its queues' threads), which a
    stop has nothing to take from: raised there, it printed a traceback and turned the
    worker's exit status into 1 (seen in CI: a finished worker signalled by a parent
    stopping the run on another worker's error). A worker stuck there while the run is
    being stopped is still killed: by the parent after ``batch._STOP_SECONDS``, or by
    the watch thread if the parent has died.

    A stop the work did not handle itself (one landing at its very edges) ends the
    worker quietly with the shell's status, 128 + the signal's number."""
    become_worker(parent_pid, on_orphaned)
    try:
        yield
    except KeyboardInterrupt as interrupt:
        raise SystemExit(exit_status(interrupt)) from None
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


def run_as_worker(
    parent_pid: int, on_orphaned: Callable[[], None], work: Callable[[], None]
) -> None:
    """``work`` inside :func:`as_worker`, and a guard around both. A stop that lands at
    the ``with`` statement's very edge, after the work returned and before
    ``as_worker``'s own exit code runs (in the context manager's ``__exit__`` frame),
    is raised outside the generator, where its ``except`` cannot see it: it printed a
    traceback and turned the worker's status into 1 (seen in CI, 2026-12-07, on a
    worker the parent stopped after another's write error). Caught here, it ends the
    worker quietly with the shell's status too. One guard is enough: the handler
    ignores every later stop before it raises the first."""
    try:
        with as_worker(parent_pid, on_orphaned):
            work()
    except KeyboardInterrupt as interrupt:
        raise SystemExit(exit_status(interrupt)) from None


def _die_with_parent(parent_pid: int, on_orphaned: Callable[[], None]) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    watcher = threading.Thread(
        target=_watch_parent, args=(parent_pid, on_orphaned), name="parent-watch", daemon=True
    )
    watcher.start()


def _watch_parent(parent_pid: int, on_orphaned: Callable[[], None]) -> None:
    """Polls because that works everywhere; it also covers a parent that died between
    the fork and the prctl call, which the kernel would not signal."""
    while os.getppid() == parent_pid:
        time.sleep(_WATCH_SECONDS)
    with contextlib.suppress(OSError):
        os.kill(os.getpid(), signal.SIGTERM)  # the main thread unwinds and cleans up
    time.sleep(_GRACE_SECONDS)
    with contextlib.suppress(Exception):  # it did not finish: clean up and go
        on_orphaned()
    os._exit(128 + signal.SIGTERM)


def orphaned(parent_pid: int, *, within: float = 0.0) -> bool:
    """Whether the parent has gone (the worker was handed to another process).

    ``within``: how long to wait for it, for a worker that met the end of a pipe from
    the parent. A parent killed outright closes its files first and only then does
    the kernel hand its children to another process: for that moment the pipe has
    ended and the parent still looks alive (a reader writing frames met it in about
    half the runs whose parent was killed, and left the parent's files behind)."""
    deadline = time.monotonic() + within
    while os.getppid() == parent_pid:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True
