"""Reading session logs: JSON Lines (plain or gzip), CSV with a header, stdin.

Every physical line ends as exactly one of: a record to check, a blank line (counted),
or a :class:`Reject` with file, line number, reason and the raw text. Nothing is
dropped silently, and a broken file (truncated gzip) ends with a reject naming it.
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import json
import math
import os
import re
import stat
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import tzinfo
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import msgspec
import orjson

from fingerprint.errors import ConfigError, InvalidSessionError
from fingerprint.memo import BoundedMemo
from fingerprint.session import (
    PlainRecord,
    Session,
    field_kinds,
    parse_session,
    session_from_json,
)

MAX_LINE_BYTES = 1 << 20  # longer lines are rejected, not parsed
RAW_KEEP = 65_536  # characters of a rejected line kept in the reject file
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_JSON_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson", ".ndjson.gz")
_CSV_SUFFIXES = (".csv", ".csv.gz")
_SUFFIXES = _JSON_SUFFIXES + _CSV_SUFFIXES


class Line(msgspec.Struct, frozen=True):
    """One decoded input record with where it came from. ``record``: the decoded JSON
    value (a CSV row's record), or the :class:`~fingerprint.session.Session` the check
    decoded straight from the line's text (``raw``)."""

    file: str
    line: int
    record: Any
    raw: bytes = b""

    def raw_text(self) -> str:
        return self.raw.decode("utf-8", "replace")


class Text(msgspec.Struct, frozen=True):
    """A JSON line not decoded yet (read with ``decode=False``): its consumer reads
    what it needs of it (:func:`read_head`) and leaves the rest to :func:`decode_text`,
    which makes the :class:`Line` or :class:`Reject` the reader would have made."""

    file: str
    line: int
    raw: bytes


class Reject(msgspec.Struct, frozen=True):
    file: str
    line: int
    error: str
    raw: str

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.file, "line": self.line, "error": self.error}
        out["raw"] = self.raw[:RAW_KEEP]
        if len(self.raw) > RAW_KEEP:
            out["raw_truncated"] = True
        return out


class Blank(msgspec.Struct, frozen=True):
    file: str
    line: int


Item = Line | Reject | Blank
# What ``read_items(..., decode=False)`` yields: JSON lines come as their text.
LazyItem = Item | Text


class Head(msgspec.Struct, frozen=True):
    """What ordering and sharding read of a JSON line: its ``ts`` and ``account_id``
    as the JSON has them (any JSON value, None when absent)."""

    ts: Any = None
    account_id: Any = None


# msgspec reads only these two fields and skips the rest of the line (checking its
# syntax): ~3 µs a line where ``orjson.loads`` builds the whole record in ~13 µs.
_HEAD = msgspec.json.Decoder(Head)


def expand_inputs(specs: Iterable[str]) -> list[str]:
    """Files, directories (their log files, sorted) and globs; ``-`` is stdin."""
    paths: list[str] = []
    for spec in specs:
        if spec == "-":
            paths.append(spec)
        elif os.path.isdir(spec):
            found = sorted(
                str(p) for p in Path(spec).rglob("*") if p.is_file() and p.name.endswith(_SUFFIXES)
            )
            if not found:
                raise ConfigError("no session log files in directory", spec)
            paths.extend(found)
        elif os.path.exists(spec):
            paths.append(spec)
        elif glob.has_magic(spec):
            matched = sorted(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
            if not matched:
                raise ConfigError("no file matches", spec)
            paths.extend(matched)
        else:
            raise ConfigError("input file not found", spec)
    for path in paths:
        if named_format(path) != "jsonl" and os.path.isfile(path):
            check_csv_header(path)  # a file whose name does not say: if its header says
    return paths


def input_size(path: str) -> int | None:
    """Bytes on disk (compressed for gzip), for progress; None for stdin."""
    if path == "-":
        return None
    try:
        return os.path.getsize(path)
    except OSError:
        return None


class CountingReader(io.RawIOBase):
    """Counts bytes read from the underlying (compressed) file, for progress."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.bytes_read += n
        return n

    def size(self) -> int | None:
        """The file's size now (it may have changed since it was opened)."""
        try:
            return os.fstat(self._raw.fileno()).st_size
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_input(path: str) -> tuple[IO[bytes], CountingReader | None]:
    """A binary stream over the file's content, gunzipped when it is gzip."""
    if path == "-":
        return _stdin_stream(sys.stdin.buffer), None
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise ConfigError(f"cannot open input ({exc.strerror})", path) from None
    counter = CountingReader(raw)
    buffered = io.BufferedReader(counter, buffer_size=1 << 20)
    if _is_gzip_header(buffered.peek(4)[:4]):
        return gzip.GzipFile(fileobj=buffered, mode="rb"), counter  # type: ignore[return-value]
    return buffered, counter


def sampled_lines(
    path: str,
    count: int,
    *,
    name: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    stop: Callable[[bytes], bool] | None = None,
) -> list[bytes] | None:
    """``count`` lines of a log file read at evenly spaced places (its first line,
    then the first whole line after each offset) and its last line, without reading
    the rest; None when the file cannot be read that way: a gzip file that does not
    decompress to its end, or not a regular file we can open. A CSV file's first line
    is its header, and its first row's line comes after it (:func:`sample_reader`
    reads the rows). ``name``: the input as given, when ``path`` is a copy of it
    (stdin, a named pipe), which says whether it is CSV.

    A gzip file cannot be read from the middle: it is decompressed once from its
    start, and the places are those of its compressed bytes (:func:`_gzip_samples`);
    ``on_progress`` gets the compressed bytes read so far. ``stop`` is told each line
    as it is sampled, in order: True ends the reading there, with the lines so far
    (a gzip log plainly out of order is not decompressed to its end for nothing)."""
    if path == "-":
        return None
    stop = stop or _go_on
    # Lines read at the start: a CSV header's and its first row's. A name that does not
    # say is read as a CSV file is (the second is one more sample if it is JSON Lines).
    first = 1 if named_format(name or path) == "jsonl" else 2
    try:
        with open(path, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            if _is_gzip_header(handle.read(4)):
                return _gzip_samples(handle, count, on_progress, stop, first)
            size = os.fstat(handle.fileno()).st_size
            lines = []
            for k in range(count):
                handle.seek(size * k // count)
                if k:
                    handle.readline(MAX_LINE_BYTES)  # the rest of the line cut into
                for _ in range(1 if k else first):
                    lines.append(handle.readline(MAX_LINE_BYTES))
                    if stop(lines[-1]):
                        return lines
            handle.seek(max(0, size - _TAIL_BYTES))
            tail = handle.read().rstrip(b"\r\n").rpartition(b"\n")
            if tail[1] or size <= _TAIL_BYTES:  # a whole line: after a newline, or the first
                lines.append(tail[2])
                stop(tail[2])
            return lines
    except OSError:
        return None


_TAIL_BYTES = 1 << 16  # read back from the end for the last line


def _go_on(line: bytes) -> bool:
    return False


def _gzip_samples(
    handle: IO[bytes],
    count: int,
    on_progress: Callable[[int], None] | None,
    stop: Callable[[bytes], bool],
    first: int,
) -> list[bytes] | None:
    """:func:`sampled_lines` of a gzip file: its ``first`` lines, the first whole line
    decompressed after the compressed bytes read pass each evenly spaced offset, and
    its last line. The compressed bytes are read :data:`_GZIP_PIECE` at a time,
    whatever the gzip module asks for (8 KiB in Python 3.11, 128 KiB from 3.12):
    offsets within one piece take lines one after another. That costs 8-10 µs a line
    of JSON Lines, where the scan it spares cost 33-55 (benchmarks/README.md). A file
    that breaks off or is no gzip after all gives None: the scan then says where."""
    size = os.fstat(handle.fileno()).st_size
    handle.seek(0)
    pieces = _Pieces(handle)
    marks = [size * k // count for k in range(1, count)]
    passed = 0  # offsets passed
    taken = 0  # lines taken for them
    next_progress = 0
    try:
        with gzip.GzipFile(fileobj=pieces, mode="rb") as stream:
            lines: list[bytes] = []
            for _ in range(first):
                line = stream.readline(MAX_LINE_BYTES)
                lines.append(line)
                if stop(line):
                    return lines
            last = line
            while line := stream.readline(MAX_LINE_BYTES):
                if line.strip(b"\r\n"):
                    last = line
                if taken < passed:  # the first whole line after an offset
                    lines.append(line)
                    taken += 1
                    if stop(line):
                        return lines
                read = pieces.bytes_read
                while passed < len(marks) and marks[passed] <= read:
                    passed += 1
                if on_progress is not None and read >= next_progress:
                    on_progress(read)
                    next_progress = read + _PROGRESS_BYTES
            if on_progress is not None:
                on_progress(pieces.bytes_read)
    except (OSError, EOFError, zlib.error):
        return None
    if last.strip(b"\r\n"):
        lines.append(last.rstrip(b"\r\n"))
        stop(lines[-1])
    return lines


_PROGRESS_BYTES = 1 << 22
_GZIP_PIECE = 1 << 13


class _Pieces(CountingReader):
    """A file read at most :data:`_GZIP_PIECE` bytes at a time, counted."""

    def readinto(self, buffer: Any) -> int:
        return super().readinto(memoryview(buffer)[:_GZIP_PIECE])

    def close(self) -> None:  # the caller's file: it closes it
        io.RawIOBase.close(self)


def _stdin_stream(stdin: IO[bytes]) -> IO[bytes]:
    """stdin, gunzipped when it is gzip (``cat x.jsonl.gz | fingerprint check -``).

    A pipe has no name to tell gzip by and cannot seek back, so its first bytes are
    read, tested, and served again ahead of the rest: nothing is lost.
    """
    head = b""
    while len(head) < 4:
        chunk = stdin.read(4 - len(head))
        if not chunk:
            break
        head += chunk
    stream = io.BufferedReader(_Replay(head, stdin), buffer_size=1 << 20)
    if _is_gzip_header(head):
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    return stream


class _Replay(io.RawIOBase):
    """``head`` (bytes already read from ``rest``), then ``rest`` itself."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        # read1: whatever is available now, so a slow producer's lines flow at once.
        self._read = getattr(rest, "read1", rest.read)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            data, self._head = self._head[: len(buffer)], self._head[len(buffer) :]
        else:
            data = self._read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _is_gzip_header(head: bytes) -> bool:
    """Magic, deflate (the one method RFC 1952 defines), no reserved flag bits: a
    text line that merely starts with the two magic bytes is read as text."""
    return len(head) == 4 and head[:2] == _GZIP_MAGIC and head[2] == 8 and not head[3] & 0xE0


def read_items(path: str, stream: IO[bytes]) -> Iterator[Item]:
    for item in read_lazy_items(path, stream):
        yield decode_text(item) if isinstance(item, Text) else item


def read_lazy_items(path: str, stream: IO[bytes]) -> Iterator[LazyItem]:
    """:func:`read_items` with each JSON line as its :class:`Text`, for a consumer that
    reads only part of a line (or decodes it its own way) before deciding."""
    name = "<stdin>" if path == "-" else path
    named = named_format(path)
    if named is None:  # stdin, a pipe, a name without a log suffix: its first line says
        try:
            first = stream.readline(MAX_LINE_BYTES + 1)
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
            yield _unreadable(name, 0, exc)
            return
        stream = io.BufferedReader(_Replay(first, stream), buffer_size=1 << 20)
        named = _format_of_first_line(first)
    if named == "csv":
        yield from _read_csv(name, stream)
    else:
        yield from _read_jsonl(name, stream)


def named_format(path: str) -> str | None:
    """``csv`` or ``jsonl`` where the input's name says which, else None (stdin, a
    pipe, a name without a log suffix: :func:`read_lazy_items` reads the first line)."""
    if path.endswith(_CSV_SUFFIXES):
        return "csv"
    if path.endswith(_JSON_SUFFIXES):
        return "jsonl"
    return None


def local_format(path: str) -> str | None:
    """The format the reader takes a local file for: its name's, else its first
    line's (:func:`read_lazy_items`); None for what is no regular file (stdin, a pipe:
    reading it would take its lines) or cannot be read (its reader says why)."""
    named = named_format(path)
    if named is not None or path == "-" or not os.path.isfile(path):
        return named
    first = _first_line(path)
    return None if first is None else _format_of_first_line(first)


def _first_line(path: str) -> bytes | None:
    """A file's first line as the reader reads it (gunzipped), None if it does not read."""
    try:
        stream, _counter = open_input(path)
    except ConfigError:
        return None
    try:
        return stream.readline(MAX_LINE_BYTES + 1)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError):
        return None
    finally:
        stream.close()


def _format_of_first_line(line: bytes) -> str:
    return "jsonl" if _csv_header(line) is None else "csv"


def _csv_header(line: bytes) -> list[str] | None:
    """The header a first line holds, if it is one: not a JSON value's start, and one
    row of two cells or more, one naming a field of a session (``account_id``,
    ``device.model``; a lone word is no header). A header that lacks a required
    column is one too: its reader then stops the run naming them, where reading it
    as JSON Lines would reject every row as not JSON."""
    text = line.removeprefix(_BOM).strip()
    if not text or text[:1] in b"{[":
        return None
    try:
        rows = list(csv.reader([text.decode("utf-8")]))
    except (UnicodeDecodeError, csv.Error):
        return None
    if len(rows) != 1 or len(rows[0]) < 2:
        return None
    header = _clean_header(rows[0])
    known = field_kinds()
    return header if any(name in known for name in header) else None


def _physical_lines(name: str, stream: IO[bytes]) -> Iterator[tuple[int, bytes] | Reject]:
    """Lines with their numbers; an unreadable tail becomes one reject, then stops."""
    number = 0
    try:
        while True:
            chunk = stream.readline(MAX_LINE_BYTES + 1)
            if not chunk:
                return
            number += 1
            if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
                yield Reject(
                    name,
                    number,
                    f"line longer than {MAX_LINE_BYTES} bytes",
                    chunk[:RAW_KEEP].decode("utf-8", "replace"),
                )
                _skip_rest_of_line(stream)
                continue
            yield number, chunk
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        yield _unreadable(name, number, exc)


def _unreadable(name: str, number: int, exc: Exception) -> Reject:
    """The reject that ends an input whose bytes after line ``number`` do not read."""
    return Reject(
        name,
        number + 1,
        f"input truncated or corrupt (after line {number}: {type(exc).__name__}: {exc})",
        "",
    )


def _skip_rest_of_line(stream: IO[bytes]) -> None:
    while True:
        chunk = stream.readline(MAX_LINE_BYTES)
        if not chunk or chunk.endswith(b"\n"):
            return


def _read_jsonl(name: str, stream: IO[bytes]) -> Iterator[Text | Blank | Reject]:
    for entry in _physical_lines(name, stream):
        if isinstance(entry, Reject):
            yield entry
            continue
        number, raw = entry
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        text = raw.strip()
        if not text:
            yield Blank(name, number)
            continue
        yield Text(name, number, text)


@lru_cache(maxsize=4)
def _digit_run(digits: int) -> re.Pattern[bytes]:
    return re.compile(rb"[0-9]{%d}" % (digits + 1))


def decode_text(text: Text) -> Line | Reject:
    """The line decoded: orjson, or the standard library for what orjson refuses."""
    try:
        return Line(text.file, text.line, orjson.loads(text.raw), text.raw)
    except orjson.JSONDecodeError as exc:
        return _slow_path(text.file, text.line, text.raw, exc)


def read_session(raw: bytes, naive_tz: tzinfo) -> Session | None:
    """The valid session a JSON line holds, decoded straight from its text, or None
    where :func:`decode_text` and the checker's ``parse_session`` must answer (the
    line is no valid session, or only the full decode reads it as the reader does).
    The same values as the decoded record gives (tests/test_fuzz.py)."""
    if not _plain_json(raw):
        return None
    return session_from_json(raw, naive_tz=naive_tz)


def decode_line(text: Text, naive_tz: tzinfo) -> Line | Reject:
    """The line with its session decoded straight from its text
    (:func:`read_session`), or else as the reader decodes it (:func:`decode_text`):
    its record, validated later, or why it is no JSON object."""
    session = read_session(text.raw, naive_tz)
    if session is None:
        return decode_text(text)
    return Line(text.file, text.line, session, text.raw)


def session_from_text(text: bytes, *, naive_tz: tzinfo) -> Session:
    """One JSON text (a log line, a request's body) as a validated session, as the
    command line reads a line of a log (:func:`decode_line`, then the record
    validated). Raises :class:`InvalidSessionError`: for a text that is no JSON its
    reason is the reject's (``not JSON: ...``, ``not UTF-8 (byte N)``), with no field.
    """
    decoded = decode_line(Text("", 0, text), naive_tz)
    if isinstance(decoded, Reject):
        raise InvalidSessionError("", decoded.error)
    if isinstance(decoded.record, Session):
        return decoded.record
    return parse_session(decoded.record, naive_tz=naive_tz)


def read_head(raw: bytes) -> Head | None:
    """The line's ``ts`` and ``account_id`` without decoding the rest, or None where
    only :func:`decode_text` can tell what the line is.

    Not None only for a JSON object that :func:`decode_text` also reads as a
    :class:`Line`, with these values (an integer beyond 64 bits excepted: orjson
    reads it as a float, msgspec as an int; no time and no account id is one).
    msgspec checks the syntax of what it skips but not that its text is UTF-8, so a
    line that is not ASCII is checked here first (~1.5 µs), nor the length of the
    numbers it skips (the standard library refuses integers of more digits than
    ``sys.get_int_max_str_digits()``). It refuses what the standard library alone
    takes (NaN, lone surrogates): those take the full decode.
    """
    if not _plain_json(raw):
        return None
    try:
        return _HEAD.decode(raw)
    except (msgspec.MsgspecError, RecursionError):
        return None


def _plain_json(raw: bytes) -> bool:
    """What msgspec does not check of the text it skips and the reader does: UTF-8,
    and integers no longer than the standard library reads."""
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return False
    digits = sys.get_int_max_str_digits()
    return not (digits and len(raw) > digits and _digit_run(digits).search(raw))


def _slow_path(name: str, number: int, text: bytes, exc: orjson.JSONDecodeError) -> Line | Reject:
    """orjson refuses integers beyond 64 bits and nesting beyond 1024 levels; the
    standard library reads both, so a valid line with such a value in a field we
    ignore is still checked. What neither reads is a reject."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as bad:
        return Reject(
            name, number, f"not UTF-8 (byte {bad.start})", text.decode("utf-8", "replace")
        )
    try:
        return Line(name, number, json.loads(decoded), text)
    except RecursionError:
        return Reject(name, number, "JSON nested too deeply", decoded)
    except ValueError:
        return Reject(name, number, f"not JSON: {exc}", decoded)


REQUIRED_COLUMNS = ("account_id", "ts", "ip")
_LIST_SEPARATOR = ";"  # what a spreadsheet user types between items: "arm64-v8a;armeabi-v7a"
_BOOLEANS = {"true": True, "false": False}  # any case: spreadsheets write TRUE / FALSE
_INTEGER = re.compile(r"[+-]?[0-9]{1,30}")
_WRITTEN_OUT_COLUMNS = 2_000  # wider headers: each row walked cell by cell (_unflatten)


def check_csv_header(path: str) -> None:
    """Stop before the run when a CSV input lacks a required column, instead of
    rejecting every one of its rows for the same reason (raises ``ConfigError``). A
    file whose name does not say its format has its header on its first line (as
    :func:`read_lazy_items` reads it)."""
    if named_format(path) is None:
        first = _first_line(path)
        header = None if first is None else _csv_header(first)
    else:
        header = _header_row(path)
    if header is not None:
        _require_columns(header, path)


def _header_row(path: str) -> list[str] | None:
    """A CSV file's first row (it may span lines), cleaned; None if it does not read:
    the reader reports an unreadable file as a reject, with its line."""
    stream, _counter = open_input(path)
    try:
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
        header = next(csv.reader(text), None)
    except (csv.Error, EOFError, gzip.BadGzipFile, zlib.error, OSError):
        return None
    finally:
        stream.close()
    return None if header is None else _clean_header(header)


def _clean_header(header: list[str]) -> list[str]:
    if header and header[0].startswith("\ufeff"):
        header = [header[0][1:], *header[1:]]
    return [name.strip() for name in header]


def _require_columns(header: list[str], name: str) -> None:
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        found = ", ".join(header) if any(header) else "none"
        raise ConfigError(
            f"CSV input lacks the required column(s) {', '.join(missing)} "
            f"(required: {', '.join(REQUIRED_COLUMNS)}; found: {found})",
            name,
        )


def _read_csv(name: str, stream: IO[bytes]) -> Iterator[Item]:
    """CSV with a header of field names; nested fields dotted (``device.model``).

    Each cell becomes the JSON value its field takes (SESSION-LOG.md), so strict
    validation then treats CSV like JSON: ``true``/``false`` for flags (any case),
    numbers for counts and measures, and for lists either a JSON array or items
    separated by ``;`` (``arm64-v8a;armeabi-v7a``). Empty cells are absent fields;
    a cell that does not convert stays text and is rejected naming its field.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="strict", newline="")
    try:
        reader = csv.reader(text)
        try:
            header = _clean_header(next(reader))
        except StopIteration:
            return
        _require_columns(header, name)
        columns = _Columns(header)
        for row in reader:
            number = reader.line_num
            if not any(cell.strip() for cell in row):
                yield Blank(name, number)
                continue
            if len(row) != len(header):
                yield Reject(
                    name,
                    number,
                    f"wrong number of columns (expected {len(header)}, got {len(row)})",
                    ",".join(row),
                )
                continue
            yield Line(name, number, columns.record(row))
    except UnicodeDecodeError as exc:
        yield Reject(name, 0, f"not UTF-8 (CSV stops here: {exc.reason})", "")
    except csv.Error as exc:
        yield Reject(name, 0, f"malformed CSV ({exc})", "")
    finally:
        text.detach()


class _Columns:
    """A CSV header's columns, each given once, not for every cell, the object its
    cell goes in (an index: 0 the record, then each parent path), its key and its
    converter (None: the text as it is), and from them the function that makes a
    row's record (:func:`_record_maker`): ~23 µs a row of 52 columns alone on the
    slower host, against ~36 for the same walk as a loop over the cells, and more when
    each cell's object was found by its path (benchmarks/README.md)."""

    def __init__(self, header: list[str]) -> None:
        known = field_kinds()
        self.header = header
        paths = [tuple(name.split(".")) for name in header]
        self._converters = [_converter(known.get(name)) for name in header]
        # A column named as another's parent ("device" beside "device.model") writes
        # a cell where the other needs an object: such a header nests cell by cell.
        parents = {path[:k] for path in paths for k in range(1, len(path))}
        self._nested_plainly = not parents & set(paths)
        self._objects: list[tuple[int, str]] = [(0, "")]  # object -> (its parent, its key)
        numbers: dict[tuple[str, ...], int] = {(): 0}
        self._cells = [
            (self._number(path[:-1], numbers), path[-1], None if convert is _text_cell else convert)
            for path, convert in zip(paths, self._converters, strict=True)
        ]
        # A header of thousands of columns is walked cell by cell: writing out and
        # compiling its function grows with it (~0.4 s at 2,000 nested columns).
        self._make = (
            _RECORD_MAKERS[tuple(self._objects), tuple(self._cells)]
            if self._nested_plainly and len(header) <= _WRITTEN_OUT_COLUMNS
            else None
        )

    def _number(self, path: tuple[str, ...], numbers: dict[tuple[str, ...], int]) -> int:
        """The index of the object at ``path``, given (with its parents') when new."""
        number = numbers.get(path)
        if number is None:
            parent = self._number(path[:-1], numbers)
            number = numbers[path] = len(self._objects)
            self._objects.append((parent, path[-1]))
        return number

    def record(self, row: list[str]) -> dict[str, Any]:
        """The row's record (a row of the header's width): nested fields under their
        parents, empty cells absent, each cell the JSON value of its field."""
        if self._make is None:
            return _unflatten(self.header, self._converters, row)
        return self._make(row)


_Cell = tuple[int, str, Callable[[str], Any] | None]  # its object, its key, its converter
_RecordMaker = Callable[[list[str]], dict[str, Any]]


def _record_maker(objects: Sequence[tuple[int, str]], cells: Sequence[_Cell]) -> _RecordMaker:
    """The function that makes a row's record, written out for one header as
    ``collections.namedtuple`` and ``dataclasses`` write theirs: one statement a
    cell, no loop, no lookup of a cell's object. An object is made where its first
    non-empty cell is, its missing parents first, as the cell-by-cell walk makes it
    (:func:`_unflatten`; tests/test_csv_input.py holds the two equal).

    The source holds numbers only: keys and converters, which come from the header,
    are the names ``k<i>``, ``m<i>`` and ``f<i>`` of its namespace, never text in it."""
    namespace: dict[str, Any] = {"PlainRecord": PlainRecord}
    lines = ["def record(row):"]
    if cells:  # (the header of a sample that is no CSV row has none)
        lines.append("    " + "".join(f"c{i}, " for i in range(len(cells))) + "= row")
    # Plain by construction (see PlainRecord): validation need not look.
    lines.append("    o0 = PlainRecord()")
    for number in range(1, len(objects)):
        lines.append(f"    o{number} = None")
        namespace[f"m{number}"] = objects[number][1]
    for i, (number, key, convert) in enumerate(cells):
        namespace[f"k{i}"] = key
        value = f"c{i}"
        if convert is not None:
            namespace[f"f{i}"] = convert
            value = f"f{i}(c{i})"
        lines.append(f"    if c{i}:")
        lines.extend(_made_statements(objects, number))
        lines.append(f"        o{number}[k{i}] = {value}")
    lines.append("    return o0")
    exec("\n".join(lines), namespace)  # numbers only in the source: see above
    made_record: _RecordMaker = namespace["record"]
    return made_record


# The functions written out for the headers read so far, by their objects and cells:
# the files of one export share one (52 columns take ~4 ms to write out and compile,
# the cost of ~300 rows' savings; many small files would pay it each).
_RECORD_MAKERS: BoundedMemo[tuple[tuple[tuple[int, str], ...], tuple[_Cell, ...]], _RecordMaker] = (
    BoundedMemo(64, lambda layout: _record_maker(*layout))
)


def _made_statements(objects: Sequence[tuple[int, str]], number: int) -> list[str]:
    """The statements that make object ``number`` where this row has not made it yet,
    with its missing parents, the outermost first (none for the record itself)."""
    if not number:
        return []
    *parents, _ = _lineage(objects, number)
    lines = [f"        if o{number} is None:"]
    for made in parents:
        lines.append(f"            if o{made} is None:")
        lines.append("    " + _making(objects, made))
    lines.append(_making(objects, number))
    return lines


def _making(objects: Sequence[tuple[int, str]], number: int) -> str:
    """The statement that makes object ``number`` in its parent (inside an ``if``)."""
    return f"            o{number} = o{objects[number][0]}[m{number}] = {{}}"


def _lineage(objects: Sequence[tuple[int, str]], number: int) -> list[int]:
    """Object ``number`` and its parents below the record, the outermost first."""
    chain = []
    while number:
        chain.append(number)
        number = objects[number][0]
    return chain[::-1]


def sample_reader(name: str) -> Callable[[bytes], LazyItem | None]:
    """What each of a file's :func:`sampled_lines` holds, told them in order: a JSON
    line's :class:`Text`; for CSV, the row of a line that holds one whole row (the
    header, the first line, is read and gives None). ``name``: the input as given; where
    it does not say which, the first line does, as it does for the reader
    (:func:`read_lazy_items`)."""
    named = named_format(name)
    return _SniffedSamples(name) if named is None else _samples_of(named, name)


def _samples_of(fmt: str, name: str) -> Callable[[bytes], LazyItem | None]:
    if fmt == "csv":
        return _SampledRows(name)
    return lambda raw: Text(name, 0, raw)


class _SniffedSamples:
    """The samples of an input whose name does not say its format: CSV rows when its
    first line is a CSV header, else JSON lines."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._read: Callable[[bytes], LazyItem | None] | None = None

    def __call__(self, raw: bytes) -> LazyItem | None:
        if self._read is None:
            self._read = _samples_of(_format_of_first_line(raw), self._name)
        return self._read(raw)


class _SampledRows:
    """The rows of a CSV file's sampled lines, read with its header as the reader
    reads them. A row may span lines (a quoted cell with a newline), and a line read
    from the middle of one cannot tell: a line that is not one row of the header's
    columns gives None. One that merely looks like one costs no more than the wrong
    verdict it gives: a log checked as it streams is still taken back at its first
    row out of order (:func:`fingerprint.batch._speculates`)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._columns: _Columns | None = None

    def __call__(self, raw: bytes) -> Line | None:
        try:
            rows = list(csv.reader([raw.decode("utf-8")]))
        except (UnicodeDecodeError, csv.Error):
            rows = []
        if self._columns is None:
            self._columns = _Columns(_clean_header(rows[0]) if len(rows) == 1 else [])
            return None
        if len(rows) != 1 or len(rows[0]) != len(self._columns.header):
            return None
        return Line(self._name, 0, self._columns.record(rows[0]))


def _unflatten(
    header: list[str], converters: list[Callable[[str], Any]], row: list[str]
) -> dict[str, Any]:
    """:meth:`_Columns.record` of a header where a column is another's parent: a cell
    written where an object is needed replaces it, and the other way round."""
    record: dict[str, Any] = PlainRecord()
    for key, convert, cell in zip(header, converters, row, strict=True):
        if cell == "":
            continue
        target = record
        parts = key.split(".")
        for part in parts[:-1]:
            child = target.get(part)
            if not isinstance(child, dict):
                child = {}
                target[part] = child
            target = child
        target[parts[-1]] = convert(cell)
    return record


# The JSON value of a cell of a known field, by the field's kind, or the text itself
# when it does not convert (validation then names the field and the type it wants).
# Times stay text: parse_timestamp reads ISO text and epoch digits alike.
def _text_cell(cell: str) -> Any:
    return cell


def _boolean_cell(cell: str) -> Any:
    return _BOOLEANS.get(cell.strip().lower(), cell)


def _integer_cell(cell: str) -> Any:
    if cell.isdigit() and cell.isascii() and len(cell) <= 30:  # the usual cell, at once
        return int(cell)
    stripped = cell.strip()
    return int(stripped) if _INTEGER.fullmatch(stripped) else cell


def _list_or_json_cell(cell: str) -> Any:
    return _list_cell(cell.strip())


def _object_cell(cell: str) -> Any:
    return _json_cell(cell.strip(), cell)


def _float_cell(cell: str) -> Any:
    return _number_cell(cell.strip(), cell)


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "text": _text_cell,
    "time": _text_cell,
    "list": _list_or_json_cell,
    "object": _object_cell,
    "boolean": _boolean_cell,
    "integer": _integer_cell,
}


def _converter(kind: str | None) -> Callable[[str], Any]:
    """The converter of a field's cells: a number unless its kind says otherwise, and
    for a column no model field has, JSON where it looks like it."""
    return _cell if kind is None else _CONVERTERS.get(kind, _float_cell)


def _list_cell(stripped: str) -> Any:
    if stripped.startswith("["):
        return _json_cell(stripped, stripped)
    return [item.strip() for item in stripped.split(_LIST_SEPARATOR) if item.strip()]


def _json_cell(stripped: str, fallback: str) -> Any:
    try:
        return orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return fallback


def _number_cell(stripped: str, cell: str) -> Any:
    try:
        number = float(stripped)
    except ValueError:
        return cell
    return number if math.isfinite(number) else cell


def _cell(cell: str) -> Any:
    """A column no model field has: decoded as JSON where it looks like it (ignored anyway)."""
    if cell in _BOOLEANS:  # the usual cell of a flag column, at once
        return _BOOLEANS[cell]
    stripped = cell.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return orjson.loads(stripped)
        except orjson.JSONDecodeError:
            return cell
    return _BOOLEANS.get(stripped, cell)
