"""CSV input: the header names its required columns once, and cells take the JSON
types of their fields, written the way a spreadsheet writes them."""

from __future__ import annotations

import copy
import gzip
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingerprint.cli import main
from fingerprint.errors import InvalidSessionError
from fingerprint.inputs import _Columns, _converter, _record_maker, _unflatten, read_items
from fingerprint.session import PlainRecord, field_kinds, parse_session
from tests.conftest import FIXTURES, csv_lines, items_as_read

HEADER = (
    "session_id,account_id,ts,ip,device.platform,device.cpu_abi,device.sensors,"
    "device.hooks,device.installed_packages,device.battery.level,device.rooted,"
    "network.vpn_active,network.interfaces,network.dns,app.uid,app.loaded_libs,device.files_present"
)


def _records(text: str) -> list[object]:
    items = list(read_items("in.csv", io.BytesIO(text.encode())))
    return [getattr(item, "record", item) for item in items]


@pytest.mark.parametrize(
    "header",
    [
        "session_id,account_id,ts,ip_address\n",  # misnamed
        "session_id,account,ts,ip\n",
        "session_id,ts\n",
    ],
)
def test_a_missing_required_column_stops_the_run_once(
    tmp_path: Path, header: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(header + "s1,u1,1795133730,1.1.1.1\n" * 50, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code = main(["check", str(source), "-o", str(out), "--rejects", str(tmp_path / "r.jsonl")])
    assert code == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1, message
    assert "required: account_id, ts, ip" in message
    assert f"found: {', '.join(header.strip().split(','))}" in message
    assert str(source) in message
    assert not out.exists()


def test_the_header_check_reads_gzip_csv_too(tmp_path: Path) -> None:
    source = tmp_path / "in.csv.gz"
    source.write_bytes(gzip.compress(b"account_id,ts\nu1,1795133730\n"))
    assert main(["check", str(source), "-o", str(tmp_path / "o.jsonl"), "-q"]) == 2


def test_spreadsheet_list_cells_json_arrays_and_typed_cells() -> None:
    rows = (
        HEADER + "\n"
        's1,u1,1795133730,1.1.1.1,android,arm64-v8a;armeabi-v7a,"[""gyroscope"", ""light""]",'
        "Xposed; Frida ,com.a;com.b,0.5,FALSE,TRUE,tun0;wlan0,114.114.114.114,10234,libx.so,"
        "/dev/qemu\n"
        "s2,u1,1795133790,1.1.1.1,android,[],[],,,,,,,,,,\n"
    )
    first, second = _records(rows)
    session = parse_session(first)
    assert session.device is not None and session.network is not None and session.app
    assert session.device.cpu_abi == ["arm64-v8a", "armeabi-v7a"]
    assert session.device.sensors == ["gyroscope", "light"]
    assert session.device.hooks == ["xposed", "frida"]
    assert session.device.installed_packages == ["com.a", "com.b"]
    assert session.device.files_present == ["/dev/qemu"]
    assert session.device.battery is not None and session.device.battery.level == 0.5
    assert session.device.rooted is False and session.network.vpn_active is True
    assert session.network.interfaces == ["tun0", "wlan0"]
    assert session.network.dns == ["114.114.114.114"]
    assert session.app.uid == 10234 and session.app.loaded_libs == ["libx.so"]
    assert session.account_id == "u1"
    parsed = parse_session(second)
    assert parsed.device is not None and parsed.device.sensors == []  # looked, found none


@pytest.mark.parametrize(
    ("column", "cell", "field"),
    [
        ("network.vpn_active", "yes", "network.vpn_active"),
        ("app.uid", "10234.5", "app.uid"),
        ("device.battery.level", "full", "device.battery.level"),
        ("device.battery.level", "7", "device.battery.level"),
        ("device.sensors", "[1, 2]", "device.sensors.0"),
    ],
)
def test_cells_that_do_not_convert_are_rejects_naming_the_field(
    tmp_path: Path, column: str, cell: str, field: str
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(f'account_id,ts,ip,{column}\nu1,1795133730,1.1.1.1,"{cell}"\n')
    rejects = tmp_path / "r.jsonl"
    args = ["check", str(source), "-o", str(tmp_path / "o.jsonl"), "--rejects", str(rejects)]
    assert main([*args, "-q"]) == 0
    (reject,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert reject["error"].startswith(f"{field}: "), reject


# Column names drawn from nested fields and their parents ("device" beside
# "device.model"), repeated or not, so that headers nest plainly or conflict.
_names = st.sampled_from(
    ["ts", "device", "device.model", "device.battery.level", "device.battery", "device.sensors",
     "network.vpn_active", "app.uid", "device.system_props", "extra", "extra.deep.er"]
)  # fmt: skip
_cells = st.one_of(
    st.just(""), st.sampled_from(["TRUE", " 7 ", "0.5", "[1]", '{"a": 1}', "a;b", "x"]), st.text()
)


def _rows_of(header: list[str]) -> st.SearchStrategy[tuple[list[str], list[str]]]:
    return st.tuples(st.just(header), st.lists(_cells, min_size=len(header), max_size=len(header)))


@settings(max_examples=400, deadline=None)
@given(st.lists(_names, min_size=1, max_size=8).flatmap(_rows_of))
def test_a_row_nests_as_the_cell_by_cell_walk_nests_it(case: tuple[list[str], list[str]]) -> None:
    """The header's paths and converters, made once, give each row the record (its
    keys in the same order at every depth) of a walk that nests it cell by cell,
    where a cell written at an object's place replaces it and the other way round."""
    header, row = case
    columns = _Columns(header)
    walked = _unflatten(header, [_converter(field_kinds().get(name)) for name in header], row)
    assert json.dumps(columns.record(row)) == json.dumps(walked)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(max_size=34),
        st.from_regex(r"[ +-]?[0-9\u0660-\u0669\u00b2]{0,33} ?", fullmatch=True),
        st.sampled_from(
            ["true", "false", " true", "TRUE", "[1]", " {}", "007", "9" * 30, "9" * 31]
        ),
    )
)
def test_a_cells_shortcut_gives_what_its_converter_gives(cell: str) -> None:
    """An integer cell of ASCII digits, and an unknown column's true or false, are read
    at once; any cell reads as the converter's full path reads it."""
    stripped = cell.strip()
    integer = int(stripped) if re.fullmatch(r"[+-]?[0-9]{1,30}", stripped) else cell
    assert _converter("integer")(cell) == integer
    assert type(_converter("integer")(cell)) is type(integer)
    if stripped[:1] in ("[", "{"):
        try:
            unknown = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            unknown = cell
    else:
        unknown = stripped == "true" if stripped in ("true", "false") else cell
    assert _converter(None)(cell) == unknown
    assert type(_converter(None)(cell)) is type(unknown)


def test_column_names_are_never_code_in_the_written_out_function() -> None:
    """A header's names are keys in the function's namespace, not text in its source:
    names that read as code, or as the function's own names, are plain keys."""
    names = ['__import__("os").system("touch PWNED")', 'x"\nimport os', "o0", "k0", "f1"]
    names += ["c0", "m1", "PlainRecord", "record", "a.__class__", ".", "device.__dict__"]
    header = ["session_id", "account_id", "ts", "ip", *names]
    row = ["s", "a", "2026-11-15T16:00:11Z", "1.2.3.4", *[f"v{i}" for i in range(len(names))]]
    walked = _unflatten(header, [_converter(field_kinds().get(name)) for name in header], row)
    assert _Columns(header).record(row) == walked
    assert walked["a"] == {"__class__": "v9"} and walked["o0"] == "v2"
    assert not Path("PWNED").exists()


def test_a_header_of_thousands_of_columns_reads_as_a_narrow_one_does() -> None:
    """A header too wide to write its function out for is walked cell by cell, to the
    same record the written-out function makes."""
    header = ["session_id", "account_id", "ts", "ip", *[f"extra.c{i}" for i in range(2_500)]]
    row = ["s", "a", "2026-11-15T16:00:11Z", "1.2.3.4", *[str(i % 7) for i in range(2_500)]]
    data = (",".join(header) + "\n" + ",".join(row) + "\n").encode()
    (line,) = read_items("in.csv", io.BytesIO(data))
    columns = _Columns(header)
    assert line.record == _record_maker(columns._objects, columns._cells)(row)
    assert list(line.record["extra"]) == [f"c{i}" for i in range(2_500)]
    assert type(line.record) is PlainRecord


def test_the_inputs_of_one_header_share_its_written_out_function() -> None:
    """The files of one export share their header's function: writing it out and
    compiling it costs ~300 rows' savings, which many small files would pay each."""
    header = HEADER.split(",")
    assert _Columns(header)._make is _Columns(list(header))._make
    assert _Columns([*header, "device.model"])._make is not _Columns(header)._make


# Every field the contract knows and a column none has, each cell mostly what its
# field takes, or what the look before validation finds (a lone surrogate in a JSON
# cell, integers wider than 64 bits), or any text.
_FIELDS = sorted(field_kinds())
_SURROGATES = ['["\\ud800"]', '["a", "\\udc00x"]', '{"k": "\\udc00"}', '{"\\ud800": "v"}']
_CELLS_OF_KIND = {
    "list": ["a;b", '["x", "y"]', "[]", *_SURROGATES],
    "object": ['{"ro.x": "1", "n": 2}', "{}", "[1]", *_SURROGATES],
    "integer": ["7", " 7 ", "0", "18446744073709551616", "-9223372036854775809", "1e3"],
    "boolean": ["true", "FALSE", "yes"],
    "number": ["1.5", "0", "-2", "nan"],
    "time": ["2026-11-15T16:00:11Z", "1700000000", "x"],
    "text": ["android", "wifi", "x", '"\\ud800"'],
    None: ["x", "true", *_SURROGATES],
}


@st.composite
def _validated_rows(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    kinds = field_kinds()
    extra = draw(st.lists(st.sampled_from([*_FIELDS, "extra.x"]), min_size=1, max_size=4))
    header = list(dict.fromkeys(["session_id", "account_id", "ts", "ip", *extra]))
    # Mostly cells their fields take, so most rows validate (a row with one bad cell
    # is a reject either way, whatever else it holds).
    row = [
        draw(st.sampled_from(["2026-11-15T16:00:11Z"] * 3 + ["x"])) if name == "ts"
        else draw(st.sampled_from(["1.2.3.4", "::1", "1.2.3.4", "x"])) if name == "ip"
        else draw(st.sampled_from(["a", "a", "a", " "])) if name in ("session_id", "account_id")
        else draw(st.one_of(
            *[st.sampled_from(_CELLS_OF_KIND[kinds.get(name)])] * 4,
            st.just(""),
            st.text(max_size=8),
        ))
        for name in header
    ]  # fmt: skip
    return header, row


def _validated(record: Any) -> tuple[str, Any]:
    try:
        return "session", parse_session(record)
    except InvalidSessionError as exc:
        return "reject", str(exc)


@settings(max_examples=400, deadline=None)
@given(_validated_rows())
def test_a_rows_record_validates_as_the_same_record_looked_at_first(
    case: tuple[list[str], list[str]],
) -> None:
    """The reader's record of a row is a PlainRecord, which validation takes without
    looking for what msgspec reads and the reference refuses (a lone surrogate, an
    object that is no dict). For any row, it validates to what the same record as a
    plain dict, looked at first, validates to: the same session, or the same reject."""
    header, row = case
    record = _Columns(header).record(row)
    assert type(record) is PlainRecord
    looked_at = dict(copy.deepcopy(record))
    assert _validated(record) == _validated(looked_at)


# --- CSV on stdin or a pipe: told by its first line ------------------------------------

ROWS = csv_lines((FIXTURES / "labelled.jsonl").read_bytes().splitlines(keepends=True)[:120])


@pytest.mark.parametrize("name", ["-", "/dev/fd/63", "logins.log"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_an_input_its_name_does_not_type_is_csv_when_its_first_line_is_a_header(
    name: str, bom: bytes
) -> None:
    """Stdin, bash's ``<(zcat logins.csv.gz)`` and a name without a log suffix are read
    as CSV when their first line is a header naming session fields: the rows a
    ``.csv`` file gives, line for line. Before, they were read as JSON Lines and every
    row was a reject."""
    data = bom + b"".join(ROWS)
    as_named = items_as_read("in.csv", data)
    assert [kind for kind, _, _ in as_named] == ["Line"] * (len(ROWS) - 1)
    assert items_as_read(name, data) == as_named


@pytest.mark.parametrize("name", ["-", "logins.log"])
def test_an_input_its_name_does_not_type_is_json_lines_otherwise(name: str) -> None:
    """A first line that is a JSON object, blank, text naming no session field, or a
    lone word (one cell is no header, even a field's name) leaves the input JSON
    Lines, each line read as a ``.jsonl`` file's."""
    lines = (FIXTURES / "labelled.jsonl").read_bytes().splitlines(keepends=True)[:20]
    for first in (b"", b"\n", b"hello,world\n", b"not a log\n", b"ts\n", b'"ip"\n'):
        data = first + b"".join(lines)
        assert items_as_read(name, data) == items_as_read("in.jsonl", data)
    assert items_as_read(name, b"hello,world\n")[0][:2] == ("Reject", 1)


def test_a_header_on_stdin_that_lacks_a_required_column_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The named file's message, where reading it as JSON Lines would reject every row."""
    data = b"session_id,account_id,ts\ns1,u1,1795133730\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    out = tmp_path / "out.jsonl"
    assert main(["check", "-", "-o", str(out), "-q"]) == 2
    message = capsys.readouterr().err
    assert "CSV input lacks the required column(s) ip" in message and "<stdin>" in message
    assert not out.exists()


def test_a_file_its_name_does_not_type_is_checked_for_its_columns_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "logins.log"
    source.write_bytes(gzip.compress(b"account_id,ip\nu1,1.1.1.1\n"))
    assert main(["check", str(source), "-o", str(tmp_path / "o.jsonl"), "-q"]) == 2
    assert "lacks the required column(s) ts" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("packed", "workers", "sort"), [(False, "1", "auto"), (True, "2", "auto"), (True, "2", "never")]
)
def test_csv_on_stdin_gives_the_reports_of_the_csv_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, packed: bool, workers: str, sort: str
) -> None:
    """``zcat logins.csv.gz | fingerprint check -``: the reports and rejects of the
    ``.csv`` file, read once or copied first, by one process or two stages."""
    named = tmp_path / "in.csv"
    named.write_bytes(b"".join(ROWS))
    options = ["-q", "--workers", workers, "--sort", sort]
    assert main(["check", str(named), "-o", str(tmp_path / "named.jsonl"), *options]) == 0
    data = gzip.compress(named.read_bytes()) if packed else named.read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["check", "-", "-o", str(tmp_path / "stdin.jsonl"), *options]) == 0
    reports = (tmp_path / "named.jsonl").read_bytes()
    assert len(reports.splitlines()) == len(ROWS) - 1
    assert (tmp_path / "stdin.jsonl").read_bytes() == reports
