"""The progress line through a run's stages: the scan for time order, the sort, the
check, and the check again when a log checked as it streamed turns out to be out of
order. Each stage counts from its own start; the check of a sorted input is counted
in lines (it reads our sorted runs, not the input's bytes)."""

from __future__ import annotations

import gzip
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

from fingerprint import CheckerConfig, batch
from fingerprint.batch import SAMPLING, SCANNING, SORTING, BatchOptions, BatchSinks, run_batch
from fingerprint.outputs import Output
from fingerprint.session import parse_timestamp
from fingerprint.summary import Progress, order_line
from tests.conftest import FIXTURES

LINES = (FIXTURES / "labelled.jsonl").read_bytes().splitlines(keepends=True)[:600]


def _time(line: bytes) -> float:
    return parse_timestamp(json.loads(line)["ts"]).timestamp()


ORDERED = sorted(LINES, key=_time)
SHUFFLED = random.Random(7).sample(LINES, len(LINES))


def _one_far_ahead(lines: list[bytes], index: int) -> list[bytes]:
    record = json.loads(lines[index])
    record["ts"] = int((_time(lines[index]) + 2 * 86_400) * 1000)
    return [*lines[:index], json.dumps(record).encode() + b"\n", *lines[index + 1 :]]


class Stages:
    """What a run tells its progress, stage by stage."""

    def __init__(self) -> None:
        self.stages: list[dict[str, Any]] = []

    def stage(self, label: str = "", *, total_lines: int | None = None) -> None:
        self.stages.append({"label": label, "total": total_lines, "bytes": [], "lines": []})

    def update(self, count: int) -> None:
        self._current()["bytes"].append(count)

    def lines(self, count: int) -> None:
        self._current()["lines"].append(count)

    def _current(self) -> dict[str, Any]:
        if not self.stages:  # told something before any stage: recorded apart
            self.stage("(none)")
        return self.stages[-1]

    @property
    def labels(self) -> list[str]:
        return [stage["label"] for stage in self.stages]


def _run(
    source: Path, *, workers: int, rewindable: bool, tmp_path: Path, **options: Any
) -> tuple[Stages, int]:
    stages = Stages()
    out: Any = Output(str(tmp_path / "out.jsonl")) if rewindable else io.BytesIO()
    run = BatchOptions(paths=[str(source)], config=CheckerConfig(), workers=workers, **options)
    stats = run_batch(run, BatchSinks(output=out, progress=stages))
    if rewindable:
        out.commit()
    return stages, stats.lines


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_a_log_out_of_order_shows_its_scan_its_sort_and_its_check(
    tmp_path: Path, workers: int
) -> None:
    source = tmp_path / "shuffled.jsonl"
    source.write_bytes(b"".join(SHUFFLED))
    stages, lines = _run(source, workers=workers, rewindable=False, tmp_path=tmp_path)
    assert stages.labels == [SCANNING, SORTING, ""]
    scan, sort, check = stages.stages
    size = source.stat().st_size
    for read in (scan["bytes"], sort["bytes"]):  # each reads the whole input, in order
        assert read == sorted(read) and read[-1] == size
    # The check reads the sorted runs: its share is of the lines the scan counted.
    assert check["total"] == lines == len(SHUFFLED)
    assert check["lines"][-1] == lines


def test_the_scan_and_the_sort_count_the_bytes_of_every_file_as_they_read(
    tmp_path: Path,
) -> None:
    # Larger than the reader's 1 MiB buffer, so the bytes read move while it reads.
    many = random.Random(8).sample(LINES * 8, len(LINES) * 8)
    paths = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    paths[0].write_bytes(b"".join(many[::2]))
    paths[1].write_bytes(b"".join(many[1::2]))
    stages = Stages()
    run = BatchOptions(paths=[str(p) for p in paths], config=CheckerConfig(), workers=1)
    run_batch(run, BatchSinks(output=io.BytesIO(), progress=stages))
    assert stages.labels == [SCANNING, SORTING, ""]
    size = sum(p.stat().st_size for p in paths)
    for stage in stages.stages[:2]:
        read = stage["bytes"]
        # Over both files, never back to the second file's own count; told on the way.
        assert read == sorted(read) and read[-1] == size
        assert any(0 < count < paths[0].stat().st_size for count in read)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_start_over_shows_the_check_again_from_its_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    source = tmp_path / "ahead.jsonl"
    source.write_bytes(b"".join(_one_far_ahead(ORDERED, 30)))
    monkeypatch.setattr(batch, "sampled_in_order", lambda *args: True)  # the samples miss it
    stages, lines = _run(
        source, workers=workers, rewindable=True, tmp_path=tmp_path, max_held_lines=100
    )
    assert stages.labels == ["", SCANNING, SORTING, ""]
    first, *_, again = stages.stages
    assert first["total"] is None  # read as it streams: a share of its bytes
    assert again["total"] == lines == len(ORDERED)
    assert again["lines"][-1] == lines  # counted from 0 again, to the end


@pytest.mark.parametrize("workers", [1, 2])
def test_a_log_in_order_is_one_stage_the_check(tmp_path: Path, workers: int) -> None:
    source = tmp_path / "ordered.jsonl"
    source.write_bytes(b"".join(ORDERED))
    stages, lines = _run(source, workers=workers, rewindable=True, tmp_path=tmp_path)
    assert stages.labels == [""]
    (check,) = stages.stages
    assert check["total"] is None and check["bytes"][-1] == source.stat().st_size
    assert check["lines"][-1] == lines == len(ORDERED)


def test_sort_never_shows_no_scan(tmp_path: Path) -> None:
    source = tmp_path / "shuffled.jsonl"
    source.write_bytes(b"".join(SHUFFLED))
    stages, _ = _run(source, workers=1, rewindable=False, tmp_path=tmp_path, sort="never")
    assert stages.labels == [""]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_each_stage_says_what_runs_and_counts_from_its_own_start() -> None:
    terminal = FakeTerminal()
    progress = Progress(terminal, total_bytes=1000, delay=0)
    progress.stage(SCANNING)
    progress.update(250)
    scanning = progress.text()
    assert scanning.startswith(SCANNING) and "25.0%" in scanning and "ETA" in scanning
    assert "lines/s" not in scanning
    drawn = len(terminal.getvalue())
    progress.stage(total_lines=200)  # the check of a sorted input
    # Redrawn at once, however recent the last draw: the line says what runs now.
    assert terminal.getvalue()[drawn:].startswith("\r0 lines  0 lines/s")
    progress.update(1000)  # bytes read elsewhere do not move its share
    progress.lines(50)
    checking = progress.text()
    assert checking.startswith("50 lines") and "25.0%" in checking
    progress.lines(200)
    assert "100.0%" in progress.text() and "ETA" not in progress.text()
    progress.stage(total_lines=0)  # nothing to check: done
    assert "100.0%" in progress.text()
    progress.stage()  # back to the input's bytes
    progress.update(500)
    assert "50.0%" in progress.text()
    progress.close()
    assert terminal.getvalue().startswith(f"\r{SCANNING}")


def test_the_order_line_counts_one_line_as_one_line() -> None:
    one = order_line({"ahead": 1, "max_ahead_seconds": 42_480, "sorted": True})
    assert "1 line far ahead (at most 11.8 h)" in one
    many = order_line({"late": 2, "max_late_seconds": 90, "ahead": 1_200, "max_ahead_seconds": 90})
    assert "2 lines late (at most 1.5 min behind)" in many and "1,200 lines far ahead" in many


def test_the_sort_counts_a_file_in_order_as_done_at_once(tmp_path: Path) -> None:
    """A file in order is merged as it is, not read by the sort: its bytes count as
    done from the start, so the sort's share reaches the whole input."""
    earlier, later = ORDERED[:300], ORDERED[300:]
    paths = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    paths[0].write_bytes(b"".join(earlier))  # in order: merged as it is
    paths[1].write_bytes(b"".join(random.Random(9).sample(later, len(later))))  # sorted
    stages = Stages()
    run = BatchOptions(paths=[str(p) for p in paths], config=CheckerConfig(), workers=1)
    stats = run_batch(run, BatchSinks(output=io.BytesIO(), progress=stages))
    assert stats.order.merged_files == 1 and stats.order.spilled_runs >= 1
    assert stages.labels == [SCANNING, SORTING, ""]
    sort = stages.stages[1]["bytes"]
    first_file = paths[0].stat().st_size
    assert sort == sorted(sort) and sort[0] >= first_file
    assert sort[-1] == first_file + paths[1].stat().st_size


@pytest.mark.parametrize("workers", [1, 2])
def test_gzip_logs_show_their_samples_read_then_the_check_or_the_scan(
    tmp_path: Path, workers: int
) -> None:
    """A gzip log is decompressed once for its samples, shown as its own stage over
    its compressed bytes (of both files: the second counts on from the first); then
    the check if they are in order, or the scan and the sort if not. A plain log's
    samples (~1 ms) show nothing."""
    halves = [tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"]
    halves[0].write_bytes(gzip.compress(b"".join(ORDERED[:300])))
    halves[1].write_bytes(gzip.compress(b"".join(ORDERED[300:])))
    stages = Stages()
    out = Output(str(tmp_path / "out.jsonl"))
    options = BatchOptions(paths=[str(p) for p in halves], config=CheckerConfig(), workers=workers)
    run_batch(options, BatchSinks(output=out, progress=stages))
    out.commit()
    assert stages.labels == [SAMPLING, ""]
    read = stages.stages[0]["bytes"]
    assert read == sorted(read) and read[-1] > halves[0].stat().st_size
    assert read[-1] <= sum(p.stat().st_size for p in halves)
    shuffled = tmp_path / "shuffled.jsonl.gz"
    shuffled.write_bytes(gzip.compress(b"".join(SHUFFLED)))
    stages, _ = _run(shuffled, workers=workers, rewindable=True, tmp_path=tmp_path)
    assert stages.labels == [SAMPLING, SCANNING, SORTING, ""]
    plain = tmp_path / "ordered.jsonl"
    plain.write_bytes(b"".join(ORDERED))
    stages, _ = _run(plain, workers=workers, rewindable=True, tmp_path=tmp_path)
    assert stages.labels == [""]
