"""Running a command as a child process and measuring it: wall clock, CPU, peak RSS."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ProcessCost:
    wall_s: float
    cpu_s: float  # user + system, the child and every process it waited for
    user_s: float
    sys_s: float
    max_rss_mb: float  # largest resident set of the child or any child of its own
    children_cpu_s: float  # cross-check: getrusage(RUSAGE_CHILDREN) before/after
    stdout: str
    stderr: str


def run_measured(argv: list[str], *, cwd: Path = REPO) -> ProcessCost:
    """Run ``argv`` to completion and measure it; raise if it fails.

    ``os.wait4`` returns the rusage of this one child, including the workers it forked
    and reaped, so the peak RSS is this run's and not the largest of any earlier child
    (which is what ``RUSAGE_CHILDREN``'s ``ru_maxrss`` would report).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} exited with {proc.returncode}: {stderr[-2000:]}")
    return ProcessCost(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024.0,  # KiB on Linux
        children_cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        stdout=stdout,
        stderr=stderr,
    )


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]


def gnu_time_rss_mb(argv: list[str], *, cwd: Path = REPO) -> tuple[ProcessCost, float | None]:
    """:func:`run_measured` under ``/usr/bin/time -v`` when it exists, plus GNU time's
    "Maximum resident set size" in MB as a second opinion (None without GNU time)."""
    gnu_time = "/usr/bin/time"
    if not os.access(gnu_time, os.X_OK):
        return run_measured(argv, cwd=cwd), None
    cost = run_measured([gnu_time, "-v", *argv], cwd=cwd)
    rss = None
    for line in cost.stderr.splitlines():
        if "Maximum resident set size" in line:
            rss = int(line.rsplit(":", 1)[1]) / 1024.0
    return cost, rss
