"""Interrupting `fingerprint check` (issue 18, item 4): Ctrl-C, a supervisor's SIGINT or
SIGTERM to the parent alone, and SIGKILL of the parent. Every case must end with no
final-named output, no temporary file or folder, no surviving worker, and (when the
parent lives to say so) the signal's exit status.

Each test runs the CLI as a subprocess on a log large enough to still be running when
the signal arrives, waits until the run is under way (its workers exist and its
temporary output is there), sends the signal and inspects /proc and the folders.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_session, sigint_as_a_terminal_sends_it

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc to find the workers"
)

LINES = 40_000
T0 = 1_795_133_730
_DEADLINE = 30.0  # seconds a state may take to appear; generous for a loaded machine


def big_log(path: Path) -> Path:
    """Time-ordered sessions of 2,000 accounts: minutes of work for the checker."""
    template = json.dumps(make_session(session_id="SID", account_id="ACC", ts=0))
    template = template.replace('"ts": 0', '"ts": TS')
    with path.open("w", encoding="utf-8") as out:
        for n in range(LINES):
            out.write(
                template.replace("SID", f"s{n}")
                .replace("ACC", f"a{n % 2000}")
                .replace("TS", str(T0 + n))
                + "\n"
            )
    return path


def children_of(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        state = _stat_fields(int(entry))
        if state is not None and state[1] == str(pid) and state[0] != "Z":
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    state = _stat_fields(pid)
    return state is not None and state[0] != "Z"


def _stat_fields(pid: int) -> tuple[str, str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid = text.rsplit(")", 1)[1].split()[:2]
    return state, ppid


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + _DEADLINE
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return big_log(tmp_path_factory.mktemp("log") / "big.jsonl")


def start(
    tmp_path: Path,
    source: Path,
    workers: int,
    program: tuple[str, ...] = ("-m", "fingerprint.cli"),
    preexec: Any = sigint_as_a_terminal_sends_it,
) -> tuple[subprocess.Popen[str], Path, Path]:
    scratch = tmp_path / "tmp"  # the run's TMPDIR, to see its temporary folders
    scratch.mkdir()
    out = tmp_path / "out" / "reports.jsonl"
    out.parent.mkdir()
    command = [
        sys.executable,
        *program,
        "check",
        str(source),
        "-o",
        str(out),
        "--rejects",
        str(out.parent / "rejects.jsonl"),
        "--workers",
        str(workers),
    ]
    env = {**os.environ, "TMPDIR": str(scratch)}
    # A new session: a process group of its own, as a terminal's foreground job has.
    process = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        preexec_fn=preexec,
    )
    return process, out.parent, scratch


def worker_processes(workers: int) -> int:
    """The processes a run of ``workers`` forks: two workers are the parent, which
    finishes the checks, and one reader (fingerprint.pipelined); more are shards."""
    return 1 if workers == 2 else workers


def under_way(process: subprocess.Popen[str], folder: Path, workers: int) -> list[int]:
    """Wait until the run is reading lines; return its workers' pids."""
    wait_for(lambda: any(folder.glob("reports.jsonl.partial-*")), "the temporary output")
    if workers > 1:
        count = worker_processes(workers)
        wait_for(lambda: len(children_of(process.pid)) >= count, "the workers")
    time.sleep(0.5)  # well into the lines
    assert process.poll() is None, "the run ended before the signal: make the log bigger"
    return children_of(process.pid)


def assert_nothing_left(folder: Path, scratch: Path, workers: list[int]) -> None:
    wait_for(lambda: not any(alive(pid) for pid in workers), "the workers to die")
    wait_for(lambda: not list(scratch.iterdir()), "the temporary folder to go")
    assert sorted(p.name for p in folder.iterdir()) == []  # no partial, no final file


@contextlib.contextmanager
def never_left(process: subprocess.Popen[str], workers: list[int] | None = None) -> Iterator[None]:
    """However the test ends, the run (and ``workers``) do not outlive it."""
    try:
        yield
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for pid in workers or ():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def ended(process: subprocess.Popen[str]) -> str:
    """The run's stderr, once it has ended."""
    return process.communicate(timeout=_DEADLINE)[1]


def assert_stopped(process: subprocess.Popen[str], stderr: str, status: int) -> None:
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr
    assert "(interrupted)" in stderr and "nothing was written to -o" in stderr


@pytest.mark.parametrize(
    ("workers", "signum", "group", "status"),
    [
        pytest.param(2, signal.SIGINT, True, 130, id="ctrl-c-two-workers"),
        pytest.param(3, signal.SIGINT, True, 130, id="ctrl-c-three-shards"),
        pytest.param(2, signal.SIGINT, False, 130, id="sigint-to-parent-only"),
        pytest.param(2, signal.SIGTERM, False, 143, id="sigterm-to-parent-only"),
        pytest.param(1, signal.SIGINT, True, 130, id="ctrl-c-one-process"),
    ],
)
def test_a_stopped_run_leaves_nothing_and_exits_with_the_signal(
    tmp_path: Path, source: Path, workers: int, signum: int, group: bool, status: int
) -> None:
    process, folder, scratch = start(tmp_path, source, workers)
    with never_left(process):
        pids = under_way(process, folder, workers)
        if group:
            os.killpg(process.pid, signum)  # what Ctrl-C on a terminal does
        else:
            os.kill(process.pid, signum)  # what `timeout -s`, a supervisor or `kill` does
        stderr = ended(process)
    assert_stopped(process, stderr, status)
    assert_nothing_left(folder, scratch, pids)


def slow_scan(seconds: float) -> tuple[str, ...]:
    """The CLI with a scan that takes ``seconds`` more: a two-stage run's reader begins
    lines meanwhile (fingerprint.pipelined), holding them until the scan answers. The
    run scans first, as one that could not take back what it did (an input in order
    is otherwise checked unscanned: fingerprint.batch._speculates)."""
    return (
        "-c",
        "import sys, time\n"
        "from fingerprint import batch\n"
        "real = batch.scan_plan\n"
        f"batch.scan_plan = lambda *args: (time.sleep({seconds}), real(*args))[1]\n"
        "batch._speculates = lambda *args, **kwargs: False\n"
        "from fingerprint.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n",
    )


@pytest.mark.parametrize(
    ("signum", "group", "status"),
    [
        pytest.param(signal.SIGINT, True, 130, id="ctrl-c"),
        pytest.param(signal.SIGTERM, False, 143, id="sigterm-to-parent-only"),
        pytest.param(signal.SIGKILL, False, -signal.SIGKILL, id="parent-killed"),
    ],
)
def test_a_run_stopped_while_it_scans_leaves_nothing(
    tmp_path: Path, source: Path, signum: int, group: bool, status: int
) -> None:
    process, folder, scratch = start(tmp_path, source, 2, slow_scan(60))
    pids: list[int] = []
    with never_left(process, pids):
        wait_for(lambda: len(children_of(process.pid)) >= 1, "the reader")
        pids += children_of(process.pid)
        time.sleep(1.0)  # the reader begins lines and holds them
        assert process.poll() is None
        (os.killpg if group else os.kill)(process.pid, signum)
        stderr = ended(process)
        if signum == signal.SIGKILL:
            assert process.returncode == status and "Traceback" not in stderr
        else:
            assert_stopped(process, stderr, status)
        assert_nothing_left(folder, scratch, pids)


def test_a_reader_killed_while_the_parent_scans_fails_the_run(tmp_path: Path, source: Path) -> None:
    """The scan's answer finds no reader: the parent says a worker failed (exit 1),
    as when the reader dies later, and leaves nothing."""
    process, folder, scratch = start(tmp_path, source, 2, slow_scan(3))
    with never_left(process):
        wait_for(lambda: len(children_of(process.pid)) >= 1, "the reader")
        pids = children_of(process.pid)
        os.kill(pids[0], signal.SIGKILL)
        stderr = ended(process)
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert "a worker process failed" in stderr
    assert_nothing_left(folder, scratch, pids)


def sigint_ignored() -> None:
    """``preexec_fn`` of a run started as a background job is: SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_a_ctrl_c_the_run_was_started_ignoring_stops_no_process_of_it(
    tmp_path: Path, source: Path, workers: int
) -> None:
    """A run started with SIGINT ignored (a background job) keeps ignoring it in every
    process: one process went on while a reader or shard, which set its own handlers,
    stopped on it and took the run down with it (exit 130)."""
    process, folder, scratch = start(tmp_path, source, workers, preexec=sigint_ignored)
    with never_left(process):
        pids = under_way(process, folder, workers)
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(1.0)  # a worker stopping on it is gone well within this
        assert process.poll() is None
        assert all(alive(pid) for pid in pids)
        process.send_signal(signal.SIGTERM)  # then stopped as a supervisor would
        stderr = ended(process)
    assert_stopped(process, stderr, 143)
    assert_nothing_left(folder, scratch, pids)


@pytest.mark.parametrize("workers", [2, 3])
def test_a_signal_to_one_worker_stops_the_run(tmp_path: Path, source: Path, workers: int) -> None:
    """Shards wait for what the signalled one would have sent them
    (fingerprint.exchange), and a pipeline's parent for what its reader would have:
    the parent stops them all instead of waiting forever."""
    process, folder, scratch = start(tmp_path, source, workers)
    with never_left(process):
        pids = under_way(process, folder, workers)
        os.kill(pids[0], signal.SIGINT)
        stderr = ended(process)
    assert_stopped(process, stderr, 130)
    assert_nothing_left(folder, scratch, pids)


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_die_with_a_killed_parent_and_remove_its_files(
    tmp_path: Path, source: Path, workers: int
) -> None:
    process, folder, scratch = start(tmp_path, source, workers)
    pids: list[int] = []
    try:
        pids = under_way(process, folder, workers)
        assert len(pids) == worker_processes(workers)
        os.kill(process.pid, signal.SIGKILL)  # nothing of the parent runs after this
        process.communicate(timeout=_DEADLINE)
        # Orphaned workers are told by the kernel (or notice) and remove what the
        # parent left: the scratch folder and the parent's temporary outputs.
        assert_nothing_left(folder, scratch, pids)
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.usefixtures("sigint_raises")
def test_a_signal_whose_exception_c_code_replaced_still_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, signum: int, status: int
) -> None:
    """A stop signal's exception raised while a C extension calls back into Python
    comes out as that extension's own error (maxminddb: "TypeError: argument 1 must be
    a string or ipaddress object"). The run is stopped all the same: the signal's
    exit status and message, no traceback, nothing written."""
    from fingerprint import batch, cli

    def lossy(*_args: Any, **_kwargs: Any) -> Any:
        try:
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler raises here
        except KeyboardInterrupt:
            raise TypeError("argument 1 must be a string or ipaddress object") from None
        raise AssertionError("the signal was not delivered")

    monkeypatch.setattr(batch, "_run_single", lossy)
    log = tmp_path / "in.jsonl"
    log.write_text(json.dumps(make_session()) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert cli.main(["check", str(log), "-o", str(out), "--workers", "1", "-q"]) == status
    err = capsys.readouterr().err
    assert "stopped by" in err and "Traceback" not in err and "TypeError" not in err
    assert not out.exists()


def test_an_error_after_an_earlier_run_was_stopped_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What stopped one run (in this process) does not turn the next run's errors
    into stops."""
    from fingerprint import batch, cli

    def stopped(*_args: Any, **_kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        raise AssertionError("the signal was not delivered")

    def failing(*_args: Any, **_kwargs: Any) -> Any:
        raise TypeError("a bug")

    log = tmp_path / "in.jsonl"
    log.write_text(json.dumps(make_session()) + "\n", encoding="utf-8")
    argv = ["check", str(log), "-o", str(tmp_path / "out.jsonl"), "--workers", "1", "-q"]
    monkeypatch.setattr(batch, "_run_single", stopped)
    assert cli.main(argv) == 143
    monkeypatch.setattr(batch, "_run_single", failing)
    with pytest.raises(TypeError, match="a bug"):
        cli.main(argv)


# A stop signal once the command has ended: the moment between the end of its work and
# the handlers' change, and the interpreter's exit after it. A script runs the program
# and signals itself at both moments, so neither is a race.
_LATE_SIGNALS = """
import os, signal, sys
from fingerprint import cli

signum = int(sys.argv.pop(1))
program = os.getpid()
change = signal.signal
armed = [True]

def signalled_first(which, handler):
    if armed[0] and handler is signal.SIG_IGN and os.getpid() == program:
        armed[0] = False
        os.kill(program, signum)  # the work is done; the handlers are changing
    return change(which, handler)

signal.signal = signalled_first
status = cli.program()
os.kill(program, signum)  # the interpreter's exit
print("exited with", status)
sys.exit(status)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_after_the_command_has_ended_leaves_its_status(
    tmp_path: Path, signum: int
) -> None:
    """The run's outputs are written and its status decided: the program exits with
    that status, as if no signal had come, and says nothing more."""
    log = tmp_path / "log.jsonl"
    log.write_text(
        "".join(json.dumps(make_session(session_id=f"s{n}", ts=T0 + n)) + "\n" for n in range(20)),
        encoding="utf-8",
    )
    out = tmp_path / "reports.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _LATE_SIGNALS,
            str(int(signum)),
            "check",
            str(log),
            "-o",
            str(out),
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=_DEADLINE,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "exited with 0\n"
    assert "Traceback" not in result.stderr and "stopped by" not in result.stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == 20
