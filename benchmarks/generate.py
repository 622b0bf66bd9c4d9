"""Cached, deterministic session logs for the benchmarks.

A thin wrapper over :func:`fixtures.generate.generate_sessions`: the file for a given
(sessions, accounts, seed) is written once into ``benchmarks/.data/`` (gitignored) and
reused afterwards. Files are written to a temporary name and renamed, so an
interrupted run never leaves a truncated log behind.

Usage::

    python -m benchmarks.generate --sessions 200000 --accounts 20000 --seed 6
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import orjson

DATA_DIR = Path(__file__).resolve().parent / ".data"

# Realistic shape: about ten logins per account (2M lines over 200k accounts).
SESSIONS_PER_ACCOUNT = 10
DEFAULT_SEED = 6


def default_accounts(sessions: int) -> int:
    return max(1, sessions // SESSIONS_PER_ACCOUNT)


def dataset_path(sessions: int, accounts: int | None = None, seed: int = DEFAULT_SEED) -> Path:
    accounts = default_accounts(sessions) if accounts is None else accounts
    return DATA_DIR / f"sessions-n{sessions}-a{accounts}-s{seed}.jsonl"


def ensure_dataset(
    sessions: int,
    accounts: int | None = None,
    seed: int = DEFAULT_SEED,
    *,
    verbose: bool = False,
) -> Path:
    """Path of the generated log, generating it first if it is not cached yet."""
    accounts = default_accounts(sessions) if accounts is None else accounts
    path = dataset_path(sessions, accounts, seed)
    if path.exists():
        return path
    from fixtures.generate import generate_sessions  # the generator loads ~2 s of IP pools

    started = time.perf_counter()
    if verbose:
        print(f"generating {path.name} ...", file=sys.stderr, flush=True)
    records = generate_sessions(sessions, accounts, seed)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        with partial.open("wb") as out:  # line by line: no second copy of a 2M-line log
            for record in records:
                out.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    if verbose:
        seconds = time.perf_counter() - started
        print(f"generated {path} in {seconds:.1f} s", file=sys.stderr, flush=True)
    return path


def load_records(
    sessions: int, accounts: int | None = None, seed: int = DEFAULT_SEED
) -> list[dict[str, object]]:
    """The generated sessions as dicts (read back from the cached file)."""
    path = ensure_dataset(sessions, accounts, seed)
    with path.open("rb") as handle:
        return [orjson.loads(line) for line in handle]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.generate", description=__doc__)
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--accounts", type=int, help="default: sessions / 10")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    print(ensure_dataset(args.sessions, args.accounts, args.seed, verbose=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
