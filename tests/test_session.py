"""Session model: timestamps, IPs, leniency about unknown fields, strictness about types."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fingerprint import InvalidSessionError, _session_values, parse_session, report
from fingerprint._session_values import _as_number, _looks_iso, _parse_ip_text
from fingerprint.report import _python_utc_text, utc_text
from fingerprint.session import parse_ip, parse_timestamp
from tests.conftest import make_session

WHEN = datetime(2026, 11, 20, 0, 15, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-20T08:15:30+08:00",
        "2026-11-20T00:15:30Z",
        "2026-11-20T00:15:30z",
        "2026-11-20T00:15:30+00:00",
        "2026-11-20 08:15:30",  # naive: Asia/Shanghai
        "2026-11-20T08:15:30",
        1_795_133_730,
        1_795_133_730.0,
        1_795_133_730_000,  # milliseconds
        "1795133730",
        "1795133730000",
        " 1795133730 ",
    ],
)
def test_timestamp_forms_normalise_to_utc(value: object) -> None:
    parsed = parse_timestamp(value)
    assert parsed == WHEN
    assert parsed.tzinfo == UTC


def test_naive_timezone_is_configurable() -> None:
    parsed = parse_timestamp("2026-11-20T00:15:30", ZoneInfo("UTC"))
    assert parsed == WHEN
    parsed = parse_session(make_session(ts="2026-11-20T09:15:30"), naive_tz=ZoneInfo("Asia/Tokyo"))
    assert parsed.ts == WHEN


def test_fractional_epoch_keeps_subseconds() -> None:
    assert parse_timestamp(1_795_133_730.25).microsecond == 250_000
    assert parse_timestamp(1_795_133_730_250).microsecond == 250_000


@pytest.mark.parametrize(
    "value",
    [
        True,
        None,
        "yesterday",
        "",
        float("nan"),
        float("inf"),
        10**30,
        -(10**30),
        "1" * 5000,
        "1969-12-31T00:00:00Z",
        "2200-01-01T00:00:00Z",
        [1],
        {"ts": 1},
    ],
)
def test_bad_timestamps_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(value)


OUT_OF_RANGE_TIMES = [
    "0001-01-01T00:00:00",  # naive: read in Asia/Shanghai, before year 1 in UTC
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    -70_000_000_000,
    int("9" * 420),
    -int("9" * 420),
    "9" * 420,
    "2150-01-01T00:00:00Z",
]


@pytest.mark.parametrize("value", OUT_OF_RANGE_TIMES, ids=lambda value: str(value)[:32])
def test_out_of_range_times_are_invalid_session_errors_naming_ts(value: object) -> None:
    """They used to raise OverflowError, which no caller catches: one line stopped a run."""
    with pytest.raises(InvalidSessionError) as caught:
        parse_session(make_session(ts=value))
    assert caught.value.field == "ts"
    assert caught.value.reason.startswith("out of range")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("223.104.3.17", "223.104.3.17"),
        (" 8.8.8.8 ", "8.8.8.8"),
        ("2409:8a00::1", "2409:8a00::1"),
        ("::ffff:114.114.114.114", "114.114.114.114"),
        ("::FFFF:1.2.3.4", "1.2.3.4"),
    ],
)
def test_ip_forms(text: str, expected: str) -> None:
    assert str(parse_ip(text)) == expected


@pytest.mark.parametrize("value", ["1.2.3", "256.1.1.1", "abc", "", 16843009, None, ["1.1.1.1"]])
def test_bad_ips_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        parse_ip(value)


def _ip_as_ipaddress_reads_it(text: str) -> object:
    """What parsing gave before the dotted-quad shortcut: ``ip_address`` alone."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return ValueError
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


_octet = st.one_of(
    st.integers(0, 300).map(str),
    st.sampled_from(["00", "01", "010", "0x7f", "0X1", "-1", "+1", " 1", "1 ", "", "٣", "1\x00"]),
)
_ip_texts = st.one_of(
    st.lists(_octet, min_size=4, max_size=4).map(".".join),
    st.lists(_octet, min_size=1, max_size=5).map(".".join),
    st.text(alphabet="0123456789.:abcdefxX \t", max_size=20),
    st.text(max_size=12),
    st.ip_addresses().map(str),
)


@given(_ip_texts)
@example("010.0.0.1")  # octal to inet_aton
@example("0x7f.0.0.1")
@example("1.2.3.4\x00")
@example(" 10.0.0.1\t")
def test_an_ip_reads_as_ip_address_reads_it(text: str) -> None:
    """The dotted-quad shortcut gives what ``ip_address`` gives, or refuses alike."""
    expected = _ip_as_ipaddress_reads_it(text)
    try:
        found: object = _parse_ip_text.__wrapped__(text)
    except ValueError:
        found = ValueError
    assert found == expected
    assert type(found) is type(expected)


def test_mapped_ipv6_is_ipv4_in_the_model() -> None:
    parsed = parse_session(make_session(ip="::ffff:223.5.5.5"))
    assert parsed.ip.version == 4


def test_unknown_fields_and_blocks_are_ignored() -> None:
    record = make_session(extra_block={"a": 1}, **{"device.future_field": [1, 2]})
    assert parse_session(record).account_id == "u-10442"


def test_only_account_ts_ip_are_required() -> None:
    parsed = parse_session({"account_id": "42", "ts": 1795133730, "ip": "1.1.1.1"})
    assert parsed.account_id == "42"
    assert parsed.device is None and parsed.network is None


@pytest.mark.parametrize("missing", ["account_id", "ts", "ip"])
def test_missing_required_field_names_it(missing: str) -> None:
    record = make_session()
    del record[missing]
    with pytest.raises(InvalidSessionError) as caught:
        parse_session(record)
    assert caught.value.field == missing
    assert "missing" in caught.value.reason


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"device": "x"}, "device"),
        ({"device.sensors": "gyro"}, "device.sensors"),
        ({"device.battery": {"level": math.nan}}, "device.battery.level"),
        ({"app.uid": 2**70}, "app.uid"),
        ({"app.uid": -1}, "app.uid"),
        ({"network.vpn_active": "sometimes"}, "network.vpn_active"),
        ({"device.system_props": {"ro.kernel.qemu": {"deep": [1]}}}, "device.system_props"),
        ({"account_id": True}, "account_id"),
        ({"account_id": "  "}, "account_id"),
        ({"account_id": None}, "account_id"),
    ],
)
def test_wrong_types_carry_the_field_path(change: dict[str, object], path: str) -> None:
    with pytest.raises(InvalidSessionError) as caught:
        parse_session(make_session(**change))
    assert caught.value.field.startswith(path)
    assert caught.value.reason


@pytest.mark.parametrize("record", [[], "x", 1, None, True])
def test_non_objects_are_refused(record: object) -> None:
    with pytest.raises(InvalidSessionError, match="expected a JSON object"):
        parse_session(record)


def test_system_property_values_become_text_where_sdks_send_numbers() -> None:
    """The one documented leniency: Android property values are strings by nature."""
    parsed = parse_session(
        make_session(**{"device.system_props": {"ro.kernel.qemu": 1, "ro.secure": True}})
    )
    assert parsed.device is not None
    assert parsed.device.system_props == {"ro.kernel.qemu": "1", "ro.secure": "1"}


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"account_id": 123}, "account_id"),
        ({"network.vpn_active": "yes"}, "network.vpn_active"),
        ({"network.vpn_active": 1}, "network.vpn_active"),
        ({"device.battery.level": 7}, "device.battery.level"),
        ({"device.battery.level": "0.5"}, "device.battery.level"),
        ({"device.sensors": [1, 2]}, "device.sensors.0"),
        ({"app.uid": "10234"}, "app.uid"),
        ({"app.uid": 10234.0}, "app.uid"),
        ({"app.process_uid": True}, "app.process_uid"),
        ({"device.os_version": 13}, "device.os_version"),
        ({"device.rooted": "false"}, "device.rooted"),
        ({"device.screen.width": "1080"}, "device.screen.width"),
        ({"auth.face_verified": 0}, "auth.face_verified"),
        ({"device.cpu_cores": "8"}, "device.cpu_cores"),
        ({"device.memory_total": -1}, "device.memory_total"),
        ({"device.android_id": 12345}, "device.android_id"),
        ({"device.boot_time": "1795133730"}, "device.boot_time"),
        ({"session_id": 7}, "session_id"),
    ],
)
def test_wrong_types_are_refused_not_coerced(change: dict[str, object], path: str) -> None:
    """Each of these was accepted: "yes" was a VPN, 7 a battery level, "10234" a uid."""
    with pytest.raises(InvalidSessionError) as caught:
        parse_session(make_session(**change))
    assert caught.value.field == path
    assert caught.value.reason


def test_identity_attributes_of_v1_1_are_read_with_their_types() -> None:
    identity = {
        "android_id": "9774d56d682e549c",
        "drm_id": "a1b2c3",
        "oaid": "0f3e-11",
        "idfv": "E621E1F8-C36C-495A-93FC-0C247A3E6E5F",
        "memory_total": 8_000_000_000,
        "storage_total": 256_000_000_000,
        "cpu_cores": 8,
        "cpu_info": "5e884898da",
        "kernel_version": "5.10.149-android13-4",
        "build_time": 1_667_000_000,
        "boot_time": 1_795_000_000,
        "boot_count": 37,
        "first_install_time": 1_790_000_000,
    }
    parsed = parse_session(make_session(**{f"device.{k}": v for k, v in identity.items()}))
    assert parsed.device is not None
    assert {name: getattr(parsed.device, name) for name in identity} == identity


def test_unknown_fields_stay_lenient_whatever_their_type() -> None:
    record = make_session(**{"device.vendor_flag": "yes", "network.score": [1, "x"], "x": None})
    assert parse_session(record).network is not None


def test_sim_mcc() -> None:
    parsed = parse_session(make_session(**{"device.sim": {"mcc_mnc": "45400"}}))
    assert parsed.device is not None and parsed.device.sim is not None
    assert parsed.device.sim.mcc == "454"
    parsed = parse_session(make_session(**{"device.sim": {"mcc_mnc": "4"}}))
    assert parsed.device is not None and parsed.device.sim is not None
    assert parsed.device.sim.mcc is None


@given(st.text(max_size=12).map(lambda tail: "2026-" + tail) | st.text(max_size=16))
def test_iso_fast_path_never_skips_a_number(text: str) -> None:
    """parse_timestamp skips the number parse for "dddd-..." text: no such text is a
    number int() or float() would take, so the skip cannot change what it returns."""
    if _looks_iso(text.strip()):
        assert _as_number(text.strip()) is None


# The C readers of a session's time and address (fingerprint._native), held to the
# Python code, which answers wherever they decline and without the extension.
_C_TIME = _session_values._NATIVE_TIME
_C_V4 = _session_values._NATIVE_V4
_C_UTC_TEXT = report._NATIVE_UTC_TEXT
needs_c = pytest.mark.skipif(_C_TIME is None, reason="fingerprint._native not built here")


def _python_reading(read: Callable[[], object], attribute: str) -> object:
    """What ``read`` gives with the C reader turned off (its error, as a value)."""
    kept = getattr(_session_values, attribute)
    setattr(_session_values, attribute, None)
    try:
        return read()
    except ValueError as exc:
        return exc
    finally:
        setattr(_session_values, attribute, kept)


_offsets = st.integers(-1439, 1439).map(lambda minutes: timezone(timedelta(minutes=minutes)))


@st.composite
def _time_texts(draw: st.DrawFn) -> str:
    """ISO texts of times around the 1990-2100 range, in the spellings services write,
    sometimes with one character changed, dropped or added."""
    when = draw(
        st.datetimes(datetime(1980, 1, 1), datetime(2110, 1, 1), timezones=st.just(UTC) | _offsets)
    )
    spec = draw(st.sampled_from(["seconds", "milliseconds", "microseconds", "auto", "minutes"]))
    text = when.isoformat(sep=draw(st.sampled_from("T t")), timespec=spec)
    if draw(st.booleans()):
        text = text.replace("+00:00", draw(st.sampled_from(["Z", "z", "+00:00", "-00:00"])))
    if draw(st.integers(0, 3)) == 0:
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 1))
        text = (
            text[:at] + draw(st.sampled_from(list("0123456789:-+.TZ x\u0661"))) + text[at + cut :]
        )
    return text


@needs_c
@given(_time_texts() | st.integers(-(2**64), 2**64) | st.sampled_from([True, 1.5e9, "", " 1"]))
@example("2026-11-16T00:00:11+08:00")
@example("2024-02-29T23:59:59.999999-23:59")
@example("2100-01-01T07:59:59+08:00")  # the last second in range
@example("2100-01-01T08:00:00+08:00")  # the first out of it
@example("1990-01-01T00:00:00Z")
@example(631_152_000)
@example(4_102_444_799)
@example(4_102_444_800)
def test_the_c_time_reader_reads_what_python_reads(value: object) -> None:
    """Where the C reader answers, its datetime is the Python code's to the field and
    the time zone object; where it declines (None), the Python code answers."""
    want = _python_reading(lambda: parse_timestamp(value), "_NATIVE_TIME")
    got = _C_TIME(value)
    if got is None:
        return
    assert isinstance(want, datetime)
    assert got == want and got.tzinfo is want.tzinfo is UTC
    assert got.timetuple()[:6] == want.timetuple()[:6] and got.microsecond == want.microsecond
    assert got.fold == want.fold == 0


class _Later(datetime):
    """A datetime subclass: its isoformat may be its own, so C leaves it to Python."""


@needs_c
@given(
    st.datetimes(timezones=st.none() | st.just(UTC) | _offsets | st.just(ZoneInfo("Asia/Shanghai")))
    | st.datetimes(timezones=st.just(UTC)).map(lambda when: _Later.fromisoformat(when.isoformat()))
)
@example(datetime(2026, 11, 15, 16, 0, 1, tzinfo=UTC))
@example(datetime(2026, 11, 15, 16, 0, 1, 5, tzinfo=UTC))
@example(datetime(1, 1, 1, tzinfo=UTC))
@example(datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC))
def test_a_reports_time_is_written_in_c_as_python_writes_it(when: datetime) -> None:
    """A report's ``ts`` text (``Report.to_dict``): C writes a time in datetime.UTC,
    and writes it as ``isoformat`` with "Z" does; it declines every other value."""
    got = _C_UTC_TEXT(when)
    assert got == _python_utc_text(when) or got is None
    assert (got is None) == (type(when) is not datetime or when.tzinfo is not UTC)
    assert utc_text(when) == _python_utc_text(when)


@needs_c
@pytest.mark.parametrize(
    "value",
    [
        "2026-11-16T00:00:11+08:00",
        "2026-11-16 00:00:11.123Z",
        "2026-11-16T00:00:11.123456-05:30",
        1_763_222_411,
    ],
)
def test_the_c_time_reader_takes_the_common_spellings(value: object) -> None:
    """Texts with their offset and epoch seconds are read in C (a test that the other
    test's comparisons are made at all)."""
    assert _C_TIME(value) == _python_reading(lambda: parse_timestamp(value), "_NATIVE_TIME")


@needs_c
@pytest.mark.parametrize(
    "value",
    [
        "2026-11-16T00:00:11",  # naive: read in the configured zone, by Python
        " 2026-11-16T00:00:11Z",
        "2026-11-16T00:00:11.12Z",
        "2026-11-16T00:00:11+08:00:00",
        "2026-11-16T00:00:11+0800",
        "2026-02-30T00:00:11Z",
        "2026-02-29T00:00:11Z",  # not a leap year
        "2026-11-16T00:00:60Z",
        "2026-11-16T24:00:00Z",
        "1989-12-31T23:59:59Z",
        "2026-11-16T00:00:11+24:00",
        1_763_222_411_000,  # milliseconds
        1_763_222_411.5,
        True,
        2**80,
    ],
)
def test_the_c_time_reader_leaves_the_rest_to_python(value: object) -> None:
    assert _C_TIME(value) is None


@needs_c
@given(
    st.ip_addresses(v=4).map(str)
    | st.from_regex(r"\A[0-9. x]{1,17}\Z")
    | st.lists(st.integers(0, 999).map(str) | st.just("01"), min_size=3, max_size=5).map(".".join)
)
@example("0.0.0.0")
@example("255.255.255.255")
@example("256.1.1.1")
@example("01.2.3.4")
@example("1.2.3.4 ")
def test_the_c_address_reader_reads_what_python_reads(text: str) -> None:
    """An address written as inet_ntoa writes one is the IPv4Address Python makes
    (type, value, text, hash, bytes); every other text is Python's to answer."""
    want = _python_reading(lambda: parse_ip(text), "_NATIVE_V4")
    got = _C_V4(text)
    if got is None:
        assert not isinstance(want, ipaddress.IPv4Address) or str(want) != text
        return
    assert type(got) is type(want) is ipaddress.IPv4Address
    assert got == want and str(got) == text and hash(got) == hash(want)
    assert got.packed == want.packed
