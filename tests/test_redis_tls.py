"""rediss:// history through the library's own TLS connections: one deadline per
call (the TLS handshake included), a pool per event loop, redis-py's URL options
honoured or refused."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fingerprint import Checker, CheckerConfig
from fingerprint.errors import ConfigError
from fingerprint.history import LoginEvent, Windows, session_digest
from tests.conftest import make_session
from tests.redis_server import TLSRedisServer, make_certificates, require_redis_server

T0 = 1_795_133_730
WINDOWS = Windows(account_seconds=86_400, device_seconds=86_400)
HISTORY_CHECKS = ("ip_hopping", "device_sharing", "device_churn", "history")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSRedisServer]:
    binary = require_redis_server()
    # The certificate names localhost only: 127.0.0.1 fails the host-name check.
    certificates = make_certificates(tmp_path_factory.mktemp("tls"), server_names="DNS:localhost")
    running = TLSRedisServer(binary, certificates)
    running.start()
    yield running
    running.close()


@pytest.fixture
def url(server: TLSRedisServer) -> str:
    import redis

    redis.Redis.from_url(server.url).flushdb()
    return server.url


def _login(n: int, account: str = "a") -> LoginEvent:
    return LoginEvent(
        T0 + n, session_digest(f"s{n}"), account, "phone", "1.1.1.1", None, None, None, None, False
    )


def _store(url: str, timeout: float = 5.0) -> Any:
    from fingerprint.redis_store import RedisHistoryStore

    store = RedisHistoryStore.from_url(url, timeout=timeout)
    # Our own deadline-bounded connections, not redis-py's per-read timeout.
    assert store._endpoint is not None and store._endpoint.tls is not None
    assert store._async_client is None
    return store


def test_history_round_trips_over_tls(url: str) -> None:
    store = _store(url)
    assert store.record_and_fetch(_login(0), WINDOWS).account_events == ()
    view = store.record_and_fetch(_login(1), WINDOWS)
    assert [e.ts for e in view.account_events] == [T0]
    assert view.device_accounts == ((float(T0), "a"),)
    assert [e.ts for e in store.account_events("a")] == [T0, T0 + 1]  # through redis-py
    store.close()


def test_async_history_round_trips_over_tls(url: str) -> None:
    store = _store(url)

    async def two_logins() -> list[list[int]]:
        first = await store.arecord_and_fetch(_login(0), WINDOWS)
        second = await store.arecord_and_fetch(_login(1), WINDOWS)
        return [[e.ts for e in v.account_events] for v in (first, second)]

    assert asyncio.run(two_logins()) == [[], [T0]]
    assert store.stats().failures == 0
    store.close()


def test_each_event_loop_gets_its_own_tls_connections(url: str) -> None:
    store = _store(url)
    seen = []
    for n in range(3):  # asyncio.run: a new loop each time, the last one closed
        view = asyncio.run(store.arecord_and_fetch(_login(n), WINDOWS))
        seen.append([e.ts for e in view.account_events])
    assert seen == [[], [T0], [T0, T0 + 1]]
    assert len(store._async_pools) == 1  # closed loops' pools are dropped
    assert store.stats().failures == 0
    store.close()


def test_a_checker_grades_with_tls_history(url: str) -> None:
    checker = Checker(CheckerConfig(history=url, history_timeout=5.0))
    for n in range(2):
        report = checker.check(make_session(session_id=f"s{n}", ts=T0 + n))
        assert not set(HISTORY_CHECKS) & set(report.not_evaluated), report.not_evaluated
    assert checker.stats().degraded == 0
    checker.close()


# --- the URL's TLS options are honoured ------------------------------------------------------


def test_the_certificate_is_verified_against_the_url_ca(server: TLSRedisServer) -> None:
    # Without ssl_ca_certs the system's CAs do not know the test CA: the call fails
    # (degraded, not raised); ssl_cert_reqs=none accepts the same server.
    bare = server.url.split("?")[0]
    report = Checker(CheckerConfig(history=bare, history_timeout=5.0)).check(make_session())
    assert "SSLCertVerificationError" in report.not_evaluated["ip_hopping"]
    store = _store(f"{bare}?ssl_cert_reqs=none")
    store.record_and_fetch(_login(0), WINDOWS)
    store.close()


def test_the_host_name_is_checked_unless_the_url_says_not(server: TLSRedisServer) -> None:
    by_address = server.url.replace("localhost", "127.0.0.1")
    report = Checker(CheckerConfig(history=by_address, history_timeout=5.0)).check(make_session())
    assert "SSLCertVerificationError" in report.not_evaluated["ip_hopping"]
    store = _store(f"{by_address}&ssl_check_hostname=false")
    store.record_and_fetch(_login(0), WINDOWS)
    store.close()


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("ssl_validate_ocsp=true", "ssl_validate_ocsp"),
        ("ssl_ocsp_expected_cert=abc", "ssl_ocsp_expected_cert"),
        ("ssl_cert_reqs=maybe", "ssl_cert_reqs"),
        ("ssl_ca_certs=/nonexistent/ca.pem", "FileNotFoundError"),
        ("ssl_certfile=/nonexistent/client.pem", "FileNotFoundError"),
    ],
)
def test_tls_options_it_cannot_honour_are_refused_at_start(query: str, named: str) -> None:
    pytest.importorskip("redis")
    with pytest.raises(ConfigError) as refused:
        Checker(CheckerConfig(history=f"rediss://localhost:6379/0?{query}"))
    message = str(refused.value)
    assert named in message and "\n" not in message


@given(st.from_regex(r"ssl_[a-z_]{1,20}", fullmatch=True))
def test_any_unknown_ssl_option_is_refused(name: str) -> None:
    from fingerprint.redis_io import _TLS_OPTIONS, tls_context

    if name in _TLS_OPTIONS:
        return
    with pytest.raises(ConfigError, match=name):
        tls_context({name: "1"})


def test_a_client_certificate_and_key_are_loaded(server: TLSRedisServer) -> None:
    from fingerprint.redis_io import tls_context

    files = server.certificates
    context = tls_context({"ssl_certfile": str(files["cert"]), "ssl_keyfile": str(files["key"])})
    assert context.verify_mode.name == "CERT_REQUIRED" and context.check_hostname
    with pytest.raises(ConfigError, match="rediss://"):  # a key that is not the cert's
        tls_context({"ssl_certfile": str(files["cert"]), "ssl_keyfile": str(files["ca_key"])})


# --- a handshake that never completes costs the call its deadline ------------------------------


class SilentServer:
    """Accepts TCP connections on loopback and never says a word: a TLS client
    waits for the server's half of the handshake forever."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"rediss://127.0.0.1:{self._listener.getsockname()[1]}/0?ssl_cert_reqs=none"
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self._held.append(self._listener.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self._listener.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    pytest.importorskip("redis")
    server = SilentServer()
    yield server
    server.close()


def test_a_handshake_that_never_completes_costs_a_call_its_deadline(
    silent: SilentServer,
) -> None:
    checker = Checker(CheckerConfig(history=silent.url, history_timeout=0.3))
    report = checker.check(make_session(session_id="stuck"))
    for name in HISTORY_CHECKS:
        assert "DeadlineExceeded" in report.not_evaluated[name], name
    stats = checker.stats()
    assert (stats.degraded, stats.history_timeouts) == (1, 1)
    checker.close()


def test_an_async_handshake_that_never_completes_costs_a_call_its_deadline(
    silent: SilentServer,
) -> None:
    checker = Checker(CheckerConfig(history=silent.url, history_timeout=0.3))
    report = asyncio.run(checker.acheck(make_session(session_id="stuck")))
    for name in HISTORY_CHECKS:
        assert "DeadlineExceeded" in report.not_evaluated[name], name
    assert checker.stats().history_timeouts == 1
    checker.close()
