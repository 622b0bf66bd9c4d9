"""The report record is the one form of a report: read back from its JSON
(``Report.from_dict``) and from Spark's typed rows, it is the report the checker made."""

from __future__ import annotations

import os

import orjson
import pytest

from fingerprint import Checker, CheckerConfig
from fingerprint.outputs import jsonl_line
from fingerprint.report import Report
from tests.conftest import FIXTURES

if os.environ.get("CI"):
    import pyspark  # noqa: F401 - under CI a missing pyspark fails the run
else:
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install -e '.[spark]')")

from fingerprint.spark import _report_row, report_from_row


@pytest.fixture(scope="module")
def reports() -> list[Report]:
    """Every report of the labelled set (findings of every check, vetoed device
    components, scaled points, checks not evaluated) and a repeated last login
    (a duplicate-id warning)."""
    checker = Checker(CheckerConfig(track_accounts=0), clock=None)
    lines = (FIXTURES / "labelled.jsonl").read_bytes().splitlines()
    return [checker.check(orjson.loads(line)) for line in [*lines, lines[-1]]]


def test_the_fixtures_cover_every_part_of_a_report(reports: list[Report]) -> None:
    assert any(r.findings for r in reports) and any(r.points_scaled for r in reports)
    assert any(r.warnings for r in reports) and any(r.not_evaluated for r in reports)
    assert {r.device_component.status for r in reports} >= {"ok", "veto"}


def test_a_report_read_back_from_its_json_is_the_same_report(reports: list[Report]) -> None:
    for report in reports:
        line = jsonl_line(report.to_dict())
        again = Report.from_dict(orjson.loads(line))
        assert again == report
        assert jsonl_line(again.to_dict()) == line


def test_a_spark_row_is_the_same_report(reports: list[Report]) -> None:
    for report in reports:
        assert report_from_row(_report_row(report)) == report


def test_an_old_row_without_the_newer_component_fields_reads_as_plain_ok(
    reports: list[Report],
) -> None:
    row = _report_row(reports[0])
    row["device_component"] = {
        k: v
        for k, v in row["device_component"].items()
        if k in ("weight", "score", "veto", "reasons")
    }
    component = report_from_row(row).device_component
    expected = "veto" if component.veto else "ok"
    assert (component.status, component.pending_reasons, component.coverage) == (expected, (), 1.0)
