"""A log checked as it streams, before anything proves it is in time order
(``--sort auto``, one input file, one worker or two stages): a log in order is read
once; one that is not is taken back whole at its first line out of order, scanned
and sorted, and its outputs are exactly those of a run that scanned first."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fingerprint import CheckerConfig, batch, sorting
from fingerprint.batch import BatchOptions, BatchSinks, run_batch
from fingerprint.checker import Checker
from fingerprint.history import MemoryHistoryStore
from fingerprint.outputs import Output
from fingerprint.session import parse_timestamp
from tests.conftest import FIXTURES

LINES = (FIXTURES / "labelled.jsonl").read_bytes().splitlines(keepends=True)[:600]


def _time(line: bytes) -> float:
    return parse_timestamp(json.loads(line)["ts"]).timestamp()


def _ahead(lines: list[bytes], index: int) -> list[bytes]:
    """One line dated two days ahead of the others: let go on its own ("ahead")."""
    record = json.loads(lines[index])
    record["ts"] = int((_time(lines[index]) + 2 * 86_400) * 1000)
    return [*lines[:index], json.dumps(record).encode() + b"\n", *lines[index + 1 :]]


def _shapes() -> dict[str, list[bytes]]:
    ordered = sorted(LINES, key=_time)
    late_at_end = [*ordered[:100], *ordered[110:], *ordered[100:110]]  # ten lines held back
    return {
        "in order": ordered,
        "reordered within the skew": LINES,  # the labelled log: a few seconds apart
        "shuffled": random.Random(4).sample(LINES, len(LINES)),
        "two halves interleaved": [*ordered[::2], *ordered[1::2]],
        "late near the end": late_at_end,
        "one line far ahead": _ahead(ordered, 30),
    }


SHAPES = _shapes()
# With a rejected line and a blank line before anything is out of order: the rejects
# are taken back too.
EXTRAS = [b"not json\n", b"\n"]


class _Spy:
    """Counts the scans, the checkers' starts over and the checks finished before the
    first start over (in the process that writes: with two stages, the parent)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.scans = 0
        self.forgets = 0
        self.finished_before = 0
        scan, forget, complete = batch.scan_plan, Checker.forget, Checker._complete

        def counted_scan(*args: Any, **kwargs: Any) -> bool:
            self.scans += 1
            return scan(*args, **kwargs)

        def counted_forget(checker: Checker) -> None:
            self.forgets += 1
            forget(checker)

        def counted_complete(checker: Checker, *args: Any) -> Any:
            self.finished_before += not self.forgets
            return complete(checker, *args)

        monkeypatch.setattr(Checker, "_complete", counted_complete)

        monkeypatch.setattr(batch, "scan_plan", counted_scan)
        monkeypatch.setattr(sorting, "scan_plan", counted_scan)
        monkeypatch.setattr(Checker, "forget", counted_forget)


def _run(
    tmp_path: Path, name: str, lines: list[bytes], *, workers: int, **options: Any
) -> tuple[bytes, bytes, dict[str, Any]]:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(lines))
    out_path, rejects_path = tmp_path / f"{name}.out", tmp_path / f"{name}.rejects"
    out, rejects = Output(str(out_path)), Output(str(rejects_path), option="--rejects")
    run = BatchOptions(paths=[str(source)], config=CheckerConfig(), workers=workers, **options)
    stats = run_batch(run, BatchSinks(output=out, rejects=rejects))
    out.commit()
    rejects.commit()
    summary = stats.to_dict()
    summary.pop("seconds")
    summary.pop("lines_per_second")
    return out_path.read_bytes(), rejects_path.read_bytes(), summary


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_what_a_run_writes_is_what_a_run_that_scanned_first_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: str, workers: int
) -> None:
    lines = [*SHAPES[shape][:5], *EXTRAS, *SHAPES[shape][5:]]
    spy = _Spy(monkeypatch)
    # A line ahead is let go on its own after 100 newer lines (held to the end of a
    # log this short by default).
    got = _run(tmp_path, "unscanned", lines, workers=workers, max_held_lines=100)
    in_order = shape in ("in order", "reordered within the skew")
    # A log in order is never scanned; one out of order is scanned once, after the
    # check that met its first line out of order forgot everything it had done.
    assert (spy.scans, spy.forgets) == ((0, 0) if in_order else (1, 1))
    if not in_order:  # the check stopped where the first line out of order came
        assert spy.finished_before < len(lines) - 2 - 5
    assert got[2]["order"]["sorted"] is not in_order
    monkeypatch.setattr(batch, "_speculates", lambda *args, **kwargs: False)
    expected = _run(tmp_path, "scanned", lines, workers=workers, max_held_lines=100)
    assert spy.scans == (1 if in_order else 2)
    assert got == expected
    assert len(got[1].splitlines()) == 1  # the one rejected line, once


@pytest.mark.parametrize("workers", [1, 2])
def test_accounts_and_csv_rows_are_taken_back_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    lines = SHAPES["late near the end"]
    for options in ({"by_account": True}, {"fmt": "csv"}):
        got = _run(tmp_path, "unscanned", lines, workers=workers, **options)
        with monkeypatch.context() as patched:
            patched.setattr(batch, "_speculates", lambda *args, **kwargs: False)
            expected = _run(tmp_path, "scanned", lines, workers=workers, **options)
        assert got == expected


def _options(tmp_path: Path, **changes: Any) -> BatchOptions:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(LINES[:5]))
    return BatchOptions(**{"paths": [str(source)], "config": CheckerConfig(), **changes})


@pytest.fixture
def output(tmp_path: Path) -> Iterator[Output]:
    out = Output(str(tmp_path / "out.jsonl"))
    yield out
    out.abort()


def test_a_run_checks_as_it_streams_only_when_it_can_take_everything_back(
    tmp_path: Path, output: Output
) -> None:
    def speculates(sinks: BatchSinks, checker: Checker | None = None, **changes: Any) -> bool:
        options = _options(tmp_path, **changes)
        checker = checker or Checker(options.config)
        pipelined = batch._pipelined(options, checker)
        return batch._speculates(options, sinks, checker, pipelined=pipelined)

    ours = BatchSinks(output=output)
    assert speculates(ours)
    assert speculates(ours, workers=2)
    assert speculates(BatchSinks(output=output, rejects=Output(str(tmp_path / "r.jsonl"))))
    # Scanned first: the sort is asked for or refused, several files, shards, ...
    assert not speculates(ours, sort="always")
    assert not speculates(ours, sort="never")
    assert not speculates(ours, paths=[str(tmp_path / "in.jsonl")] * 2)
    assert not speculates(ours, workers=3)
    # ... an output that cannot be unwritten (stdout, a device, anything not ours) ...
    assert not speculates(BatchSinks(output=io.BytesIO()))
    assert not speculates(BatchSinks(output=Output("/dev/null")))
    assert not speculates(BatchSinks(output=output, rejects=Output("/dev/null")))
    # ... history handed in or shared, or registry lookups (cached on disk).
    handed_in = Checker(CheckerConfig(), history=MemoryHistoryStore())
    assert not speculates(ours, handed_in)
    whois = CheckerConfig(whois=True, whois_cache=str(tmp_path / "whois.sqlite3"))
    assert not speculates(ours, config=whois)


def test_an_output_of_ours_is_rewound_and_one_written_straight_is_not(
    tmp_path: Path, output: Output
) -> None:
    output.write(b"first attempt\n" * 1000)
    output.rewind()
    output.write(b"second\n")
    output.commit()
    assert (tmp_path / "out.jsonl").read_bytes() == b"second\n"
    straight = Output("/dev/null")
    assert not straight.rewindable
    with pytest.raises(ValueError, match="cannot be rewound"):
        straight.rewind()


def test_a_checker_that_forgets_checks_as_a_new_one_does(tmp_path: Path) -> None:
    records = [json.loads(line) for line in sorted(LINES, key=_time)[:200]]
    checker = Checker(CheckerConfig(track_accounts=100), clock=None)
    first = [checker.check(record).to_dict() for record in records]
    # History mattered: later logins of an account saw the earlier ones.
    assert max(report["features"]["stability_30d"]["sessions"] for report in first) > 3
    account = records[-1]["account_id"]  # the most recent: never evicted
    assert checker.account_summary(account) is not None
    checker.forget()
    assert checker.account_summary(account) is None
    assert [checker.check(record).to_dict() for record in records] == first
    assert checker.can_forget
    handed_in = Checker(CheckerConfig(), history=MemoryHistoryStore())
    assert not handed_in.can_forget
    with pytest.raises(RuntimeError, match="cannot forget"):
        handed_in.forget()
