"""What `fingerprint check` and `report` do to the files they are given (issue 18).

Item 2: a device, a named pipe or our own stderr is written straight, never replaced;
a symlink is followed. Item 3: an output that is an input is refused. Item 5: every
output is checked before the first line, and a write error is one line, exit 1 and
no temporary file. Item 7: an input that shrinks while it is read is reported.
Item 12: progress. Item 13: a run without its history store says so.

Device files and pipes are made in the test's own folder (mknod, mkfifo), never /dev.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from fingerprint import batch, runner
from fingerprint.batch import BatchOptions, BatchSinks, run_batch
from fingerprint.checker import CheckerConfig
from fingerprint.cli import main
from fingerprint.outputs import Output
from fingerprint.pipeline import line_time
from fingerprint.runner import RunStats
from fingerprint.session import DEFAULT_NAIVE_TZ
from fingerprint.stopping import Stopped
from fingerprint.summary import Progress
from tests.conftest import FIXTURES, csv_lines, make_session

SESSIONS = [make_session(session_id=f"s{n}", ts=1_795_133_730 + n * 60) for n in range(3)]
NULL, FULL = (1, 3), (1, 7)  # Linux character devices: null, full


@pytest.fixture
def two_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers as account shards (what ``--workers 2 --whois`` runs), not as the
    two-stage pipeline ``--workers 2`` runs otherwise: the tests of sharded runs."""
    monkeypatch.setattr(batch, "_pipelined", lambda options, checker: False)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in SESSIONS) + "junk\n", encoding="utf-8")
    return path


def device(folder: Path, name: str, numbers: tuple[int, int]) -> Path:
    if os.geteuid() != 0:
        pytest.skip("making a device file (mknod) needs root; CI runs as root")
    path = folder / name
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(*numbers))
    return path


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def check(*argv: str) -> int:
    return main(["check", *argv, "-q"])


# --- item 2: devices, pipes, symlinks, our own stderr ---------------------------------


def test_devices_are_written_to_never_replaced(tmp_path: Path, source: Path) -> None:
    null = device(tmp_path, "null", NULL)
    before = names(tmp_path)
    for option in ("-o", "--rejects", "--summary-json"):
        assert check(str(source), option, str(null)) == 0
    assert main(["report", str(_reports(tmp_path, source)), "-o", str(null)]) == 0
    assert stat.S_ISCHR(null.stat().st_mode)
    assert null.stat().st_rdev == os.makedev(*NULL)
    assert names(tmp_path) == sorted([*before, "r.jsonl"])  # no partial file anywhere


def test_a_symlink_is_followed_and_stays_a_symlink(tmp_path: Path, source: Path) -> None:
    target = tmp_path / "real.jsonl"
    target.write_text("old\n", encoding="utf-8")
    target.chmod(0o640)
    link = tmp_path / "link.jsonl"
    link.symlink_to(target.name)
    dangling = tmp_path / "new-link.jsonl"
    dangling.symlink_to("made.jsonl")
    assert check(str(source), "-o", str(link)) == 0
    assert check(str(source), "-o", str(dangling)) == 0
    assert link.is_symlink() and dangling.is_symlink()
    assert len(target.read_text(encoding="utf-8").splitlines()) == len(SESSIONS)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the file's permissions stay
    assert len((tmp_path / "made.jsonl").read_text(encoding="utf-8").splitlines()) == 3


def test_a_named_pipe_is_written_straight_and_its_reader_gets_everything(
    tmp_path: Path, source: Path
) -> None:
    fifo = tmp_path / "reports.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    assert check(str(source), "-o", str(fifo), "--workers", "2") == 0
    reader.join(timeout=30)
    assert not reader.is_alive(), "the pipe's reader never saw the end"
    assert [json.loads(line)["session_id"] for line in received[0].splitlines()] == [
        "s0",
        "s1",
        "s2",
    ]
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert names(tmp_path) == ["in.jsonl", "reports.fifo"]


def test_an_output_that_is_our_stderr_is_appended_to_not_replaced(
    tmp_path: Path, source: Path
) -> None:
    log = tmp_path / "run.log"
    log.write_text("earlier entries\n", encoding="utf-8")
    with log.open("ab") as stderr:
        result = subprocess.run(
            [sys.executable, "-m", "fingerprint.cli", "check", str(source), "--rejects", str(log)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            check=False,
        )
    assert result.returncode == 0
    text = log.read_text(encoding="utf-8")
    assert text.startswith("earlier entries\n")
    assert '"error"' in text and "4 lines, 3 reports, 1 rejects" in text
    assert names(tmp_path) == ["in.jsonl", "run.log"]


# --- item 3: an output that is an input ----------------------------------------------


def test_an_output_that_is_an_input_is_refused(tmp_path: Path, source: Path, capsys: Any) -> None:
    original = source.read_bytes()
    link = tmp_path / "link.jsonl"
    link.symlink_to(source)
    hard = tmp_path / "hard.jsonl"
    os.link(source, hard)
    attempts = [
        ["check", str(source), "-o", str(source)],
        ["check", str(source), "-o", str(link)],
        ["check", str(link), "--rejects", str(hard)],
        ["check", str(tmp_path / "*.jsonl"), "--summary-json", str(source)],
        [
            "check",
            str(source),
            "-o",
            str(tmp_path / "o.jsonl"),
            "--rejects",
            str(tmp_path / "o.jsonl"),
        ],
        ["report", str(source), "-o", str(link)],
    ]
    for argv in attempts:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert "input" in err or "same file" in err, err
    assert source.read_bytes() == original
    assert names(tmp_path) == ["hard.jsonl", "in.jsonl", "link.jsonl"]


def test_stdin_that_is_the_output_file_is_refused(tmp_path: Path, source: Path) -> None:
    original = source.read_bytes()
    with source.open("rb") as stdin:
        result = subprocess.run(
            [sys.executable, "-m", "fingerprint.cli", "check", "-", "-o", str(source)],
            stdin=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
    assert result.returncode == 2
    assert "is the input stdin" in result.stderr
    assert source.read_bytes() == original


# --- item 5: checked before the first line; write errors ----------------------------


class UnreadableStdin(io.TextIOWrapper):
    """A stdin that fails the test if anything reads it."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(b""))

    @property
    def buffer(self) -> Any:
        raise AssertionError("an input was read before the outputs were checked")


@pytest.mark.parametrize(
    "option",
    [
        ["-o", "{dir}"],
        ["-o", "{missing}/out.jsonl"],
        ["-o", "out.jsonl", "--rejects", "{dir}"],
        ["-o", "out.jsonl", "--summary-json", "{dir}"],
        ["-o", "out.jsonl", "--summary-json", "{missing}/s.json"],
        ["-o", "out.jsonl", "--html", "{dir}"],
        ["-o", "out.jsonl", "--html", "{missing}/page.html"],
        ["-o", "{readonly}"],
    ],
)
def test_bad_outputs_fail_before_the_first_line(
    tmp_path: Path, option: list[str], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    readonly = tmp_path / "readonly.jsonl"
    readonly.write_text("keep\n", encoding="utf-8")
    readonly.chmod(0o444)
    if os.geteuid() == 0 and "{readonly}" in option:
        pytest.skip("root may write a read-only file")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", UnreadableStdin())
    argv = [a.format(dir=folder, missing=tmp_path / "missing", readonly=readonly) for a in option]
    assert main(["check", "-", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert names(tmp_path) == ["a-folder", "readonly.jsonl"]  # no output, no partial file
    assert readonly.read_text(encoding="utf-8") == "keep\n"


def test_report_checks_its_output_before_reading(tmp_path: Path, source: Path, capsys: Any) -> None:
    reports = _reports(tmp_path, source)
    assert main(["report", str(reports), "-o", str(tmp_path)]) == 2
    assert main(["report", str(reports), "-o", str(tmp_path / "missing" / "p.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("configuration error") == 2 and "Traceback" not in err


@pytest.mark.parametrize("option", ["-o", "--rejects", "--summary-json", "--html"])
def test_a_full_device_is_one_line_exit_1_and_nothing_left(
    tmp_path: Path, source: Path, option: str, capsys: Any
) -> None:
    full = device(tmp_path, "full", FULL)
    out = tmp_path / "out.jsonl"
    argv = [str(source), "--workers", "2", option, str(full)]
    if option != "-o":
        argv += ["-o", str(out)]
    assert check(*argv) == 1
    err = capsys.readouterr().err
    assert err == f"fingerprint: cannot write {option} {full} (No space left on device)\n"
    leftovers = sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name)
    assert leftovers == []
    assert stat.S_ISCHR(full.stat().st_mode)


@pytest.mark.parametrize("workers", ["1", "2", "3"])
def test_a_file_write_error_leaves_no_output_and_no_temporary_file(
    tmp_path: Path, source: Path, workers: str
) -> None:
    """A real write error on regular files: a file-size limit of 64 KiB (what a full
    disk does to the writer: a write fails part-way). Two workers write as one does
    (the parent finishes every check); with three the shards' scratch files fail
    first."""
    big = tmp_path / "big.jsonl"
    big.write_text(source.read_text(encoding="utf-8") * 40, encoding="utf-8")
    out = tmp_path / "out" / "reports.jsonl"
    out.parent.mkdir()
    scratch = tmp_path / "tmp"
    scratch.mkdir()

    def limit() -> None:  # pragma: no cover - runs in the child
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of dying
        resource.setrlimit(resource.RLIMIT_FSIZE, (65_536, 65_536))

    command = [sys.executable, "-m", "fingerprint.cli", "check", str(big), "-o", str(out)]
    result = subprocess.run(
        [*command, "-q", "--workers", workers],
        preexec_fn=limit,
        env={**os.environ, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    if workers in ("1", "2"):
        assert result.stderr == f"fingerprint: cannot write -o {out} (File too large)\n"
    else:
        assert result.stderr.startswith(f"fingerprint: cannot write to {scratch}")
    assert names(out.parent) == [] and names(scratch) == []


# --- item 7: an input that shrinks while it is read ------------------------------------


def test_an_input_that_shrinks_while_read_is_a_warning_and_exit_1(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    real_read_items = runner.read_lazy_items

    def truncating(path: str, stream: Any) -> Any:
        for number, item in enumerate(real_read_items(path, stream)):
            if number == 0:
                os.truncate(path, 10)  # someone cuts the file under our feet
            yield item

    monkeypatch.setattr(runner, "read_lazy_items", truncating)  # what the CLI reads with
    summary = tmp_path / "summary.json"
    code = check(str(source), "-o", str(tmp_path / "o.jsonl"), "--summary-json", str(summary))
    assert code == 1
    assert f"warning: {source} shrank while it was read" in capsys.readouterr().err
    assert json.loads(summary.read_text(encoding="utf-8"))["inputs_shrunk"] == [str(source)]
    assert (tmp_path / "o.jsonl").exists()  # what was read is reported, as tar does


@pytest.mark.usefixtures("two_shards")
def test_workers_that_read_a_changing_input_differently_end_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Each worker of a sharded run reads the input for itself. Truncated (or grown)
    between their reads, it gives one worker lines the other never read: the run must
    end, say so and exit 1, never wait for those lines forever."""
    lines = (FIXTURES / "labelled.jsonl").read_text(encoding="utf-8").splitlines(True)[:900]
    big = tmp_path / "big.jsonl"
    big.write_text("".join(lines), encoding="utf-8")
    real_read_items = runner.read_lazy_items
    readers = tmp_path / "readers"
    readers.mkdir()

    def reading(path: str, stream: Any) -> Any:  # pragma: no cover - runs in the workers
        number = 1
        while True:  # the n-th worker to read, across processes
            try:
                os.close(os.open(readers / str(number), os.O_CREAT | os.O_EXCL))
                break
            except FileExistsError:
                number += 1
        items = real_read_items(path, stream)
        # The second reader meets the file cut to a third of its lines.
        return itertools.islice(items, 300) if number == 2 else items

    monkeypatch.setattr(runner, "read_lazy_items", reading)  # what each worker reads with
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    argv = [str(big), "-o", str(out), "--summary-json", str(summary), "--sort", "never"]

    def stuck(signum: int, frame: Any) -> None:
        raise TimeoutError("the run waited for a line no worker will send")

    previous = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(120)
    try:
        code = check(*argv, "--workers", "2")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert code == 1
    unread = json.loads(summary.read_text(encoding="utf-8"))["order"]["unread_by_owner"]
    assert 0 < unread < 600
    assert f"{unread} lines one worker read were never read" in capsys.readouterr().err
    assert len(list(readers.iterdir())) == 2  # the two workers, nobody else
    # Every line both read is reported; of the rest, those of the other worker's accounts
    # are the ones missing.
    assert len(out.read_text(encoding="utf-8").splitlines()) == 900 - unread


@pytest.mark.usefixtures("two_shards")
def test_workers_read_again_the_lines_of_an_input_rewritten_after_the_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers of a sharded run take each line's owner from the scan. Rewritten
    between the scan and their reads (here: one line inserted first, so every line
    moves), the input's lines are not the ones scanned: the workers must read them
    again, and write what one process writes from the new input."""
    timed = [
        (ts, line)
        for line in (FIXTURES / "labelled.jsonl").read_text(encoding="utf-8").splitlines(True)
        if (ts := line_time(json.loads(line), DEFAULT_NAIVE_TZ)) is not None
    ]
    lines = [line for _, line in sorted(timed)[:600]]  # in time order: the run streams it
    log = tmp_path / "log.jsonl"
    log.write_text("".join(lines), encoding="utf-8")
    rewritten = "".join([lines[0], *lines[:-1]])
    real_scanned = batch._scanned
    planned: list[Any] = []

    def rewriting(plan: Any, options: Any, *progress: Any) -> None:
        real_scanned(plan, options, *progress)
        planned.append(plan.heads)
        log.write_text(rewritten, encoding="utf-8")

    monkeypatch.setattr(batch, "_scanned", rewriting)

    def stuck(signum: int, frame: Any) -> None:
        raise TimeoutError("a worker waited for a line no worker will send")

    previous = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(120)
    try:
        assert check(str(log), "-o", str(tmp_path / "two.jsonl"), "--workers", "2") == 0
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert planned and planned[0] is not None  # the scan kept the lines' owners
    monkeypatch.setattr(batch, "_scanned", real_scanned)
    assert check(str(log), "-o", str(tmp_path / "one.jsonl"), "--workers", "1") == 0
    one = (tmp_path / "one.jsonl").read_bytes()
    assert len(one.splitlines()) == 600
    assert (tmp_path / "two.jsonl").read_bytes() == one


def test_an_input_that_does_not_shrink_is_not_reported(tmp_path: Path, source: Path) -> None:
    shrunk: list[str] = []
    items = list(runner.iter_items([str(source)], on_shrunk=lambda p, *_: shrunk.append(p)))
    assert len(items) == 4 and shrunk == []


# --- item 12: progress -------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Recorder:
    """The check's progress (the stages before it, a scan and a sort, are
    tests/test_progress_stages.py's)."""

    def __init__(self) -> None:
        self.bytes: list[int] = []
        self.lines_done: list[int] = []
        self.labels: list[str] = []

    def stage(self, label: str = "", *, total_lines: int | None = None) -> None:
        self.labels.append(label)
        self.bytes, self.lines_done = [], []

    def update(self, count: int) -> None:
        self.bytes.append(count)

    def lines(self, count: int) -> None:
        self.lines_done.append(count)


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_reaches_every_byte_and_line_with_any_number_of_workers(
    tmp_path: Path, source: Path, workers: int
) -> None:
    big = tmp_path / "big.jsonl"
    big.write_text(source.read_text(encoding="utf-8") * 300, encoding="utf-8")
    recorder = Recorder()
    sinks = BatchSinks(output=io.BytesIO(), progress=recorder)
    options = BatchOptions(paths=[str(big)], config=CheckerConfig(), workers=workers)
    stats = run_batch(options, sinks)
    assert recorder.labels[-1] == ""  # the check, last
    assert recorder.bytes[-1] == big.stat().st_size  # was stuck at 0 with workers
    assert recorder.bytes == sorted(recorder.bytes)
    assert stats.lines == 1200 and recorder.lines_done[-1] == 1200


def test_progress_draws_on_a_terminal_and_only_when_asked_elsewhere() -> None:
    terminal = FakeTerminal()
    progress = Progress(terminal, total_bytes=1000, delay=0)
    progress.update(500)
    progress.lines(4096)
    progress.close()
    assert "4,096 lines" in terminal.getvalue() and "50.0%" in terminal.getvalue()
    assert "ETA" in terminal.getvalue() and terminal.getvalue().endswith("\n")
    piped = io.StringIO()
    Progress.for_stream(piped, 1000, enabled=True).close()
    assert piped.getvalue() == ""
    quiet = FakeTerminal()
    Progress.for_stream(quiet, 1000, enabled=False).close()
    assert quiet.getvalue() == ""
    forced = io.StringIO()
    progress = Progress.for_stream(forced, 1000, enabled=True, force=True)
    progress.update(1000)
    progress.close()
    assert "\r" not in forced.getvalue() and "100.0%" in forced.getvalue()


def test_progress_flag_forces_it_on_a_pipe(source: Path, capsys: Any) -> None:
    assert main(["check", str(source), "--progress", "-q"]) == 0
    err = capsys.readouterr().err  # not a terminal: shown only because it was asked for
    assert "4 lines" in err and "100.0%" in err and "\r" not in err
    assert main(["check", str(source), "-q"]) == 0
    assert capsys.readouterr().err == ""


# --- item 13: a run without its history store ---------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_unreachable_history_store_is_a_warning_and_counted(
    tmp_path: Path, source: Path, capsys: Any, workers: str
) -> None:
    pytest.importorskip("redis")
    summary = tmp_path / "s.json"
    refused = "redis://127.0.0.1:1/0"  # port 1: nothing listens, the connection is refused
    argv = ["-o", str(tmp_path / "o.jsonl"), "--summary-json", str(summary), "--workers", workers]
    assert check(str(source), *argv, "--history", refused) == 0
    err = capsys.readouterr().err
    assert err.count("warning: the history store is unreachable") == 1  # told at once
    assert "warning: the history store was unavailable for 3 of 3 sessions" in err
    assert json.loads(summary.read_text(encoding="utf-8"))["history_degraded"] == 3
    assert main(["check", str(source), *argv, "--history", refused, "--summary"]) == 0
    assert "history unavailable for 3 sessions" in capsys.readouterr().err
    assert check(str(source), *argv) == 0
    assert capsys.readouterr().err == ""
    assert json.loads(summary.read_text(encoding="utf-8"))["history_degraded"] == 0


def _reports(tmp_path: Path, source: Path) -> Path:
    reports = tmp_path / "r.jsonl"
    assert check(str(source), "-o", str(reports)) == 0
    return reports


@pytest.mark.usefixtures("two_shards")
def test_a_worker_stopped_while_saving_its_result_stops_the_run_quietly(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch, capfd: Any
) -> None:
    """A stop that lands while a worker saves its result (the parent stopping the run
    after another worker failed, or a signal to that worker alone) stops the run:
    exit 130 as for Ctrl-C, no worker traceback, nothing written."""

    def stopped_while_saving(*_: Any) -> None:  # pragma: no cover - runs in the workers
        raise Stopped(signal.SIGTERM)

    monkeypatch.setattr(batch, "_save_result", stopped_while_saving)
    out = tmp_path / "out.jsonl"
    assert check(str(source), "-o", str(out), "--workers", "2") == 130
    err = capfd.readouterr().err
    assert "Traceback" not in err and "nothing was written" in err, err
    assert not out.exists()


def test_a_result_is_saved_whole_or_not_at_all(tmp_path: Path) -> None:
    """The parent reads any result file it finds: one cut short by a stop must not
    be there."""

    class StopWhilePickled:
        def __reduce__(self) -> Any:
            raise Stopped(signal.SIGTERM)

    result = batch._ShardResult(RunStats(), "rows", "rejects", error=StopWhilePickled())  # type: ignore[arg-type]
    with pytest.raises(Stopped):
        batch._save_result(str(tmp_path), 0, result)
    assert names(tmp_path) == []
    batch._save_result(str(tmp_path), 1, batch._ShardResult(RunStats(), "rows", "rejects"))
    assert names(tmp_path) == ["result-1"]
    assert batch._load_result(tmp_path, 1).rows == "rows"


def test_output_class_never_deletes_what_it_did_not_make(tmp_path: Path) -> None:
    existing = tmp_path / "keep.jsonl"
    existing.write_text("before\n", encoding="utf-8")
    output = Output(str(existing))
    output.write(b"half")
    output.abort()
    assert existing.read_text(encoding="utf-8") == "before\n"
    assert names(tmp_path) == ["keep.jsonl"]


def test_an_interrupted_run_names_what_it_did_not_write(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    def stopped(*_: Any, **__: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr("fingerprint.cli.run_batch", stopped)
    rejects = tmp_path / "r.jsonl"
    assert main(["check", str(source), "--rejects", str(rejects), "-q"]) == 130
    err = capsys.readouterr().err
    assert f"nothing was written to --rejects {rejects}" in err
    assert "the reports on stdout are incomplete" in err
    assert names(tmp_path) == ["in.jsonl"]


def test_an_interrupted_run_says_what_it_sent_straight_is_incomplete(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Rejects sent to a device (or a named pipe, a terminal) went there as they came:
    they are not "nothing", as a file's are (written beside it, then removed)."""

    def stopped(*_: Any, **__: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr("fingerprint.cli.run_batch", stopped)
    out = tmp_path / "out.jsonl"
    assert main(["check", str(source), "-o", str(out), "--rejects", "/dev/null", "-q"]) == 130
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert said == (
        f"fingerprint: stopped by Ctrl-C (SIGINT); nothing was written to -o {out}; "
        "the rejects sent to --rejects /dev/null are incomplete"
    )
    assert names(tmp_path) == ["in.jsonl"]


# --- inputs read once: named pipes, process substitution ---------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize(
    ("workers", "sort", "suffix"),
    [("1", "auto", ".jsonl"), ("2", "auto", ".csv"), ("3", "never", ".jsonl")],
)
def test_a_named_pipe_given_as_input_is_read_once_and_checked_in_full(
    tmp_path: Path, workers: str, sort: str, suffix: str
) -> None:
    """A FIFO (or bash's ``<(zcat log.gz)``) can be read only once. With ``--sort
    auto`` it is copied to the run's scratch folder before the scan, as stdin is:
    before, the run waited forever for a second writer. Like stdin, it is read by one
    process: shards, which each read every input, waited forever too. Its name says
    no format: CSV is told by its header, and checked as the ``.csv`` file is."""
    lines = (FIXTURES / "labelled.jsonl").open("rb").readlines()[:600]  # 282 accounts
    log = tmp_path / f"log{suffix}"
    log.write_bytes(b"".join(csv_lines(lines) if suffix == ".csv" else lines))
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("wb") as pipe:
            pipe.write(log.read_bytes())

    threading.Thread(target=feed, daemon=True).start()
    command = [sys.executable, "-m", "fingerprint.cli", "check", "-q", "--workers", workers,
               "--sort", sort]  # fmt: skip
    subprocess.run(
        [*command, str(fifo), "-o", str(tmp_path / "fifo.jsonl")], timeout=120, check=True
    )
    subprocess.run(
        [*command, str(log), "-o", str(tmp_path / "file.jsonl")], timeout=120, check=True
    )
    from_file = (tmp_path / "file.jsonl").read_bytes()
    assert len(from_file.splitlines()) == 600
    assert (tmp_path / "fifo.jsonl").read_bytes() == from_file
