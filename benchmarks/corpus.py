"""A log with few distinct user agents and devices: the labelled fixture set
(``fixtures/labelled.jsonl``, 3,000 sessions) tiled to any length.

Each copy is shifted in time past the previous one's windows (its span plus 40 days)
and renames its accounts and session ids, so copies never share history; devices,
apps, user agents and addresses repeat exactly, as a real log's popular phones and
app versions do. The generator's log is the other shape (thousands of distinct user
agents and device blocks); a design that wins on one can lose on the other.

Usage::

    python -m benchmarks.corpus --sessions 200000
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from benchmarks.generate import DATA_DIR

SOURCE = Path(__file__).resolve().parent.parent / "fixtures" / "labelled.jsonl"
_GAP = 40 * 86_400  # beyond every history window (30 days)


def corpus_path(sessions: int) -> Path:
    return DATA_DIR / f"corpus-n{sessions}.jsonl"


def ensure_corpus(sessions: int) -> Path:
    """Path of the tiled log, writing it first if it is not cached yet."""
    path = corpus_path(sessions)
    if path.exists():
        return path
    records = [orjson.loads(line) for line in SOURCE.read_bytes().splitlines() if line.strip()]
    times = [_epoch(r["ts"]) for r in records]
    shift = max(times) - min(times) + _GAP
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        with partial.open("wb") as out:
            for n in range(sessions):
                copy, index = divmod(n, len(records))
                record = _copied(records[index], copy, copy * shift)
                out.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _copied(record: dict[str, Any], copy: int, seconds: float) -> dict[str, Any]:
    out = dict(record)
    out["ts"] = _shifted(record["ts"], seconds)
    out["account_id"] = f"{record['account_id']}~{copy}"
    if record.get("session_id"):
        out["session_id"] = f"{record['session_id']}~{copy}"
    return out


def _epoch(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value) / (1000 if value > 1e11 else 1)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _shifted(value: Any, seconds: float) -> Any:
    """The same time written the same way, ``seconds`` later."""
    if isinstance(value, int):
        return value + int(seconds) * (1000 if value > 1e11 else 1)
    if isinstance(value, float):
        return value + seconds
    when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (when + timedelta(seconds=seconds)).isoformat()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.corpus", description=__doc__)
    parser.add_argument("--sessions", type=int, required=True)
    args = parser.parse_args(argv)
    print(ensure_corpus(args.sessions), file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
