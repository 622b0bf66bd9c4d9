"""Property tests of the input path: every line ends as exactly one report, one
reject or one counted blank line, whatever bytes or values it holds."""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fingerprint import Checker, CheckerConfig, InvalidSessionError
from fingerprint.inputs import (
    Head,
    Line,
    Text,
    decode_text,
    read_head,
    read_items,
    read_session,
    sample_reader,
)
from fingerprint.inputs import decode_line as decoded_as_the_run_does
from fingerprint.pipeline import (
    ScannedHeads,
    check_stream,
    head_shard,
    item_time,
    line_time,
    shard_of,
)
from fingerprint.runner import iter_items
from fingerprint.session import DEFAULT_NAIVE_TZ, field_kinds, parse_session
from tests.conftest import BASE_SESSION, FIXTURES, items_as_read, make_session, mutated_session
from tests.test_session_reference import leaves, plain

CHECKER = Checker()
UTC8 = DEFAULT_NAIVE_TZ

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = [
    "account_id",
    "ts",
    "ip",
    "user_agent",
    "device",
    "device.model",
    "device.sensors",
    "device.battery",
    "device.battery.level",
    "device.system_props",
    "device.cpu_abi",
    "device.sim",
    "device.sim.mcc_mnc",
    "app",
    "app.uid",
    "app.process_uid",
    "app.data_dir",
    "app.loaded_libs",
    "network",
    "network.interfaces",
    "network.vpn_active",
    "auth",
    "auth.face_verified",
    "device.hooks",
    "device.installed_packages",
]


# Times at and beyond what a datetime holds: year 1 and 9999 with offsets up to
# ±23:59 (the arithmetic to UTC overflows), epoch numbers of any size and sign
# (a 400-digit integer, -70,000,000,000), and the same numbers as text.
_offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
extreme_times = st.one_of(
    st.datetimes(
        min_value=datetime.min, max_value=datetime.max, timezones=st.none() | _offsets
    ).map(lambda when: when.isoformat()),
    st.sampled_from(
        ["0001-01-01T00:00:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]
    ),
    st.integers(min_value=-(10**450), max_value=10**450),
    st.integers(min_value=-(10**12), max_value=10**15),
    st.integers(min_value=-(10**450), max_value=10**450).map(str),
    st.floats(),
)


def _encode(record: Any) -> bytes:
    return json.dumps(record, allow_nan=True).encode()


changes = st.tuples(st.sampled_from(FIELDS), json_values) | st.tuples(st.just("ts"), extreme_times)
mutated_lines = st.lists(changes, max_size=4).map(lambda changes: _encode(mutated_session(changes)))
stray_bytes = st.binary(max_size=200).map(lambda b: b.replace(b"\n", b""))
deep = st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n + b"]" * n)
any_json = json_values.map(_encode)
lines = st.lists(st.one_of(mutated_lines, stray_bytes, deep, any_json), min_size=1, max_size=25)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(lines)
def test_every_line_ends_exactly_once(tmp_path_factory, raw_lines: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    path: Path = tmp_path_factory.mktemp("fuzz") / "in.jsonl"
    path.write_bytes(b"\n".join(raw_lines) + b"\n")
    outcomes = list(check_stream(CHECKER, iter_items([str(path)]), max_skew=300))
    # Exactly one outcome per line, in input order, each exactly one of the three.
    assert [o.line for o in outcomes] == list(range(1, len(raw_lines) + 1))
    for outcome in outcomes:
        kinds = [outcome.report is not None, outcome.reject is not None, outcome.blank]
        assert sum(kinds) == 1
        if outcome.reject is not None:
            assert outcome.reject.error


@settings(max_examples=200, deadline=None)
@given(st.lists(changes, max_size=5))
def test_library_raises_only_its_own_error(changes: list[tuple[str, Any]]) -> None:
    record = mutated_session(changes)
    try:
        report = CHECKER.check(record)
    except InvalidSessionError as exc:
        assert exc.field is not None and exc.reason
        return
    assert sum(report.contributions.values()) == 100 - report.score
    assert math.isfinite(report.device_component.score)
    json.dumps(report.to_dict())


# CSV cells without a line break: each row is one line.
csv_cells = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\r\n"), max_size=12
)
csv_times = st.one_of(
    csv_cells,
    st.integers(1_600_000_000, 1_900_000_000).map(str),
    st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
)
CSV_HEADER = ["account_id", "ts", "ip", "device.sensors", "network.vpn_active"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(csv_cells, csv_times, csv_cells, csv_cells, csv_cells), max_size=6),
    st.lists(st.binary(max_size=40), max_size=4),
)
def test_a_sampled_csv_line_gives_the_time_the_reader_gives_its_row(
    rows: list[tuple[str, ...]], junk: list[bytes]
) -> None:
    """Whatever its cells hold (quotes, commas, a NUL): the time read from a line
    sampled alone is the time of the row the reader reads from the whole file, and
    any bytes at all give a row or None, never an error."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(rows)
    data = text.getvalue().encode()
    items = list(read_items("in.csv", io.BytesIO(data)))
    lines = data.splitlines(keepends=True)
    read = sample_reader("in.csv")
    assert read(lines[0]) is None  # the header
    if len(items) == len(rows):  # one item a row: the file read to its end
        for line, item in zip(lines[1:], items, strict=True):
            sampled = read(line)
            expected = item_time(item, UTC8)
            assert (None if sampled is None else item_time(sampled, UTC8)) == expected
    for raw in junk:
        assert read(raw) is None or isinstance(read(raw), Line)


_LEAVES = sorted(field_kinds())
csv_files = st.tuples(
    st.lists(st.sampled_from(_LEAVES), min_size=1, max_size=6, unique=True),
    st.lists(st.lists(csv_cells, min_size=1, max_size=6), max_size=4),
    st.sampled_from(["\n", "\r\n"]),
).map(lambda parts: _csv_text(*parts))


def _csv_text(header: list[str], rows: list[list[str]], newline: str) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator=newline)
    writer.writerow(["account_id", "ts", "ip", *header])
    writer.writerows([[*row, *[""] * (len(header) + 3)][: len(header) + 3] for row in rows])
    return text.getvalue().encode()


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(csv_files, lines.map(lambda raw: b"\n".join(raw) + b"\n"), st.binary(max_size=300)),
    st.sampled_from([b"", b"\xef\xbb\xbf"]),
)
def test_an_input_without_a_name_reads_as_the_named_file_it_is(data: bytes, bom: bytes) -> None:
    """Stdin or a pipe: whatever its bytes, the reader reads them as the same bytes
    in a ``.csv`` file or in a ``.jsonl`` file, item for item, and raises nothing but
    the missing-column error a ``.csv`` file raises: a CSV file with a header naming
    session fields as the ``.csv`` file, a log whose first line is a JSON object as
    the ``.jsonl`` file."""
    data = bom + data
    unnamed = items_as_read("-", data)
    as_csv, as_json = items_as_read("in.csv", data), items_as_read("in.jsonl", data)
    assert unnamed in (as_csv, as_json)
    first = data.split(b"\n", 1)[0].removeprefix(bom).lstrip()
    if first.startswith(b"{"):
        assert unnamed == as_json
    if first.startswith(b"account_id,ts,"):
        assert unnamed == as_csv


def test_a_text_line_starting_with_the_gzip_magic_is_read_as_text(tmp_path: Path) -> None:
    """Found by the property test above: the file was taken for gzip and its good
    line lost. Only a real gzip header (magic, deflate, no reserved flags) is."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\x1f\x8b\n" + _encode(make_session()) + b"\n")
    outcomes = list(check_stream(CHECKER, iter_items([str(path)]), max_skew=300))
    assert [o.line for o in outcomes] == [1, 2]
    assert outcomes[0].reject is not None and outcomes[1].report is not None


@settings(max_examples=300, deadline=None)
@given(extreme_times)
def test_any_time_value_is_a_report_or_an_error_naming_ts(value: Any) -> None:
    """Out-of-range times raised OverflowError, which stopped whole runs."""
    try:
        CHECKER.check(make_session(ts=value))
    except InvalidSessionError as exc:
        assert exc.field == "ts", exc


# --- lines read in part: the head (ts, account_id) of a line not decoded yet -----------

# JSON and near-JSON the fast readers must not take differently from orjson and the
# standard library: text that is not UTF-8 (msgspec does not check what it skips),
# lone surrogates and NaN (only the standard library reads them), numbers beyond 64
# bits or a double, control characters, deep nesting, duplicate and escaped keys.
NASTY_VALUES = [
    b'"\xff\xfe"',
    b'"\xed\xa0\x80"',
    b'"\\ud800"',
    b'"\\udc00x"',
    b"NaN",
    b"-Infinity",
    b"1e400",
    b"-1e400",
    b"1e-400",
    b"123456789012345678901234567890",
    b"-123456789012345678901234567890",
    b"18446744073709551615",
    b"9" * 5_000,
    b'"a\x01b"',
    b'"tab\there"',
    b"01",
    b"[1,]",
    b'{"a":1,}',
    b"[" * 200 + b"]" * 200,
    b"[" * 1_100 + b"]" * 1_100,
    b'{"k":' * 300 + b"1" + b"}" * 300,
    b'"\xe6\x97\xa5\xe6\x9c\xac"',
    b"true",
    b"null",
]
_KEYS = [b'"x"', b'"ts"', b'"account_id"', b'"t\\u0073"', b'"account\\u005fid"', b'"device"']


@st.composite
def lines_read_in_part(draw: st.DrawFn) -> bytes:
    """A valid session line with up to three (key, value) pairs spliced in first,
    last or in place of its body, and now and then a stray byte."""
    record = draw(mutated_lines)
    pairs = draw(
        st.lists(
            st.tuples(
                st.sampled_from(_KEYS),
                st.one_of(st.sampled_from(NASTY_VALUES), json_values.map(_encode)),
            ),
            max_size=3,
        )
    )
    spliced = b",".join(key + b":" + value for key, value in pairs)
    where = draw(st.sampled_from(["first", "last", "alone"]))
    if not spliced:
        line = record
    elif where == "first":
        line = b"{" + spliced + b"," + record[1:]
    elif where == "last":
        line = record[:-1] + b"," + spliced + b"}"
    else:
        line = b"{" + spliced + b"}"
    if draw(st.integers(0, 9)) == 0:
        at = draw(st.integers(0, len(line)))
        line = line[:at] + draw(st.binary(min_size=1, max_size=2)) + line[at:]
    return line.strip() or b"{}"


@settings(max_examples=400, deadline=None)
@given(lines_read_in_part())
def test_a_line_read_for_its_head_is_the_line_the_reader_decodes(raw: bytes) -> None:
    """Reading a line's ts and account alone (the order scan, the sort, the run) never
    takes a line the reader would reject, and gives the time the record gives."""
    text = Text("in.jsonl", 1, raw)
    decoded = decode_text(text)
    expected = line_time(decoded.record, UTC8) if isinstance(decoded, Line) else None
    assert item_time(text, UTC8) == expected
    head = read_head(raw)
    if head is None:
        return
    assert isinstance(decoded, Line) and isinstance(decoded.record, dict)
    account = decoded.record.get("account_id")
    if isinstance(head.account_id, str) or isinstance(account, str):
        assert head.account_id == account


@settings(max_examples=300, deadline=None)
@given(lines_read_in_part(), st.integers(2, 5), st.integers(0, 10_000))
def test_a_line_read_for_its_head_goes_to_the_shard_its_record_goes_to(
    raw: bytes, shards: int, seq: int
) -> None:
    """A sharded run's worker reads another worker's line only for its head: the
    owner it finds there is the owner the line's record names (the owner decodes
    the line and must agree, or a worker would wait for a line nobody sends)."""
    head = read_head(raw)
    owner = None if head is None else head_shard(head, seq, shards)
    if owner is None:  # the run decodes such a line whole
        return
    text = Text("in.jsonl", 1, raw)
    for decoded in (decode_text(text), decoded_as_the_run_does(text, UTC8)):
        assert isinstance(decoded, Line)  # its session, or its record as the reader has it
        assert shard_of(decoded.record, seq, shards) == owner


@settings(max_examples=300, deadline=None)
@given(st.lists(lines_read_in_part(), min_size=1, max_size=6), st.integers(2, 5))
def test_what_the_scan_keeps_of_a_line_is_what_its_head_gives(
    raws: list[bytes], shards: int
) -> None:
    """A sharded run's workers take a line's owner and time from the scan
    (:class:`ScannedHeads`) instead of reading its head: the same owner and time as
    the head read, at any position; nothing for a line whose position decides its
    owner, and nothing for another text at that position (the input changed)."""
    heads = ScannedHeads(shards)
    texts = [Text("in.jsonl", n + 1, raw) for n, raw in enumerate(raws)]
    for text in texts:
        assert heads.scan(text, UTC8) == item_time(text, UTC8)
    assert len(heads) == len(texts)
    for seq, text in enumerate(texts):
        kept = heads.owner(seq, text.raw)
        head = read_head(text.raw)
        owner = None if head is None else head_shard(head, seq, shards)
        if kept is None:
            continue
        assert head is not None and owner is not None
        assert kept == (owner, item_time(text, UTC8))
        assert owner == head_shard(head, seq + 1, shards)  # its content decides it
        assert heads.owner(seq, text.raw + b" ") is None
    assert heads.owner(len(texts), texts[0].raw) is None


def test_the_scan_keeps_plain_session_lines() -> None:
    """Every line that names its account is kept (the sample's few bad lines, with
    no account or no JSON object, are not): such lines are not read twice."""
    heads = ScannedHeads(2)
    raws = (FIXTURES / "sample.jsonl").read_bytes().splitlines()
    for n, raw in enumerate(raws):
        heads.scan(Text("in.jsonl", n + 1, raw), UTC8)
    named = [
        n
        for n, raw in enumerate(raws)
        if isinstance(getattr(read_head(raw), "account_id", None), str)
    ]
    assert len(named) > 400
    assert all(heads.owner(n, raws[n]) is not None for n in named)


@pytest.mark.parametrize(
    ("account", "owned"),
    [
        ('"a1"', True),
        ("7", True),
        ("18446744073709551615", True),
        ("-9223372036854775808", True),
        ("18446744073709551616", False),  # decoded as a float: only the record can tell
        ("-9223372036854775809", False),
    ],
)
def test_an_account_id_beyond_64_bits_is_sharded_by_its_record(account: str, owned: bool) -> None:
    raw = b'{"ts": 1795133730, "account_id": %s}' % account.encode()
    head = read_head(raw)
    assert head is not None
    assert (head_shard(head, 3, 4) is not None) is owned


def test_the_head_of_plain_session_lines_is_read_without_the_full_decode() -> None:
    """The fast path is taken where it should be: ASCII or UTF-8 session lines."""
    plain = _encode(make_session(**{"device.model": "华为 P40"}))
    assert read_head(plain) == Head(ts=BASE_SESSION["ts"], account_id=BASE_SESSION["account_id"])
    assert read_head(json.dumps(make_session(), ensure_ascii=False).encode()) is not None
    assert read_head(b'{"ts":1,"x":"\xff"}') is None  # not UTF-8: the reader rejects it
    assert read_head(b"[1]") is None  # not an object: decoded, then rejected by the checker


# --- lines decoded straight into their session ----------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.one_of(lines_read_in_part(), mutated_lines))
def test_a_session_read_from_its_text_is_the_session_of_the_decoded_record(raw: bytes) -> None:
    """msgspec straight from the text accepts only lines the reader decodes into a
    record the checker accepts, with the same values (types included)."""
    fast = read_session(raw, UTC8)
    if fast is None:
        return
    decoded = decode_text(Text("in.jsonl", 1, raw))
    assert isinstance(decoded, Line)
    expected = parse_session(decoded.record, naive_tz=UTC8)  # raises if it is a reject
    assert plain(fast) == plain(expected)
    assert leaves(plain(fast)) == leaves(plain(expected))
    assert fast.ts.isoformat() == expected.ts.isoformat()


def test_every_valid_fixture_line_is_read_straight_into_its_session() -> None:
    lines = [
        line
        for path in sorted(FIXTURES.glob("**/*.jsonl"))
        for line in path.read_bytes().splitlines()
        if line.strip()
    ]
    fast = 0
    for line in lines:
        decoded = decode_text(Text("in.jsonl", 1, line.strip()))
        try:
            expected = parse_session(decoded.record, naive_tz=UTC8)  # type: ignore[union-attr]
        except (InvalidSessionError, AttributeError):
            assert read_session(line.strip(), UTC8) is None
            continue
        session = read_session(line.strip(), UTC8)
        assert session is not None, line[:200]
        assert plain(session) == plain(expected)
        fast += 1
    assert fast > 1_000


def test_lines_read_as_text_end_as_the_decoded_lines_end(tmp_path: Path) -> None:
    """The whole path: reports and rejects of lines decoded on arrival straight from
    their text equal those of lines the reader decoded, junk lines included."""
    good = (FIXTURES / "labelled.jsonl").read_bytes().splitlines()[:150]
    junk = [b"not json", b"[1]", b'{"ts":1,"x":"\xff"}', b"{" + b'"ts":NaN}', b"", b"null"]
    junk += [b'{"account_id":"a","ts":"2026-11-20T08:00:00","ip":"1.2.3.4","device":5}']
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(good[:70] + junk + good[70:]) + b"\n")
    runs = []
    for lazy in (False, True):
        checker = Checker(clock=None)
        items = iter_items([str(path)], lazy=lazy)
        outcomes = list(check_stream(checker, items, max_skew=300))
        runs.append(
            [
                (o.line, o.report.to_dict() if o.report else None, o.reject, o.blank)
                for o in outcomes
            ]
        )
    assert runs[0] == runs[1]
    assert sum(1 for _, _, reject, _ in runs[0] if reject is not None) == 6


# --- a JSON text given to the checker ---------------------------------------------

# Another time zone for times without one than the default: a text must be read with
# the checker's own.
NEW_YORK = Checker(CheckerConfig(naive_tz="America/New_York"))


def _parsed(parse: Any, record: Any) -> tuple[Any, ...]:
    """What ``parse`` makes of a record: the session's values and types, or the
    error's field and reason."""
    try:
        session = parse(record)
    except InvalidSessionError as exc:
        return ("error", exc.field, exc.reason)
    return ("session", plain(session), leaves(plain(session)), session.ts.isoformat())


@settings(max_examples=400, deadline=None)
@given(st.one_of(lines_read_in_part(), mutated_lines, stray_bytes, any_json))
def test_a_json_text_validates_as_its_decoded_record(raw: bytes) -> None:
    """``Checker.parse`` of a JSON text (bytes) gives the session or the error its
    decoded record gives; a text that is no JSON, the reject's reason."""
    decoded = decode_text(Text("in.jsonl", 1, raw))
    for checker in (CHECKER, NEW_YORK):
        if isinstance(decoded, Line):  # what a decoded line's record gives (even a string)
            as_record = functools.partial(parse_session, naive_tz=checker.config.time_zone)
            expected = _parsed(as_record, decoded.record)
        else:
            expected = ("error", "", decoded.error)
        assert _parsed(checker.parse, raw) == expected


def test_a_time_without_a_zone_in_a_json_text_is_read_in_the_checkers_zone() -> None:
    raw = json.dumps(make_session(ts="2026-11-15T08:00:00")).encode()
    assert NEW_YORK.parse(raw).ts == datetime(2026, 11, 15, 13, 0, tzinfo=UTC)
    assert CHECKER.parse(raw).ts == datetime(2026, 11, 15, 0, 0, tzinfo=UTC)


def test_a_text_no_json_can_hold_is_an_invalid_session() -> None:
    with pytest.raises(InvalidSessionError) as not_json:
        CHECKER.parse(b'{"account_id": "u-1", ')
    assert (not_json.value.field, not_json.value.reason[:10]) == ("", "not JSON: ")
    with pytest.raises(InvalidSessionError) as not_utf8:
        CHECKER.parse(b'{"account_id": "u-\xff"}')
    assert (not_utf8.value.field, not_utf8.value.reason) == ("", "not UTF-8 (byte 18)")


def test_a_string_is_a_record_that_is_no_object_not_a_json_text() -> None:
    """What a line such as ``"{...}"`` decodes to: refused as a record, never read again
    as JSON (the command line's reject of such a line says so)."""
    with pytest.raises(InvalidSessionError, match="expected a JSON object, got a string"):
        CHECKER.parse(json.dumps(make_session()))  # type: ignore[arg-type]


def test_every_fixture_line_checks_from_its_text_as_from_its_record() -> None:
    """Two checkers fed the same lines in the same order, one the texts and one the
    decoded records: the same reports, or the same errors."""
    by_text, by_record = Checker(clock=None), Checker(clock=None)
    compared = 0
    for path in (FIXTURES / "sample.jsonl", FIXTURES / "labelled.jsonl"):
        for raw in path.read_bytes().splitlines():
            if not raw.strip():
                continue
            decoded = decode_text(Text(path.name, 1, raw))
            if not isinstance(decoded, Line):
                with pytest.raises(InvalidSessionError, match=r"not JSON|not UTF-8"):
                    by_text.check(raw)
                continue
            outcomes = []
            for checker, record in ((by_text, raw), (by_record, decoded.record)):
                try:
                    outcomes.append(checker.check(record).to_dict())
                except InvalidSessionError as exc:
                    outcomes.append({"error": (exc.field, exc.reason)})
            assert outcomes[0] == outcomes[1], raw[:200]
            compared += 1
    assert compared > 400


def test_acheck_takes_a_json_text_too() -> None:
    raw = json.dumps(make_session()).encode()
    expected = Checker(clock=None).check(json.loads(raw)).to_dict()
    assert asyncio.run(Checker(clock=None).acheck(raw)).to_dict() == expected
