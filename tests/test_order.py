"""Logs in any order: the reorder buffer's bounds, sorting in bounded memory, exact
answers whatever the order of the lines, and no temporary file left behind."""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from fingerprint import CheckerConfig, pipeline, sorting
from fingerprint.batch import BatchOptions, BatchSinks, run_batch
from fingerprint.cli import main
from fingerprint.pipeline import InputOrder, Outcome, ReorderBuffer
from fingerprint.session import parse_timestamp
from tests.conftest import FIXTURES, sigint_as_a_terminal_sends_it

LABELLED_LINES = (FIXTURES / "labelled.jsonl").read_bytes().splitlines(keepends=True)
SAMPLE = LABELLED_LINES[:600]  # 80 accounts' worth of history, fast enough to run often


def _time(line: bytes) -> float:
    return parse_timestamp(json.loads(line)["ts"]).timestamp()


def _push_all(buffer: ReorderBuffer[None], times: list[float]) -> list[pipeline.Released[None]]:
    released = []
    for seq, ts in enumerate(times):
        released += buffer.push(seq, None, ts)
    return released + buffer.drain()


def _check(tmp_path: Path, name: str, lines: list[bytes], *extra: str) -> list[bytes]:
    source = tmp_path / f"{name}.jsonl"
    source.write_bytes(b"".join(lines))
    out = tmp_path / f"{name}.out.jsonl"
    assert main(["check", str(source), "-o", str(out), "-q", "--workers", "1", *extra]) == 0
    return out.read_bytes().splitlines()


# --- the reorder buffer -----------------------------------------------------------------


def test_reorder_buffer_orders_within_the_skew_and_marks_late_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pipeline, "CLOCK_LINES", 1)  # the clock: the newest line
    buffer: ReorderBuffer[None] = ReorderBuffer(max_skew=10)
    released = [(r.seq, r.late_by) for r in _push_all(buffer, [100, 95, 120, 90, 131, 50])]
    # 95 and 100 wait until 120 proves nothing older than 110 can come; 90 and 50 come
    # after lines newer than them were checked (100, 120): late by 10 and 70 s.
    assert released == [(1, None), (0, None), (3, 10), (2, None), (5, 70), (4, None)]
    assert buffer.stats.late == 2 and buffer.stats.max_late_seconds == 70
    assert buffer.stats.reordered == 1  # line 0 waited for line 1


def test_input_order_re_emits_by_position() -> None:
    sequence = InputOrder()
    got = []
    for seq in (2, 0, 1):
        got += [o.seq for o in sequence.add(Outcome(seq, "f", seq))]
    assert got == [0, 1, 2]


@settings(max_examples=200, deadline=None)
@given(st.permutations(range(30)), st.sets(st.integers(0, 29)))
def test_input_order_lets_each_outcome_go_once_as_soon_as_it_is_due(
    arrival: list[int], foreign: set[int]
) -> None:
    sequence = InputOrder()
    got: list[int] = []
    for index, seq in enumerate(arrival):
        got += [o.seq for o in sequence.add(Outcome(seq, "f", seq, foreign=seq in foreign))]
        due = next((n for n in range(30) if n not in arrival[: index + 1]), 30)
        assert got == [n for n in range(due) if n not in foreign]  # all due, no more
    assert len(sequence) == 0


def test_input_order_in_order_skips_other_shards_positions() -> None:
    """The common case, each outcome due as it comes: other shards' positions (foreign)
    are passed over, never emitted."""
    sequence = InputOrder()
    foreign = {0, 3, 4}
    got = [o.seq for n in range(8) for o in sequence.add(Outcome(n, "f", n, foreign=n in foreign))]
    assert got == [1, 2, 5, 6, 7]
    assert len(sequence) == 0


def test_reorder_buffer_is_bounded_by_lines_when_one_second_holds_them_all() -> None:
    """Issue 19 item 2: 60,000 lines sharing one timestamp held them all (1.1 GB)."""
    buffer: ReorderBuffer[None] = ReorderBuffer(max_skew=300, max_lines=100)
    released = []
    most_held = 0
    for seq in range(5_000):
        released += buffer.push(seq, None, 1_795_000_000.0)
        most_held = max(most_held, len(buffer))
    released += buffer.drain()
    assert most_held <= 101
    assert [r.seq for r in released] == list(range(5_000))  # ties keep input order
    assert buffer.stats.late == 0 and buffer.stats.ahead == 0


@pytest.mark.parametrize("outlier", [86_400.0, 2_000_000_000.0])  # a day; 2089
def test_a_line_far_ahead_never_makes_later_lines_late(outlier: float) -> None:
    times = [1_795_000_000.0 + n for n in range(3_000)]
    times[1_000] += outlier
    buffer: ReorderBuffer[None] = ReorderBuffer(max_skew=300, max_lines=500)
    released = _push_all(buffer, times)
    assert buffer.stats.late == 0
    assert not any(r.late_by for r in released)
    ahead = [r for r in released if r.ahead_by is not None]
    assert [r.seq for r in ahead] == [1_000]  # judged on its own, after 500 lines
    position = [r.seq for r in released].index(1_000)
    assert max(r.seq for r in released[:position]) < 1_500  # let go when line 1,500 came
    assert sorted(r.seq for r in released) == list(range(3_000))


times_lists = st.lists(st.integers(0, 2_000), min_size=1, max_size=300)


@settings(max_examples=300, deadline=None)
@given(times=times_lists, skew=st.integers(0, 300), max_lines=st.integers(1, 80))
def test_reorder_buffer_properties(times: list[int], skew: int, max_lines: int) -> None:
    buffer: ReorderBuffer[None] = ReorderBuffer(max_skew=skew, max_lines=max_lines)
    released: list[pipeline.Released[None]] = []
    for seq, ts in enumerate(times):
        released += buffer.push(seq, None, float(ts))
        assert len(buffer) <= max_lines + 1  # never more held than the bound
    released += buffer.drain()
    assert sorted(r.seq for r in released) == list(range(len(times)))  # each once
    checked_before = -1.0
    for position, r in enumerate(released):
        ts = times[r.seq]
        if r.late_by is not None:
            # Late only when really out of order: a line read before it is newer, and
            # a newer line was checked before it, by exactly the amount reported.
            assert any(t > ts for t in times[: r.seq])
            newest_checked = max(times[p.seq] for p in released[:position] if p.ahead_by is None)
            assert r.late_by == newest_checked - ts > 0
        elif r.ahead_by is None:
            checked_before = max(checked_before, ts)
    if buffer.stats.in_order:  # then the check met the lines exactly in time order
        order = [(times[r.seq], r.seq) for r in released]
        assert order == sorted(order)


@settings(max_examples=100, deadline=None)
@given(
    times=st.lists(st.integers(0, 100_000), min_size=1, max_size=200).map(sorted),
    where=st.integers(0, 199),
    jump=st.integers(10_000_000, 3_000_000_000),
)
def test_one_outlier_in_a_sorted_log_makes_nothing_late(
    times: list[int], where: int, jump: int
) -> None:
    times = list(times)
    times[where % len(times)] += jump
    buffer: ReorderBuffer[None] = ReorderBuffer(max_skew=300, max_lines=50)
    released = _push_all(buffer, [float(t) for t in times])
    assert not any(r.late_by for r in released)
    assert buffer.stats.ahead <= 1


# --- sorting: exact answers whatever the order -----------------------------------------


def _shuffled(lines: list[bytes], seed: int) -> list[bytes]:
    return random.Random(seed).sample(lines, len(lines))


def _concatenated(lines: list[bytes], parts: int) -> list[bytes]:
    return [line for k in range(parts) for line in lines[k::parts]]


def _with_outlier(lines: list[bytes], index: int) -> list[bytes]:
    record = json.loads(lines[index])
    record["ts"] = int((_time(lines[index]) + 2 * 86_400) * 1000)
    return [*lines[:index], json.dumps(record).encode() + b"\n", *lines[index + 1 :]]


orders = st.one_of(
    st.integers(0, 10_000).map(lambda seed: ("shuffled", seed)),
    st.integers(2, 6).map(lambda parts: ("concatenated", parts)),
    st.just(("reversed", 0)),
    st.integers(0, 599).map(lambda index: ("outlier", index)),
)


def _reorder(lines: list[bytes], how: tuple[str, int]) -> list[bytes]:
    kind, n = how
    if kind == "shuffled":
        return _shuffled(lines, n)
    if kind == "concatenated":
        return _concatenated(lines, n)
    if kind == "outlier":
        return _with_outlier(lines, n)
    return lines[::-1]


_SORTED_REPORTS: dict[bytes, list[bytes]] = {}  # a sorted input -> its reports


@settings(
    max_examples=6,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # a shrink re-runs the CLI a lot
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(how=orders)
def test_reports_equal_those_of_the_same_lines_sorted(tmp_path: Path, how: tuple[str, int]) -> None:
    lines = _reorder(SAMPLE, how)
    got = _check(tmp_path, "any", lines)
    ordered = sorted(lines, key=_time)  # stable: ties in order
    # Every reordering of SAMPLE sorts back to (nearly) the same lines: each distinct
    # sorted input is checked once, then its reports are reused.
    key = b"".join(ordered)
    if key not in _SORTED_REPORTS:
        _SORTED_REPORTS[key] = _check(tmp_path, "sorted", ordered)
    expected = _SORTED_REPORTS[key]
    # The same reports; in time order when the run sorted, else in input order.
    assert sorted(got) == sorted(expected)
    assert not any(b"late arrival" in line for line in got)


def test_shuffled_input_is_sorted_and_the_summary_says_so(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(_shuffled(SAMPLE, 3)))
    summary = tmp_path / "summary.json"
    out = tmp_path / "out.jsonl"
    main(["check", str(source), "-o", str(out), "-q", "--summary-json", str(summary)])
    order = json.loads(summary.read_text())["order"]
    assert order["sorted"] is True and order["spilled_runs"] == 1
    assert order["late"] > 0 and order["max_late_seconds"] > 3_600
    reports = [json.loads(line) for line in out.read_bytes().splitlines()]
    times = [parse_timestamp(r["ts"]).timestamp() for r in reports]
    assert times == sorted(times) and len(reports) == len(SAMPLE)


def test_a_log_in_order_streams_in_input_order(tmp_path: Path) -> None:
    # The labelled log is in time order within seconds: no sort, reports as read.
    summary = tmp_path / "summary.json"
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(SAMPLE))
    out = tmp_path / "out.jsonl"
    main(["check", str(source), "-o", str(out), "-q", "--summary-json", str(summary)])
    order = json.loads(summary.read_text())["order"]
    assert order["sorted"] is False and order["late"] == 0 and order["ahead"] == 0
    ids = [json.loads(line)["session_id"] for line in out.read_bytes().splitlines()]
    assert ids == [json.loads(line)["session_id"] for line in SAMPLE]


def test_small_runs_spill_and_merge_like_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs of ~20 lines, merged in groups of 4 over several passes: same reports."""
    lines = _shuffled(SAMPLE, 11)
    expected = _check(tmp_path, "one-run", lines)
    monkeypatch.setattr(sorting, "RUN_BYTES", 40_000)
    monkeypatch.setattr(sorting, "FAN_IN", 4)
    summary = tmp_path / "summary.json"
    assert _check(tmp_path, "many-runs", lines, "--summary-json", str(summary)) == expected
    assert json.loads(summary.read_text())["order"]["spilled_runs"] > 16


def test_files_each_in_order_are_merged_by_time(tmp_path: Path) -> None:
    """Four servers' logs, each in time order, given one after the other: merged
    without spilling (like sort -m), the same reports as the whole log sorted."""
    exact = sorted(SAMPLE, key=_time)
    paths = []
    for k in range(4):
        path = tmp_path / f"server{k}.jsonl"
        path.write_bytes(b"".join(exact[k::4]))
        paths.append(str(path))
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    main(["check", *paths, "-o", str(out), "-q", "--summary-json", str(summary)])
    order = json.loads(summary.read_text())["order"]
    assert order["sorted"] is True and order["merged_files"] == 4
    assert order["spilled_runs"] == 0
    assert out.read_bytes().splitlines() == _check(tmp_path, "whole", exact)


def test_gzip_stdin_and_several_files_give_the_same_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = _concatenated(SAMPLE, 3)
    body = b"".join(lines)
    expected = _check(tmp_path, "plain", lines)
    packed = tmp_path / "in.jsonl.gz"
    packed.write_bytes(gzip.compress(body))
    out = tmp_path / "gz.out.jsonl"
    main(["check", str(packed), "-o", str(out), "-q"])
    assert out.read_bytes().splitlines() == expected
    halves = [tmp_path / "a.jsonl", tmp_path / "b.jsonl.gz"]
    halves[0].write_bytes(b"".join(lines[:250]))
    halves[1].write_bytes(gzip.compress(b"".join(lines[250:])))
    out = tmp_path / "halves.out.jsonl"
    main(["check", *map(str, halves), "-o", str(out), "-q"])
    assert out.read_bytes().splitlines() == expected
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(body)))
    out = tmp_path / "stdin.out.jsonl"
    main(["check", "-", "-o", str(out), "-q"])
    # The same verdicts; a report names its file only where the line has no id.
    assert out.read_bytes().splitlines() == expected


def test_two_workers_write_what_one_writes_for_sorted_input(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"not json\n" + b"".join(_shuffled(SAMPLE, 5)))
    outputs = []
    for workers in ("1", "2"):
        out, rejects = tmp_path / f"w{workers}.jsonl", tmp_path / f"r{workers}.jsonl"
        argv = ["check", str(source), "-o", str(out), "--rejects", str(rejects), "-q"]
        assert main([*argv, "--workers", workers]) == 0
        outputs.append((out.read_bytes(), rejects.read_bytes()))
    assert outputs[0] == outputs[1]
    assert len(outputs[0][1].splitlines()) == 1


@pytest.mark.parametrize("held", [100, pipeline.MAX_HELD_LINES])
def test_streaming_on_purpose_judges_the_outlier_on_its_own(tmp_path: Path, held: int) -> None:
    """--sort never: a line two days ahead never makes another line late. Let go after
    ``held`` lines, it is judged against the log's clock (the buffer's, which it did
    not move): two days is beyond ``future_tolerance``, so it is a reject naming ts.
    Still held at the end of a shorter input, it is checked last, in time order."""
    lines = _with_outlier(sorted(SAMPLE, key=_time), 100)
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(lines))
    out, rejects = io.BytesIO(), io.BytesIO()
    options = BatchOptions(
        paths=[str(source)], config=CheckerConfig(), sort="never", max_held_lines=held
    )
    stats = run_batch(options, BatchSinks(output=out, rejects=rejects))
    got = [json.loads(line) for line in out.getvalue().splitlines()]
    assert not any(r.get("warnings") for r in got)  # nobody else is late
    assert stats.order.late == 0
    outlier = json.loads(lines[100])["session_id"]
    others = [
        json.loads(line)["session_id"] for line in lines if b'"%s"' % outlier.encode() not in line
    ]
    if held < len(lines) - 100:
        assert [r["session_id"] for r in got] == others  # input order
        (reject,) = [json.loads(line) for line in rejects.getvalue().splitlines()]
        assert reject["line"] == 101 and "ts" in reject["error"]
        assert stats.order.ahead == 1 and stats.order.max_ahead_seconds > 86_400
    else:
        assert [r["session_id"] for r in got] == [*others[:100], outlier, *others[100:]]
        assert stats.order.ahead == 0 and rejects.getvalue() == b""


# --- temporary files --------------------------------------------------------------------


# SIGTERM unwinds the stack (so the folder's cleanup runs) once the CLI turns it into
# an exception, which fingerprint.stopping does (issue 18).
_SIGTERM_UNWINDS = importlib.util.find_spec("fingerprint.stopping") is not None


@pytest.mark.parametrize(
    "signum",
    [
        signal.SIGINT,
        pytest.param(
            signal.SIGTERM,
            marks=pytest.mark.skipif(not _SIGTERM_UNWINDS, reason="needs fingerprint.stopping"),
        ),
    ],
)
def test_the_sort_folder_is_removed_when_the_run_is_stopped(
    tmp_path: Path, signum: signal.Signals
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    source = tmp_path / "in.jsonl"
    # 36,000 lines, sorted: ~3 s of checking on the faster host, where 12,000 lines
    # (~1.1 s) ran to their end before the signal came.
    source.write_bytes(b"".join(_shuffled(LABELLED_LINES, 2)) * 12)
    command = [sys.executable, "-m", "fingerprint.cli", "check", str(source), "--workers", "1"]
    env = {**os.environ, "TMPDIR": str(scratch)}
    process = subprocess.Popen(
        [*command, "-o", str(tmp_path / "out.jsonl")],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=sigint_as_a_terminal_sends_it,
    )
    deadline = time.monotonic() + 60
    while not list(scratch.glob("fingerprint-sort-*/run-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(scratch.glob("fingerprint-sort-*/run-*")), "the run never spilled"
    time.sleep(1.0)  # into the checking
    assert process.poll() is None, "the run ended before it was stopped: give it more lines"
    os.killpg(process.pid, signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode in (130, 143, -signum), stderr
    assert list(scratch.iterdir()) == []


def test_the_sort_folder_is_removed_after_a_run(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    _check(tmp_path, "shuffled", _shuffled(SAMPLE, 1))
    assert not list(tmp_path.glob("fingerprint-sort-*"))


def test_the_closing_line_and_the_table_say_the_input_was_out_of_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(_concatenated(SAMPLE, 2)))
    main(["check", str(source), "-o", str(tmp_path / "out.jsonl")])
    closing = capsys.readouterr().err
    assert "input out of time order:" in closing and "lines late (at most" in closing
    assert "sorted by time before checking" in closing
    main(["check", str(source), "-o", str(tmp_path / "out.jsonl"), "--summary"])
    assert "input out of time order:" in capsys.readouterr().err
    source.write_bytes(b"".join(SAMPLE))  # in order within the skew: nothing said
    main(["check", str(source), "-o", str(tmp_path / "out.jsonl")])
    assert "out of time order" not in capsys.readouterr().err
