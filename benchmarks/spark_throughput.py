"""Throughput of the Spark job (local[1], local[2]) beside the local CLI.

Generates (once, cached by :mod:`benchmarks.generate`, which wraps
``fixtures.generate``) N session lines, then times:

* the CLI: ``fingerprint check --workers 1`` and ``--workers 2``;
* ``python -m fingerprint.spark``'s job in ``local[1]`` and ``local[2]``: read,
  check, write JSON reports. Spark's start-up (JVM, Python workers) is timed
  separately: on a cluster it is paid once per job, not per line.

Usage::

    python -m benchmarks.spark_throughput --sessions 50000
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.generate import ensure_dataset


def time_cli(path: Path, workers: int, scratch: Path) -> float:
    from fingerprint.cli import main

    out = scratch / f"cli-{workers}.jsonl"
    started = time.perf_counter()
    argv = ["check", str(path), "-o", str(out), "-q", "--workers", str(workers)]
    code = main([*argv, "--max-skew", "300"])
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"CLI failed with exit code {code}")
    return seconds


def time_spark(path: Path, cores: int, scratch: Path) -> tuple[float, float, float]:
    """(start-up seconds, first run seconds, second run seconds): the second run has
    warm Python workers, as every job after the first on a long-lived cluster."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from fingerprint.spark import check_sessions, read_session_lines, to_json_lines

    started = time.perf_counter()
    spark = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("fingerprint-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(max(4, 2 * cores)))
        .config("spark.driver.memory", "2g")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.range(1).count()
    startup = time.perf_counter() - started
    runs = []
    for attempt in range(2):
        out = scratch / f"spark-{cores}-{attempt}"
        started = time.perf_counter()
        reports, _ = check_sessions(read_session_lines(spark, [str(path)]))
        to_json_lines(reports).write.text(str(out))
        runs.append(time.perf_counter() - started)
    spark.stop()
    return startup, runs[0], runs[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spark_throughput")
    parser.add_argument("--sessions", type=int, default=50_000)
    parser.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    path = ensure_dataset(args.sessions, verbose=True)
    lines = sum(1 for _ in path.open("rb"))
    size = path.stat().st_size / 1e6
    version = platform.python_version()
    print(f"{lines} lines ({size:.1f} MB), {os.cpu_count()} CPUs, Python {version}")
    scratch = Path(tempfile.mkdtemp(prefix="fingerprint-bench-"))
    try:
        print(f"{'run':<28} {'seconds':>8} {'lines/s':>9}")
        for workers in (1, 2):
            seconds = time_cli(path, workers, scratch)
            print(f"{f'CLI --workers {workers}':<28} {seconds:>8.1f} {lines / seconds:>9.0f}")
        for cores in args.cores:
            startup, first, second = time_spark(path, cores, scratch)
            print(f"{f'Spark local[{cores}] start-up':<28} {startup:>8.1f}")
            for label, seconds in (("first job", first), ("second job", second)):
                name = f"Spark local[{cores}] {label}"
                print(f"{name:<28} {seconds:>8.1f} {lines / seconds:>9.0f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
