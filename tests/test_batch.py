"""The CLI at production scale: many inputs, reordering, workers, robustness."""

from __future__ import annotations

import csv
import errno
import gc
import gzip
import io
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from fingerprint.batch import BatchOptions, BatchSinks, run_batch
from fingerprint.checker import CheckerConfig
from fingerprint.cli import main
from fingerprint.history import LoginEvent, MemoryHistoryStore, Windows
from tests.conftest import FIXTURES, make_session

LABELLED = FIXTURES / "labelled.jsonl"
T0 = 1_795_133_730
# Four provinces in order: three switches within two hours is province hopping.
HOP_IPS = ["202.106.0.20", "202.96.128.86", "61.139.2.69", "114.114.114.114"]


def run(argv: list[str]) -> int:
    return main([*argv, "-q"])


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write(path: Path, records: list[Any], *, raw: bytes = b"") -> Path:
    body = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)
    path.write_bytes(body + raw)
    return path


def hopper(account: str = "hop") -> list[dict[str, Any]]:
    return [
        make_session(
            session_id=f"{account}{n}",
            account_id=account,
            ts=T0 + n * 1800,
            ip=ip,
            **{"device.device_id": f"{account}-dev"},
        )
        for n, ip in enumerate(HOP_IPS)
    ]


# --- workers --------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["session", "account"])
def test_two_workers_write_exactly_what_one_writes(tmp_path: Path, by: str) -> None:
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    rejects1, rejects2 = tmp_path / "r1.jsonl", tmp_path / "r2.jsonl"
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"not json\n" + LABELLED.read_bytes()[:200_000].rsplit(b"\n", 1)[0] + b"\n")
    inputs = [str(LABELLED), str(bad)]
    assert (
        run(
            [
                "check",
                *inputs,
                "--by",
                by,
                "--workers",
                "1",
                "-o",
                str(one),
                "--rejects",
                str(rejects1),
            ]
        )
        == 0
    )
    assert (
        run(
            [
                "check",
                *inputs,
                "--by",
                by,
                "--workers",
                "2",
                "-o",
                str(two),
                "--rejects",
                str(rejects2),
            ]
        )
        == 0
    )
    assert one.read_bytes() == two.read_bytes()
    assert rejects1.read_bytes() == rejects2.read_bytes()
    assert len(lines_of(rejects1)) == 1


def _csv_of(records: list[dict[str, Any]]) -> str:
    """Records as CSV with dotted columns (``device.model``), containers as JSON cells."""
    rows = []
    for record in records:
        row: dict[str, Any] = {}
        for key, value in record.items():
            if isinstance(value, dict):
                row.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                row[key] = value
        rows.append(row)
    columns = sorted({column for row in rows for column in row})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


@pytest.mark.parametrize("workers", ["2", "3"])
def test_any_number_of_workers_writes_what_one_writes_from_mixed_inputs(
    tmp_path: Path, workers: str
) -> None:
    """CSV, gzip and plain JSON Lines in one run, out of time order across the files:
    a worker reads another's JSON line only for its time and account, and decodes
    the others' CSV rows in full. Both must shard, order and share history as one
    worker does."""
    # Devices shared by accounts, farms and crowded addresses: history across shards.
    csv_part = _unlabelled(FIXTURES / "identity" / "devices.jsonl")
    gzip_part = _unlabelled(FIXTURES / "identity" / "ip_accounts.jsonl")[:1500]
    plain_part = _unlabelled(LABELLED)[:500]
    (tmp_path / "a.csv").write_text(_csv_of(csv_part), encoding="utf-8")
    (tmp_path / "b.jsonl.gz").write_bytes(
        gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in gzip_part))
    )
    write(tmp_path / "c.jsonl", list(reversed(plain_part)), raw=b"not json\n")
    inputs = [str(tmp_path / name) for name in ("c.jsonl", "a.csv", "b.jsonl.gz")]
    outputs = []
    for count in ("1", workers):
        out, rejects = tmp_path / f"out{count}.jsonl", tmp_path / f"rejects{count}.jsonl"
        argv = ["check", *inputs, "--workers", count, "-o", str(out), "--rejects", str(rejects)]
        assert run([*argv, "-q"]) == 0
        outputs.append((out.read_bytes(), rejects.read_bytes()))
    assert outputs[0] == outputs[1]
    reports = lines_of(tmp_path / "out1.jsonl")
    lines = len(csv_part) + len(gzip_part) + len(plain_part)
    assert len(reports) == lines and len(lines_of(tmp_path / "rejects1.jsonl")) == 1
    codes = {code for r in reports for code in r["contributions"]}
    assert {"SHR_DEVICE_SHARED", "DEV_FARM", "IPA_MANY_ACCOUNTS"} <= codes, sorted(codes)


def _unlabelled(path: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in records]


def test_device_sharing_is_exact_across_shards(tmp_path: Path) -> None:
    """Accounts on one device land in different shards; sharing must still be seen."""
    sessions = [
        make_session(
            session_id=f"share{n}",
            account_id=f"acct-{n}",
            ts=T0 + n * 60,
            **{"device.device_id": "farm-phone"},
        )
        for n in range(6)
    ]
    source = write(tmp_path / "in.jsonl", sessions)
    outputs = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}.jsonl"
        run(["check", str(source), "--workers", workers, "-o", str(out)])
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    flagged = [
        r["session_id"]
        for r in lines_of(tmp_path / "w2.jsonl")
        if "SHR_DEVICE_SHARED" in r["contributions"]
    ]
    assert flagged == ["share2", "share3", "share4", "share5"]


# --- ordering -------------------------------------------------------------------------


def test_out_of_order_lines_are_checked_in_time_order(tmp_path: Path) -> None:
    shuffled = hopper()
    shuffled[1], shuffled[3] = shuffled[3], shuffled[1]  # up to 1 h out of order
    source = write(tmp_path / "in.jsonl", shuffled)
    out = tmp_path / "out.jsonl"
    run(["check", str(source), "-o", str(out), "--max-skew", "2h"])
    reports = lines_of(out)
    assert [r["session_id"] for r in reports] == [s["session_id"] for s in shuffled]
    hopping = {r["session_id"] for r in reports if "GEO_PROVINCE_HOPPING" in r["contributions"]}
    assert hopping == {"hop3"}  # the chronologically last login, whatever its line
    assert not any(r.get("warnings") for r in reports)


def _late_hopper() -> list[dict[str, Any]]:
    """hop3 (T0 + 1.5 h) comes after 70 lines from T0 + 3 h and 70 from T0 + 4 h: the
    buffer (its clock the oldest of the last 64 lines) has checked the first 70 by then,
    so hop3 is 1.5 h behind lines already checked."""
    sessions = hopper()
    newer = [
        make_session(session_id=f"other{n}", account_id=f"other{n}", ts=T0 + (3 + n // 70) * 3600)
        for n in range(140)
    ]
    return [*sessions[:3], *newer, sessions[3]]


def test_lines_later_than_the_skew_are_checked_and_noted_when_streamed(tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", _late_hopper())
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    argv = ["check", str(source), "-o", str(out), "--max-skew", "10m", "--sort", "never"]
    run([*argv, "--summary-json", str(summary)])
    reports = lines_of(out)
    assert [r["session_id"] for r in reports][-2:] == ["other139", "hop3"]  # input order
    late = reports[-1]
    assert any("late arrival: 5400 s" in w for w in late["warnings"])
    hops = [f for f in late["findings"] if f["code"] == "GEO_PROVINCE_HOPPING"]
    assert hops and hops[0]["evidence"]["late_arrival_seconds"] == 5400
    assert not any(r.get("warnings") for r in reports[:-1])
    order = json.loads(summary.read_text())["order"]
    assert order["sorted"] is False and order["late"] == 1
    assert order["max_late_seconds"] == 5400


def test_input_too_far_out_of_order_is_sorted_by_default(tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", _late_hopper())
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    run(["check", str(source), "-o", str(out), "--max-skew", "10m", "--summary-json", str(summary)])
    reports = lines_of(out)
    # Time order: hop3 (T0 + 1.5 h) before the 70 lines of T0 + 3 h; no line late.
    assert [r["session_id"] for r in reports][:5] == ["hop0", "hop1", "hop2", "hop3", "other0"]
    assert not any(r.get("warnings") for r in reports)
    assert "GEO_PROVINCE_HOPPING" in reports[3]["contributions"]
    order = json.loads(summary.read_text())["order"]
    assert order["sorted"] is True and order["late"] == 1  # what streaming would have met
    assert order["max_late_seconds"] == 5400


# --- inputs ---------------------------------------------------------------------------


def test_directories_globs_and_history_across_files(tmp_path: Path) -> None:
    days = tmp_path / "logs"
    days.mkdir()
    sessions = hopper()
    write(days / "day1.jsonl", sessions[:2])
    (days / "day2.jsonl.gz").write_bytes(
        gzip.compress(b"".join(json.dumps(s).encode() + b"\n" for s in sessions[2:]))
    )
    (days / "notes.txt").write_text("ignored: not a log file", encoding="utf-8")
    for spec in ([str(days)], [str(days / "day*")]):
        out = tmp_path / "out.jsonl"
        assert run(["check", *spec, "-o", str(out)]) == 0
        reports = lines_of(out)
        assert [r["session_id"] for r in reports] == ["hop0", "hop1", "hop2", "hop3"]
        assert "GEO_PROVINCE_HOPPING" in reports[-1]["contributions"]
    assert run(["check", str(tmp_path / "nothing*.jsonl")]) == 2


def test_csv_input_with_dotted_columns(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "\ufeffsession_id,account_id,ts,ip,device.device_id,device.platform,device.brand,"
        "device.model,device.system_props,device.cpu_abi,network.vpn_active,app.uid\n"
        's1,u1,1795133730,114.114.114.114,d1,android,vivo,V2218A,"{""ro.kernel.qemu"": ""1""}",'
        '"[""x86""]",false,10234\n'
        "s2,u1,1795137330,223.5.5.5,d1,android,vivo,V2218A,,,true,\n"
        "s3,u1,not-a-time,1.1.1.1,,,,,,,,\n"
        "s4,u1\n",
        encoding="utf-8",
    )
    out, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    assert run(["check", str(source), "-o", str(out), "--rejects", str(rejects)]) == 0
    reports = {r["session_id"]: r for r in lines_of(out)}
    assert "EMU_SYSTEM_PROP" in reports["s1"]["contributions"]
    assert "VPN_OS_FLAG" in reports["s2"]["contributions"]
    errors = [r["error"] for r in lines_of(rejects)]
    assert errors[0].startswith("ts:") and "columns" in errors[1]


# --- robustness -----------------------------------------------------------------------


def test_damaged_inputs_never_crash_and_lose_nothing(tmp_path: Path) -> None:
    good = [make_session(session_id=f"g{n}", ts=T0 + n) for n in range(5)]
    payload = b"".join(json.dumps(s).encode() + b"\n" for s in good)
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(gzip.compress(payload * 200)[:-40])
    crlf = tmp_path / "crlf.jsonl"
    crlf.write_bytes(b"\xef\xbb\xbf" + payload.replace(b"\n", b"\r\n") + b"\r\n\r\n")
    odd = tmp_path / "odd.jsonl"
    huge = json.dumps(make_session(session_id="huge", user_agent="x" * (1 << 20))).encode()
    odd.write_bytes(payload + huge + b"\n" + b'{"account_id": "\xff"}\n' + payload[:-40])
    out, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    summary = tmp_path / "summary.json"
    code = run(
        [
            "check",
            str(truncated),
            str(crlf),
            str(odd),
            "-o",
            str(out),
            "--rejects",
            str(rejects),
            "--summary-json",
            str(summary),
        ]
    )
    assert code == 0
    stats = json.loads(summary.read_text(encoding="utf-8"))
    rejected = lines_of(rejects)
    errors = " | ".join(r["error"] for r in rejected)
    assert "truncated or corrupt" in errors
    assert f"longer than {1 << 20} bytes" in errors
    assert "not UTF-8" in errors and "not JSON" in errors  # the partial last line
    assert stats["reports"] == len(lines_of(out))
    assert stats["lines"] == stats["reports"] + stats["rejects"] + stats["blank"]
    assert stats["blank"] == 2  # the CRLF file ends with two empty lines
    duplicates = sum(1 for r in lines_of(out) for w in r.get("warnings", []) if "duplicate" in w)
    assert duplicates > 0  # the same five sessions again and again


def test_full_disk_is_an_error_and_leaves_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write(tmp_path / "in.jsonl", [make_session()])
    out = tmp_path / "out.jsonl"

    class FullDisk(io.BytesIO):
        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    real_fdopen = os.fdopen

    def fdopen(descriptor: int, *args: Any, **kwargs: Any) -> Any:
        real_fdopen(descriptor, *args, **kwargs).close()
        return FullDisk()

    monkeypatch.setattr("fingerprint.outputs.os.fdopen", fdopen)
    assert run(["check", str(source), "-o", str(out), "--workers", "1"]) == 1
    assert not out.exists()
    assert not list(tmp_path.glob("out.jsonl.partial-*"))


# --- progress and memory --------------------------------------------------------------


def test_history_memory_follows_active_accounts_not_lines() -> None:
    store = MemoryHistoryStore()
    windows = Windows(account_seconds=3600, device_seconds=3600)
    rng = random.Random(5)
    for n in range(20_000):
        account = f"a{rng.randrange(100_000)}"
        event = LoginEvent(
            T0 + n, n, account, f"d{account}", "1.1.1.1", None, None, None, None, False
        )
        store.record_and_fetch(event, windows)
    # One login a second for 20,000 s with a one-hour window: about 3,600 active.
    # ... plus at most one eviction batch (1,024 calls) not yet swept.
    assert store.accounts() <= 3_700 + 1_024
    assert store.devices() <= 3_700 + 1_024


class _ThresholdWatch:
    """A sink that notes the collector's thresholds whenever the run writes to it, and
    sets its own at the first write when told to (``meanwhile``)."""

    def __init__(self, meanwhile: tuple[int, int, int] | None = None) -> None:
        self.seen: set[tuple[int, ...]] = set()
        self.meanwhile = meanwhile

    def write(self, data: bytes) -> None:
        self.seen.add(gc.get_threshold())
        if self.meanwhile is not None:
            gc.set_threshold(*self.meanwhile)
            self.meanwhile = None


def _run_watched(watch: _ThresholdWatch) -> None:
    options = BatchOptions(paths=[str(FIXTURES / "sample.jsonl")], config=CheckerConfig())
    run_batch(options, BatchSinks(output=watch))


@pytest.mark.parametrize(("young", "during"), [(700, 10_000), (0, 0), (50_000, 50_000)])
def test_a_run_spaces_young_collections_and_gives_the_thresholds_back(
    young: int, during: int
) -> None:
    """Young collections are spaced during a batch run (they walked the sessions the
    buffer still held), and the process gets its own thresholds back afterwards: a
    collector turned off stays off, a wider spacing than ours is kept."""
    before = gc.get_threshold()
    gc.set_threshold(young, 9, 8)
    try:
        watch = _ThresholdWatch()
        _run_watched(watch)
        assert watch.seen == {(during, 9, 8)}
        assert gc.get_threshold() == (young, 9, 8)
    finally:
        gc.set_threshold(*before)


@pytest.mark.parametrize("young", [700, 50_000])
def test_thresholds_set_during_a_run_are_kept(young: int) -> None:
    """Thresholds someone sets while a run goes on (the caller, another run in another
    thread) are not overwritten when the run ends."""
    before = gc.get_threshold()
    gc.set_threshold(young, 9, 8)
    try:
        _run_watched(_ThresholdWatch(meanwhile=(1_234, 5, 6)))
        assert gc.get_threshold() == (1_234, 5, 6)
    finally:
        gc.set_threshold(*before)
