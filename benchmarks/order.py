"""Logs in any order: peak RSS, CPU per line and verdicts of ``fingerprint check``.

From one generated log (``benchmarks.generate``, in time order within 40 s) this
writes variants of the same lines and runs ``fingerprint check --workers 1`` on each,
as a child process measured whole (``benchmarks.measure``):

* ``sorted``: the generated log as it is;
* ``exact``: its lines sorted by time (a stable sort), the reference for verdicts;
* ``shuffled``: a random permutation (seed 1);
* ``reversed``: last line first;
* ``concatenated``: the lines dealt in turn into four "server logs", each spanning
  the whole period, written one after the other (as ``cat a b c d`` does);
* ``split``: the same four server logs as four input files (merged by time);
* ``outlier``: line 1,000 a day ahead (a device with a wrong clock);
* ``same_ts``: the first 60,000 lines all at one timestamp.

Verdicts (grade, score, reason codes per session id) are compared with those of the
exact sort of the same lines; the late-arrival warnings are counted. Usage::

    python -m benchmarks.order --sessions 300000 --cases sorted,shuffled,concatenated
    python -m benchmarks.order --code /path/to/other/checkout ...  # another commit's code

Not a test: it measures; nothing asserts.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from benchmarks.generate import DATA_DIR, ensure_dataset
from benchmarks.measure import REPO, ProcessCost, python_argv, run_measured
from fingerprint.session import parse_timestamp

CASES = ("sorted", "exact", "shuffled", "reversed", "concatenated", "split", "outlier", "same_ts")
SERVERS = 4
DAY = 86_400


def _time(line: bytes) -> float:
    return parse_timestamp(orjson.loads(line)["ts"]).timestamp()


def _with_time(line: bytes, ts: float) -> bytes:
    record = orjson.loads(line)
    record["ts"] = int(ts * 1000)
    return orjson.dumps(record) + b"\n"


def _servers(lines: list[bytes]) -> list[list[bytes]]:
    return [lines[k::SERVERS] for k in range(SERVERS)]


def _outlier(lines: list[bytes]) -> list[bytes]:
    out = list(lines)
    out[1000] = _with_time(out[1000], _time(out[1000]) + DAY)
    return out


def _same_ts(lines: list[bytes]) -> list[bytes]:
    ts = _time(lines[0])
    return [_with_time(line, ts) for line in lines[:60_000]]


VARIANTS: dict[str, Callable[[list[bytes]], list[bytes]]] = {
    "sorted": list,
    "exact": lambda lines: sorted(lines, key=_time),
    "shuffled": lambda lines: random.Random(1).sample(lines, len(lines)),
    "reversed": lambda lines: lines[::-1],
    "concatenated": lambda lines: [line for part in _servers(lines) for line in part],
    "outlier": _outlier,
    "same_ts": _same_ts,
}


def variant_files(source: Path, case: str) -> list[Path]:
    """The input files of one case, written next to the source log once."""
    stem = source.with_suffix("")
    if case == "split":
        paths = [Path(f"{stem}.server{k}.jsonl") for k in range(SERVERS)]
        if not all(p.exists() for p in paths):
            lines = source.read_bytes().splitlines(keepends=True)
            for path, part in zip(paths, _servers(lines), strict=True):
                path.write_bytes(b"".join(part))
        return paths
    path = Path(f"{stem}.{case}.jsonl")
    if not path.exists():
        lines = source.read_bytes().splitlines(keepends=True)
        path.write_bytes(b"".join(VARIANTS[case](lines)))
    return [path]


def exact_sort_of(paths: list[Path]) -> Path:
    """The lines of ``paths`` (in that order) sorted by time, stably: the reference."""
    path = Path(f"{paths[0].with_suffix('')}.sorted-ref.jsonl")
    if not path.exists():
        lines = b"".join(p.read_bytes() for p in paths).splitlines(keepends=True)
        path.write_bytes(b"".join(sorted(lines, key=_time)))
    return path


def verdicts(path: Path) -> tuple[dict[str, tuple[Any, ...]], int, int]:
    """Verdict per session id, late-arrival warnings, other order warnings."""
    out: dict[str, tuple[Any, ...]] = {}
    late = ahead = 0
    with path.open("rb") as handle:
        for line in handle:
            report = orjson.loads(line)
            codes = tuple(sorted(f["code"] for f in report["findings"]))
            out[report["session_id"]] = (report["grade"], report["score"], codes)
            warnings = report.get("warnings", ())
            late += any(w.startswith("late arrival") for w in warnings)
            ahead += any(w.startswith("checked out of time order") for w in warnings)
    return out, late, ahead


def run_case(paths: list[Path], out: Path, extra: Sequence[str], cwd: Path) -> ProcessCost:
    argv = python_argv(
        "-m", "fingerprint.cli", "check", *map(str, paths), "-o", str(out), "--workers", "1"
    )
    return run_measured([*argv, "-q", *extra], cwd=cwd)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.order", description=__doc__)
    parser.add_argument("--sessions", type=int, default=300_000)
    parser.add_argument("--cases", default="sorted,shuffled,concatenated")
    parser.add_argument("--compare", action="store_true", help="verdicts against the exact sort")
    parser.add_argument("--label", default="", help="a name for this code (e.g. a commit)")
    parser.add_argument("--keep", action="store_true", help="keep the reports files")
    parser.add_argument(
        "--code", type=Path, default=REPO, help="checkout whose fingerprint runs (default: this)"
    )
    parser.add_argument("extra", nargs="*", help="more options for fingerprint check")
    args = parser.parse_args(argv)
    source = ensure_dataset(args.sessions, verbose=True)
    print(
        "| code | case | lines | CPU µs/line | wall s | peak RSS MB | late warnings |"
        " ahead warnings | verdicts vs exact sort |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for case in args.cases.split(","):
        paths = variant_files(source, case)
        out = DATA_DIR / f"order-{args.label or 'run'}-{case}.out.jsonl"
        cost = run_case(paths, out, args.extra, args.code)
        got, late, ahead = verdicts(out)
        same = ""
        if args.compare:
            reference = DATA_DIR / f"order-{args.label or 'run'}-{case}.ref.jsonl"
            run_case([exact_sort_of(paths)], reference, args.extra, args.code)
            expected = verdicts(reference)[0]
            differ = sum(got.get(k) != v for k, v in expected.items()) + len(got.keys() - expected)
            same = "identical" if differ == 0 else f"{differ:,} differ"
            if not args.keep:
                reference.unlink()
        lines = sum(len(p.read_bytes().splitlines()) for p in paths)
        print(
            f"| {args.label} | {case} | {lines:,} | {cost.cpu_s / lines * 1e6:.1f} |"
            f" {cost.wall_s:.1f} | {cost.max_rss_mb:.0f} | {late:,} | {ahead:,} | {same} |",
            flush=True,
        )
        if not args.keep:
            out.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
