"""Time is an input, not the clock: a login dated far ahead is judged against the
checker's clock, and no login moves history's windows for other accounts or devices."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingerprint import Checker, CheckerConfig, InvalidSessionError
from fingerprint.errors import ConfigError
from fingerprint.history import LoginEvent, MemoryHistoryStore, Windows, session_digest
from tests.conftest import make_session
from tests.redis_server import RedisServer, require_redis_server

T0 = 1_795_133_730  # 2026-11-20
Y2099 = 4_070_908_800.0  # 2099-01-01, inside the accepted 1990..2100 range
WINDOWS = Windows(account_seconds=7 * 86_400, device_seconds=7 * 86_400)


def _login(n: int, ts: float, account: str, device: str | None) -> LoginEvent:
    return LoginEvent(
        ts, session_digest(f"s{n}"), account, device, "1.1.1.1", None, None, None, None, False
    )


def test_a_login_dated_2099_evicts_no_other_account_from_memory() -> None:
    store = MemoryHistoryStore(evict_every=1)  # evict on every call: the worst case
    now = float(T0 + 100)
    for n in range(40):
        store.record_and_fetch(_login(n, T0 + n, f"acct-{n}", f"dev-{n}"), WINDOWS, now=now)
    store.record_and_fetch(_login(99, Y2099, "outlier", "dev-0"), WINDOWS, now=now)
    for n in range(40):
        view = store.record_and_fetch(
            _login(100 + n, T0 + 50 + n, f"acct-{n}", f"dev-{n}"), WINDOWS, now=now
        )
        assert [e.ts for e in view.account_events] == [T0 + n], n
    assert store.accounts() == 41


def test_the_eviction_clock_is_the_callers_not_the_newest_login() -> None:
    store = MemoryHistoryStore(evict_every=1)
    store.record_and_fetch(_login(0, T0, "a", None), WINDOWS, now=T0)
    # The caller's clock passing a window does evict: eviction still works.
    store.record_and_fetch(_login(1, T0 + 8 * 86_400, "b", None), WINDOWS, now=T0 + 8 * 86_400)
    assert store.accounts() == 1


@settings(max_examples=40, deadline=None)
@given(
    offsets=st.lists(st.integers(0, 3 * 86_400), min_size=1, max_size=30),
    accounts=st.lists(st.integers(0, 4), min_size=30, max_size=30),
    devices=st.lists(st.integers(0, 2), min_size=30, max_size=30),
    outlier_ts=st.floats(T0 + 3 * 86_400, 4_102_444_799),
    at=st.integers(0, 29),
)
def test_one_login_dated_after_the_clock_changes_no_other_accounts_view(
    offsets: list[int], accounts: list[int], devices: list[int], outlier_ts: float, at: int
) -> None:
    now = float(T0 + 3 * 86_400)
    events = [
        _login(n, T0 + offset, f"acct-{accounts[n]}", f"dev-{devices[n]}")
        for n, offset in enumerate(sorted(offsets))
    ]
    outlier = _login(999, outlier_ts, "outlier", "dev-0")

    def views(with_outlier: bool) -> list[Any]:
        store = MemoryHistoryStore(evict_every=1)
        seen = []
        for n, event in enumerate(events):
            if with_outlier and n == min(at, len(events) - 1):
                store.record_and_fetch(outlier, WINDOWS, now=now)
            view = store.record_and_fetch(event, WINDOWS, now=now)
            others = tuple(pair for pair in view.device_accounts if pair[1] != "outlier")
            seen.append((view.account_events, others))
        return seen

    assert views(True) == views(False)


def test_the_checker_rejects_a_login_dated_after_its_clock() -> None:
    checker = Checker(clock=lambda: float(T0))
    with pytest.raises(InvalidSessionError) as caught:
        checker.check(make_session(session_id="future", ts=Y2099))
    assert caught.value.field == "ts"
    assert "ahead of the clock" in caught.value.reason
    # Within the tolerance (servers' clocks drift): accepted.
    assert checker.check(make_session(session_id="drift", ts=T0 + 299)).grade
    # A call's own clock reading overrides the checker's (a batch run's log time).
    assert checker.check(make_session(session_id="replay", ts=Y2099), now=Y2099).grade
    # No clock at all: each login's own time is trusted.
    assert Checker(clock=None).check(make_session(session_id="free", ts=Y2099)).grade


def test_the_tolerance_is_configurable_and_checked() -> None:
    strict = Checker(CheckerConfig(future_tolerance=0.0), clock=lambda: float(T0))
    with pytest.raises(InvalidSessionError):
        strict.check(make_session(ts=T0 + 1))
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="future_tolerance"):
            Checker(CheckerConfig(future_tolerance=bad))


def _churn_reports(checker: Checker, outlier: bool) -> list[Any]:
    reports = []
    for n in range(4):
        for a in range(30):
            if outlier and n == 1 and a == 0:
                with pytest.raises(InvalidSessionError):
                    checker.check(make_session(session_id="x", account_id="x", ts=Y2099))
            session = make_session(
                session_id=f"a{a}-{n}",
                account_id=f"acct-{a}",
                ts=T0 + n * 600 + a,
                **{"device.device_id": f"dev-{a}-{n}"},
            )
            reports.append(checker.check(session).contributions)
    return reports


def test_churn_detection_survives_a_login_dated_2099() -> None:
    def fresh() -> Checker:
        return Checker(history=MemoryHistoryStore(evict_every=1), clock=lambda: float(T0 + 3600))

    clean = _churn_reports(fresh(), outlier=False)
    attacked = _churn_reports(fresh(), outlier=True)
    assert attacked == clean
    # every account's third and fourth logins (a third device in the window)
    assert sum("CHN_DEVICE_CHURN" in c for c in attacked) == 2 * 30


# --- Redis -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    server = RedisServer(require_redis_server())
    server.start()
    yield server.url
    server.close()


def test_a_login_dated_2099_trims_no_shared_device_in_redis(redis_url: str) -> None:
    import redis

    from fingerprint.redis_store import RedisHistoryStore

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    store = RedisHistoryStore.from_url(redis_url, timeout=2.0)
    now = float(T0 + 100)
    for n in range(6):
        store.record_and_fetch(_login(n, T0 + n, f"acct-{n}", "shared"), WINDOWS, now=now)
    store.record_and_fetch(_login(9, Y2099, "outlier", "shared"), WINDOWS, now=now)
    store.record_device(_login(10, Y2099, "outlier-2", "shared"), WINDOWS, now=now)
    members = {m.decode() for m in client.zrange("fp:d:shared", 0, -1)}
    assert {f"acct-{n}" for n in range(6)} <= members
    view = store.record_and_fetch(_login(11, T0 + 50, "next", "shared"), WINDOWS, now=now)
    assert {who for _, who in view.device_accounts} >= {f"acct-{n}" for n in range(6)}
    store.close()


def test_the_checker_keeps_a_shared_device_flagged_in_redis(redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    checker = Checker(
        CheckerConfig(history=redis_url, history_timeout=2.0), clock=lambda: float(T0 + 3600)
    )

    def login(account: str, ts: float) -> Any:
        return checker.check(
            make_session(
                session_id=f"{account}@{ts}",
                account_id=account,
                ts=ts,
                **{"device.device_id": "shared"},
            )
        )

    for n in range(6):
        login(f"acct-{n}", T0 + n)
    with pytest.raises(InvalidSessionError):
        login("evader", Y2099)
    assert "SHR_DEVICE_SHARED" in login("next", T0 + 60).contributions
    checker.close()
