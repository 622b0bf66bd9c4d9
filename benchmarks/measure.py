"""Running a command as a child process and measuring it: wall clock, CPU, peak RSS.

The command runs under a small launcher (``python -m benchmarks.measure``) that forks
it, waits with ``os.wait4`` and writes the child's own rusage to a file. The launcher
matters for the peak RSS: a process started straight from pytest inherits pytest's
memory high-water mark through fork and exec (Linux keeps it in ``ru_maxrss``), and
``RUSAGE_CHILDREN`` reports the largest child ever waited for. The grandchild forked
by the small launcher starts clean, as under GNU ``time -v``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ProcessCost:
    wall_s: float
    cpu_s: float  # user + system of the command and every process it waited for
    user_s: float
    sys_s: float
    max_rss_mb: float  # largest resident set of the command or any of its children
    children_cpu_s: float  # cross-check: getrusage(RUSAGE_CHILDREN) delta, launcher included
    load_before: float  # 1-minute load average when the run started
    load_after: float
    stdout: str
    stderr: str


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]


def run_measured(argv: list[str], *, cwd: Path = REPO) -> ProcessCost:
    """Run ``argv`` to completion under the launcher; raise if it fails."""
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(suffix=".json") as result,
    ):
        launcher = [sys.executable, "-m", "benchmarks.measure", result.name, "--", *argv]
        proc = subprocess.run(launcher, cwd=cwd, stdout=out, stderr=err, check=False)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
        if proc.returncode != 0:
            raise RuntimeError(f"{argv} exited with {proc.returncode}: {stderr[-2000:]}")
        usage = json.loads(Path(result.name).read_text())
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ProcessCost(
        wall_s=usage["wall_s"],
        cpu_s=usage["user_s"] + usage["sys_s"],
        user_s=usage["user_s"],
        sys_s=usage["sys_s"],
        max_rss_mb=usage["max_rss_kib"] / 1024.0,
        children_cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        load_before=load_before,
        load_after=os.getloadavg()[0],
        stdout=stdout,
        stderr=stderr,
    )


def gnu_time_rss_mb(argv: list[str], *, cwd: Path = REPO) -> tuple[ProcessCost, float | None]:
    """:func:`run_measured` with the command under ``/usr/bin/time -v`` when it exists,
    plus GNU time's "Maximum resident set size" in MB as a second opinion."""
    gnu_time = "/usr/bin/time"
    if not os.access(gnu_time, os.X_OK):
        return run_measured(argv, cwd=cwd), None
    cost = run_measured([gnu_time, "-v", *argv], cwd=cwd)
    rss = None
    for line in cost.stderr.splitlines():
        if "Maximum resident set size" in line:
            rss = int(line.rsplit(":", 1)[1]) / 1024.0
    return cost, rss


def launch(result_path: str, argv: Sequence[str]) -> int:
    """Fork and exec ``argv``, wait for it, write its rusage as JSON; its exit code."""
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.execvp(argv[0], list(argv))
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    Path(result_path).write_text(
        json.dumps(
            {
                "wall_s": wall,
                "user_s": usage.ru_utime,
                "sys_s": usage.ru_stime,
                "max_rss_kib": usage.ru_maxrss,
            }
        )
    )
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print("usage: python -m benchmarks.measure RESULT.json -- COMMAND...", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(launch(sys.argv[1], sys.argv[3:]))
