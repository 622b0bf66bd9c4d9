"""The CLI end to end: every kind of bad line, gzip, stdin, formats, exit codes."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fingerprint.cli import main
from fingerprint.native import NATIVE
from tests.conftest import make_session

GOOD = [make_session(session_id=f"g{n}", ts=1_795_133_730 + n * 60) for n in range(3)]
BAD_LINES: list[tuple[bytes, str]] = [
    (b"this is not json", "not JSON"),
    (b'["an", "array"]', "expected a JSON object"),
    (b'"a string"', "expected a JSON object"),
    (b'{"ts": 1795133730, "ip": "1.1.1.1"}', "account_id"),
    (b'{"account_id": "a", "ip": "1.1.1.1"}', "ts"),
    (b'{"account_id": "a", "ts": 1795133730}', "ip"),
    (b'{"account_id": "a", "ts": 1795133730, "ip": "999.1.1.1"}', "ip"),
    (b'{"account_id": "a", "ts": "not a time", "ip": "1.1.1.1"}', "ts"),
    (b'{"account_id": "a", "ts": 1795133730, "ip": "1.1.1.1", "device": "x"}', "device"),
    (b'{"account_id": "a", "ts": 1795133730, "ip": "1.1.1.1", "app": {"uid": "ten"}}', "app.uid"),
    (b'{"account_id": "a", "ts": NaN, "ip": "1.1.1.1"}', "ts"),
    (b'{"account_id": "a", "ts": 1' + b"0" * 40 + b', "ip": "1.1.1.1"}', "ts"),
    (b'{"account_id": "\xff\xfe", "ts": 1795133730, "ip": "1.1.1.1"}', "not UTF-8"),
    (b'{"account_id": "a", "ts": 1795133730, "ip": "1.1.1.1"', "not JSON"),
    (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
]


def write_lines(path: Path, lines: list[bytes], compress: bool = False) -> Path:
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_every_kind_of_bad_line_is_one_reject(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    lines = [json.dumps(GOOD[0]).encode()]
    lines += [line for line, _ in BAD_LINES]
    lines += [b"", b"   ", json.dumps(GOOD[1]).encode()]
    source = write_lines(tmp_path / "in.jsonl", lines)
    out, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    code = main(["check", str(source), "-o", str(out), "--rejects", str(rejects)])
    assert code == 0
    reports, rejected = read_jsonl(out), read_jsonl(rejects)
    assert [r["session_id"] for r in reports] == ["g0", "g1"]
    assert len(rejected) == len(BAD_LINES)
    for reject, (_raw, reason) in zip(rejected, BAD_LINES, strict=True):
        assert set(reject) >= {"file", "line", "error", "raw"}
        assert reject["file"] == str(source)
        assert reason in reject["error"], reject
    assert [r["line"] for r in rejected] == list(range(2, 2 + len(BAD_LINES)))
    summary = capsys.readouterr().err
    total = 1 + len(BAD_LINES) + 3
    assert f"{total} lines, 2 reports, {len(BAD_LINES)} rejects, 2 blank" in summary


@pytest.mark.parametrize("workers", ["1", "2"])
def test_out_of_range_times_are_rejects_and_the_run_goes_on(tmp_path: Path, workers: str) -> None:
    """Each of these lines used to stop the whole run with an OverflowError traceback."""
    times = [
        b'"0001-01-01T00:00:00"',
        b'"0001-01-01T00:00:00+14:00"',
        b'"9999-12-31T23:59:59-14:00"',
        b"-70000000000",
        b"9" * 420,
    ]
    lines = [b'{"account_id":"a","ip":"1.2.3.4","ts":' + ts + b"}" for ts in times]
    lines.append(json.dumps(GOOD[0]).encode())
    source = write_lines(tmp_path / "in.jsonl", lines)
    out, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    argv = ["check", str(source), "-o", str(out), "--rejects", str(rejects), "-q"]
    assert main([*argv, "--workers", workers]) == 0
    assert [r["session_id"] for r in read_jsonl(out)] == ["g0"]
    rejected = read_jsonl(rejects)
    assert [r["line"] for r in rejected] == [1, 2, 3, 4, 5]
    assert all(r["error"].startswith("ts: out of range") for r in rejected), rejected


def test_reject_keeps_the_raw_line(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "in.jsonl", [b'{"account_id": "a", "ts": "x", "ip": "1.1.1.1"}']
    )
    rejects = tmp_path / "r.jsonl"
    main(["check", str(source), "-o", str(tmp_path / "o.jsonl"), "--rejects", str(rejects), "-q"])
    assert read_jsonl(rejects)[0]["raw"] == '{"account_id": "a", "ts": "x", "ip": "1.1.1.1"}'


def test_gzip_and_plain_give_the_same_reports(tmp_path: Path) -> None:
    lines = [json.dumps(s).encode() for s in GOOD]
    plain = write_lines(tmp_path / "a.jsonl", lines)
    packed = write_lines(tmp_path / "a.jsonl.gz", lines, compress=True)
    main(["check", str(plain), "-o", str(tmp_path / "p.jsonl"), "-q"])
    main(["check", str(packed), "-o", str(tmp_path / "z.jsonl"), "-q"])
    assert read_jsonl(tmp_path / "p.jsonl") == read_jsonl(tmp_path / "z.jsonl")


def test_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"\n".join(json.dumps(s).encode() for s in GOOD) + b"\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    out = tmp_path / "o.jsonl"
    assert main(["check", "-", "-o", str(out), "-q"]) == 0
    assert [r["session_id"] for r in read_jsonl(out)] == ["g0", "g1", "g2"]


def test_session_id_from_line_number_when_absent(tmp_path: Path) -> None:
    record = {"account_id": "a", "ts": 1795133730, "ip": "1.1.1.1"}
    source = write_lines(tmp_path / "in.jsonl", [b"", json.dumps(record).encode()])
    out = tmp_path / "o.jsonl"
    main(["check", str(source), "-o", str(out), "-q"])
    assert read_jsonl(out)[0]["session_id"] == f"{source}:2"


def test_table_and_csv_formats(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [json.dumps(s).encode() for s in GOOD])
    main(["check", str(source), "--format", "table", "-o", str(tmp_path / "t.txt"), "-q"])
    table = (tmp_path / "t.txt").read_text(encoding="utf-8").splitlines()
    assert table[0].split()[:4] == ["session", "account", "grade", "score"]
    assert len(table) == 2 + len(GOOD)
    main(["check", str(source), "--format", "csv", "-o", str(tmp_path / "c.csv"), "-q"])
    rows = (tmp_path / "c.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("session_id,account_id,ts,grade,score")
    assert len(rows) == 1 + len(GOOD)


def test_by_account(tmp_path: Path) -> None:
    sessions = [
        *GOOD,
        make_session(
            session_id="emu", ts=1_795_140_000, **{"device.system_props": {"ro.kernel.qemu": "1"}}
        ),
    ]
    source = write_lines(tmp_path / "in.jsonl", [json.dumps(s).encode() for s in sessions])
    out = tmp_path / "acc.jsonl"
    assert main(["check", str(source), "--by", "account", "-o", str(out), "-q"]) == 0
    (account,) = read_jsonl(out)
    assert account["account_id"] == "u-10442"
    assert account["sessions"] == 4
    assert account["worst_grade"] == "E" and account["latest_grade"] == "E"
    assert account["blacklisted_by"]["session_id"] == "emu"
    assert account["checks"] == {"emulator": 1}
    assert account["devices"] == ["d-5b1e0c"]


def test_summary_json(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [json.dumps(GOOD[0]).encode(), b"junk"])
    summary = tmp_path / "s.json"
    main(
        [
            "check",
            str(source),
            "-o",
            str(tmp_path / "o.jsonl"),
            "--summary-json",
            str(summary),
            "-q",
        ]
    )
    data = json.loads(summary.read_text(encoding="utf-8"))
    assert data["lines"] == 2 and data["reports"] == 1 and data["rejects"] == 1
    assert data["sessions_per_grade"] == {"A": 1}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_summary_counts_accounts_and_groups_rejects_by_kind_and_field(
    tmp_path: Path, workers: str
) -> None:
    """Per-session summaries said `accounts: 0`, and grouped rejects by byte offset."""
    sessions = [make_session(session_id=f"s{n}", account_id=f"u{n % 3}") for n in range(7)]
    bad = [
        b'{"account_id": "a\xff", "ts": 1795133730, "ip": "1.1.1.1"}',
        b'{"account_id": "abc\xfe", "ts": 1795133730, "ip": "1.1.1.1"}',
        json.dumps(make_session(**{"device.sensors": [1]})).encode(),
        json.dumps(make_session(**{"device.sensors": ["gyro", 2]})).encode(),
        json.dumps(make_session(ts="0001-01-01T00:00:00")).encode(),
        json.dumps(make_session(ts=-70_000_000_000)).encode(),
        json.dumps(make_session(**{"device.system_props": {"ro.a": [1], "ro.b c": {}}})).encode(),
    ]
    lines = [json.dumps(s).encode() for s in sessions] + bad
    source = write_lines(tmp_path / "in.jsonl", lines)
    summary, rejects = tmp_path / "s.json", tmp_path / "r.jsonl"
    argv = ["check", str(source), "-o", str(tmp_path / "o.jsonl"), "--rejects", str(rejects)]
    assert main([*argv, "--summary-json", str(summary), "-q", "--workers", workers]) == 0
    data = json.loads(summary.read_text(encoding="utf-8"))
    assert data["accounts"] == 3
    assert data["reject_reasons"] == {
        "not UTF-8": 2,
        "device.sensors: Input should be a valid string": 2,
        "ts: out of range": 2,
        "device.system_props: Input should be a valid string": 1,
    }
    details = [r["error"] for r in read_jsonl(rejects)]
    assert details[0] != details[1] and "byte" in details[0]  # the detail stays there


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "/nonexistent/file.jsonl"],
        ["check", "{source}", "--rules", "/nonexistent/rules"],
        ["check", "{source}", "--city-db", "/nonexistent/city.mmdb"],
        ["check", "{source}", "--naive-tz", "Mars/Olympus"],
        ["check", "{source}", "-o", "/nonexistent/dir/out.jsonl"],
    ],
)
def test_configuration_errors_exit_2(tmp_path: Path, argv: list[str], capsys) -> None:  # type: ignore[no-untyped-def]
    source = write_lines(tmp_path / "in.jsonl", [json.dumps(GOOD[0]).encode()])
    assert main([a.format(source=source) for a in argv]) == 2
    assert "configuration error" in capsys.readouterr().err


def test_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["check", "--format", "xml", "x"])
    assert caught.value.code == 2


def test_version_and_console_script() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fingerprint.cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("fingerprint ")
    loops = "C" if NATIVE is not None else "Python"
    assert result.stdout.rstrip().endswith(f"(hot loops in {loops})")


def test_rules_commands(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["rules", "validate"]) == 0
    assert capsys.readouterr().out.startswith("ok: ")
    assert main(["rules", "list", "--format", "jsonl"]) == 0
    codes = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"code", "check", "severity", "message", "message_zh"} <= set(codes[0])
    assert main(["rules", "validate", "/nonexistent"]) == 2


def test_explain_both_languages(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    emulator = make_session(session_id="emu", **{"device.system_props": {"ro.kernel.qemu": "1"}})
    source = write_lines(
        tmp_path / "in.jsonl", [json.dumps(GOOD[0]).encode(), json.dumps(emulator).encode()]
    )
    assert main(["explain", str(source), "--session-id", "emu", "--lang", "en"]) == 0
    english = capsys.readouterr().out
    assert "grade E" in english and "final" in english and "emulator (critical" in english
    assert "EMU_SYSTEM_PROP" not in english  # named in words, not by its code
    assert main(["explain", str(source), "--session-id", "emu", "--lang", "zh"]) == 0
    chinese = capsys.readouterr().out
    assert "黑名单" in chinese and "模拟器" in chinese
    assert main(["explain", str(source), "--session-id", "emu", "--for", "applicant"]) == 0
    applicant = capsys.readouterr().out
    assert applicant.startswith("开通失败诊断") and "依据" not in applicant  # no evidence
    assert main(["explain", str(source), "--session-id", "missing"]) == 1


def test_html_report_from_check_and_from_a_reports_file(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [json.dumps(s).encode() for s in GOOD] + [b"x"])
    out, page = tmp_path / "o.jsonl", tmp_path / "run.html"
    assert main(["check", str(source), "-o", str(out), "--html", str(page), "-q"]) == 0
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "chart-grades" in html
    assert main(["report", str(out), "--lang", "en"]) == 0
    assert (tmp_path / "o.html").is_file()
    assert main(["check", str(source), "--html", str(page), "-q"]) == 2  # needs -o
    assert main(["report", str(tmp_path / "missing.jsonl")]) == 2
