"""The derived device key, its levels and drift, the identity checks and their labelled set."""

from __future__ import annotations

import json
import pickle
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from hashlib import blake2b
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingerprint import Checker, CheckerConfig
from fingerprint.checks.identity import identity_links
from fingerprint.features.identity import (
    CONFIDENT_MATCH,
    DEFAULT_SECRET,
    LEVEL_HARDWARE,
    LEVEL_ID,
    IdentityHasher,
    _usable,
    content_identity,
    for_device_id,
    identity_of,
)
from fingerprint.history import MemoryHistoryStore, Windows
from fingerprint.session import Device, parse_block
from fixtures.identity import build
from fixtures.identity.evaluate import evaluate, identity_sets

GB = 1_000_000_000


def _device(**changes: Any) -> dict[str, Any]:
    device: dict[str, Any] = {
        "device_id": "d-1",
        "platform": "android",
        "os_version": "13",
        "brand": "vivo",
        "manufacturer": "vivo",
        "model": "V2218A",
        "hardware": "mt6895",
        "board": "k6895v1_64",
        "build_fingerprint": "vivo/PD2218/PD2218:13/TP1A.220624.014:user/release-keys",
        "cpu_abi": ["arm64-v8a", "armeabi-v7a"],
        "sensors": ["accelerometer", "gyroscope", "light"],
        "screen": {"width": 1080, "height": 2400, "density": 440},
        "memory_total": 7_400_000_000,
        "storage_total": 247 * GB,
        "cpu_cores": 8,
        "cpu_info": "cpuinfo-mt6895",
        "kernel_version": "5.10.149-android13",
        "build_time": 1_688_000_000,
        "boot_time": 1_790_000_000,
        "boot_count": 300,
        "first_install_time": 1_780_000_000,
        "android_id": "9774d56d682e549c",
        "drm_id": "a3f1" * 16,
    }
    device.update(changes)
    return device


HASHER = IdentityHasher(b"test-secret")


def _identity(**changes: Any) -> Any:
    return identity_of(parse_block(Device, _device(**changes)), HASHER)


# --- the identity the device verdict keeps ---------------------------------------------

_IDS = st.one_of(
    st.none(),
    st.sampled_from(["", "  ", "0000-0000", "AbC-123", "d-1", " d-2 ", "ffff"]),
    st.text(max_size=12),
)


@settings(max_examples=200, deadline=None)
@given(
    first=_IDS,
    then=_IDS,
    drm=st.sampled_from([None, "a3f1" * 16, "0" * 32]),
    android=st.sampled_from([None, "9774d56d682e549c", ""]),
    oaid=st.sampled_from([None, "00000000-0000-0000-0000-000000000000", "oa-77"]),
    memory=st.sampled_from([None, 7_400_000_000]),
    cores=st.sampled_from([None, 8]),
)
def test_the_content_identity_with_a_login_s_id_is_that_login_s_identity(
    first: str | None,
    then: str | None,
    drm: str | None,
    android: str | None,
    oaid: str | None,
    memory: int | None,
    cores: int | None,
) -> None:
    # The verdict keeps the identity of one login's device content less its id; a
    # later login of the same content under another id must get exactly the identity
    # recognising it from scratch gives (every level: id, hardware, software, none).
    content = {"drm_id": drm, "android_id": android, "oaid": oaid, "memory_total": memory}
    content["cpu_cores"] = cores
    kept = content_identity(_identity(device_id=first, **content))
    assert for_device_id(kept, then, HASHER) == _identity(device_id=then, **content)
    assert all(kind != "device_id" for kind, _ in kept.identifiers)


# --- the key, its levels and confidence ------------------------------------------------


def test_levels_follow_what_the_session_sends() -> None:
    assert _identity().level == LEVEL_ID
    assert _identity().confidence == 0.99
    hardware = _identity(drm_id=None, android_id=None)
    assert hardware.level == LEVEL_HARDWARE
    assert hardware.confidence is not None and hardware.confidence < CONFIDENT_MATCH
    software = _identity(
        drm_id=None, android_id=None, memory_total=None, storage_total=None, cpu_info=None
    )
    assert software.level == "software"
    assert software.confidence is not None and software.confidence < CONFIDENT_MATCH
    assert identity_of(parse_block(Device, {"device_id": "x"}), HASHER).key is None


def test_placeholder_identifiers_are_no_identity() -> None:
    """An all-zero OAID (tracking limited) names no phone: it must not merge phones."""
    zeros = _identity(drm_id=None, android_id=None, oaid="00000000-0000-0000-0000-000000000000")
    assert zeros.level == LEVEL_HARDWARE
    assert zeros.identifier("oaid") is None


def test_identical_phones_share_a_hardware_key_below_the_confident_match() -> None:
    first = _identity(drm_id=None, android_id=None, device_id="d-a")
    second = _identity(drm_id=None, android_id=None, device_id="d-b")
    assert first.key == second.key  # one model configuration: indistinguishable
    assert not first.confident


def test_a_copied_identifier_on_other_hardware_makes_another_key() -> None:
    victim = _identity()
    clone = _identity(model="PGEM10", hardware="mt6983")
    assert victim.confident and clone.confident
    assert victim.key != clone.key
    assert victim.identifier("drm_id") == clone.identifier("drm_id")


def test_keys_are_keyed_hashes_never_the_raw_value() -> None:
    identity = _identity()
    other = identity_of(parse_block(Device, _device()), IdentityHasher(b"another"))
    assert identity.key != other.key  # the secret changes every key
    raw = json.dumps([identity.key, identity.hardware_key, identity.identifiers])
    for value in ("9774d56d682e549c", "a3f1a3f1", "d-1"):
        assert value not in raw


# --- drift: the same phone keeps its key -----------------------------------------------

_BUILDS = st.sampled_from(
    [
        ("14", "UP1A.231005.007", "5.15.94-android14", 1_700_000_000),
        ("15", "AP3A.240905.015", "6.1.75-android15", 1_730_000_000),
        ("13", "TP1A.221105.002", "5.10.168-android13", 1_690_000_000),
    ]
)


@settings(max_examples=60, deadline=None)
@given(
    build_=_BUILDS,
    memory_drift=st.integers(min_value=-120_000_000, max_value=60_000_000),
    storage_drift=st.integers(min_value=-2 * GB, max_value=2 * GB),
    boot=st.integers(min_value=0, max_value=10**6),
    version=st.sampled_from(["5.2.0", "5.3.1", "6.0.0"]),
    drm=st.booleans(),
)
def test_os_and_app_updates_keep_the_key(
    build_: tuple[str, str, str, int],
    memory_drift: int,
    storage_drift: int,
    boot: int,
    version: str,
    drm: bool,
) -> None:
    """An OS update changes build, kernel, build time, the RAM and storage the OS
    reports and the boot; an app update changes none of the hardware. The id and
    hardware levels keep their key; the software level is the one that moves."""
    os_version, build_id, kernel, built = build_
    base = {} if drm else {"drm_id": None, "android_id": None}
    before = _identity(**base)
    after = _identity(
        **base,
        os_version=os_version,
        build_fingerprint=f"vivo/PD2218/PD2218:{os_version}/{build_id}:user/release-keys",
        kernel_version=kernel,
        build_time=built,
        memory_total=7_400_000_000 + memory_drift,
        storage_total=247 * GB + storage_drift,
        boot_time=1_790_000_000 + boot,
        boot_count=300 + boot % 7,
    )
    assert after.key == before.key
    assert after.hardware_key == before.hardware_key
    assert after.level == before.level


# --- the checks through the checker -----------------------------------------------------


def _session(n: int, account: str, device: dict[str, Any], minutes: int = 0) -> dict[str, Any]:
    at = datetime(2026, 11, 3, 9, 0, tzinfo=UTC) + timedelta(hours=n, minutes=minutes)
    return {
        "session_id": f"s-{account}-{n}",
        "account_id": account,
        "ts": at.isoformat(),
        "ip": "223.104.3.17",
        "device": device,
    }


def _run(sessions: list[dict[str, Any]]) -> list[Any]:
    checker = Checker(CheckerConfig(device_memo_size=0), clock=None)
    return [checker.check(s) for s in sessions]


def _codes(report: Any) -> list[str]:
    return [f.code for f in report.findings]


def test_a_reset_phone_stays_one_device_for_churn_and_stability() -> None:
    """Six device ids and Android ids, one DRM id and hardware: one phone reset six
    times. Churn and the stability features count it once; device_reset names it."""
    sessions = [
        _session(
            n, "u-1", _device(device_id=f"d-{n}", android_id=f"{n:04d}aaaa{n:04d}", boot_time=n)
        )
        for n in range(6)
    ]
    reports = _run(sessions)
    last = reports[-1]
    assert "CHN_DEVICE_CHURN" not in _codes(last)
    assert last.features["stability_7d"]["devices"] == 1
    assert last.features["stability_7d"]["new_device"] is False
    assert "DEV_ID_RESET" in _codes(last)
    assert "DEV_ID_RESET" not in _codes(reports[0])


def test_a_tool_renewing_the_android_id_within_one_boot_is_a_reset() -> None:
    first = _session(0, "u-1", _device())
    second = _session(1, "u-2", _device(device_id="d-2", android_id="1111222233334444"))
    reports = _run([first, second])
    assert "DEV_ID_RESET" in _codes(reports[1])


def test_a_reinstall_is_no_reset() -> None:
    reports = _run([_session(0, "u-1", _device()), _session(5, "u-1", _device(device_id="d-new"))])
    assert not any(f.check == "device_reset" for f in reports[1].findings)


def test_five_accounts_on_one_phone_are_one_device_farm() -> None:
    sessions = [_session(n, f"u-{n}", _device(device_id=f"d-{n}")) for n in range(5)]
    reports = _run(sessions)
    assert "DEV_FARM" in _codes(reports[-1])
    assert "DEV_FARM" not in _codes(reports[-2])


def test_five_owners_of_identical_phones_are_no_farm() -> None:
    bare = {"drm_id": None, "android_id": None}
    sessions = [_session(n, f"u-{n}", _device(device_id=f"d-{n}", **bare)) for n in range(6)]
    reports = _run(sessions)
    assert all(r.features["device_key_confidence"] < CONFIDENT_MATCH for r in reports)
    assert not any(f.check in ("device_farm", "device_reset") for r in reports for f in r.findings)
    assert "device_farm" in reports[-1].not_evaluated


def test_one_device_id_on_two_hardware_keys_is_forged() -> None:
    victim = _session(0, "u-1", _device())
    clone = _session(1, "u-2", _device(model="PGEM10", hardware="mt6983", drm_id="b7" * 32))
    reports = _run([victim, clone])
    assert "DEV_FORGED_ID" in _codes(reports[1])
    assert not any(f.check == "device_forged" for f in reports[0].findings)


def test_reports_carry_the_key_never_the_raw_identifiers() -> None:
    (report,) = _run([_session(0, "u-1", _device())])
    assert report.features["device_key_level"] == LEVEL_ID
    assert report.features["device_key_confidence"] == 0.99
    text = json.dumps(report.to_dict(), ensure_ascii=False)
    assert "9774d56d682e549c" not in text and "a3f1a3f1" not in text


def test_the_secret_changes_the_key_and_the_default_is_reproducible() -> None:
    session = _session(0, "u-1", _device())
    default_a = Checker(CheckerConfig(), clock=None).check(session)
    default_b = Checker(CheckerConfig(), clock=None).check(session)
    secret = Checker(CheckerConfig(identity_secret="s3cret"), clock=None).check(session)
    assert default_a.features["device_key"] == default_b.features["device_key"]
    assert secret.features["device_key"] != default_a.features["device_key"]
    assert "s3cret" not in repr(CheckerConfig(identity_secret="s3cret"))


# --- the memory store keeps links bounded -----------------------------------------------


def test_links_are_bounded_and_trimmed_to_their_window() -> None:
    store = MemoryHistoryStore()
    windows = Windows(3600, 3600, link_seconds=100.0, max_members_per_link=4)
    for n in range(10):
        store.record_links([("r:k", (f"m{n}",))], float(n), windows)
    found = store.record_links([("r:k", ("m10",))], 10.0, windows)
    assert [m for _, m in found["r:k"]] == ["m6", "m7", "m8", "m9"]
    later = store.record_links([("r:k", ("m11",))], 500.0, windows)
    assert later["r:k"] == ()


def test_a_link_with_no_members_is_read_and_never_fails_the_store() -> None:
    # A confident key whose device sends no identifier a reset link carries (a DRM id
    # alone) adds its link with no members: found on a fuzzed line, the store raised
    # (max() of nothing), so the login was graded without history.
    store = MemoryHistoryStore()
    windows = Windows(3600, 3600, link_seconds=100.0)
    assert store.record_links([("r:k", ())], 1.0, windows) == {"r:k": ()}
    store.record_links([("r:k", ("m1",))], 2.0, windows)
    assert store.record_links([("r:k", ())], 3.0, windows) == {"r:k": ((2.0, "m1"),)}


def test_a_device_known_by_its_drm_id_alone_is_checked_with_history() -> None:
    device = _device(android_id=None, oaid=None, idfv=None)
    checker = Checker(CheckerConfig(), clock=None)
    report = checker.check(_session(0, "u-drm", device))
    assert not any("history store unavailable" in r for r in report.not_evaluated.values())
    assert checker.stats().lost_writes == 0


# --- the labelled sets -------------------------------------------------------------------


def test_the_committed_set_rebuilds_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "devices.jsonl"
    build.main(["-o", str(out)])
    assert out.read_bytes() == build.OUTPUT.read_bytes()


@pytest.mark.parametrize("path", identity_sets(), ids=lambda p: p.name)
def test_each_labelled_set_meets_the_bar(path: Path) -> None:
    result = evaluate(path)
    assert result.checks, f"{path.name} labels no check"
    for check, cell in result.checks.items():
        assert cell.positives, f"{path.name}: no positives for {check}"
        assert cell.precision >= 0.98, cell.describe(check)
        assert cell.recall >= 0.95, cell.describe(check)
    # Identical phones of different owners are never one confident key.
    owners: dict[str, set[str]] = defaultdict(set)
    for sid, label in result.labels.items():
        features = result.reports[sid]["features"]
        confident = (features.get("device_key_confidence") or 0) >= CONFIDENT_MATCH
        if label["kind"] == "identical_phones" and confident:
            owners[features["device_key"]].add(result.reports[sid]["account_id"])
    assert all(len(accounts) == 1 for accounts in owners.values())


def test_the_cli_reads_the_secret_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fingerprint.cli import IDENTITY_SECRET_ENV, identity_secret
    from fingerprint.errors import ConfigError

    monkeypatch.delenv(IDENTITY_SECRET_ENV, raising=False)
    assert identity_secret(None) is None
    monkeypatch.setenv(IDENTITY_SECRET_ENV, "from-env")
    assert identity_secret(None) == b"from-env"
    secret = tmp_path / "secret"
    secret.write_bytes(b"from-file\n")
    assert identity_secret(str(secret)) == b"from-file"
    with pytest.raises(ConfigError):
        identity_secret(str(tmp_path / "missing"))


# --- Redis: the same answers as memory, replicas sharing it ------------------------------


def _assert_the_memory_answers(got: list[Any], expected: list[Any]) -> None:
    """The identity checks found something, and every answer is the memory store's."""
    assert {"device_reset", "device_forged", "device_farm"} <= {
        f.check for r in got for f in r.findings
    }
    assert _identity_answers(got) == _identity_answers(expected)


def _identity_answers(reports: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (
            r.session_id,
            r.grade,
            sorted((f.code, f.message) for f in r.findings),
            r.features["device_key"],
            r.features.get("stability_7d"),
        )
        for r in reports
    ]


def test_redis_gives_the_memory_answers_with_two_replicas() -> None:
    from tests.redis_server import RedisServer, require_redis_server

    server = RedisServer(require_redis_server())
    server.start()
    try:
        lines = build.OUTPUT.read_text(encoding="utf-8").splitlines()
        kinds = ("reset_farm", "cloned", "account_farm")
        records = [
            record
            for record in map(json.loads, lines)
            if record["_label"]["kind"].startswith(kinds)
        ]
        config = CheckerConfig(device_memo_size=0)
        memory = Checker(config, clock=None)
        expected = [memory.check(r) for r in records]
        replicas = [Checker(replace_history(config, server.url), clock=None) for _ in range(2)]
        got = [replicas[n % 2].check(r) for n, r in enumerate(records)]
        for replica in replicas:
            replica.close()
        _assert_the_memory_answers(got, expected)
    finally:
        server.close()


def test_acheck_records_links_on_its_own_loop_with_the_sync_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """acheck awaits the identity links through the loop's pool: the sync client's
    record_links is never called, and the answers are the memory store's."""
    import asyncio

    from fingerprint.redis_store import RedisHistoryStore
    from tests.redis_server import RedisServer, require_redis_server

    server = RedisServer(require_redis_server())
    server.start()
    try:
        lines = build.OUTPUT.read_text(encoding="utf-8").splitlines()
        records = [
            record
            for record in map(json.loads, lines)
            if record["_label"]["kind"].startswith(("reset_farm", "cloned", "account_farm"))
        ]
        config = CheckerConfig(device_memo_size=0)
        memory = Checker(config, clock=None)
        expected = [memory.check(r) for r in records]

        def no_sync_call(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("acheck made a blocking record_links call")

        monkeypatch.setattr(RedisHistoryStore, "record_links", no_sync_call)
        checker = Checker(replace_history(config, server.url), clock=None)

        async def run_all() -> list[Any]:
            return [await checker.acheck(r) for r in records]

        got = asyncio.run(run_all())
        checker.close()
        _assert_the_memory_answers(got, expected)
    finally:
        server.close()


def replace_history(config: CheckerConfig, url: str) -> CheckerConfig:
    from dataclasses import replace

    return replace(config, history=url, history_timeout=5.0)


@given(st.sampled_from(["device_id", "key", "hardware"]), st.text(), st.binary(max_size=100))
def test_a_digest_is_the_keyed_blake2b_of_its_kind_and_value(
    kind: str, value: str, secret: bytes
) -> None:
    """The hasher copies a keyed state made once: each digest is still BLAKE2b keyed
    with the secret (hashed first when longer than 64 bytes) over "kind\\0value", and
    a hasher pickled (sent to a worker) digests alike."""
    hasher = IdentityHasher(secret)
    key = secret or DEFAULT_SECRET
    key = key if len(key) <= 64 else blake2b(key).digest()
    message = f"{kind}\0{value}".encode("utf-8", "surrogatepass")
    want = blake2b(message, key=key, digest_size=16).hexdigest()
    assert hasher.digest(kind, value) == hasher.digest(kind, value) == want
    assert pickle.loads(pickle.dumps(hasher)).digest(kind, value) == want


@given(st.text(alphabet="aA0- \t-", max_size=12) | st.text(max_size=40))
def test_an_identifier_names_something_unless_blank_short_or_one_character(value: str) -> None:
    """_usable counts the first character instead of building a set: the same answer."""
    text = value.strip().replace("-", "").lower()
    assert _usable(value) == (len(text) >= 4 and len(set(text)) > 1)


def _links_of(checker: Checker, record: dict[str, Any]) -> tuple[Any, ...]:
    prepared = checker.prepare(record, identify=True)
    device = prepared.session.device
    assert prepared.identity is not None
    return identity_links(prepared.identity, device.boot_time if device else None)


def _linked_records() -> list[dict[str, Any]]:
    lines = build.OUTPUT.read_text(encoding="utf-8").splitlines()
    kinds = ("reset_farm", "cloned", "account_farm")
    return [r for r in map(json.loads, lines) if r["_label"]["kind"].startswith(kinds)]


@pytest.mark.parametrize("way", ["sync", "async", "client"])
def test_redis_records_a_login_and_its_links_in_one_round_trip(
    way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A login with identity links is one script call, not two (the login, then its
    links): one round trip on the store's own connections, sync or awaited, or on the
    client's (a client built by hand); the answers are the memory store's."""
    import asyncio

    import redis

    from fingerprint.redis_io import AsyncPool
    from fingerprint.redis_store import (
        _RECORD_AND_FETCH,
        _RECORD_AND_FETCH_LINKS,
        RedisHistoryStore,
    )
    from tests.redis_server import RedisServer, require_redis_server

    server = RedisServer(require_redis_server())
    server.start()
    calls = [0]

    def counted(function: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            return function(*args, **kwargs)

        return call

    try:
        records = _linked_records()
        config = CheckerConfig(device_memo_size=0)
        memory = Checker(config, clock=None)
        linked = sum(bool(_links_of(memory, r)) for r in records)
        assert linked > len(records) // 2  # most of these logins add identity links
        expected = [memory.check(r) for r in records]
        loader = redis.Redis.from_url(server.url)  # scripts loaded: no NOSCRIPT retry
        for script in (_RECORD_AND_FETCH, _RECORD_AND_FETCH_LINKS):
            loader.script_load(script)
        loader.close()
        if way == "client":  # not the store's own connections: the client's commands
            client = redis.Redis.from_url(server.url, single_connection_client=True)
            store = RedisHistoryStore(client, timeout=5.0)
            assert store._endpoint is None
            monkeypatch.setattr(client, "execute_command", counted(client.execute_command))
            checker = Checker(config, history=store, clock=None)
        else:
            checker = Checker(replace_history(config, server.url), clock=None)
            if way == "sync":
                monkeypatch.setattr(RedisHistoryStore, "_call", counted(RedisHistoryStore._call))
            else:
                monkeypatch.setattr(AsyncPool, "call", counted(AsyncPool.call))
        got = []
        for record in records:
            before = calls[0]
            if way == "async":
                got.append(asyncio.run(checker.acheck(record)))
            else:
                got.append(checker.check(record))
            assert calls[0] - before == 1, record["session_id"]
        checker.close()
        _assert_the_memory_answers(got, expected)
    finally:
        server.close()
