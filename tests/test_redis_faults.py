"""Redis under load and faults: queueing for a connection, one deadline per call,
a client per event loop, logging and counters a service exports."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fingerprint import Checker, CheckerConfig
from fingerprint.history import LoginEvent, Windows, session_digest
from tests.conftest import make_session
from tests.redis_server import RedisServer, free_port, require_redis_server

T0 = 1_795_133_730
WINDOWS = Windows(account_seconds=86_400, device_seconds=86_400)
HISTORY_CHECKS = ("ip_hopping", "device_sharing", "device_churn", "history")


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    running = RedisServer(require_redis_server())
    running.start()
    yield running
    running.close()


@pytest.fixture
def url(server: RedisServer) -> str:
    import redis

    redis.Redis.from_url(server.url).flushdb()
    return server.url


def _login(n: int, account: str = "a", device: str | None = "phone") -> LoginEvent:
    return LoginEvent(
        T0 + n, session_digest(f"s{n}"), account, device, "1.1.1.1", None, None, None, None, False
    )


def _lost(report: Any) -> bool:
    return any(
        reason.startswith("history store unavailable") for reason in report.not_evaluated.values()
    )


# --- 3: many concurrent calls queue for a connection --------------------------------------


def test_a_thousand_concurrent_acheck_calls_lose_no_history(url: str) -> None:
    # 64 connections for 1,000 calls: the rest queue (within a deadline sized for the
    # burst on a loaded 2-core machine; the benchmark measures how long they wait).
    checker = Checker(CheckerConfig(history=url, history_timeout=30.0))
    sessions = [
        make_session(session_id=f"s{n}", account_id=f"acct-{n % 250}", ts=T0 + n)
        for n in range(1_000)
    ]

    async def burst() -> list[Any]:
        return list(await asyncio.gather(*(checker.acheck(s) for s in sessions)))

    reports = asyncio.run(burst())
    assert sum(_lost(r) for r in reports) == 0
    stats = checker.stats()
    assert stats.degraded == 0 and stats.lost_writes == 0
    assert stats.history is not None and stats.history.failures == 0
    # Every login was written: each account's 4 logins are stored.
    from fingerprint.redis_store import RedisHistoryStore

    store = RedisHistoryStore.from_url(url, timeout=5.0)
    assert all(len(store.account_events(f"acct-{a}")) == 4 for a in range(250))
    store.close()
    checker.close()


def test_waiting_for_a_busy_pool_trips_no_breaker(url: str) -> None:
    from fingerprint.redis_io import QueueTimeout
    from fingerprint.redis_store import RedisHistoryStore

    store = RedisHistoryStore.from_url(url, timeout=0.2, max_connections=1)

    async def run() -> Any:
        pool = store._async_pool()  # hold its only connection slot, as a slow call would
        async with pool._slots:
            with pytest.raises(QueueTimeout):
                await store.arecord_and_fetch(_login(0), WINDOWS)
        return await store.arecord_and_fetch(_login(1), WINDOWS)

    view = asyncio.run(run())
    assert [e.ts for e in view.account_events] == []  # the queued login was never sent
    stats = store.stats()
    assert (stats.queue_timeouts, stats.timeouts, stats.breaker_trips) == (1, 1, 0)
    assert not stats.breaker_open
    store.close()


# --- 4: the timeout is the whole call's deadline -------------------------------------------


class DripServer:
    """A loopback server that answers every command with an empty history reply,
    one byte every ``interval`` seconds: each read is quick, the reply is slow."""

    REPLY = b"*2\r\n*0\r\n*0\r\n"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self._listener.getsockname()[1]}/0"
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                while not self._stop.is_set() and (command := conn.recv(65_536)):
                    # redis-py's connection handshake (CLIENT SETINFO): +OK each
                    reply = b"+OK\r\n" * command.count(b"CLIENT") or self.REPLY
                    for byte in reply:
                        if self._stop.wait(self.interval):
                            return
                        conn.sendall(bytes([byte]))
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


@pytest.fixture
def drip() -> Iterator[DripServer]:
    server = DripServer(interval=0.1)  # 14 bytes: 1.4 s a reply, 0.1 s a read
    yield server
    server.close()


def test_a_dripping_server_costs_a_call_its_deadline_not_a_read_timeout(
    drip: DripServer,
) -> None:
    checker = Checker(CheckerConfig(history=drip.url, history_timeout=0.3))
    report = checker.check(make_session(session_id="slow"))
    for name in HISTORY_CHECKS:
        assert "DeadlineExceeded" in report.not_evaluated[name], name
    stats = checker.stats()
    assert (stats.degraded, stats.lost_writes, stats.history_timeouts) == (1, 1, 1)
    assert stats.history is not None and stats.history.breaker_open
    # The breaker is open: the next call skips Redis instead of paying the deadline.
    assert _lost(checker.check(make_session(session_id="next", ts=T0 + 1)))
    assert checker.stats().history.fast_failures == 1  # type: ignore[union-attr]
    checker.close()


def test_a_dripping_server_costs_an_async_call_its_deadline(drip: DripServer) -> None:
    checker = Checker(CheckerConfig(history=drip.url, history_timeout=0.3))
    report = asyncio.run(checker.acheck(make_session(session_id="slow")))
    assert "DeadlineExceeded" in report.not_evaluated["ip_hopping"]
    assert checker.stats().history_timeouts == 1
    checker.close()


def test_the_deadline_covers_the_retry_on_a_fresh_connection(drip: DripServer) -> None:
    from fingerprint.redis_io import DeadlineExceeded, SyncConnection, endpoint_of
    from fingerprint.redis_store import RedisHistoryStore

    store = RedisHistoryStore.from_url(drip.url, timeout=0.3)
    # An idle connection the server has dropped: the call retries on a new one,
    # and that retry only gets what is left of the same deadline.
    import redis

    endpoint = endpoint_of(store._client.connection_pool, redis)
    assert endpoint is not None
    dead = SyncConnection(endpoint, time.monotonic() + 5)
    dead.close()
    store._idle.append(dead)
    with pytest.raises(DeadlineExceeded):
        store.record_and_fetch(_login(0), WINDOWS)
    assert drip.connections == 2  # the dropped one, then one retry
    store.close()


def test_a_closed_port_fails_once_then_fast() -> None:
    checker = Checker(
        CheckerConfig(history=f"redis://127.0.0.1:{free_port()}/0", history_timeout=0.05)
    )
    first = checker.check(make_session(session_id="one"))
    second = checker.check(make_session(session_id="two", ts=T0 + 1))
    assert "ConnectionRefusedError" in first.not_evaluated["ip_hopping"]
    assert "marked unavailable" in second.not_evaluated["ip_hopping"]
    history = checker.stats().history
    assert history is not None
    assert (history.failures, history.fast_failures, history.breaker_trips) == (2, 1, 1)
    checker.close()


# --- 5: a client per event loop ---------------------------------------------------------------


def test_each_event_loop_gets_its_own_connections(url: str) -> None:
    from fingerprint.redis_store import RedisHistoryStore

    store = RedisHistoryStore.from_url(url, timeout=2.0)
    seen = []
    for n in range(3):  # asyncio.run: a new loop each time, the last one closed
        view = asyncio.run(store.arecord_and_fetch(_login(n), WINDOWS))
        seen.append([e.ts for e in view.account_events])
    assert seen == [[], [T0], [T0, T0 + 1]]
    assert len(store._async_pools) == 1  # closed loops' pools are dropped

    results: list[Any] = []

    def in_another_thread() -> None:
        results.append(asyncio.run(store.arecord_and_fetch(_login(9, "b"), WINDOWS)))

    worker = threading.Thread(target=in_another_thread)
    worker.start()
    worker.join(timeout=30)
    assert results and results[0].account_events == ()
    assert store.stats().failures == 0
    store.close()


# --- 6: logging and counters ------------------------------------------------------------------


def test_the_library_adds_only_a_null_handler() -> None:
    import fingerprint

    handlers = logging.getLogger(fingerprint.__name__).handlers
    assert handlers and all(isinstance(h, logging.NullHandler) for h in handlers)
    assert logging.getLogger("fingerprint.history").handlers == []


def test_outage_and_recovery_are_logged_and_counted(
    server: RedisServer, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from fingerprint.redis_store import RedisHistoryStore

    store = RedisHistoryStore.from_url(url, timeout=2.0, retry_after=0.05)
    caplog.set_level(logging.INFO, logger="fingerprint.history")
    store.record_and_fetch(_login(0), WINDOWS)
    server.stop()
    try:
        for n in range(1, 4):
            with pytest.raises(OSError):  # refused, then fast failures
                store.record_and_fetch(_login(n), WINDOWS)
    finally:
        server.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            store.record_and_fetch(_login(9), WINDOWS)
            break
        except OSError:
            time.sleep(0.06)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    recoveries = [r for r in caplog.records if "recovered" in r.getMessage()]
    assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()
    assert len(recoveries) == 1 and recoveries[0].name == "fingerprint.history"
    stats = store.stats()
    assert stats.breaker_trips == 1 and not stats.breaker_open and stats.failures >= 3
    store.close()


def test_rule_reloads_are_logged_and_counted(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    from fingerprint.errors import RulesError

    checker = Checker()
    caplog.set_level(logging.INFO, logger="fingerprint.rules")
    checker.reload_rules()
    broken = tmp_path / "rules"
    shutil.copytree(checker.rules.directory, broken)
    (broken / "checks.yaml").write_text("checks:\n  no_such_check: {}\n", encoding="utf-8")
    with pytest.raises(RulesError):
        checker.reload_rules(broken)
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert messages[0][0] == logging.INFO and "rules reloaded" in messages[0][1]
    assert messages[1][0] == logging.WARNING and "old rules kept" in messages[1][1]
    stats = checker.stats()
    assert (stats.rule_reloads, stats.rule_reload_failures) == (1, 1)
    assert stats.history is None  # the memory store keeps no failure counters


def test_future_rejects_are_counted() -> None:
    from fingerprint import InvalidSessionError

    checker = Checker(clock=lambda: float(T0))
    with pytest.raises(InvalidSessionError):
        checker.check(make_session(ts=T0 + 86_400))
    assert checker.stats().future_rejects == 1


def test_a_timeout_among_successes_trips_no_breaker_but_refusals_do() -> None:
    from fingerprint.redis_io import DeadlineExceeded
    from fingerprint.redis_store import _Breaker

    breaker = _Breaker(retry_after=60.0)
    breaker.failed(DeadlineExceeded("no success yet"))
    assert breaker.stats().breaker_open  # nothing answered: Redis is down
    breaker = _Breaker(retry_after=60.0)
    breaker.succeeded()
    breaker.failed(DeadlineExceeded("waited behind a saturated event loop"))
    assert not breaker.stats().breaker_open  # Redis answered a moment ago
    assert breaker.stats().timeouts == 1
    breaker.failed(ConnectionRefusedError("refused"))
    assert breaker.stats().breaker_open and breaker.stats().breaker_trips == 1
