"""The Spark job gives the CLI's answers: same reports field by field, same rejects.

Runs Spark in ``local[2]`` (one session for the module). Skipped when pyspark or
Java is missing, except under CI (env ``CI`` set), where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import FIXTURES, make_session

_WHY = "pyspark is not installed (pip install -e '.[spark]')"
if os.environ.get("CI"):
    import pyspark  # noqa: F401 - under CI a missing pyspark fails the run
else:
    pytest.importorskip("pyspark", reason=_WHY)
    pytest.importorskip("pyarrow", reason=_WHY)
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    _NO_JAVA = "Spark needs Java 17+: apt-get install -y default-jre-headless"
    if os.environ.get("CI"):
        pytest.fail(_NO_JAVA, pytrace=False)
    pytest.skip(_NO_JAVA, allow_module_level=True)

from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from fingerprint.cli import main  # noqa: E402
from fingerprint.spark import check_sessions, read_session_lines, to_json_lines  # noqa: E402
from fingerprint.spark import main as spark_main  # noqa: E402

CST = timezone(timedelta(hours=8))
START = datetime(2026, 11, 25, 9, 0, tzinfo=CST)  # after the last login of labelled.jsonl
# Cities the bundled GeoLite2 places at city accuracy, in five provinces.
PROVINCE_IPS = ["182.47.38.70", "58.193.66.79", "223.146.31.103", "60.176.244.28", "139.9.165.218"]
FARM = ["t-farm-a", "t-farm-b", "t-farm-c", "t-farm-d"]


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("fingerprint-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "768m")
        # A JVM that lives a minute: the quick compiler only (C1), one GC thread. Starting
        # the session and the first jobs took about half as long (19 -> 8 s to start).
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        # Not UTC on purpose: timestamps must come back in UTC whatever the session's zone.
        .config("spark.sql.session.timeZone", "Asia/Shanghai")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _at(minutes: float) -> str:
    return (START + timedelta(minutes=minutes)).isoformat()


def _line(record: Any) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode()


def hand_written() -> list[bytes]:
    """Hoppers, a device farm, same-instant logins and every kind of bad line, in
    time order (the CLI runs with --max-skew 0)."""
    timed: list[tuple[float, bytes]] = []

    def add(minutes: float, sid: str | None, account: Any, **changes: Any) -> None:
        session = make_session(session_id=sid, account_id=account, ts=_at(minutes), **changes)
        if sid is None:
            del session["session_id"]
        timed.append((minutes, _line(session)))

    add(0, "t-bom", "t-bom", **{"device.device_id": "d-bom"})
    for i, ip in enumerate(PROVINCE_IPS):  # five provinces in two hours
        add(1 + 30 * i, f"t-hop-{i}", "t-hop", ip=ip, **{"device.device_id": "d-hop"})
    for i, account in enumerate(FARM):  # one phone, four accounts
        add(2 + 10 * i, f"t-farm-{i}", account, **{"device.device_id": "d-farm"})
    for i, account in enumerate(["t-tie-a", "t-tie-b", "t-tie-c"]):  # same instant
        add(100, f"t-tie-{i}", account, **{"device.device_id": "d-tie"})
    add(125, None, "t-noid", **{"device.device_id": "d-noid"})  # id from file:line
    numeric = make_session(session_id="t-num", account_id="990001")  # an all-digit account id
    numeric["ts"] = int((START + timedelta(minutes=130)).timestamp() * 1000)  # epoch ms
    numeric["device"]["device_id"] = "d-num"
    timed.append((130, _line(numeric)))
    big = make_session(session_id="t-bigint", account_id="t-bigint", ts=_at(140))
    big["device"]["device_id"] = "d-big"
    timed.append((140, _line(big)[:-1] + b', "extra": ' + b"9" * 30 + b"}"))  # beyond orjson
    for i in range(11):  # eleven accounts through one home address in 20 minutes
        device = {"device.device_id": f"d-ipa-{i}", "network.type": "wifi"}
        add(150 + 2 * (i // 2), f"t-ipa-{i}", f"t-ipa-{i}", ip="36.110.20.5", **device)
    for i in range(55):  # a SIM pool's burst through one carrier /24
        device = {"device.device_id": f"d-pool-{i}"}
        add(200 + 0.5 * i, f"t-pool-{i}", f"t-pool-{i}", ip=f"223.104.4.{10 + i % 3}", **device)
    # Eight days on, the farm's first account is alone on the phone again.
    add(8 * 24 * 60, "t-farm-later", FARM[0], **{"device.device_id": "d-farm"})
    lines = [line for _, line in sorted(timed, key=lambda pair: pair[0])]  # stable
    lines[0] = b"\xef\xbb\xbf" + lines[0]  # a byte order mark on line 1 is skipped
    lines.append(b"")
    lines += [
        b"this is not json",
        b'["an", "array"]',
        b'{"ts": 1795133730, "ip": "1.1.1.1"}',
        b'{"account_id": "x", "ip": "1.1.1.1"}',
        b'{"account_id": "x", "ts": 1795133730}',
        b'{"account_id": "x", "ts": 1795133730, "ip": "999.1.1.1"}',
        b'{"account_id": "x", "ts": "not a time", "ip": "1.1.1.1"}',
        b'{"account_id": "x", "ts": 1795133730, "ip": "1.1.1.1", "device": "x"}',
        b'{"account_id": "x", "ts": 1795133730, "ip": "1.1.1.1", "app": {"uid": "ten"}}',
        b'{"account_id": "x", "ts": NaN, "ip": "1.1.1.1"}',
        b'{"account_id": "\xff\xfe", "ts": 1795133730, "ip": "1.1.1.1"}',
        b"   ",
    ]
    return lines


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("spark-inputs")
    # labelled.jsonl has lines out of time order; the CLI with --max-skew 0 would
    # check those as late arrivals, which a Spark job (it sorts) never has.
    raw = (FIXTURES / "labelled.jsonl").read_bytes().splitlines()
    labelled = folder / "labelled-sorted.jsonl"
    labelled.write_bytes(b"\n".join(sorted(raw, key=_ts_of)) + b"\n")
    hand = folder / "hand.jsonl"
    hand.write_bytes(b"\n".join(hand_written()) + b"\n")
    return labelled, hand


def _ts_of(line: bytes) -> float:
    from fingerprint.session import parse_timestamp

    return parse_timestamp(orjson.loads(line)["ts"]).timestamp()


@pytest.fixture(scope="module")
def cli(inputs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("cli")
    out, rej = folder / "out.jsonl", folder / "rejects.jsonl"
    argv = ["check", *map(str, inputs), "-o", str(out), "--rejects", str(rej), "-q"]
    assert main([*argv, "--workers", "1", "--max-skew", "0"]) == 0
    return {"reports": _by_session(_read(out)), "rejects": _read(rej)}


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _by_session(reports: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {r["session_id"]: r for r in reports}
    assert len(out) == len(reports), "session ids must be unique for the comparison"
    return out


def _spark_reports(reports: DataFrame) -> dict[str, dict[str, Any]]:
    return _by_session([json.loads(row.value) for row in to_json_lines(reports).collect()])


def _codes(report: dict[str, Any]) -> list[str]:
    return [f["code"] for f in report["findings"]]


def assert_same_reports(expected: dict[str, Any], actual: dict[str, Any]) -> None:
    assert sorted(actual) == sorted(expected)
    for sid in sorted(expected):
        want, got = expected[sid], actual[sid]
        for key in ("grade", "score", "blacklisted", "contributions", "not_evaluated"):
            assert got[key] == want[key], (sid, key)
        assert _codes(got) == _codes(want), sid
        assert got == want, sid  # and everything else: messages, evidence, features


def test_same_reports_and_rejects_as_the_cli(
    spark: SparkSession, inputs: tuple[Path, Path], cli: dict[str, Any]
) -> None:
    lines = read_session_lines(spark, [str(p) for p in inputs])
    reports, rejects = check_sessions(lines, partitions=4)
    actual = _spark_reports(reports)
    assert_same_reports(cli["reports"], actual)

    expected_rejects = [(r["file"], r["line"], r["error"], r["raw"]) for r in cli["rejects"]]
    got_rejects = [(r.file, r.line, r.error, r.raw) for r in rejects.orderBy("row_id").collect()]
    assert len(got_rejects) == len(expected_rejects) == 11
    # The CLI sorts this input by time (its lines are out of order), so its rejects
    # come in the order the sort met them; Spark's come by row. The same rejects.
    assert sorted(got_rejects) == sorted(expected_rejects)

    # What the hand-written file is there for actually happened ...
    hop = [actual[f"t-hop-{i}"] for i in range(5)]
    assert any(f["check"] == "ip_hopping" for r in hop for f in r["findings"])
    shared = [sid for sid, r in actual.items() if "SHR_DEVICE_SHARED" in _codes(r)]
    assert sorted(shared) == ["t-farm-2", "t-farm-3", "t-tie-2"]
    assert actual["t-farm-3"]["findings"][-1]["evidence"]["accounts"] == 4
    many = sorted(sid for sid, r in actual.items() if "IPA_MANY_ACCOUNTS" in _codes(r))
    assert many == ["t-ipa-10", "t-ipa-9"]  # counted over every partition, pairs at one instant
    pooled = [sid for sid, r in actual.items() if "IPA_CARRIER_BLOCK_ACCOUNTS" in _codes(r)]
    assert sorted(pooled) == [f"t-pool-{i}" for i in range(50, 55)]
    assert "t-bigint" in actual and "t-num" in actual and "t-bom" in actual
    noid = next(n for n, line in enumerate(hand_written(), 1) if b'"t-noid"' in line)
    assert f"{inputs[1]}:{noid}" in actual  # the line without a session id
    # ... and the farm's accounts were checked in different partitions, so the
    # finding came from the Spark aggregation, not from one partition's history.
    farm = spark.createDataFrame([(a,) for a in FARM], "account_id string")
    parts = farm.repartition(4, "account_id").select(F.spark_partition_id()).distinct().count()
    assert parts > 1


def test_session_columns_and_json_string_blocks(
    spark: SparkSession, inputs: tuple[Path, Path], cli: dict[str, Any], tmp_path: Path
) -> None:
    """``spark.read.json`` columns (structs), a block given as JSON text, and a
    corrupt line, against the same CLI run."""
    keep = {f"t-hop-{i}" for i in range(5)} | {f"t-farm-{i}" for i in range(4)} | {"t-num"}
    good = [line for line in hand_written() if any(f'"{sid}"'.encode() in line for sid in keep)]
    source = tmp_path / "columns.jsonl"
    source.write_bytes(b"\n".join([*good, b"this is not json"]) + b"\n")
    frame = spark.read.json(str(source)).withColumn("network", F.to_json("network"))
    assert dict(frame.dtypes)["device"].startswith("struct")
    reports, rejects = check_sessions(frame, partitions=4)
    expected = {sid: r for sid, r in cli["reports"].items() if sid in keep}
    assert_same_reports(expected, _spark_reports(reports))
    (reject,) = rejects.collect()
    assert reject.error == next(
        r["error"] for r in cli["rejects"] if r["raw"] == "this is not json"
    )


def test_identity_checks_give_the_cli_answers(spark: SparkSession, tmp_path: Path) -> None:
    """Resets, forged identifiers and farms span accounts, so partitions by account
    see only their side: Spark hands each login what the other accounts left (its
    identity links and the accounts on its device) and gets the CLI's answers."""
    kinds = (b'"reset_farm"', b'"factory_reset_farm"', b'"cloned_', b'"account_farm"')
    lines = (FIXTURES / "identity" / "devices.jsonl").read_bytes().splitlines()
    source = tmp_path / "identity.jsonl"
    source.write_bytes(b"\n".join(x for x in lines if any(k in x for k in kinds)) + b"\n")
    out = tmp_path / "cli.jsonl"
    assert main(["check", str(source), "-o", str(out), "-q", "--workers", "1"]) == 0
    expected = _by_session(_read(out))
    reports, _ = check_sessions(read_session_lines(spark, [str(source)]), partitions=4)
    actual = _spark_reports(reports)
    assert_same_reports(expected, actual)
    checks = {f["check"] for r in actual.values() for f in r["findings"]}
    assert {"device_reset", "device_forged", "device_farm"} <= checks


def test_a_csv_input_stops_the_job_before_spark_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The job reads JSON Lines: a file the CLI reads as CSV (named so, in a directory
    given, or by its header) is named in one configuration error (exit 2), where it
    would make every row a reject."""
    logs = tmp_path / "logs"
    logs.mkdir()
    rows = "account_id,ts,ip\nu1,1795133730,1.1.1.1\n"
    (logs / "a.jsonl").write_bytes(b"")
    (logs / "b.csv").write_text(rows, encoding="utf-8")
    (tmp_path / "c.log").write_text(rows, encoding="utf-8")
    for given, named in ((logs, logs / "b.csv"), (tmp_path / "c.log", tmp_path / "c.log")):
        assert spark_main([str(given), str(tmp_path / "out")]) == 2
        message = capsys.readouterr().err
        assert "reads JSON Lines" in message and str(named) in message
        assert "a.jsonl" not in message
    assert not (tmp_path / "out").exists()
