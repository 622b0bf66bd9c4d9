"""A sharded run's workers observe the lines other workers check (their device's and
address's accounts, their identity links): exactly what the owner records of the
same line, and nothing for a line the owner rejects."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fingerprint import Checker, InvalidSessionError
from fingerprint.cli import main
from fingerprint.features.identity import IdentityHasher, identity_of
from fingerprint.history import HistoryView, Link, LoginEvent, MemoryHistoryStore, Windows
from fingerprint.session import Battery, Device, parse_block
from fingerprint.stages.observe import IdentityMemo
from tests.conftest import make_session, mutated_session

# 2026-11-20T00:15:30Z, the example session's time: the clock a little after it.
NOW = 1_795_220_130.0 + 60

Recorded = tuple[Any, ...]


class SpyStore(MemoryHistoryStore):
    """A memory store that notes the device and address sides of what it records
    (what another account's check can read back) and the identity links."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Recorded] = []

    def record_and_fetch(
        self, event: LoginEvent, windows: Windows, now: float | None = None
    ) -> HistoryView:
        self._note(event, windows)
        return super().record_and_fetch(event, windows, now)

    def record_device(self, event: LoginEvent, windows: Windows, now: float | None = None) -> None:
        self._note(event, windows)
        super().record_device(event, windows, now)

    def record_links(
        self, links: Any, ts: float, windows: Windows, now: float | None = None
    ) -> dict[str, tuple[tuple[float, str], ...]]:
        self.seen.append(("links", ts, tuple(links)))
        return super().record_links(links, ts, windows, now)

    def _note(self, event: LoginEvent, windows: Windows) -> None:
        if event.device_id or (windows.ip_seconds and event.ip):
            shared = (event.ts, event.account_id, event.device_id, event.ip, event.network)
            self.seen.append(("login", *shared))


OWNER_STORE, OBSERVER_STORE = SpyStore(), SpyStore()
OWNER = Checker(history=OWNER_STORE)
OBSERVER = Checker(history=OBSERVER_STORE)

text = st.text(max_size=12)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
# What the observer reads (the time, the account, the address, the identity
# attributes) and fields it does not read but the owner validates.
FIELDS = [
    "session_id",
    "account_id",
    "ip",
    "device",
    "device.device_id",
    "device.android_id",
    "device.drm_id",
    "device.oaid",
    "device.idfv",
    "device.model",
    "device.memory_total",
    "device.storage_total",
    "device.cpu_cores",
    "device.cpu_info",
    "device.boot_time",
    "device.build_time",
    "device.kernel_version",
    "device.battery",
    "device.battery.level",
    "device.screen.width",
    "device.system_props",
    "device.sim.state",
    "device.hooks",
    "app.uid",
    "app.loaded_libs",
    "network.type",
    "network.vpn_active",
    "auth",
    "user_agent",
]
# Plausible values next to arbitrary ones, so most mutated records stay valid.
plausible = {
    "device.device_id": st.sampled_from(["d-1", "d-2", "0000", " D-1 "]),
    "device.android_id": st.sampled_from(["a1b2c3d4e5f60718", "ffffffff"]),
    "device.drm_id": st.sampled_from(["9f8e7d6c5b4a39281706f5e4d3c2b1a0"]),
    "device.memory_total": st.integers(min_value=0, max_value=2**64),
    "device.storage_total": st.integers(min_value=0, max_value=2**64),
    "device.cpu_cores": st.integers(min_value=-1, max_value=5000),
    "device.cpu_info": st.sampled_from(["MT6895", "Qualcomm"]),
    "device.boot_time": st.integers(min_value=-1, max_value=2**41),
    "ip": st.sampled_from(["223.104.3.17", "::ffff:10.0.0.1", "2408:8000::1", "1.2.3"]),
    "account_id": st.sampled_from(["u-1", "u-2", " ", ""]),
    "ts": st.sampled_from(
        ["2026-11-20T08:15:30+08:00", "2026-11-20T08:30:00+08:00", "2099-01-01T00:00:00Z"]
    )
    | st.floats(min_value=1.7e9, max_value=1.8e9),
}
changes = st.one_of(
    st.tuples(st.sampled_from(FIELDS), json_values),
    st.sampled_from(sorted(plausible)).flatmap(lambda f: st.tuples(st.just(f), plausible[f])),
)


def recorded_by_owner(record: dict[str, Any]) -> list[Recorded] | None:
    """What checking the line records of its shared sides; None when rejected."""
    OWNER_STORE.seen.clear()
    try:
        OWNER.check(record, now=NOW)
    except InvalidSessionError:
        assert not OWNER_STORE.seen
        return None
    return list(OWNER_STORE.seen)


def recorded_by_observer(record: dict[str, Any]) -> list[Recorded]:
    OBSERVER_STORE.seen.clear()
    recorded = OBSERVER.observe_device(record, now=NOW)
    assert recorded == bool(OBSERVER_STORE.seen)
    return list(OBSERVER_STORE.seen)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(changes, max_size=4))
def test_a_foreign_line_records_what_its_owner_records_and_nothing_when_rejected(
    changes: list[tuple[str, Any]],
) -> None:
    record = mutated_session(changes)
    owner = recorded_by_owner(record)
    # The observer runs second and often on a device content it has seen (its
    # identity memo answers), the owner never shares its memo.
    observer = recorded_by_observer(record)
    assert observer == (owner or [])


def test_a_foreign_line_dated_after_the_clock_is_ignored_as_its_owner_rejects_it() -> None:
    record = make_session(ts=NOW + 3600)
    assert recorded_by_owner(record) is None
    assert recorded_by_observer(record) == []


# --- the identity memo ----------------------------------------------------------------


# Each attribute from a small pool, so generated devices often differ in one or two
# attributes only: the memo must tell exactly those apart.
IDENTITY_POOLS: dict[str, list[Any]] = {
    "device_id": ["dev-0001", "dev-0002", "d-1"],
    "android_id": ["a1b2c3d4e5f60718", "0000000000000000", "b1b2c3d4e5f60718"],
    "drm_id": ["9f8e7d6c5b4a39281706f5e4d3c2b1a0"],
    "oaid": ["6f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"],
    "idfv": ["E621E1F8-C36C-495A-93FC-0C247A3E6E5F"],
    "platform": ["android", "ios"],
    "manufacturer": ["vivo", "HUAWEI"],
    "brand": ["vivo", "HONOR"],
    "model": ["V2218A", "ELS-AN00", " "],
    "hardware": ["mt6895", "kirin990"],
    "board": ["k6895v1_64", "els"],
    "cpu_abi": [["arm64-v8a"], ["arm64-v8a", "x86_64"]],
    "sensors": [["gyroscope"], ["light", "gyroscope"]],
    "screen": [{"width": 1080, "height": 2400}, {"width": 2400, "height": 1080}],
    "memory_total": [8 << 30, 12 << 30, 11 << 30],
    "storage_total": [256 << 30, 512 << 30],
    "cpu_cores": [8, 4],
    "cpu_info": ["MT6895", "Kirin 990"],
    "build_fingerprint": ["vivo/PD2218/PD2218:13/TP1A/user/release-keys", "x/y:14/z"],
    "kernel_version": ["5.10.136", "4.19"],
    "build_time": [1_700_000_000, 1_710_000_000],
    "boot_time": [1_795_000_000, 1_795_100_000],
    "system_props": [{"ro.hardware": "qcom"}, {"ro.product.board": "sm8550"}],
}
identity_attributes = st.fixed_dictionaries(
    {}, optional={name: st.sampled_from(pool) for name, pool in IDENTITY_POOLS.items()}
)
batteries = st.builds(
    Battery,
    level=st.none() | st.floats(min_value=0, max_value=1),
    charging=st.none() | st.booleans(),
    temperature_c=st.none() | st.floats(min_value=-100, max_value=200),
)
HASHER = IdentityHasher()


# One device's attributes and a few others, each with one attribute changed (or
# taken away) and any battery.
edits = st.tuples(st.sampled_from(sorted(IDENTITY_POOLS)), st.none() | st.integers(0, 2), batteries)


@settings(max_examples=300, deadline=None)
@given(identity_attributes, st.lists(edits, min_size=1, max_size=8))
def test_the_identity_memo_answers_what_identity_of_computes(
    base: dict[str, Any], changes: list[tuple[str, int | None, Battery]]
) -> None:
    memo = IdentityMemo(HASHER, max_entries=4)  # small: refills are exercised too
    for name, choice, battery in changes:
        attributes = dict(base)
        if choice is None:
            attributes.pop(name, None)
        else:
            pool = IDENTITY_POOLS[name]
            attributes[name] = pool[choice % len(pool)]
        device = msgspec.structs.replace(parse_block(Device, attributes), battery=battery)
        # Twice: the second answer is the remembered one.
        assert memo.of(device) == identity_of(device, HASHER)
        assert memo.of(device) == identity_of(device, HASHER)


@given(identity_attributes, batteries, batteries)
def test_the_identity_never_reads_the_battery_the_memo_key_leaves_out(
    attributes: dict[str, Any], one: Battery, other: Battery
) -> None:
    device = parse_block(Device, attributes)
    assert identity_of(msgspec.structs.replace(device, battery=one), HASHER) == identity_of(
        msgspec.structs.replace(device, battery=other), HASHER
    )


def test_the_identity_memo_off_computes_every_time() -> None:
    device = parse_block(Device, {"android_id": "a1b2c3d4e5f60718", "model": "V2218A"})
    assert IdentityMemo(HASHER, max_entries=0).of(device) == identity_of(device, HASHER)
    assert IdentityMemo(HASHER, max_entries=0).of(None) == identity_of(None, HASHER)


# --- the whole run ---------------------------------------------------------------------


def shared_log(seed: int) -> list[bytes]:
    """Logins of a few accounts on a few phones and addresses (shared across
    accounts, so across shards), with identity attributes, renewed ids, invalid
    lines and lines dated after the clock among them."""
    rng = random.Random(seed)
    lines = []
    for n in range(120):
        phone = rng.randrange(4)
        device = {
            "device_id": f"dev-{phone}-{rng.randrange(2)}",  # renewed ids: device resets
            "android_id": f"a1b2c3d4e5f6071{phone}",
            "memory_total": 8 << 30,
            "storage_total": 256 << 30,
            "cpu_cores": 8,
            "battery": {"level": rng.random(), "charging": False, "temperature_c": 30.0},
        }
        record = make_session(
            session_id=f"s{n}",
            account_id=f"acct-{rng.randrange(9)}",
            ts=1_795_133_730 + n * 90,
            ip=f"223.104.{rng.randrange(3)}.{rng.randrange(1, 4)}",
        )
        record["device"].update(device)
        kind = rng.random()
        if kind < 0.06:
            record["device"]["cpu_cores"] = "eight"  # a wrong type: rejected
        elif kind < 0.09:
            record["ts"] = 1_795_133_730 + n * 90 + 86_400 * 30  # far ahead
        elif kind < 0.11:
            del record["ip"]
        lines.append(json.dumps(record).encode())
    return lines


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.integers(min_value=0, max_value=2**32))
def test_two_and_three_workers_write_what_one_writes_on_shared_devices(
    tmp_path_factory: Any, seed: int
) -> None:
    folder: Path = tmp_path_factory.mktemp("shared")
    source = folder / "in.jsonl"
    source.write_bytes(b"\n".join(shared_log(seed)) + b"\n")
    written = []
    for workers in ("1", "2", "3"):
        out, rejects = folder / f"w{workers}.jsonl", folder / f"r{workers}.jsonl"
        argv = ["check", str(source), "-o", str(out), "--rejects", str(rejects), "-q"]
        assert main([*argv, "--workers", workers]) == 0
        written.append((out.read_bytes(), rejects.read_bytes()))
    assert written[0] == written[1] == written[2]
    assert written[0][1]  # some lines were rejected


def test_links_recorded_by_the_observer_are_the_owners(tmp_path: Path) -> None:
    """One identified phone: the observer records its reset and forged links."""
    record = make_session(
        **{
            "device.android_id": "a1b2c3d4e5f60718",
            "device.memory_total": 8 << 30,
            "device.storage_total": 256 << 30,
            "device.cpu_cores": 8,
            "device.boot_time": 1_795_000_000,
        }
    )
    owner = recorded_by_owner(record)
    assert owner is not None
    links: list[Link] = [link for entry in owner if entry[0] == "links" for link in entry[2]]
    assert links  # the case exercises the links
    assert recorded_by_observer(record) == owner
