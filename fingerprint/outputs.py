"""Writing reports: JSON Lines, CSV or a table, to a file that appears only when done
(or straight to a device, pipe or stdout, which are never replaced)."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import stat
import sys
from typing import IO, Any

import orjson

from fingerprint.errors import ConfigError, FingerprintError
from fingerprint.terminal import terminal_safe

Row = dict[str, Any]

SESSION_CSV_COLUMNS = (
    "session_id",
    "account_id",
    "ts",
    "grade",
    "score",
    "blacklisted",
    "codes",
    "checks",
    "not_evaluated",
    "device_score",
    "veto",
    "device_status",
    "ip_country",
    "ip_province",
    "asn",
    "brand",
    "model",
)
ACCOUNT_CSV_COLUMNS = (
    "account_id",
    "sessions",
    "first_seen",
    "last_seen",
    "latest_grade",
    "latest_device_status",
    "worst_grade",
    "worst_score",
    "devices",
    "provinces",
    "checks",
    "blacklisted",
    "blacklisted_by",
)


class Output:
    """One file the CLI writes (reports, rejects, the summary JSON, an HTML page).

    What happens depends on what the path names, decided when the run starts so that
    a bad path fails before the first line is read:

    * ``-`` or None: stdout.
    * our own stdout or stderr under another name (``/dev/stderr``, ``/proc/self/fd/2``):
      that open stream, so a log that stderr is redirected to is appended to, never
      replaced.
    * a regular file, or a name that does not exist yet: written to
      ``NAME.partial-PID`` beside it and renamed over it by :meth:`commit`, so a run
      that fails or is interrupted never leaves a file that looks complete. A symlink
      is followed: its target is replaced (keeping its permissions), the link stays.
    * anything else that opens for writing (a device such as ``/dev/null``, a named
      pipe, a terminal): written straight. It is never replaced, truncated or deleted.
      The null device (by that name, or as stdout) keeps nothing, so what went to it
      is taken back by doing nothing: :attr:`rewindable`.
    * a directory, a missing folder, a file we may not write: :class:`ConfigError`.
    """

    def __init__(self, path: str | None, *, option: str = "-o") -> None:
        self.path = path if path not in (None, "-") else None
        self.option = option
        self.temp: str | None = None  # our NAME.partial-PID, the only file we may delete
        self._target: str | None = None
        self._close = False  # we opened the stream (not stdout), so we close it
        self._discards = False  # the null device: nothing written there is kept
        if self.path is None:
            self.stream: IO[bytes] = sys.stdout.buffer
            self._discards = _null_device(_fstat(self.stream))
            return
        info = _stat(self.path, option)
        if info is not None and stat.S_ISDIR(info.st_mode):
            raise ConfigError(f"{option} names a directory, not a file", self.path)
        standard = _standard_stream(info)
        if standard is not None:
            self.stream, self._close = os.fdopen(os.dup(standard), "wb"), True
        elif info is None or stat.S_ISREG(info.st_mode):
            self._open_beside(info)
        else:
            self._open_straight()
            self._discards = _null_device(info)

    @property
    def written_straight(self) -> bool:
        """A named output written to as the run goes (a device, a named pipe, a
        terminal, our stdout or stderr under another name), not through our file
        (whose name stays known after :meth:`abort` removed it)."""
        return self.path is not None and self._target is None

    @property
    def replaces(self) -> str | None:
        """The file :meth:`commit` renames over (None when written straight)."""
        return self._target

    def _open_beside(self, info: os.stat_result | None) -> None:
        assert self.path is not None
        target = os.path.realpath(self.path)  # a symlink's target is what we replace
        directory = os.path.dirname(target)
        if not os.path.isdir(directory):
            raise ConfigError(f"{self.option}: folder does not exist", directory)
        if info is not None and not os.access(target, os.W_OK):
            raise ConfigError(f"{self.option}: file is not writable", self.path)
        mode = stat.S_IMODE(info.st_mode) if info is not None else None
        self.temp, descriptor = _create_temp(target, self.option)
        self._target = target
        try:
            if mode is not None:
                os.fchmod(descriptor, mode)
        except OSError:
            pass  # not our file's owner: the new file keeps the default mode
        self.stream, self._close = os.fdopen(descriptor, "wb", buffering=1 << 20), True

    def _open_straight(self) -> None:
        assert self.path is not None
        try:
            # No O_CREAT or O_TRUNC: a device or pipe is written to, never made or cut.
            descriptor = os.open(self.path, os.O_WRONLY)
        except OSError as exc:
            raise ConfigError(f"{self.option}: cannot write ({exc.strerror})", self.path) from None
        self.stream, self._close = os.fdopen(descriptor, "wb", buffering=1 << 16), True

    def write(self, data: bytes) -> None:
        try:
            self.stream.write(data)
        except OSError as exc:
            raise self._failed(exc) from exc

    @property
    def rewindable(self) -> bool:
        """Written to our own temporary file, so :meth:`rewind` can take it all back,
        or to the null device, which kept none of it."""
        return self.temp is not None or self._discards

    def rewind(self) -> None:
        """Take back everything written so far (only when :attr:`rewindable`: a device,
        a pipe or a terminal cannot be unwritten). A batch run that checked its input
        as it streamed, and then found it must sort it, starts over (fingerprint.batch)."""
        if self._discards:
            return
        if self.temp is None:
            raise ValueError(f"{self.option}: written straight, it cannot be rewound")
        try:
            self.stream.seek(0)  # a buffered stream writes what it holds first
            self.stream.truncate()
        except OSError as exc:
            raise self._failed(exc) from exc

    def commit(self) -> None:
        """Finish: flush, and rename the temporary file into place. On an error
        nothing is left behind (see :meth:`abort`) and :class:`OutputError` is raised."""
        try:
            self.stream.flush()
            if self._close:
                self._close = False
                self.stream.close()
            if self.temp is not None and self._target is not None:
                os.replace(self.temp, self._target)
                self.temp = None
        except OSError as exc:
            self.abort()
            raise self._failed(exc) from exc

    def _failed(self, exc: OSError) -> OSError | OutputError:
        if self.path is None and isinstance(exc, BrokenPipeError):
            return exc  # stdout's reader left (`| head`): the CLI ends quietly
        where = "stdout" if self.path is None else f"{self.option} {self.path}"
        return OutputError(f"cannot write {where} ({exc.strerror or exc})")

    def abort(self) -> None:
        """Give up: close what we opened and delete our temporary file, nothing else."""
        if self._close:
            self._close = False
            with contextlib.suppress(OSError):
                self.stream.close()
        else:
            with contextlib.suppress(OSError, ValueError):
                self.stream.flush()
        if self.temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.temp)
            self.temp = None


AtomicOutput = Output  # the earlier name


class OutputError(FingerprintError):
    """An output could not be written (a full disk, a pipe whose reader left)."""


class OutputSet:
    """Every output of one run, opened (so checked) before the first line is read;
    :meth:`abort` removes every temporary file of those not yet committed."""

    def __init__(self) -> None:
        self._opened: list[Output] = []

    def open(self, path: str | None, option: str) -> Output:
        output = Output(path, option=option)
        self._opened.append(output)
        return output

    @property
    def temporaries(self) -> list[str]:
        return [o.temp for o in self._opened if o.temp is not None]

    def abort(self) -> None:
        for output in self._opened:
            output.abort()


def _stat(path: str, option: str) -> os.stat_result | None:
    """What the path names, through symlinks; None when nothing is there yet."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None  # a new file (or a symlink to one)
    except OSError as exc:
        raise ConfigError(f"{option}: cannot use ({exc.strerror})", path) from None


def _fstat(stream: IO[bytes]) -> os.stat_result | None:
    try:
        return os.fstat(stream.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):  # no descriptor (a test's buffer)
        return None


def _null_device(info: os.stat_result | None) -> bool:
    """Whether ``info`` is the null device's (``/dev/null``, whatever the name)."""
    if info is None or not stat.S_ISCHR(info.st_mode):
        return False
    try:
        return info.st_rdev == os.stat(os.devnull).st_rdev
    except OSError:
        return False


def _standard_stream(info: os.stat_result | None) -> int | None:
    """1 or 2 when the path is the file our stdout or stderr already writes to."""
    if info is None:
        return None
    for descriptor in (1, 2):
        try:
            mine = os.fstat(descriptor)
        except OSError:
            continue
        if (mine.st_dev, mine.st_ino) == (info.st_dev, info.st_ino):
            return descriptor
    return None


def _create_temp(target: str, option: str) -> tuple[str, int]:
    """``TARGET.partial-PID`` created exclusively (a stale one is not ours to reuse)."""
    base = f"{target}.partial-{os.getpid()}"
    for attempt in range(100):
        name = base if attempt == 0 else f"{base}-{attempt}"
        try:
            return name, os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise ConfigError(f"{option}: cannot write ({exc.strerror})", target) from None
    raise ConfigError(f"{option}: too many stale temporary files beside", target)


def refuse_overwriting_inputs(inputs: list[str], outputs: dict[str, str | None]) -> None:
    """ConfigError when an output is one of the inputs (the same file, however named:
    symlinks and hard links included) or two outputs are the same file.

    Only regular files and new names count: a device or a pipe is not overwritten.
    """
    read: dict[tuple[int, int], str] = {}
    for path in inputs:
        identity = _file_identity(path if path != "-" else None)
        if identity is not None:
            read[identity] = "stdin" if path == "-" else path
    written: dict[tuple[int, int] | str, str] = {}
    for option, named in outputs.items():
        if named is None or named == "-":
            continue
        identity = _file_identity(named)
        if identity is not None and identity in read:
            raise ConfigError(
                f"{option} {named} is the input {read[identity]}; it would be overwritten"
            )
        key: tuple[int, int] | str | None = identity
        if key is None:
            key = None if _is_special(named) else os.path.realpath(named)
        if key is None:
            continue
        if key in written:
            raise ConfigError(f"{written[key]} and {option} name the same file", named)
        written[key] = option


def _file_identity(path: str | None) -> tuple[int, int] | None:
    """(device, inode) of a regular file (stdin's when path is None), else None."""
    try:
        info = os.fstat(0) if path is None else os.stat(path)
    except (OSError, ValueError):
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISREG(info.st_mode) else None


def _is_special(path: str) -> bool:
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


class RowFormat:
    """Turns report (or account) rows into output bytes; ``header`` goes first once."""

    def __init__(self, fmt: str, by_account: bool) -> None:
        self.fmt = fmt
        self.by_account = by_account
        self.header = b""
        self._buffer = io.StringIO()
        # "\r\n" so the writer quotes a cell holding a bare CR too (it quotes the
        # terminator's characters only); each row still ends in "\n" (_csv_line).
        self._csv = csv.writer(self._buffer, lineterminator="\r\n")
        if fmt == "csv":
            self.columns = ACCOUNT_CSV_COLUMNS if by_account else SESSION_CSV_COLUMNS
            self.header = self._csv_line(list(self.columns))
        elif fmt == "table":
            self.header = _table_header(by_account)

    def __call__(self, row: Row) -> bytes:
        if self.fmt == "jsonl":
            return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
        if self.fmt == "csv":
            values = row if self.by_account else session_csv_row(row)
            return self._csv_line([_csv_cell(values.get(c)) for c in self.columns])
        return _table_line(row, self.by_account)

    def _csv_line(self, cells: list[Any]) -> bytes:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._csv.writerow(cells)
        return self._buffer.getvalue()[:-2].encode() + b"\n"


def jsonl_line(row: Row) -> bytes:
    return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return spreadsheet_safe(";".join(str(v) for v in value))
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    if value is None:
        return ""
    return spreadsheet_safe(value)


# A text cell starting with one of these is a formula to Excel, LibreOffice and Google
# Sheets (tab and CR too: some strip them and read what follows) - OWASP "CSV Injection".
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (``=HYPERLINK(...)`` as an
    account id) gets a leading single quote, as OWASP advises: shown as text, never
    evaluated. Numbers and other text are unchanged; JSON outputs are never touched."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def session_csv_row(report: Row) -> Row:
    features = report["features"]
    return {
        **report,
        "codes": list(report["contributions"]) or [f["code"] for f in report["findings"]],
        "checks": sorted({f["check"] for f in report["findings"]}),
        "device_score": report["device_component"]["score"],
        "veto": report["device_component"]["veto"],
        # ok, pending or veto: a grade A that is pending (too few signals) is no pass.
        "device_status": report["device_component"].get("status", "ok"),
        "ip_country": features.get("ip_country"),
        "ip_province": features.get("ip_province"),
        "asn": features.get("asn"),
        "brand": features.get("brand"),
        "model": features.get("model"),
    }


def _table_header(by_account: bool) -> bytes:
    if by_account:
        header = f"{'account':<20} {'sess':>5} {'worst':>5} {'latest':>6} {'BL':>2}  checks\n"
    else:
        header = f"{'session':<22} {'account':<16} {'grade':>5} {'score':>5} {'BL':>2}  reasons\n"
    return (header + "-" * (len(header) + 20) + "\n").encode()


def _table_line(row: Row, by_account: bool) -> bytes:
    mark = "*" if row["blacklisted"] else ""
    # Ids come from input: escaped (terminal_safe) so ESC, BEL, CR ... are shown, not
    # obeyed by the terminal, and before cutting, so the columns stay aligned.
    account = terminal_safe(row["account_id"])
    if by_account:
        checks = terminal_safe(", ".join(f"{k}×{v}" for k, v in row["checks"].items()))
        line = (
            f"{account[:20]:<20} {row['sessions']:>5} {row['worst_grade']:>5} "
            f"{row['latest_grade']:>6} {mark:>2}  {checks}\n"
        )
    else:
        reasons = terminal_safe(", ".join(f"{c}-{p}" for c, p in row["contributions"].items()))
        waiting = row["device_component"].get("pending_reasons")
        if waiting:  # a clean-looking grade that is pending must not read as a pass
            reasons = ", ".join(filter(None, (reasons, f"pending: {', '.join(waiting)}")))
        line = (
            f"{terminal_safe(row['session_id'])[:22]:<22} {account[:16]:<16} "
            f"{row['grade']:>5} {row['score']:>5} {mark:>2}  {reasons}\n"
        )
    return line.encode()
