"""Results of a benchmark run: the registry the benchmarks fill, the machine
description and the Markdown tables for ``benchmarks/README.md``.

The benchmark run prints these tables at its end (``pytest_terminal_summary`` in
``conftest.py``) and saves the raw numbers to ``benchmarks/.data/results.json``;
``python -m benchmarks.report`` prints the tables again from that file. Results of
benchmarks not run this time (the ``huge`` one, say) are kept from earlier runs and
shown with their own date and commit.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS_FILE = REPO / "benchmarks" / ".data" / "results.json"


def _now() -> str:
    return dt.datetime.now(dt.UTC).astimezone().strftime("%Y-%m-%d %H:%M %z")


# name -> metrics, filled by the benchmarks of the current run
RESULTS: dict[str, dict[str, Any]] = {}
RUN_ID = f"{time.time():.3f}-{os.getpid()}"  # tells this run's results from saved ones


def record(name: str, **metrics: Any) -> dict[str, Any]:
    entry = {**metrics, "measured_at": _now(), "commit": git_commit(), "run": RUN_ID}
    RESULTS[name] = entry
    return entry


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{out}+dirty" if dirty else out


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": memory_gib,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "os": platform.platform(),
        "native_loops": native_loops(),
    }


def native_loops() -> str:
    """Where history's decoding and the stability walk run in this install: "C" (the
    extension built and current) or "Python" (``fingerprint.native``)."""
    from fingerprint.native import NATIVE

    return "C" if NATIVE is not None else "Python"


# --- persistence -----------------------------------------------------------------------


def load_saved(path: Path = RESULTS_FILE) -> dict[str, Any]:
    try:
        saved: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"results": {}}
    return saved


def save(results: dict[str, dict[str, Any]], path: Path = RESULTS_FILE) -> dict[str, Any]:
    """Merge this run's results over the saved ones (same name: the new one wins)."""
    saved = load_saved(path)
    merged = {**saved.get("results", {}), **results}
    document = {
        "machine": machine_info(),
        "updated": _now(),
        "commit": git_commit(),
        "run": RUN_ID,
        "results": merged,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return document


# --- tables ------------------------------------------------------------------------------


def _get(results: dict[str, dict[str, Any]], name: str, key: str) -> float | None:
    value = results.get(name, {}).get(key)
    return float(value) if isinstance(value, int | float) else None


def _fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def worker_ratios(results: dict[str, dict[str, Any]], suffix: str = "") -> list[float]:
    """Two workers' wall-clock throughput over one worker's, one ratio per round of the
    two run side by side (``bench_pipeline.ROUNDS``): ``pipeline_ours_w2`` over
    ``pipeline_ours_w1``, then ``..._round2`` over ``..._round2``, as far as both ran
    in the same benchmark run as the first round (a round kept from an earlier run
    in ``results.json`` is no side-by-side measure of this one)."""
    ratios = []
    first_run = results.get(f"pipeline_ours_w1{suffix}", {}).get("run")
    speed = "lines_per_s_wall"
    for round_ in itertools.count(1):  # until a round is missing
        tail = f"_round{round_}" if round_ > 1 else ""
        one, two = f"pipeline_ours_w1{suffix}{tail}", f"pipeline_ours_w2{suffix}{tail}"
        ratio = _ratio(_get(results, two, speed), _get(results, one, speed))
        runs = {results.get(name, {}).get("run") for name in (one, two)}
        if ratio is None or runs != {first_run}:
            break
        ratios.append(ratio)
    return ratios


def checks_off_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    """What the pipeline alone costs against the floor: one worker with every check
    off (no history either) over the floor's CPU a line, and what history and the
    checks add (one worker's first round less the check-free run), per log."""
    out = []
    for suffix, log in (("", "generator's log"), ("_few_ua", "few user agents")):
        names = [f"pipeline_ours_w1{suffix}_checks_off", f"pipeline_floor{suffix}",
                 f"pipeline_ours_w1{suffix}"]  # fmt: skip
        off, floor, full = (_get(results, name, "cpu_us_per_line") for name in names)
        ratio = _ratio(off, floor)
        # Only runs of one benchmark run: the host's hour moves them by a fifth or more.
        one_run = len({results.get(name, {}).get("run") for name in names}) == 1
        if ratio is None or off is None or full is None or floor is None or not one_run:
            continue
        out += [
            "",
            f"Every check off, {log}: one worker spends {ratio:.2f}x the floor's CPU a line "
            f"({off:.1f} µs): the pipeline alone. History and the checks add "
            f"{full - off:.1f} µs a line; the floor's 4x leaves {4 * floor - off:.1f} µs "
            "for them.",
        ]
    return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def targets(results: dict[str, dict[str, Any]]) -> list[tuple[str, float | None, str, str]]:
    """(what, value, shown value, "target | met") for each target of issue 20."""

    def cpu(name: str) -> float | None:
        return _get(results, name, "cpu_us_per_line")

    ours, ours_few = cpu("pipeline_ours_w1"), cpu("pipeline_ours_w1_few_ua")
    rows = (
        (
            "ours (1 worker) / floor, CPU per line, generator's log",
            _ratio(ours, cpu("pipeline_floor")),
            "x",
            "<=",
            4.0,
        ),
        (
            "ours (1 worker) / floor, CPU per line, few user agents",
            _ratio(ours_few, cpu("pipeline_floor_few_ua")),
            "x",
            "<=",
            4.0,
        ),
        (
            "naive / ours (1 worker), CPU per line, generator's log",
            _ratio(cpu("pipeline_naive"), ours),
            "x",
            ">=",
            3.0,
        ),
        (
            "naive / ours (1 worker), CPU per line, few user agents",
            _ratio(cpu("pipeline_naive_few_ua"), ours_few),
            "x",
            ">=",
            3.0,
        ),
        (
            "`Checker.check` p50, warm, fresh sessions",
            _get(results, "check_warm_stream", "p50_us"),
            " µs",
            "<=",
            60.0,
        ),
        (
            "`Checker.check` p99, warm, fresh sessions",
            _get(results, "check_warm_stream", "p99_us"),
            " µs",
            "<=",
            200.0,
        ),
        (
            "throughput, 2 workers / 1 worker (wall), generator's log, mean of the rounds",
            _mean(worker_ratios(results)),
            "x",
            ">=",
            1.7,
        ),
        (
            "throughput, 2 workers / 1 worker (wall), few user agents, mean of the rounds",
            _mean(worker_ratios(results, "_few_ua")),
            "x",
            ">=",
            1.7,
        ),
        (
            "peak RSS, 2M lines, 1 worker",
            _get(results, "cli_2m_rss", "max_rss_mb"),
            " MB",
            "<",
            400,
        ),
    )
    checks = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b}
    out = []
    for what, value, unit, op, limit in rows:
        met = "n/a"
        if value is not None:
            met = "**met**" if checks[op](value, limit) else "**missed**"
        digits = 2 if unit == "x" else 1
        target = f"{op} {limit:g}{unit}"
        out.append((what, value, _fmt(value, unit, digits), f"{target} | {met}"))
    return out


def _load(entry: dict[str, Any]) -> str:
    before, after = entry.get("load_before"), entry.get("load_after")
    if before is None or after is None:
        return "n/a"
    return f"{before:.1f} → {after:.1f}"


def _provenance(entry: dict[str, Any], current: set[str], name: str) -> str:
    if name in current:
        return ""
    if not entry:
        return " (not run)"
    return f" (earlier run: {entry.get('measured_at', '?')}, {entry.get('commit', '?')})"


def render(document: dict[str, Any]) -> str:
    results: dict[str, dict[str, Any]] = document.get("results", {})
    current = {name for name, e in results.items() if e.get("run") == document.get("run")}
    m = document.get("machine") or machine_info()
    lines = [
        f"Run {document.get('updated', '?')}, commit {document.get('commit', '?')}; "
        f"{m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB RAM, "
        f"Python {m['python']} ({m['os']})"
        + (f"; hot loops in {m['native_loops']}" if "native_loops" in m else ""),
        "",
        "| what | measured | target | met |",
        "|---|---:|---:|---|",
    ]
    for what, _, shown, target_and_met in targets(results):
        lines.append(f"| {what} | {shown} | {target_and_met} |")

    lines += [
        "",
        "| pipeline over the same log | lines | CPU µs/line | wall s | CPU s | lines/s (wall) "
        "| peak RSS MB | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, label in (
        ("pipeline_floor", "floor (orjson + maxminddb + dict + write)"),
        ("pipeline_ours_w1", "ours: `fingerprint check --workers 1`"),
        ("pipeline_ours_w2", "ours: `fingerprint check --workers 2`"),
        ("pipeline_ours_w1_round2", "ours: `--workers 1`, second round"),
        ("pipeline_ours_w2_round2", "ours: `--workers 2`, second round"),
        ("pipeline_ours_w1_checks_off", "ours: `--workers 1`, every check off"),
        ("pipeline_naive", "naive (json + pydantic + user_agents + geoip2)"),
        ("pipeline_floor_few_ua", "floor, few user agents"),
        ("pipeline_ours_w1_few_ua", "ours: `--workers 1`, few user agents"),
        ("pipeline_ours_w2_few_ua", "ours: `--workers 2`, few user agents"),
        ("pipeline_ours_w1_few_ua_round2", "ours: `--workers 1`, few user agents, second round"),
        ("pipeline_ours_w2_few_ua_round2", "ours: `--workers 2`, few user agents, second round"),
        (
            "pipeline_ours_w1_few_ua_checks_off",
            "ours: `--workers 1`, few user agents, every check off",
        ),
        ("pipeline_naive_few_ua", "naive, few user agents"),
        ("cli_2m_rss", "ours, 2M lines / 200k accounts, `--workers 1`"),
    ):
        e = results.get(name, {})
        lines.append(
            f"| {label}{_provenance(e, current, name)} | {_fmt(e.get('lines'), '', 0)} "
            f"| {_fmt(e.get('cpu_us_per_line'))} | {_fmt(e.get('wall_s'), '', 2)} "
            f"| {_fmt(e.get('cpu_s'), '', 2)} | {_fmt(e.get('lines_per_s_wall'), '', 0)} "
            f"| {_fmt(e.get('max_rss_mb'), '', 0)} | {_load(e)} |"
        )
    for suffix, log in (("", "generator's log"), ("_few_ua", "few user agents")):
        rounds = worker_ratios(results, suffix)
        if rounds:
            lines += [
                "",
                f"2 workers / 1 worker (wall) by round, run side by side, {log}: "
                + ", ".join(f"{r:.2f}x" for r in rounds)
                + ".",
            ]
    lines += checks_off_lines(results)
    cpu1 = _get(results, "pipeline_ours_w1", "cpu_s")
    cpu2 = _get(results, "pipeline_ours_w2", "cpu_s")
    inflation = _ratio(cpu2, cpu1)
    if inflation is not None:
        lines += [
            "",
            f"`--workers 2` spends {inflation:.2f}x the CPU of `--workers 1` on the same log, so "
            f"on two otherwise idle cores its throughput can be at most {2 / inflation:.2f}x "
            "(the wall-clock ratio above also depends on what else the machine was running: "
            "see the load averages).",
        ]

    lines += [
        "",
        "| `Checker.check`, one call, warm | calls | p50 µs | p90 µs | p99 µs | p99.9 µs "
        "| mean µs | max µs | full GCs (max ms) | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, label in (
        ("check_warm_stream", "fresh sessions after warm-up (realistic)"),
        ("check_warm_replay", "same sessions replayed 30 days later"),
    ):
        e = results.get(name, {})
        lines.append(
            f"| {label}{_provenance(e, current, name)} | {_fmt(e.get('calls'), '', 0)} "
            f"| {_fmt(e.get('p50_us'))} | {_fmt(e.get('p90_us'))} | {_fmt(e.get('p99_us'))} "
            f"| {_fmt(e.get('p999_us'))} | {_fmt(e.get('mean_us'))} | {_fmt(e.get('max_us'))} "
            f"| {_fmt(e.get('gc_full_collections'), '', 0)} ({_fmt(e.get('gc_full_max_ms'))}) "
            f"| {_load(e)} |"
        )

    lines += [
        "",
        "| `Checker.check`, warm, by what is passed (three checkers taking turns) "
        "| p50 µs | p90 µs | p99 µs | p99.9 µs | mean µs |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, label in (
        ("check_warm_passed_dict", "a dict decoded before"),
        ("check_warm_passed_text", "the JSON text, as bytes"),
        ("check_warm_passed_text_decoded_first", "the text, `orjson.loads` in the call"),
    ):
        e = results.get(name, {})
        lines.append(
            f"| {label}{_provenance(e, current, name)} | {_fmt(e.get('p50_us'))} "
            f"| {_fmt(e.get('p90_us'))} | {_fmt(e.get('p99_us'))} | {_fmt(e.get('p999_us'))} "
            f"| {_fmt(e.get('mean_us'))} |"
        )

    lines += [
        "",
        "| component | µs per call | vs. reference |",
        "|---|---:|---|",
    ]
    component_rows = (
        ("ua_uncached", "UA: `parse_user_agent`, uncached", None, ""),
        ("ua_cached", "UA: `cached_resolver(parse_user_agent)`, hit", "ua_uncached", "faster"),
        ("geo_raw", "geo: raw `maxminddb` `Reader.get`", None, ""),
        ("geo_lookup", "geo: `MaxMindLookup.lookup`, warm", "geo_raw", "of raw"),
        ("rules_load", "`load_rules()`, the process's first", None, ""),
        ("rules_load_again", "`load_rules()`, the same files again", None, ""),
        ("rules_engine", "`build_engine(load_rules())`, the process's first", None, ""),
    )
    for name, label, reference, word in component_rows:
        e = results.get(name, {})
        value = _get(results, name, "us_per_call")
        versus = ""
        if reference is not None:
            ref = _get(results, reference, "us_per_call")
            if word == "faster":
                versus = f"{_fmt(_ratio(ref, value), 'x')} faster than uncached"
            else:
                versus = f"{_fmt(_ratio(value, ref), 'x', 2)} the time of raw `get`"
        shown = _fmt(value, "", 2)
        lines.append(f"| {label}{_provenance(e, current, name)} | {shown} | {versus} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else RESULTS_FILE
    document = load_saved(path)
    if not document.get("results"):
        print(f"no results in {path}; run the benchmarks first", file=sys.stderr)
        return 1
    sys.stdout.write(render(document))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
