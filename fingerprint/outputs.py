"""Writing reports: JSON Lines, CSV or a table, to a file that appears only when done."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
from typing import IO, Any

import orjson

from fingerprint.errors import ConfigError

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
    "worst_grade",
    "worst_score",
    "devices",
    "provinces",
    "checks",
    "blacklisted",
    "blacklisted_by",
)


class AtomicOutput:
    """A text sink: a temp file beside the target, renamed into place on ``commit``.

    A run that fails half-way leaves no output that looks complete; stdout ("-" or
    None) is written directly.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path if path not in (None, "-") else None
        self._tmp: str | None = None
        if self.path is None:
            self.stream: IO[bytes] = sys.stdout.buffer
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise ConfigError("output directory does not exist", directory)
        self._tmp = f"{self.path}.partial-{os.getpid()}"
        try:
            self.stream = open(self._tmp, "wb", buffering=1 << 20)  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(f"cannot write output ({exc.strerror})", self.path) from None

    def write(self, data: bytes) -> None:
        self.stream.write(data)

    def commit(self) -> None:
        self.stream.flush()
        if self._tmp is not None and self.path is not None:
            self.stream.close()
            os.replace(self._tmp, self.path)
            self._tmp = None

    def abort(self) -> None:
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self.stream.close()
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
            self._tmp = None


class RowFormat:
    """Turns report (or account) rows into output bytes; ``header`` goes first once."""

    def __init__(self, fmt: str, by_account: bool) -> None:
        self.fmt = fmt
        self.by_account = by_account
        self.header = b""
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator="\n")
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
        return self._buffer.getvalue().encode()


def jsonl_line(row: Row) -> bytes:
    return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    if value is None:
        return ""
    return value


def session_csv_row(report: Row) -> Row:
    features = report["features"]
    return {
        **report,
        "codes": list(report["contributions"]) or [f["code"] for f in report["findings"]],
        "checks": sorted({f["check"] for f in report["findings"]}),
        "device_score": report["device_component"]["score"],
        "veto": report["device_component"]["veto"],
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
    if by_account:
        checks = ", ".join(f"{k}×{v}" for k, v in row["checks"].items())
        line = (
            f"{row['account_id'][:20]:<20} {row['sessions']:>5} {row['worst_grade']:>5} "
            f"{row['latest_grade']:>6} {mark:>2}  {checks}\n"
        )
    else:
        reasons = ", ".join(f"{c}-{p}" for c, p in row["contributions"].items())
        line = (
            f"{row['session_id'][:22]:<22} {row['account_id'][:16]:<16} "
            f"{row['grade']:>5} {row['score']:>5} {mark:>2}  {reasons}\n"
        )
    return line.encode()
