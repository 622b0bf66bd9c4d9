"""The benchmark report's two-worker rows: one ratio per round run side by side, and
only rounds of one benchmark run (results.json keeps entries of earlier runs)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import report


def _entry(speed: float, run: str) -> dict[str, Any]:
    return {"lines_per_s_wall": speed, "run": run}


def _results(**entries: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"pipeline_ours_{name}": entry for name, entry in entries.items()}


def _two_rounds(second_round_run: str) -> dict[str, dict[str, Any]]:
    """Two rounds on the generator's log (1.7x, then 2.0x) and on the few-UA log
    (1.6x, then 1.8x); the second rounds' two-worker runs from ``second_round_run``."""
    return _results(
        w1=_entry(100.0, "now"),
        w2=_entry(170.0, "now"),
        w1_round2=_entry(90.0, "now"),
        w2_round2=_entry(180.0, second_round_run),
        w1_few_ua=_entry(200.0, "now"),
        w2_few_ua=_entry(320.0, "now"),
        w1_few_ua_round2=_entry(100.0, "now"),
        w2_few_ua_round2=_entry(180.0, second_round_run),
    )


def test_each_round_gives_its_own_ratio() -> None:
    results = _two_rounds("now")
    assert report.worker_ratios(results) == [1.7, 2.0]
    assert report.worker_ratios(results, "_few_ua") == [1.6, 1.8]
    rows = {what: value for what, value, _, _ in report.targets(results)}
    assert rows["throughput, 2 workers / 1 worker (wall), generator's log, mean of the rounds"] == (
        1.85
    )
    assert rows["throughput, 2 workers / 1 worker (wall), few user agents, mean of the rounds"] == (
        pytest.approx(1.7)
    )


def test_a_round_kept_from_an_earlier_run_is_left_out() -> None:
    assert report.worker_ratios(_two_rounds("before")) == [1.7]
    assert report.worker_ratios(_two_rounds("before"), "_few_ua") == [1.6]
    # Nor is a first round whose two runs are not of one benchmark run.
    mixed = _results(w1=_entry(100.0, "before"), w2=_entry(170.0, "now"))
    assert report.worker_ratios(mixed) == []
    assert report.worker_ratios({}) == []


def test_the_check_free_run_is_read_against_the_floor() -> None:
    """The pipeline alone (every check off) over the floor, and what the floor's 4x
    leaves for history and the checks; nothing for a log whose three runs are not of
    one benchmark run."""
    results = {
        "pipeline_floor": {"cpu_us_per_line": 12.5, "run": "now"},
        "pipeline_ours_w1": {"cpu_us_per_line": 95.0, "run": "now"},
        "pipeline_ours_w1_checks_off": {"cpu_us_per_line": 43.75, "run": "now"},
        "pipeline_floor_few_ua": {"cpu_us_per_line": 12.5, "run": "now"},
        # The few-UA log's full run is of an earlier benchmark run: not read against.
        "pipeline_ours_w1_few_ua": {"cpu_us_per_line": 80.0, "run": "before"},
        "pipeline_ours_w1_few_ua_checks_off": {"cpu_us_per_line": 40.0, "run": "now"},
    }
    lines = report.checks_off_lines(results)
    assert lines == [
        "",
        "Every check off, generator's log: one worker spends 3.50x the floor's CPU a line "
        "(43.8 µs): the pipeline alone. History and the checks add 51.2 µs a line; the "
        "floor's 4x leaves 6.2 µs for them.",
    ]
