"""Peak RSS of ``fingerprint check --workers 1`` on a 2,000,000-line log over 200,000
accounts (target < 400 MB). Marked ``huge``: the default run skips it; run it with
``python -m pytest benchmarks -m huge``. The log is generated once (~3-4 minutes and
~6 GB of RAM for the generator) into ``benchmarks/.data/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import report
from benchmarks.measure import ProcessCost, gnu_time_rss_mb, python_argv


@pytest.mark.huge
def test_cli_2m_peak_rss(benchmark: Any, huge_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports.jsonl"
    argv = python_argv(
        "-m", "fingerprint.cli", "check", str(huge_log), "-o", str(out), "--workers", "1", "-q"
    )
    runs: list[tuple[ProcessCost, float | None]] = []
    benchmark.pedantic(lambda: runs.append(gnu_time_rss_mb(argv)), rounds=1, iterations=1)
    cost, gnu_rss = runs[0]
    with huge_log.open("rb") as handle:
        lines = sum(1 for _ in handle)
    out.unlink()
    metrics = {
        "lines": lines,
        "wall_s": round(cost.wall_s, 2),
        "cpu_s": round(cost.cpu_s, 2),
        "cpu_us_per_line": round(cost.cpu_s / lines * 1e6, 2),
        "lines_per_s_wall": round(lines / cost.wall_s, 1),
        "max_rss_mb": round(cost.max_rss_mb, 1),
        "gnu_time_max_rss_mb": None if gnu_rss is None else round(gnu_rss, 1),
        "load_before": round(cost.load_before, 2),
        "load_after": round(cost.load_after, 2),
    }
    benchmark.extra_info.update(metrics)
    report.record("cli_2m_rss", **metrics)
