"""Input text that reaches other programs: spreadsheets (CSV formulas), terminals
(control characters), and gzip on stdin."""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from pathlib import Path

import pytest

from fingerprint.cli import main
from fingerprint.summary import format_summary
from fingerprint.terminal import terminal_safe
from tests.conftest import make_session

FORMULAS = ['=HYPERLINK("http://x","y")', "+1+2", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]
CONTROLS = ["\x1b", "\x07", "\x08", "\r", "\x9b", "\x85", "\x00", "\x7f"]


def _write(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _formula_sessions() -> list[dict[str, object]]:
    return [
        make_session(
            session_id=formula,
            account_id=formula,
            ts=1_795_133_730 + n,
            **{"device.brand": formula, "device.model": formula},
        )
        for n, formula in enumerate(FORMULAS)
    ]


@pytest.mark.parametrize("by", ["session", "account"])
def test_csv_cells_that_spreadsheets_would_run_as_formulas_are_quoted(
    tmp_path: Path, by: str
) -> None:
    source = _write(tmp_path / "in.jsonl", _formula_sessions())
    out = tmp_path / "out.csv"
    argv = ["check", str(source), "-o", str(out), "--format", "csv", "--by", by, "-q"]
    assert main(argv) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_bytes().decode(), newline="")))
    assert rows
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (column, cell)
    quoted = {row["account_id"] for row in rows}
    assert quoted == {"'" + formula for formula in FORMULAS}
    if by == "session":
        assert {row["session_id"] for row in rows} == quoted


def test_json_output_keeps_the_text_as_it_was(tmp_path: Path) -> None:
    source = _write(tmp_path / "in.jsonl", _formula_sessions())
    out = tmp_path / "out.jsonl"
    assert main(["check", str(source), "-o", str(out), "-q"]) == 0
    accounts = [json.loads(line)["account_id"] for line in out.read_text().splitlines()]
    assert accounts == FORMULAS


def _hostile(n: int) -> dict[str, object]:
    text = "".join(CONTROLS) + "[2J]0;title" + "\u202e"
    return make_session(
        session_id=f"s{n}{text}",
        account_id=f"a{n}{text}",
        ts=1_795_133_730 + n,
        **{"device.model": f"sdk_gphone{text}", "device.system_props": {f"ro.x{text}": "1"}},
    )


def _no_controls(text: str) -> None:
    for char in [*CONTROLS, "\u202e"]:
        assert char not in text, repr(char)


@pytest.mark.parametrize("by", ["session", "account"])
def test_table_output_shows_control_characters_escaped(
    tmp_path: Path, by: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _write(tmp_path / "in.jsonl", [_hostile(n) for n in range(3)])
    out = tmp_path / "out.txt"
    argv = ["check", str(source), "-o", str(out), "--format", "table", "--by", by, "--summary"]
    assert main(argv) == 0
    table = out.read_text(encoding="utf-8")
    _no_controls(table.replace("\n", ""))
    assert "\\x1b" in table
    _no_controls(capsys.readouterr().err.replace("\n", ""))


def test_summary_keys_from_input_are_escaped() -> None:
    summary = {
        "files": 1, "lines": 1, "reports": 1, "rejects": 0, "blank": 0, "seconds": 0,
        "lines_per_second": 1, "interrupted": False, "accounts": 1, "flagged": 0,
        "blacklisted": 0, "warnings": 0,
        "top_provinces": {"\x1b]0;pwned\x07": 3},
        "reject_reasons": {"device.system_props.\x1b[31mro.x: bad": 1},
    }  # fmt: skip
    text = format_summary(summary)
    _no_controls(text.replace("\n", ""))
    assert "\\x1b]0;pwned\\x07" in text


def test_explain_shows_control_characters_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = _hostile(0)
    source = _write(tmp_path / "in.jsonl", [session])
    assert main(["explain", str(source), "--session-id", str(session["session_id"])]) == 0
    text = capsys.readouterr().out
    _no_controls(text.replace("\n", ""))
    assert "\\x1b" in text and "\\u202e" in text


def test_terminal_safe_keeps_printable_text() -> None:
    assert terminal_safe("会话 s-1 (账户 u-2) ok") == "会话 s-1 (账户 u-2) ok"
    assert terminal_safe("a\x1bb\x9b\n") == "a\\x1bb\\x9b\\x0a"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_gzip_on_stdin_is_read_as_gzip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    """`cat x.jsonl.gz | fingerprint check -` rejected every line as not UTF-8."""
    records = [make_session(session_id=f"g{n}", ts=1_795_133_730 + n) for n in range(3)]
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode())
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    out, rejects = tmp_path / "o.jsonl", tmp_path / "r.jsonl"
    argv = ["check", "-", "-o", str(out), "--rejects", str(rejects), "-q", "--workers", workers]
    assert main(argv) == 0
    assert [json.loads(line)["session_id"] for line in out.read_text().splitlines()] == [
        "g0",
        "g1",
        "g2",
    ]
    assert rejects.read_text() == ""


def test_plain_stdin_starting_like_gzip_loses_no_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = json.dumps(make_session()).encode()
    for data in (b"\x1f\x8b\n" + good + b"\n", b"{", b"", good):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        out, rejects = tmp_path / "o.jsonl", tmp_path / "r.jsonl"
        argv = ["check", "-", "-o", str(out), "--rejects", str(rejects), "-q"]
        assert main(argv) == 0
        outcomes = out.read_text().splitlines() + rejects.read_text().splitlines()
        assert len(outcomes) == data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
