"""A log checked as it streams, before anything proves it is in time order
(``--sort auto``, one input file, one worker or two stages): a log in order is read
once; one that is not is taken back whole at its first line out of order, scanned
and sorted, and its outputs are exactly those of a run that scanned first."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fingerprint import CheckerConfig, batch, sorting
from fingerprint.batch import BatchOptions, BatchSinks, run_batch
from fingerprint.checker import Checker
from fingerprint.history import MemoryHistoryStore
from fingerprint.inputs import sample_reader, sampled_lines
from fingerprint.outputs import Output
from fingerprint.pipeline import item_time
from fingerprint.session import parse_timestamp
from tests.conftest import FIXTURES, csv_lines

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
    tmp_path: Path,
    name: str,
    lines: list[bytes],
    *,
    workers: int,
    reports_to: str | None = None,
    **options: Any,
) -> tuple[bytes, bytes, dict[str, Any]]:
    """The reports, rejects and summary of a batch run over ``lines``; reports sent to
    ``reports_to`` instead (a device) come back empty."""
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(lines))
    out_path, rejects_path = tmp_path / f"{name}.out", tmp_path / f"{name}.rejects"
    out = Output(reports_to or str(out_path))
    rejects = Output(str(rejects_path), option="--rejects")
    run = BatchOptions(paths=[str(source)], config=CheckerConfig(), workers=workers, **options)
    stats = run_batch(run, BatchSinks(output=out, rejects=rejects))
    out.commit()
    rejects.commit()
    summary = stats.to_dict()
    summary.pop("seconds")
    summary.pop("lines_per_second")
    reports = b"" if reports_to else out_path.read_bytes()
    return reports, rejects_path.read_bytes(), summary


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_what_a_run_writes_is_what_a_run_that_scanned_first_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: str, workers: int
) -> None:
    lines = [*SHAPES[shape][:5], *EXTRAS, *SHAPES[shape][5:]]
    # Every shape checked unscanned, however plainly out of order its samples are.
    monkeypatch.setattr(batch, "sampled_in_order", lambda *args: True)
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
    monkeypatch.setattr(batch, "sampled_in_order", lambda *args: True)
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
    # Scanned first: the sort is asked for or refused, shards, ...
    assert not speculates(ours, sort="always")
    assert not speculates(ours, sort="never")
    assert not speculates(ours, workers=3)
    # ... an output that cannot be unwritten (stdout, a device, anything not ours) ...
    assert not speculates(BatchSinks(output=io.BytesIO()))
    assert not speculates(BatchSinks(output=Output("/dev/full")))
    assert not speculates(BatchSinks(output=output, rejects=Output("/dev/full")))
    # (but the null device, which keeps nothing to take back) ...
    assert speculates(BatchSinks(output=Output("/dev/null"), rejects=Output("/dev/null")))
    # ... history handed in or shared, or registry lookups (cached on disk).
    handed_in = Checker(CheckerConfig(), history=MemoryHistoryStore())
    assert not speculates(ours, handed_in)
    whois = CheckerConfig(whois=True, whois_cache=str(tmp_path / "whois.sqlite3"))
    assert not speculates(ours, config=whois)


def test_an_output_of_ours_is_rewound_and_one_written_straight_is_not(
    tmp_path: Path, output: Output, monkeypatch: pytest.MonkeyPatch
) -> None:
    output.write(b"first attempt\n" * 1000)
    output.rewind()
    output.write(b"second\n")
    output.commit()
    assert (tmp_path / "out.jsonl").read_bytes() == b"second\n"
    straight = Output("/dev/full")
    assert not straight.rewindable
    with pytest.raises(ValueError, match="cannot be rewound"):
        straight.rewind()
    discarded = Output("/dev/null")  # it kept nothing: taking it back is doing nothing
    assert discarded.rewindable and discarded.replaces is None
    discarded.write(b"first attempt\n")
    discarded.rewind()
    discarded.commit()
    # stdout: the null device when redirected there (> /dev/null), else not ours.
    with open(os.devnull, "w") as null:
        monkeypatch.setattr(sys, "stdout", null)
        assert Output(None).rewindable
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO()))
    assert not Output(None).rewindable


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("shape", ["in order", "one line far ahead"])
def test_a_run_writing_reports_to_the_null_device_checks_as_it_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: str, workers: int
) -> None:
    """``-o /dev/null`` (only the rejects or the summary wanted): the log is checked as
    it streams, not scanned first, and taken back as a file's would be; the rejects
    and the summary are those of a run that scanned first."""
    lines = [*SHAPES[shape][:5], *EXTRAS, *SHAPES[shape][5:]]
    options: dict[str, Any] = {"workers": workers, "reports_to": os.devnull, "max_held_lines": 100}
    monkeypatch.setattr(batch, "sampled_in_order", lambda *args: True)
    spy = _Spy(monkeypatch)
    got = _run(tmp_path, "streamed", lines, **options)
    in_order = shape == "in order"
    assert (spy.scans, spy.forgets) == ((0, 0) if in_order else (1, 1))
    monkeypatch.setattr(batch, "_speculates", lambda *args, **kwargs: False)
    assert got == _run(tmp_path, "scanned", lines, **options)
    assert len(got[1].splitlines()) == 1 and got[2]["reports"] == len(lines) - 2  # a blank


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


def _plan(tmp_path: Path, lines: list[bytes], name: str = "in.jsonl") -> sorting.InputPlan:
    source = tmp_path / name
    source.write_bytes(b"".join(lines))
    return sorting.streaming_plan([str(source)], sorting.OrderOptions(), tmp_path)


def test_samples_let_a_log_in_order_through_and_stop_one_plainly_out_of_order(
    tmp_path: Path,
) -> None:
    """64 lines read at even places: a log whose times rise (or fall back less than
    the skew) is checked unscanned; a concatenation of logs that each span the whole
    period, a reversed or a shuffled log is scanned first."""
    options = sorting.OrderOptions()
    passes = {
        shape: sorting.sampled_in_order(_plan(tmp_path, lines), options)
        for shape, lines in SHAPES.items()
    }
    assert passes["in order"] and passes["reordered within the skew"]
    assert passes["one line far ahead"]  # one line in 600: the samples miss it
    for shape in ("shuffled", "two halves interleaved"):
        assert not passes[shape]
    assert not sorting.sampled_in_order(_plan(tmp_path, SHAPES["in order"][::-1]), options)


def test_a_large_log_is_sampled_densely_enough_to_find_a_block_out_of_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large file is also sampled once every SAMPLE_SPACING bytes: a block of lines a
    day late, between two of the 64 shared places, is found before the check (which
    would meet it and start over), and the same log in order still passes."""
    count, width = 160_000, 256  # 40 MB: 160 places by size, 2,500 lines apart at 64

    def line(number: int, ts: int) -> bytes:
        text = f'{{"session_id":"s{number}","account_id":"a{number % 97}","ts":{ts},"ip":"1.2.3.4"'
        return (text + ',"pad":"' + "x" * (width - len(text) - 11) + '"}\n').encode()

    times = [1_700_000_000 + 10 * n for n in range(count)]
    late = range(100_500, 102_000)  # between the 64 places at lines 100,000 and 102,500
    shapes = {
        "in order": times,
        "a block a day late": [t - 86_400 if n in late else t for n, t in enumerate(times)],
    }
    options = sorting.OrderOptions()
    passes = {}
    for shape, stamps in shapes.items():
        lines = [line(n, t) for n, t in enumerate(stamps)]
        assert {len(text) for text in lines} == {width}
        passes[shape] = sorting.sampled_in_order(_plan(tmp_path, lines), options)
        monkeypatch.setattr(sorting, "SAMPLE_SPACING", 1 << 60)  # 64 places only
        passes[shape, 64] = sorting.sampled_in_order(_plan(tmp_path, lines), options)
        monkeypatch.undo()
    assert passes["in order"] and passes["in order", 64]
    assert passes["a block a day late", 64]  # the block hides between the 64 places
    assert not passes["a block a day late"]


def test_samples_are_whole_lines_of_the_file(tmp_path: Path) -> None:
    lines = SHAPES["in order"]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(lines))
    sampled = sampled_lines(str(source), 64)
    assert sampled is not None and len(sampled) == 65  # and the last line
    assert sampled[0] == lines[0]
    assert sampled[-1] == lines[-1].rstrip(b"\n")
    assert set(sampled[:-1]) <= set(lines)
    assert len(set(sampled)) > 50  # spread over the file, not one line again and again


def test_files_are_sampled_in_the_order_given(tmp_path: Path) -> None:
    """A day's files one after the other pass; files that overlap in time (each
    server's, over the same hours) do not, even where they overlap only at the
    boundary (the first line of one before the last line of the one before it)."""
    ordered = SHAPES["in order"]
    halves = [(tmp_path / "a.jsonl", ordered[:300]), (tmp_path / "b.jsonl", ordered[300:])]
    servers = [(tmp_path / "s0.jsonl", ordered[0::2]), (tmp_path / "s1.jsonl", ordered[1::2])]
    # Only the last line of the first file is later than the second file's first.
    seam = [
        (tmp_path / "c.jsonl", [*ordered[:300], ordered[350]]),
        (tmp_path / "d.jsonl", [*ordered[300:350], *ordered[351:]]),
    ]
    options = sorting.OrderOptions()

    def passes(files: list[tuple[Path, list[bytes]]]) -> bool:
        for path, lines in files:
            path.write_bytes(b"".join(lines))
        plan = sorting.streaming_plan([str(p) for p, _ in files], options, tmp_path)
        return sorting.sampled_in_order(plan, options)

    assert passes(halves)
    assert not passes(halves[::-1])
    assert not passes(servers)
    assert _time(ordered[350]) - _time(ordered[300]) > options.max_skew
    assert not passes(seam)


def test_what_cannot_be_sampled_is_scanned_first(tmp_path: Path) -> None:
    body = b"".join(SHAPES["in order"])
    # A gzip file that breaks off: the scan reads it and says where.
    (tmp_path / "cut.jsonl.gz").write_bytes(gzip.compress(body)[:-200])
    assert sampled_lines(str(tmp_path / "cut.jsonl.gz"), 64) is None
    assert sampled_lines(str(tmp_path / "missing.jsonl"), 64) is None
    assert sampled_lines("-", 64) is None
    # A copy of a CSV input read once (a named pipe) is CSV by the name it was given:
    # its header is read before its first row.
    (tmp_path / "input-0").write_bytes(b"".join(csv_lines(SHAPES["in order"])))
    as_csv = sampled_lines(str(tmp_path / "input-0"), 8, name="rows.csv")
    as_json = sampled_lines(str(tmp_path / "input-0"), 8, name="rows.jsonl")
    assert as_csv is not None and as_json is not None
    assert as_csv[:2] == csv_lines(SHAPES["in order"])[:2] and len(as_csv) == len(as_json) + 1


def test_a_csv_line_gives_a_time_only_when_it_holds_one_whole_row(tmp_path: Path) -> None:
    """A quoted cell with a newline spans lines, and a line read from the middle of a
    row cannot tell: a line that is not one row of the header's columns gives no time.
    A log whose rows all split before their time gives no evidence: scanned first."""
    lines = SHAPES["in order"][:3]
    times = [_time(line) for line in lines]
    options = sorting.OrderOptions()

    def read(csv_lines: list[bytes]) -> list[float | None]:
        reader = sample_reader("in.csv")
        assert reader(csv_lines[0]) is None  # the header
        items = [reader(line) for line in csv_lines[1:]]
        return [None if item is None else item_time(item, options.naive_tz) for item in items]

    assert read(csv_lines(lines)) == times
    columns = csv_lines(lines)[0].decode().strip().split(",")
    # Split after the time (in the last column): each row's first line reads as a row.
    assert read(csv_lines(lines, newline_in=columns[-1])) == [
        times[0],
        None,
        times[1],
        None,
        times[2],
        None,
    ]
    assert read(csv_lines(lines, newline_in="account_id")) == [None] * 6
    split = csv_lines(SHAPES["in order"], newline_in="account_id")
    assert not sorting.sampled_in_order(_plan(tmp_path, split, "in.csv"), options)


def _padded(lines: list[bytes], seed: int = 5) -> list[bytes]:
    """The lines, each with a field of random text: gzip cannot shrink them much, so
    their compressed bytes spread over many of the pieces a gzip file is read in."""
    rng = random.Random(seed)
    padded = []
    for line in lines:
        record = json.loads(line)
        record["pad"] = rng.randbytes(600).hex()
        padded.append(json.dumps(record).encode() + b"\n")
    return padded


def test_a_gzip_log_is_sampled_through_its_compressed_bytes(tmp_path: Path) -> None:
    """Decompressed from its start, read where its compressed bytes pass even places:
    its first and last lines, and whole lines of it in between, in file order and
    spread over it; a gzip file of several members (``cat a.gz b.gz``) to its end."""
    lines = _padded(SHAPES["in order"])
    source = tmp_path / "in.jsonl.gz"
    source.write_bytes(gzip.compress(b"".join(lines)))
    seen: list[int] = []
    sampled = sampled_lines(str(source), 64, on_progress=seen.append)
    assert sampled is not None and len(sampled) == 65
    assert sampled[0] == lines[0] and sampled[-1] == lines[-1].rstrip(b"\n")
    places = [lines.index(line) for line in sampled[1:-1]]
    assert places == sorted(places) and len(set(places)) == len(places) == 63
    assert places[0] < 0.05 * len(lines) and places[-1] > 0.9 * len(lines)
    assert seen and seen == sorted(seen) and seen[-1] <= source.stat().st_size
    members = tmp_path / "members.jsonl.gz"
    members.write_bytes(gzip.compress(b"".join(lines[:300])) + gzip.compress(b"".join(lines[300:])))
    sampled = sampled_lines(str(members), 64)
    assert sampled is not None and sampled[-1] == lines[-1].rstrip(b"\n")
    assert set(sampled[:-1]) <= set(lines)


@pytest.mark.parametrize(
    ("suffix", "as_csv"),
    [
        (".jsonl.gz", False),
        (".csv", True),
        (".csv.gz", True),
        (".log", True),  # a name that does not say: the first line does
        (".log.gz", True),
        (".log", False),
        (".log.gz", False),
    ],
)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_log_passes_the_samples_as_the_same_log_as_plain_json_lines(
    tmp_path: Path, shape: str, suffix: str, as_csv: bool
) -> None:
    """Gzip or CSV: a gzip file's samples are found through its compressed bytes, a
    CSV file's are its rows, read with its header. A name that does not say the
    format (``.log``, as a pipe's) is CSV when its first line is a header."""
    gzipped = suffix.endswith(".gz")
    lines = _padded(SHAPES[shape]) if gzipped else SHAPES[shape]
    options = sorting.OrderOptions()
    plain = sorting.sampled_in_order(_plan(tmp_path, lines), options)
    body = b"".join(csv_lines(lines) if as_csv else lines)
    source = tmp_path / f"in{suffix}"
    source.write_bytes(gzip.compress(body) if gzipped else body)
    plan = sorting.streaming_plan([str(source)], options, tmp_path)
    assert sorting.sampled_in_order(plan, options) is plain


def test_a_gzip_log_plainly_out_of_order_is_not_decompressed_to_its_end(
    tmp_path: Path,
) -> None:
    """Its samples fail at the first one behind: the rest is left for the scan, which
    must read it anyway."""
    source = tmp_path / "shuffled.jsonl.gz"
    source.write_bytes(gzip.compress(b"".join(_padded(SHAPES["shuffled"]))))
    options = sorting.OrderOptions()
    plan = sorting.streaming_plan([str(source)], options, tmp_path)
    seen: list[int] = []
    assert not sorting.sampled_in_order(plan, options, seen.append)
    assert 0 < seen[-1] < source.stat().st_size // 4


def test_samples_without_times_are_no_evidence(tmp_path: Path) -> None:
    options = sorting.OrderOptions()
    assert not sorting.sampled_in_order(_plan(tmp_path, [b"not json\n"] * 200), options)
    assert not sorting.sampled_in_order(_plan(tmp_path, [b"\n"] * 200), options)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".csv", ".csv.gz"])
def test_a_day_of_files_in_order_is_checked_unscanned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int, suffix: str
) -> None:
    """Read once, JSON Lines or CSV, plain or gzip (a gzip file's samples cost one
    decompression, no scan): the same reports as a run that scanned the files first."""
    ordered = SHAPES["in order"]
    paths = []
    for k in range(3):
        part = ordered[k * 200 : (k + 1) * 200]
        body = b"".join(csv_lines(part) if ".csv" in suffix else part)
        path = tmp_path / f"part-{k}{suffix}"
        path.write_bytes(gzip.compress(body) if suffix.endswith(".gz") else body)
        paths.append(str(path))

    def run(name: str) -> tuple[bytes, dict[str, Any]]:
        out = Output(str(tmp_path / f"{name}.out"))
        options = BatchOptions(paths=paths, config=CheckerConfig(), workers=workers)
        stats = run_batch(options, BatchSinks(output=out))
        out.commit()
        summary = stats.to_dict()
        summary.pop("seconds")
        summary.pop("lines_per_second")
        return (tmp_path / f"{name}.out").read_bytes(), summary

    spy = _Spy(monkeypatch)
    got = run("unscanned")
    assert (spy.scans, spy.forgets) == (0, 0)
    monkeypatch.setattr(batch, "_speculates", lambda *args, **kwargs: False)
    assert got == run("scanned")
    assert got[1]["files"] == 3 and got[1]["lines"] == 600 and spy.scans == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_a_log_plainly_out_of_order_is_scanned_first_and_checked_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    spy = _Spy(monkeypatch)
    got = _run(tmp_path, "sampled", SHAPES["shuffled"], workers=workers)
    assert (spy.scans, spy.forgets) == (1, 0)
    assert spy.finished_before == len(SHAPES["shuffled"])  # each line once
    monkeypatch.setattr(batch, "_speculates", lambda *args, **kwargs: False)
    assert got == _run(tmp_path, "scanned", SHAPES["shuffled"], workers=workers)
