"""Shared history in a real Redis: same answers as memory, atomic under concurrency,
fail-open (or closed) when Redis is down, self-recovery, asyncio."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import pytest

from fingerprint import Checker, CheckerConfig
from fingerprint.history import LoginEvent, Windows, session_digest
from tests.conftest import make_session
from tests.redis_server import RedisServer, require_redis_server

T0 = 1_795_133_730
IPS = ["202.106.0.20", "202.96.128.86", "61.139.2.69", "114.114.114.114", "223.5.5.5"]
HISTORY_CHECKS = ["ip_hopping", "device_sharing", "device_churn"]


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


def sessions(accounts: int = 6, per_account: int = 12) -> list[dict[str, Any]]:
    """Interleaved logins: hoppers, device churn, and a device shared by accounts."""
    out = []
    for n in range(per_account):
        for a in range(accounts):
            device = "shared-phone" if a < 3 and n % 4 == 0 else f"dev-{a}-{n % 3}"
            out.append(
                make_session(
                    session_id=f"a{a}-{n}",
                    account_id=f"acct-{a}",
                    ts=T0 + n * 1500 + a,
                    ip=IPS[(n + a) % len(IPS)] if a % 2 else IPS[a % len(IPS)],
                    **{"device.device_id": device},
                )
            )
    return out


def essentials(report: Any) -> tuple[Any, ...]:
    data = report.to_dict()
    return (
        data["session_id"],
        data["grade"],
        data["score"],
        data["contributions"],
        data["not_evaluated"],
        [f["evidence"] for f in data["findings"]],
        # the stability features: the same numbers from either store
        data["features"]["stability_7d"],
        data["features"]["stability_30d"],
    )


def test_redis_store_answers_like_the_memory_store(url: str) -> None:
    memory = Checker()
    shared = Checker(CheckerConfig(history=url, history_timeout=2.0))
    for session in sessions():
        assert essentials(shared.check(session)) == essentials(memory.check(session))
    hits = [c for s in sessions() for c in memory.check(s).contributions]
    assert {"GEO_PROVINCE_HOPPING", "CHN_DEVICE_CHURN", "SHR_DEVICE_SHARED"} <= set(hits)


def test_eight_threads_lose_and_duplicate_nothing(url: str) -> None:
    all_sessions = sessions(accounts=16, per_account=10)
    checker = Checker(CheckerConfig(history=url, history_timeout=2.0))
    by_account: dict[str, list[dict[str, Any]]] = {}
    for s in all_sessions:
        by_account.setdefault(s["account_id"], []).append(s)
    # Device sharing crosses accounts, so it depends on the interleaving; give every
    # account its own devices here and compare everything.
    for account_sessions in by_account.values():
        for s in account_sessions:
            s["device"]["device_id"] = f"{s['account_id']}-{s['device']['device_id']}"
    expected = {}
    sequential = Checker()
    for s in all_sessions:
        expected[s["session_id"]] = essentials(sequential.check(s))
    with ThreadPoolExecutor(max_workers=8) as pool:
        batches = pool.map(lambda batch: [checker.check(s) for s in batch], by_account.values())
        got = {r.session_id: essentials(r) for batch in batches for r in batch}
    assert got == expected
    from fingerprint.redis_store import RedisHistoryStore

    store = RedisHistoryStore.from_url(url, timeout=2.0)
    for account, account_sessions in by_account.items():
        stored = [e.session_digest for e in store.account_events(account)]
        assert sorted(stored) == sorted(session_digest(s["session_id"]) for s in account_sessions)


def test_concurrent_appends_to_one_account_are_atomic(url: str) -> None:
    from fingerprint.redis_store import RedisHistoryStore

    store = RedisHistoryStore.from_url(url, timeout=2.0)
    windows = Windows(account_seconds=86_400, device_seconds=86_400)

    def login(n: int) -> int:
        event = _login(n, T0 + n, "hot", "phone")
        return len(store.record_and_fetch(event, windows).account_events)

    with ThreadPoolExecutor(max_workers=8) as pool:
        seen = sorted(pool.map(login, range(150)))
    stored = [e.session_digest for e in store.account_events("hot")]
    assert stored == [session_digest(f"s{n}") for n in range(150)]
    # Each call saw the logins before it in time that had arrived: never more than n.
    assert seen[-1] <= 149 and len(set(seen)) > 1


def _check_in_process(url: str, batch: list[dict[str, Any]], queue: Any) -> None:
    checker = Checker(CheckerConfig(history=url, history_timeout=2.0))
    queue.put([essentials(checker.check(s)) for s in batch])


def test_two_processes_share_one_history(url: str) -> None:
    all_sessions = sessions(accounts=8, per_account=8)
    for s in all_sessions:
        s["device"]["device_id"] = f"{s['account_id']}-{s['device']['device_id']}"
    sequential = Checker()
    expected = {s["session_id"]: essentials(sequential.check(s)) for s in all_sessions}
    halves = [[s for s in all_sessions if int(s["account_id"][-1]) % 2 == k] for k in (0, 1)]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [
        context.Process(target=_check_in_process, args=(url, half, queue)) for half in halves
    ]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    got = {r[0]: r for batch in results for r in batch}
    assert got == expected


def test_outage_is_fail_open_and_recovers(server: RedisServer, url: str) -> None:
    checker = Checker(CheckerConfig(history=url, history_timeout=2.0))
    closed = Checker(CheckerConfig(history=url, history_timeout=2.0, fail_closed=True))
    assert "ip_hopping" not in checker.check(make_session(session_id="before")).not_evaluated
    server.stop()
    try:
        started = time.perf_counter()
        report = checker.check(make_session(session_id="during", ts=T0 + 60))
        elapsed = time.perf_counter() - started
        for name in [*HISTORY_CHECKS, "history"]:
            assert report.not_evaluated[name].startswith("history store unavailable"), name
        assert report.grade == "A"  # fail-open: the outage costs the user nothing
        assert elapsed < 5  # bounded by the socket timeout, not hanging
        conservative = closed.check(make_session(session_id="closed", ts=T0 + 61))
        assert "HIS_UNAVAILABLE" in conservative.contributions
        assert conservative.grade != "A"
    finally:
        server.start()
    deadline = time.monotonic() + 10
    recovered = None
    while time.monotonic() < deadline:
        recovered = checker.check(make_session(session_id="after", ts=T0 + 120))
        if "ip_hopping" not in recovered.not_evaluated:
            break
        time.sleep(0.2)
    assert recovered is not None and "ip_hopping" not in recovered.not_evaluated


def test_acheck_gives_the_same_results(url: str) -> None:
    sync_checker = Checker()
    async_checker = Checker(CheckerConfig(history=url, history_timeout=2.0))

    async def run_all() -> list[Any]:
        return [essentials(await async_checker.acheck(s)) for s in sessions(4, 6)]

    got = asyncio.run(run_all())
    assert got == [essentials(sync_checker.check(s)) for s in sessions(4, 6)]


def test_keys_expire_on_their_own(url: str) -> None:
    import redis

    Checker(CheckerConfig(history=url, history_timeout=2.0)).check(make_session())
    client = redis.Redis.from_url(url)
    keys = client.keys("fp:*")
    assert keys
    assert all(0 < client.ttl(key) <= 30 * 86_400 + 3600 for key in keys)  # longest window


def test_memory_store_threads_lose_nothing() -> None:
    from fingerprint.history import MemoryHistoryStore

    store = MemoryHistoryStore()
    windows = Windows(account_seconds=86_400, device_seconds=86_400)

    def login(n: int) -> None:
        store.record_and_fetch(
            LoginEvent(
                T0 + n,
                session_digest(f"s{n}"),
                "hot",
                "phone",
                "1.1.1.1",
                None,
                None,
                None,
                None,
                False,
            ),
            windows,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(login, range(150)))
    final = store.record_and_fetch(
        LoginEvent(
            T0 + 999, session_digest("last"), "hot", None, "1.1.1.1", None, None, None, None, False
        ),
        windows,
    )
    kept = [e.session_digest for e in final.account_events]
    assert kept == [session_digest(f"s{n}") for n in range(150)]


def test_cli_with_redis_history(url: str, tmp_path: Any) -> None:
    import json

    from fingerprint.cli import main

    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(s) + "\n" for s in sessions(3, 6)), encoding="utf-8")
    memory_out, redis_out = tmp_path / "m.jsonl", tmp_path / "r.jsonl"
    assert main(["check", str(source), "-o", str(memory_out), "-q", "--workers", "1"]) == 0
    assert (
        main(
            [
                "check",
                str(source),
                "-o",
                str(redis_out),
                "-q",
                "--workers",
                "1",
                "--history",
                url,
                "--history-timeout",
                "2",
            ]
        )
        == 0
    )
    assert memory_out.read_bytes() == redis_out.read_bytes()
    assert main(["check", str(source), "--history", "mongodb://x"]) == 2


def _login(n: int, ts: float, account: str, device: str | None, **extra: Any) -> LoginEvent:
    return LoginEvent(
        ts,
        session_digest(f"s{n}"),
        account,
        device,
        "1.1.1.1",
        "CN-BJ",
        39.9,
        116.4,
        50,
        False,
        **extra,
    )


def test_store_views_match_the_memory_store_through_trimming(url: str) -> None:
    import random

    from fingerprint.history import MemoryHistoryStore
    from fingerprint.redis_store import RedisHistoryStore

    store = RedisHistoryStore.from_url(url, timeout=2.0)
    memory = MemoryHistoryStore()
    windows = Windows(account_seconds=100, device_seconds=40)
    rng = random.Random(5)
    ts = float(T0)
    for n in range(400):
        ts += rng.choice([0.5, 1, 3, 7.25, 20])
        event = _login(
            n,
            ts,
            f"acct-{rng.randrange(5)}",
            rng.choice([None, "d1", "d2", "d3"]),
            network="1.1.1.0/24",
            asn=rng.choice([None, 4837]),
            hour=n % 24,
            ip_relay=rng.random() < 0.2,
        )
        # The same view, less the memory store's own packed window (Redis keeps none).
        kept = msgspec.structs.replace(memory.record_and_fetch(event, windows), packed=None)
        assert store.record_and_fetch(event, windows) == kept
    store.close()


def test_a_client_that_decodes_responses_reads_the_same_history(url: str) -> None:
    import redis

    from fingerprint.redis_store import RedisHistoryStore

    plain = RedisHistoryStore(redis.Redis.from_url(url))
    decoding = RedisHistoryStore(redis.Redis.from_url(url, decode_responses=True))
    windows = Windows(account_seconds=100, device_seconds=40)
    for n in range(6):
        store = plain if n % 2 else decoding
        view = store.record_and_fetch(_login(n, T0 + n, "a", "phone"), windows)
        assert [e.ts for e in view.account_events] == [T0 + k for k in range(n)]
        assert [e.account_id for e in view.account_events] == ["a"] * n
        assert view.device_accounts == (((T0 + n - 1, "a"),) if n else ())
    plain.close()
    decoding.close()


def test_caps_and_late_logins(url: str) -> None:
    import redis

    from fingerprint.redis_store import RedisHistoryStore

    store = RedisHistoryStore.from_url(url, timeout=2.0)
    client = redis.Redis.from_url(url)
    windows = Windows(
        account_seconds=100, device_seconds=40, max_events_per_account=5, max_accounts_per_device=3
    )
    views = [store.record_and_fetch(_login(n, T0 + n, "a", None), windows) for n in range(8)]
    assert [e.ts for e in views[-1].account_events] == [T0 + 3, T0 + 4, T0 + 5, T0 + 6]
    assert [e.ts for e in store.account_events("a")] == [T0 + n for n in range(3, 8)]
    # A late login lands in time order; here the cap drops it at once, the oldest.
    late = store.record_and_fetch(_login(99, T0 + 2.5, "a", None), windows)
    assert late.account_events == ()
    assert [e.ts for e in store.account_events("a")] == [T0 + n for n in range(3, 8)]

    for n in range(5):
        store.record_and_fetch(_login(10 + n, T0 + 10 * n, f"acct-{n}", "shared"), windows)
    # Window and cap are counted from the device's newest login (T0 + 40): acct-0
    # fell out of the window, and only the 3 newest accounts stay.
    stored = client.zrange("fp:d:shared", 0, -1, withscores=True)
    assert stored == [(b"acct-2", T0 + 20), (b"acct-3", T0 + 30), (b"acct-4", T0 + 40)]
    view = store.record_and_fetch(_login(20, T0 + 15, "acct-9", "shared"), windows)
    assert view.device_accounts == ((T0 + 20, "acct-2"), (T0 + 30, "acct-3"), (T0 + 40, "acct-4"))
    # The late login (T0 + 15) is kept by the window (newest - 40 = T0 + 0) but the cap
    # drops the oldest of the four.
    stored = client.zrange("fp:d:shared", 0, -1, withscores=True)
    assert stored == [(b"acct-2", T0 + 20), (b"acct-3", T0 + 30), (b"acct-4", T0 + 40)]
    # The device window too runs back from the newest login, not from a late one's ts.
    client.zadd("fp:d:other", {"stale": T0 - 5})
    store.record_and_fetch(_login(30, T0 + 40, "x", "other"), windows)
    client.zadd("fp:d:other", {"stale": T0 - 5})  # as if left by a writer without a trim
    view = store.record_and_fetch(_login(31, T0 + 15, "y", "other"), windows)
    assert view.device_accounts == ((T0 - 5, "stale"), (T0 + 40, "x"))
    stored = client.zrange("fp:d:other", 0, -1, withscores=True)
    assert stored == [(b"y", T0 + 15), (b"x", T0 + 40)]
    assert all(0 < client.ttl(key) <= 100 + 3600 for key in client.keys("fp:*"))
    store.close()


def test_members_keep_their_stored_form_and_old_members_decode(url: str) -> None:
    import orjson
    import redis

    from fingerprint.redis_store import RedisHistoryStore

    store = RedisHistoryStore.from_url(url, timeout=2.0)
    client = redis.Redis.from_url(url)
    windows = Windows(account_seconds=86_400, device_seconds=86_400)
    event = _login(1, T0, "a", "phone", network="1.1.1.0/24", asn=4837, hour=7)
    store.record_and_fetch(event, windows)
    # Replicas of other versions read and dedupe these bytes: a JSON array of every
    # field but the account, in field order.
    fields = [name for name in LoginEvent._fields if name != "account_id"]
    assert client.zrange("fp:a:a", 0, -1) == [orjson.dumps([getattr(event, f) for f in fields])]
    # A member written before the network fields existed: they take their defaults.
    older = orjson.dumps([T0 + 1, 5, "phone", "2.2.2.2", None, None, None, None, True])
    client.zadd("fp:a:a", {older: T0 + 1})
    view = store.record_and_fetch(_login(2, T0 + 2, "a", "phone"), windows)
    assert view.account_events == (
        event,
        LoginEvent(T0 + 1, 5, "a", "phone", "2.2.2.2", None, None, None, None, True),
    )
    assert view.device_accounts == ((float(T0), "a"),)
    store.close()


def test_lost_script_and_dropped_connections_are_no_outage(url: str) -> None:
    import redis

    from fingerprint.redis_store import RedisHistoryStore

    store = RedisHistoryStore.from_url(url, timeout=2.0, retry_after=60)
    admin = redis.Redis.from_url(url)
    windows = Windows(account_seconds=86_400, device_seconds=86_400)
    store.record_and_fetch(_login(0, T0, "a", "phone"), windows)
    admin.script_flush()
    view = store.record_and_fetch(_login(1, T0 + 1, "a", "phone"), windows)
    assert [e.ts for e in view.account_events] == [T0]
    admin.client_kill_filter(_type="normal", skipme=True)
    view = store.record_and_fetch(_login(2, T0 + 2, "a", "phone"), windows)
    assert [e.ts for e in view.account_events] == [T0, T0 + 1]
    store.record_device(_login(3, T0 + 3, "b", "phone"), windows)
    admin.script_flush()

    async def later() -> Any:
        return await store.arecord_and_fetch(_login(4, T0 + 4, "a", "phone"), windows)

    view = asyncio.run(later())
    assert [e.ts for e in view.account_events] == [T0, T0 + 1, T0 + 2]
    assert view.device_accounts == ((T0 + 2, "a"), (T0 + 3, "b"))
    store.close()


def _fetch_in_child(store: Any, queue: Any) -> None:
    windows = Windows(account_seconds=86_400, device_seconds=86_400)
    view = store.record_and_fetch(_login(1, T0 + 1, "a", None), windows)
    queue.put([e.ts for e in view.account_events])


def test_a_forked_child_opens_its_own_connections(url: str) -> None:
    from fingerprint.redis_store import RedisHistoryStore

    store = RedisHistoryStore.from_url(url, timeout=2.0)
    windows = Windows(account_seconds=86_400, device_seconds=86_400)
    store.record_and_fetch(_login(0, T0, "a", None), windows)  # leaves an idle connection
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_fetch_in_child, args=(store, queue))
    child.start()
    assert queue.get(timeout=60) == [T0]
    child.join(timeout=60)
    view = store.record_and_fetch(_login(2, T0 + 2, "a", None), windows)
    assert [e.ts for e in view.account_events] == [T0, T0 + 1]
    store.close()


def test_accounts_per_address_match_the_memory_store(url: str) -> None:
    """ip_accounts' history: the same accounts per address and per block, through
    trimming, caps, IPv6 /64s and addresses without a device."""
    import random

    from fingerprint.history import MemoryHistoryStore
    from fingerprint.redis_store import RedisHistoryStore

    store = RedisHistoryStore.from_url(url, timeout=2.0)
    memory = MemoryHistoryStore(evict_every=7)
    windows = Windows(100, 40, ip_seconds=30, max_accounts_per_ip=4)
    addresses = ["9.9.9.1", "9.9.9.2", "9.9.8.1", "2409:8a5c:1:2::1", "2409:8a5c:1:2::9"]
    rng = random.Random(11)
    ts = float(T0)
    found = 0
    for n in range(400):
        ts += rng.choice([0.5, 1, 3, 7.25, 20])
        ip = rng.choice(addresses)
        block = None if ":" in ip else ip.rsplit(".", 1)[0] + ".0/24"
        event = _login(n, ts, f"acct-{rng.randrange(8)}", rng.choice([None, "d1"]), network=block)
        event = event._replace(ip=ip)
        shared, local = (
            store.record_and_fetch(event, windows),
            memory.record_and_fetch(event, windows),
        )
        assert sorted(shared.ip_accounts) == sorted(local.ip_accounts), n
        assert sorted(shared.block_accounts) == sorted(local.block_accounts), n
        found += len(local.ip_accounts) > 1
    assert found > 50  # the walk did put several accounts on one address
    store.close()


def test_cli_counts_accounts_per_address_in_redis_as_in_memory(url: str, tmp_path: Any) -> None:
    import json

    from fingerprint.cli import main

    source = tmp_path / "farm.jsonl"
    logins = [
        {"account_id": f"farm-{i}", "ts": T0 + i * 120, "ip": "36.110.20.5"} for i in range(14)
    ]
    source.write_text("".join(json.dumps(s) + "\n" for s in logins), encoding="utf-8")
    outputs = []
    for extra in ([], ["--history", url, "--history-timeout", "2"]):
        out = tmp_path / f"out{len(extra)}.jsonl"
        assert main(["check", str(source), "-o", str(out), "-q", "--workers", "1", *extra]) == 0
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0].count(b'"code":"IPA_MANY_ACCOUNTS"') == 5
