"""Shared fixtures: one bundled checker, a realistic session factory, paths."""

from __future__ import annotations

import copy
import csv
import io
import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fingerprint import Checker, CheckerConfig
from fingerprint.errors import ConfigError
from fingerprint.inputs import read_items
from fingerprint.session import field_kinds

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
TEST_ASN_DB = FIXTURES / "mmdb" / "test-asn.mmdb"
TEST_ANON_DB = FIXTURES / "mmdb" / "test-anonymous-ip.mmdb"

BASE_SESSION: dict[str, Any] = {
    "session_id": "s-000187",
    "account_id": "u-10442",
    "ts": "2026-11-20T08:15:30+08:00",
    "ip": "223.104.3.17",
    "user_agent": (
        "Mozilla/5.0 (Linux; Android 13; V2218A Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/107.0.5304.141 Mobile Safari/537.36 "
        "MicroMessenger/8.0.43"
    ),
    "device": {
        "device_id": "d-5b1e0c",
        "platform": "android",
        "os_version": "13",
        "brand": "vivo",
        "manufacturer": "vivo",
        "model": "V2218A",
        "hardware": "mt6895",
        "build_fingerprint": "vivo/PD2218/PD2218:13/TP1A.220624.014/compiler01:user/release-keys",
        "cpu_abi": ["arm64-v8a", "armeabi-v7a"],
        "sensors": ["accelerometer", "gyroscope", "magnetometer", "light", "proximity"],
        "battery": {"level": 0.83, "charging": False, "temperature_c": 31.2},
        "screen": {"width": 1080, "height": 2400, "density": 440},
        "has_telephony": True,
        "sim": {"state": "ready", "mcc_mnc": "46011", "carrier": "中国电信"},
        "timezone": "Asia/Shanghai",
        "locale": "zh-CN",
        "rooted": False,
        "hooks": [],
        "debugger_attached": False,
        "system_props": {"ro.kernel.qemu": "0", "ro.hardware": "mt6895"},
        "files_present": [],
        "installed_packages": ["com.tencent.mm", "com.eg.android.AlipayGphone"],
    },
    "app": {
        "package": "com.tencent.mm",
        "version": "8.0.43",
        "data_dir": "/data/user/0/com.tencent.mm",
        "uid": 10234,
        "process_uid": 10234,
        "loaded_libs": [],
    },
    "network": {
        "type": "cellular",
        "vpn_active": False,
        "http_proxy": None,
        "interfaces": ["rmnet_data0", "wlan0"],
        "dns": ["114.114.114.114"],
    },
    "auth": {"method": "sms", "face_verified": True, "result": "success"},
}


def make_session(**changes: Any) -> dict[str, Any]:
    """The contract's example session with top-level or dotted (``device.model``) changes."""
    session = copy.deepcopy(BASE_SESSION)
    for key, value in changes.items():
        target = session
        parts = key.split("__") if "__" in key else key.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return session


def mutated_session(changes: list[tuple[str, Any]]) -> dict[str, Any]:
    """The contract's example session with ``(dotted path, value)`` changes applied in
    order; a path through a value that is no object replaces it with one (fuzzing)."""
    session = make_session()
    for path, value in changes:
        target: Any = session
        parts = path.split(".")
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        target[parts[-1]] = value
    return session


@pytest.fixture(scope="session")
def checker() -> Checker:
    return Checker()


@pytest.fixture
def fresh_checker() -> Callable[..., Checker]:
    def build(**config: Any) -> Checker:
        return Checker(CheckerConfig(**config))

    return build


@pytest.fixture
def session() -> Callable[..., dict[str, Any]]:
    return make_session


def sigint_as_a_terminal_sends_it() -> None:
    """``preexec_fn`` of a run a test stops with SIGINT. A test runner started in the
    background (``nohup``, ``&`` in a script) hands its children SIGINT ignored, and a
    run keeps a signal it was started with ignored (fingerprint.stopping): Ctrl-C
    would then do nothing, whatever the code under test does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def sigint_raises() -> Iterator[None]:
    """SIGINT raising KeyboardInterrupt in this process, as an interactive start gives
    it (see :func:`sigint_as_a_terminal_sends_it`), for the test's duration."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def csv_lines(lines: list[bytes], *, newline_in: str | None = None) -> list[bytes]:
    """JSON lines as a CSV file's lines: its header, then one row each (SESSION-LOG.md:
    dotted columns, lists and objects as JSON cells, flags as true/false). With
    ``newline_in``, that column's cell holds a newline in every row: the row spans
    two lines."""
    objects = {name for name, kind in field_kinds().items() if kind == "object"}

    def flat(record: dict[str, Any], prefix: str, row: dict[str, str]) -> None:
        for key, value in record.items():
            name = prefix + key
            if isinstance(value, dict) and name not in objects:
                flat(value, name + ".", row)
            elif isinstance(value, dict | list):
                row[name] = json.dumps(value, ensure_ascii=False)
            elif isinstance(value, bool):
                row[name] = "true" if value else "false"
            elif value is not None:
                row[name] = str(value)

    rows = []
    for line in lines:
        row: dict[str, str] = {}
        flat(json.loads(line), "", row)
        if newline_in is not None:
            row[newline_in] = row.get(newline_in, "") + "\nmore"
        rows.append(row)
    columns = sorted({name for row in rows for name in row})
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode().splitlines(keepends=True)


def items_as_read(name: str, data: bytes) -> list[tuple[str, int, str]]:
    """What the reader makes of ``data`` given as ``name``, less the name the items
    carry: each item's kind, line and record (or error), as text. A CSV header without
    a required column stops a run (the one error the reader raises): one item says so."""
    try:
        return [
            (
                type(item).__name__,
                item.line,
                repr(getattr(item, "record", getattr(item, "error", ""))),
            )
            for item in read_items(name, io.BytesIO(data))
        ]
    except ConfigError:
        return [("ConfigError", 0, "")]
