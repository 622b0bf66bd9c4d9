"""Two workers as two stages (fingerprint.pipelined): the reader begins each login in a
child process, the parent finishes it. Whatever the input, the run must write, reject
and count exactly what one process does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from fingerprint import batch, pipelined
from fingerprint.checker import Begun, Checker
from fingerprint.cli import main
from fingerprint.errors import FingerprintError
from tests.conftest import FIXTURES, make_session

T0 = 1_795_133_730


def _lines(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


@pytest.fixture
def awkward_log(tmp_path: Path) -> Path:
    """Lines that take every path of the pipeline: reports, a reject the reader finds
    (no JSON), ones validation finds (no account; texts with a lone surrogate, which
    only the standard library's decoder reads), a blank line, lines a little out of
    time order (held back, or late when streamed)."""
    sessions = [
        make_session(session_id=f"s{n}", account_id=f"a{n % 7}", ts=T0 + 60 * n) for n in range(40)
    ]
    sessions[5]["ts"] = T0 + 60 * 3  # a little behind: reordered or late
    sessions[12]["account_id"] = ""  # refused by validation
    text = _lines(sessions[:20])
    surrogates = '{"account_id": "a1", "ts": TS, "ip": "1.2.3.4", "user_agent": "\\ud800x"}\n'
    text += surrogates.replace("TS", str(T0 + 60 * 20))
    text += "\n" + "not json\n" + _lines(sessions[20:])
    surrogates = '{"account_id": "a\\udc00", "ts": TS, "ip": "1.2.3.5"}\n'
    text += surrogates.replace("TS", str(T0 + 60 * 41))
    log = tmp_path / "awkward.jsonl"
    log.write_text(text, encoding="utf-8")
    return log


def _run(
    tmp_path: Path, inputs: list[str], workers: str, *options: str
) -> tuple[bytes, bytes, dict[str, Any], int]:
    out = tmp_path / f"out-{workers}"
    rejects = tmp_path / f"rejects-{workers}"
    summary = tmp_path / f"summary-{workers}.json"
    code = main(
        ["check", *inputs, "--workers", workers, "-o", str(out), "--rejects", str(rejects),
         "--summary-json", str(summary), "-q", *options]
    )  # fmt: skip
    counts = json.loads(summary.read_text(encoding="utf-8"))
    for timing in ("seconds", "lines_per_second"):
        counts.pop(timing, None)
    return out.read_bytes(), rejects.read_bytes(), counts, code


@pytest.mark.parametrize(
    "options",
    [(), ("--by", "account"), ("--format", "csv"), ("--sort", "never", "--max-skew", "30")],
)
def test_two_stages_write_reject_and_count_what_one_process_does(
    tmp_path: Path, awkward_log: Path, options: tuple[str, ...]
) -> None:
    inputs = [str(awkward_log), str(FIXTURES / "labelled.jsonl")]
    one = _run(tmp_path, inputs, "1", *options)
    two = _run(tmp_path, inputs, "2", *options)
    assert two == one
    _, rejects, counts, code = two
    assert code == 0
    assert counts["blank"] == 1 and counts["rejects"] >= 4  # no JSON; no account; 2 texts
    assert rejects.count(b"unable to parse raw data as a unicode string") == 2
    if "never" in options:  # streamed as it is: one line comes too late
        assert counts["order"]["late"] >= 1


def test_a_line_far_ahead_is_finished_with_its_warning(checker: Checker) -> None:
    begun = checker.begin(checker.prepare(make_session()), session_id="x:1")
    sent = pipelined._ENCODE(pipelined._Frame(0, [pipelined._Login(7, "x", 1, 3_600.0, begun)]))
    (message,) = pipelined._DECODE(sent).messages
    outcome = pipelined._outcome(checker, message, checker.config.time_zone)
    assert outcome.report is not None
    assert outcome.report.warnings[-1] == (
        "checked out of time order: 3600 s ahead of the other lines"
    )


def test_a_login_messagepack_cannot_carry_goes_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader sends whole what its encoder refuses; the parent checks it from the
    start, with the same report. (Validation refuses the values MessagePack cannot
    carry that we know of, lone surrogates; this is the net under the ones we don't.)"""
    sessions = [
        make_session(session_id=f"s{n}", account_id=f"a{n % 3}", ts=T0 + 60 * n,
                     ip="192.0.2.99" if n % 4 == 1 else "1.2.3.4")
        for n in range(12)
    ]  # fmt: skip
    log = tmp_path / "log.jsonl"
    log.write_text(_lines(sessions), encoding="utf-8")

    def refuse_one(value: Any) -> Any:
        if str(value) == "192.0.2.99":
            raise NotImplementedError("cannot be sent")
        return pipelined._address_sent(value)

    monkeypatch.setattr(pipelined, "_ENCODE", msgspec.msgpack.Encoder(enc_hook=refuse_one).encode)
    wholes: list[int] = []
    real_whole = pipelined._whole

    def counted(checker: Checker, message: Any, naive_tz: Any) -> Any:
        wholes.append(message.seq)
        return real_whole(checker, message, naive_tz)

    monkeypatch.setattr(pipelined, "_whole", counted)
    one = _run(tmp_path, [str(log)], "1")
    two = _run(tmp_path, [str(log)], "2")
    assert two == one
    assert sorted(wholes) == [1, 5, 9]


def test_a_begun_login_survives_the_pipe(checker: Checker) -> None:
    """What the parent finishes is what the reader began: addresses come back as the
    same objects, everything else as it was."""
    for ip in ("2001:db8::1", "1.2.3.4", "::ffff:1.2.3.4"):
        prepared = checker.prepare(make_session(ip=ip))
        begun = checker.begin(prepared, session_id="x:1", now=None)
        data = pipelined._ENCODE(begun)
        back = pipelined._with_addresses(msgspec.msgpack.Decoder(Begun).decode(data))
        assert back == begun
        assert type(back.session.ip) is type(begun.session.ip)
        assert back.features.network.ip == begun.features.network.ip


def test_a_begun_login_travels_without_what_it_does_not_hold(checker: Checker) -> None:
    """The session's blocks leave out the fields they do not hold (most of the device
    is left behind for the parent) and the records made from them travel as arrays,
    without their field names: half the bytes to decode for the slower stage."""
    begun = checker.begin(checker.prepare(make_session()), session_id="x:1", now=None)
    session, features, identity, run, event = msgspec.msgpack.decode(pipelined._ENCODE(begun))[:5]
    for block in (session, session["device"], session["network"]):
        assert None not in block.values(), block
    assert "build_fingerprint" not in session["device"]
    for record in (features, identity, run, event):
        assert isinstance(record, list)


def test_a_reader_that_fails_fails_the_run(
    tmp_path: Path, awkward_log: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A reader that dies leaves the parent an unfinished pipe: exit 1 and one line
    saying so, never a hang or a partial output."""

    def broken(*_args: Any, **_kwargs: Any) -> Any:  # pragma: no cover - in the reader
        raise RuntimeError("reader broke")

    monkeypatch.setattr(Checker, "begin", broken)
    out = tmp_path / "out.jsonl"
    assert main(["check", str(awkward_log), "--workers", "2", "-o", str(out), "-q"]) == 1
    assert "a worker process failed" in capsys.readouterr().err
    assert not out.exists()


def test_two_workers_with_whois_shard_by_account() -> None:
    """The whois record stays in the process that looked it up, so --whois runs shard;
    so do more workers than two."""
    from types import SimpleNamespace

    from fingerprint.batch import BatchOptions
    from fingerprint.config import CheckerConfig

    def pipelined_for(workers: int, whois: bool) -> bool:
        options = BatchOptions([], CheckerConfig(), workers=workers)
        checker: Any = SimpleNamespace(config=SimpleNamespace(whois=whois))
        return batch._pipelined(options, checker)

    assert pipelined_for(2, whois=False)
    assert not pipelined_for(2, whois=True)
    assert not pipelined_for(3, whois=False)
    assert not pipelined_for(1, whois=False)


def test_finishing_reads_nothing_the_begun_login_left_behind(tmp_path: Path) -> None:
    """A begun login travels without the fields only the first half reads (the device
    verdict, the session checks): on the sets that exercise the history checks most
    (identity, accounts per address, held-out devices and networks), two stages still
    report as one. Leaving behind one more field the second half reads changes some
    report here (each tried): the device's time zone (ip_hopping), its boot time
    (device_reset's link), its boot count and install time (a factory reset), the
    network's type (ip_accounts' carrier allowance)."""
    inputs = [
        str(FIXTURES / "identity" / "devices.jsonl"),
        str(FIXTURES / "identity" / "ip_accounts.jsonl"),
        str(FIXTURES / "heldout" / "emulator.jsonl"),
        str(FIXTURES / "heldout" / "network.jsonl"),
    ]
    one = _run(tmp_path, inputs, "1")
    two = _run(tmp_path, inputs, "2")
    assert two == one
    checks = (b"device_reset", b"device_forged", b"device_farm", b"ip_hopping", b"ip_accounts")
    for check in checks:
        assert b'"check":"' + check + b'"' in one[0]  # history checks that found something


@pytest.fixture
def readers(monkeypatch: pytest.MonkeyPatch) -> list[bool | str | None]:
    """Each reader the run starts: the parent's answer to it after its scan (go, or
    stop: the input is sorted and another reader started), "unscanned" for a reader
    on an input nobody scanned (it stops at the first line out of order), None for
    a reader started on a scanned plan."""
    started: list[bool | str | None] = []
    real_start, real_answer = batch._start_reader, batch.answer_gate

    def start(*args: Any, gate: Any = None, until_out_of_order: bool = False) -> Any:
        started.append("unscanned" if until_out_of_order else None)
        return real_start(*args, gate=gate, until_out_of_order=until_out_of_order)

    def answer(fd: int, *, go: bool) -> None:
        started[-1] = go
        real_answer(fd, go=go)

    monkeypatch.setattr(batch, "_start_reader", start)
    monkeypatch.setattr(batch, "answer_gate", answer)
    return started


def _log_of(tmp_path: Path, order: list[int]) -> Path:
    sessions = [
        make_session(session_id=f"s{n}", account_id=f"a{n % 5}", ts=T0 + 3_600 * n) for n in order
    ]
    log = tmp_path / "log.jsonl"
    log.write_text(_lines(sessions), encoding="utf-8")
    return log


@pytest.fixture
def scanned_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that could not take back what it did (several inputs, stdout, whois, a
    shared history): the parent scans first, its reader meanwhile beginning lines."""
    monkeypatch.setattr(batch, "_speculates", lambda *args, **kwargs: False)


@pytest.mark.parametrize("held_bytes", [1 << 26, 0], ids=["held", "nothing-held"])
@pytest.mark.usefixtures("scanned_first")
def test_the_reader_begins_while_the_parent_scans_then_goes_on(
    tmp_path: Path,
    readers: list[bool | str | None],
    monkeypatch: pytest.MonkeyPatch,
    held_bytes: int,
) -> None:
    """In time order: one reader, which began lines before the scan's answer (holding
    its frames, or, with no room to hold them, waiting), then sends them all."""
    monkeypatch.setattr(pipelined, "_HELD_BYTES", held_bytes)
    log = _log_of(tmp_path, list(range(300)))
    two = _run(tmp_path, [str(log)], "2")
    assert readers == [True]
    assert two == _run(tmp_path, [str(log)], "1")
    assert len(two[0].splitlines()) == 300


@pytest.mark.usefixtures("scanned_first")
def test_a_reader_begun_on_an_input_that_must_be_sorted_is_replaced(
    tmp_path: Path, readers: list[bool | str | None]
) -> None:
    """Out of time order beyond the skew: the first reader is told to stop (its work
    is never read), the input sorted, and a second reader reads the sorted input."""
    log = _log_of(tmp_path, [*range(150, 300), *range(150)])
    two = _run(tmp_path, [str(log)], "2")
    assert readers == [False, None]
    assert two == _run(tmp_path, [str(log)], "1")
    assert two[2]["order"]["sorted"] is True


def test_an_input_in_order_is_read_once_by_one_reader(
    tmp_path: Path, readers: list[bool | str | None]
) -> None:
    """One file, reports and rejects to files: nobody scans it; the reader sends what
    it begins at once."""
    log = _log_of(tmp_path, list(range(300)))
    two = _run(tmp_path, [str(log)], "2")
    assert readers == ["unscanned"]
    assert two == _run(tmp_path, [str(log)], "1")
    assert two[2]["order"]["sorted"] is False


def test_an_input_out_of_order_is_taken_back_then_sorted(
    tmp_path: Path, readers: list[bool | str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader stops at the first line out of order; the parent takes back what it
    wrote, scans and sorts the input, and a second reader reads the sorted input. (A
    log whose samples show it out of order is scanned first, as any other.)"""
    log = _log_of(tmp_path, [*range(150, 300), *range(150)])
    one = _run(tmp_path, [str(log)], "1")
    assert _run(tmp_path, [str(log)], "2") == one
    assert readers == [False, None]  # its samples fall back: scanned first
    readers.clear()
    monkeypatch.setattr(batch, "sampled_in_order", lambda *args: True)
    two = _run(tmp_path, [str(log)], "2")
    assert readers == ["unscanned", None]
    assert two == one
    assert two[2]["order"]["sorted"] is True


@pytest.mark.parametrize("sort", ["always", "never"])
def test_a_run_that_does_not_scan_later_starts_one_reader_after_planning(
    tmp_path: Path, readers: list[bool | str | None], sort: str
) -> None:
    log = _log_of(tmp_path, list(range(50)))
    assert _run(tmp_path, [str(log)], "2", "--sort", sort) == _run(
        tmp_path, [str(log)], "1", "--sort", sort
    )
    assert readers == [None]


@pytest.mark.usefixtures("scanned_first")
def test_a_scan_that_fails_stops_the_reader_quietly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The parent's scan reports what went wrong; the reader, which may have met the
    same input meanwhile, is told to stop and says nothing."""

    def failing(*_args: Any) -> bool:
        raise FingerprintError("cannot read the input: it went away")

    def reader_fails(*_args: Any) -> None:
        raise OSError("the reader met it too")

    monkeypatch.setattr(batch, "scan_plan", failing)
    monkeypatch.setattr(pipelined, "_begin", reader_fails)  # the forked reader's
    log = _log_of(tmp_path, list(range(50)))
    out = tmp_path / "out.jsonl"
    assert main(["check", str(log), "-o", str(out), "--workers", "2", "-q"]) == 1
    err = capfd.readouterr().err
    assert "cannot read the input: it went away" in err
    assert "Traceback" not in err and "worker" not in err
    assert not out.exists()
