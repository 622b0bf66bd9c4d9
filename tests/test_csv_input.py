"""CSV input: the header names its required columns once, and cells take the JSON
types of their fields, written the way a spreadsheet writes them."""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingerprint.cli import main
from fingerprint.inputs import _Columns, _converter, _unflatten, read_items
from fingerprint.session import field_kinds, parse_session
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
