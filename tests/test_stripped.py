"""A stripped line (only account_id, ts and ip) keeps grade A and score 100 (nothing
was found), but nothing downstream reads it as a clean pass (issue #22): the device
component is pending, combine() defers, the summary counts it pending, the CSV and
table say pending, and explain says "pending, not a pass"."""

from __future__ import annotations

import json
from pathlib import Path

from fingerprint import Checker
from fingerprint.cli import main
from fingerprint.eligibility import Component, combine
from fingerprint.explain import explain
from fingerprint.grading import TOO_FEW_SIGNALS
from fingerprint.rules import load_rules

STRIPPED = {"account_id": "u1", "ts": "2026-11-20T08:00:00+08:00", "ip": "1.2.3.4"}


def test_the_stripped_line_keeps_its_grade_but_is_pending() -> None:
    report = Checker().check(STRIPPED)
    # Score and grade measure what was found: nothing, so 100 and A (the contract:
    # contributions sum to 100 - score).
    assert (report.grade, report.score, report.contributions) == ("A", 100, {})
    component = report.device_component
    assert component.status == "pending"
    assert TOO_FEW_SIGNALS in component.pending_reasons
    assert component.coverage < load_rules().grading.device_component.min_coverage
    assert component.score < 1.0


def test_combine_defers_the_stripped_line() -> None:
    component = Checker().check(STRIPPED).device_component
    rest = Component(weight=1 - component.weight, score=1.0)
    decision = combine({"device": component, "rest": rest})
    assert decision.outcome == "defer" and not decision.eligible
    assert TOO_FEW_SIGNALS in decision.pending["device"]


def test_explain_says_pending_not_a_pass() -> None:
    report = Checker().check(STRIPPED)
    rules = load_rules()
    assert "待定" in explain(report, rules, "zh")
    assert "pending" in explain(report, rules, "en").lower()


def test_summary_csv_and_table_count_it_pending(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(STRIPPED) + "\n", encoding="utf-8")
    summary = tmp_path / "summary.json"
    out = tmp_path / "out.csv"
    args = ["check", str(source), "--format", "csv", "-o", str(out), "-q"]
    assert main([*args, "--summary-json", str(summary)]) == 0
    data = json.loads(summary.read_text(encoding="utf-8"))
    assert data["sessions_per_grade"] == {"A": 1}
    assert data["sessions_per_device_status"] == {"pending": 1}
    assert data["pending_reasons"] == {TOO_FEW_SIGNALS: 1}
    header, row = out.read_text(encoding="utf-8").splitlines()
    assert dict(zip(header.split(","), row.split(","), strict=True))["device_status"] == "pending"
    assert main(["check", str(source), "--format", "table", "-q"]) == 0
    assert f"pending: {TOO_FEW_SIGNALS}" in capsys.readouterr().out
    assert (
        main(["check", str(source), "--by", "account", "-o", str(tmp_path / "a.jsonl"), "-q"]) == 0
    )
    account = json.loads((tmp_path / "a.jsonl").read_text(encoding="utf-8"))
    assert (account["latest_grade"], account["latest_device_status"]) == ("A", "pending")
