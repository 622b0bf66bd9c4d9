"""End to end over two 200,000-line logs: the generator's (many distinct user agents
and devices) and the labelled set tiled (``benchmarks/corpus.py``: few). On each, the
CLI with 1 and 2 workers (twice each, alternated), the CLI with every check disabled
(what the pipeline costs before any check or history), and the floor and naive
baselines (``benchmarks/baselines.py``), each one process.

Every run is a child process measured whole (startup, rule loading and output
included): wall clock from ``perf_counter``, CPU from the child's rusage.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks import report
from benchmarks.measure import ProcessCost, python_argv, run_measured
from fingerprint.checks import CHECKS_BY_NAME
from fingerprint.rules import default_rules_dir


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


@pytest.fixture(scope="module")
def lines(pipeline_log: Path) -> int:
    return _count_lines(pipeline_log)


@pytest.fixture(scope="module")
def corpus_lines(corpus_log: Path) -> int:
    return _count_lines(corpus_log)


def _measure(benchmark: Any, name: str, argv: list[str], lines: int, out: Path) -> ProcessCost:
    costs: list[ProcessCost] = []
    benchmark.pedantic(lambda: costs.append(run_measured(argv)), rounds=1, iterations=1)
    cost = costs[0]
    written = _count_lines(out)
    metrics = {
        "lines": lines,
        "output_lines": written,
        "wall_s": round(cost.wall_s, 3),
        "cpu_s": round(cost.cpu_s, 3),
        "user_s": round(cost.user_s, 3),
        "sys_s": round(cost.sys_s, 3),
        "children_cpu_s": round(cost.children_cpu_s, 3),
        "cpu_us_per_line": round(cost.cpu_s / lines * 1e6, 2),
        "lines_per_s_wall": round(lines / cost.wall_s, 1),
        "max_rss_mb": round(cost.max_rss_mb, 1),
        "load_before": round(cost.load_before, 2),
        "load_after": round(cost.load_after, 2),
    }
    benchmark.extra_info.update(metrics)
    report.record(name, **metrics)
    out.unlink()
    assert written == lines, f"{name}: {written} output lines for {lines} input lines"
    return cost


# One worker, two, one, two: the machine's speed drifts over minutes (another tenant,
# its clock), and the two-worker ratio is read from runs side by side, each round on
# its own (benchmarks/report.py averages the rounds' ratios).
ROUNDS = ((1, 1), (1, 2), (2, 1), (2, 2))


def run_name(workers: int, round_: int, suffix: str = "") -> str:
    """The result's name: ``pipeline_ours_w2``, ``pipeline_ours_w1_round2``, ..."""
    return f"pipeline_ours_w{workers}{suffix}" + (f"_round{round_}" if round_ > 1 else "")


def _ours(log: Path, out: Path, workers: int, *rules: str) -> list[str]:
    return python_argv(
        "-m", "fingerprint.cli", "check", str(log), "-o", str(out), "--workers", str(workers),
        "-q", *rules,
    )  # fmt: skip


@pytest.fixture(scope="module")
def checks_off(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """``--rules DIR`` for the bundled rules with every check disabled: the run still
    reads, validates, enriches, grades and writes each report, with no check and no
    history (what the floor's target leaves for those is read against it)."""
    rules = tmp_path_factory.mktemp("rules") / "checks-off"
    shutil.copytree(
        default_rules_dir(), rules, ignore=shutil.ignore_patterns("*.py", "__pycache__")
    )
    checks = rules / "checks.yaml"
    config = yaml.safe_load(checks.read_text(encoding="utf-8"))
    config["disabled"] = sorted(CHECKS_BY_NAME)
    checks.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return ["--rules", str(rules)]


def _baseline(baseline: str, log: Path, out: Path) -> list[str]:
    return python_argv("-m", "benchmarks.baselines", baseline, str(log), str(out))


@pytest.mark.parametrize(("round_", "workers"), ROUNDS)
def test_cli_end_to_end(
    benchmark: Any, pipeline_log: Path, lines: int, tmp_path: Path, round_: int, workers: int
) -> None:
    out = tmp_path / "reports.jsonl"
    _measure(benchmark, run_name(workers, round_), _ours(pipeline_log, out, workers), lines, out)


def test_cli_checks_off(
    benchmark: Any, pipeline_log: Path, lines: int, tmp_path: Path, checks_off: list[str]
) -> None:
    out = tmp_path / "reports.jsonl"
    argv = _ours(pipeline_log, out, 1, *checks_off)
    _measure(benchmark, "pipeline_ours_w1_checks_off", argv, lines, out)


@pytest.mark.parametrize("baseline", ["floor", "naive"])
def test_baseline(
    benchmark: Any, pipeline_log: Path, lines: int, tmp_path: Path, baseline: str
) -> None:
    out = tmp_path / "results.jsonl"
    _measure(benchmark, f"pipeline_{baseline}", _baseline(baseline, pipeline_log, out), lines, out)


@pytest.mark.parametrize(("round_", "workers"), ROUNDS)
def test_few_user_agents(
    benchmark: Any, corpus_log: Path, corpus_lines: int, tmp_path: Path, round_: int, workers: int
) -> None:
    """The same on the log with few distinct user agents and devices: ours with 1 and
    2 workers, alternated as on the generator's log."""
    out = tmp_path / "out.jsonl"
    argv = _ours(corpus_log, out, workers)
    _measure(benchmark, run_name(workers, round_, "_few_ua"), argv, corpus_lines, out)


def test_few_user_agents_checks_off(
    benchmark: Any, corpus_log: Path, corpus_lines: int, tmp_path: Path, checks_off: list[str]
) -> None:
    out = tmp_path / "out.jsonl"
    argv = _ours(corpus_log, out, 1, *checks_off)
    _measure(benchmark, "pipeline_ours_w1_few_ua_checks_off", argv, corpus_lines, out)


@pytest.mark.parametrize("baseline", ["floor", "naive"])
def test_few_user_agents_baseline(
    benchmark: Any, corpus_log: Path, corpus_lines: int, tmp_path: Path, baseline: str
) -> None:
    out = tmp_path / "out.jsonl"
    argv = _baseline(baseline, corpus_log, out)
    _measure(benchmark, f"pipeline_{baseline}_few_ua", argv, corpus_lines, out)
