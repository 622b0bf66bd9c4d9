"""account_stability_windows: one pass, the same numbers as the plain reference per window."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, cast
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingerprint import native
from fingerprint.features import stability
from fingerprint.features.stability import Stability, account_stability_windows
from fingerprint.history import LoginEvent
from tests.stability_reference import account_stability

try:  # the C walk, when the package was built with a C compiler
    from fingerprint import _native
except ImportError:
    _native = None  # type: ignore[assignment]

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = 86_400.0
NOW = 1_795_000_000.0


def event(ts: float, n: int = 0, **given: Any) -> LoginEvent:
    """A LoginEvent by keyword, with defaults."""
    values: dict[str, Any] = {
        "ts": ts,
        "session_digest": n,
        "account_id": "acct",
        "device_id": "d1",
        "ip": "1.1.1.9",
        "province": "CN-BJ",
        "latitude": None,
        "longitude": None,
        "accuracy_km": None,
        "ip_anonymous": False,
        "network": "1.1.1.0/24",
        "asn": 9808,
        "network_type": "wifi",
        "carrier": "中国移动",
        "hour": None,
    }
    values.update(given)
    return LoginEvent(**values)


def reference(
    history: list[LoginEvent], current: LoginEvent, windows: tuple[float, ...], share: float
) -> list[Any]:
    return [account_stability(history, current, w, SHANGHAI, share) for w in windows]


def check(
    history: list[LoginEvent],
    current: LoginEvent,
    windows: tuple[float, ...],
    share: float = 0.05,
) -> None:
    """Each walk (Python's, and C's where it is built) gives the reference's numbers,
    of the same types; the C walk is handed the history as a store gives it (a tuple)
    and as a list."""
    want = reference(history, current, windows, share)
    walks: list[tuple[Callable[..., list[Stability]], Sequence[LoginEvent]]] = [
        (stability.python_stability_windows, history),
        *((native_walk, tuple(history)) for native_walk in NATIVE),
        *((native_walk, list(history)) for native_walk in NATIVE),
    ]
    for walk, logins in walks:
        got = walk(logins, current, windows, SHANGHAI, share)
        assert got == want
        # == on floats: also compare reprs so -0.0 / 0.0 and types would show
        assert [repr(s) for s in got] == [repr(s) for s in want]
        assert all(type(s) is Stability for s in got)
    assert account_stability_windows(history, current, windows, SHANGHAI, share) == want


def _native_only(
    history: Any, current: Any, windows: Any, tz: tzinfo, share: Any
) -> list[Stability]:
    """The C walk alone: it must take every call the tests make of it."""
    found = _native.stability_windows(history, current, windows, tz, share)
    assert found is not None, "the C walk passed a call of the kind it takes to Python"
    return cast("list[Stability]", found)


NATIVE = [_native_only] if _native is not None else []


DEVICES = st.sampled_from([None, "", "d1", "d2", "d3", "d4"])
IPS = st.sampled_from([None, "", "1.1.1.9", "1.1.1.10", "2.2.2.9", "::1", "3.3.3.3"])
NETWORKS = st.sampled_from([None, "", "1.1.1.0/24", "2.2.2.0/24", "3.3.3.0/24", "2001:db8::/48"])
ASNS = st.sampled_from([None, 0, 9808, 4134, 4837])
PROVINCES = st.sampled_from([None, "", "CN-BJ", "CN-SH", "CN-GD"])
CARRIERS = st.sampled_from([None, "", "中国移动", "中国联通", "中国电信"])
TYPES = st.sampled_from([None, "", "wifi", "cellular"])
HOURS = st.one_of(st.none(), st.integers(0, 23))
# (ip_anonymous, ip_relay) as the checker stores them: a relay login is anonymous too.
ANONYMISED = st.sampled_from([(False, False), (True, False), (True, True)])


@st.composite
def logins(draw: st.DrawFn, ts: st.SearchStrategy[float]) -> LoginEvent:
    anonymous, relay = draw(ANONYMISED)
    return event(
        draw(ts),
        draw(st.integers(0, 1000)),
        device_id=draw(DEVICES),
        ip=draw(IPS),
        network=draw(NETWORKS),
        asn=draw(ASNS),
        province=draw(PROVINCES),
        carrier=draw(CARRIERS),
        network_type=draw(TYPES),
        hour=draw(HOURS),
        ip_anonymous=anonymous,
        ip_relay=relay,
    )


AGES = st.one_of(
    st.floats(0, 40 * DAY, allow_nan=False),
    st.sampled_from([DAY, 3 * DAY, 7 * DAY, 30 * DAY]),  # exactly on a boundary
)
WINDOWS = st.one_of(
    st.sampled_from([(7 * DAY, 30 * DAY), (DAY,), (3 * DAY, 7 * DAY, 30 * DAY)]),
    st.sampled_from([(30 * DAY, 7 * DAY), (7 * DAY, 7 * DAY), (0.0, 7 * DAY)]),
    # Whole seconds as the rules give them (ints), alone and beside floats.
    st.sampled_from([(604_800, 2_592_000), (86_400,), (2_592_000, 604_800.0), (0, 1)]),
    st.lists(st.floats(0, 45 * DAY, allow_nan=False), min_size=1, max_size=4).map(tuple),
)


@settings(max_examples=600, deadline=None)
@given(
    history=st.lists(logins(AGES.map(lambda age: NOW - age)), max_size=60),
    in_order=st.booleans(),
    current=logins(st.just(NOW)),
    windows=WINDOWS,
    share=st.sampled_from([0.05, 0.2, 0.5]),
)
def test_windows_equal_reference(
    history: list[LoginEvent],
    in_order: bool,
    current: LoginEvent,
    windows: tuple[float, ...],
    share: float,
) -> None:
    if in_order:  # a store's history; out of order: the same cut-off rule regardless
        history.sort(key=lambda e: e.ts)
    check(history, current, windows, share)


def test_empty_history() -> None:
    check([], event(NOW, hour=None), (7 * DAY, 30 * DAY))
    check([], event(NOW, device_id=None, province=None, carrier=None), (DAY,))
    assert account_stability_windows([], event(NOW), (), SHANGHAI) == []


def test_all_outside_the_windows() -> None:
    history = [event(NOW - 40 * DAY + n * 3600, n, device_id=f"d{n % 3}") for n in range(10)]
    check(history, event(NOW, device_id="d1"), (7 * DAY, 30 * DAY))
    got = account_stability_windows(history, event(NOW), (7 * DAY, 30 * DAY), SHANGHAI)
    assert [s.sessions for s in got] == [0, 0]
    assert [s.window_days for s in got] == [7.0, 30.0]


def test_boundary_is_inside() -> None:
    """A login exactly one window before this one counts in that window."""
    history = [
        event(NOW - 30 * DAY, 1, device_id="d2", hour=3),
        event(NOW - 30 * DAY + 1, 2, device_id="d3", province=""),
        event(NOW - 7 * DAY - 1, 3, device_id="d1", carrier=None),
        event(NOW - 7 * DAY, 4, device_id="d2", network=None),
        event(NOW - 60, 5, device_id="d1", hour=23),
    ]
    windows = (30 * DAY, 7 * DAY, 7 * DAY - 0.5, 7 * DAY + 1)
    check(history, event(NOW, device_id="d2"), windows)
    got = account_stability_windows(history, event(NOW), windows, SHANGHAI)
    assert [s.sessions for s in got] == [5, 2, 1, 3]


def test_same_logins_in_both_windows() -> None:
    history = [event(NOW - n * 3600, n, hour=n % 24) for n in range(5, 0, -1)]
    check(history, event(NOW), (7 * DAY, 30 * DAY, DAY))


@settings(max_examples=300, deadline=None)
@given(
    history=st.lists(logins(AGES.map(lambda age: NOW - age)), max_size=40),
    current=logins(st.just(NOW)),
    window=st.sampled_from([DAY, 7 * DAY, 30 * DAY]),
)
def test_entropy_terms_summed_in_the_same_order(
    history: list[LoginEvent], current: LoginEvent, window: float
) -> None:
    """Float sums depend on order: both functions take the entropy of the same count
    lists, in the same order (a rounding to 4 places would hide a last-bit difference).
    The one-pass code looks each list up in its memo of entropies (a list of fewer than
    two counts has entropy 0.0 and is not looked up)."""
    history.sort(key=lambda e: e.ts)
    real = stability._entropy_of
    seen: list[list[int]] = []

    def record(values: list[int]) -> float:
        seen.append(list(values))
        return real(values)

    class Recorded(dict[tuple[int, ...], float]):
        def __missing__(self, counts: tuple[int, ...]) -> float:
            return record(list(counts))  # every lookup: nothing is kept

    with mock.patch.object(stability, "_entropy_of", record):
        account_stability(history, current, window, SHANGHAI)
    want = [counts for counts in seen if len(counts) >= 2]
    seen.clear()
    with mock.patch.object(stability, "_ENTROPIES", Recorded()):
        account_stability_windows(history, current, (window,), SHANGHAI)
    assert seen == want


def test_the_entropy_memo_keeps_only_short_patterns() -> None:
    """Patterns of up to 32 counts are kept; a longer one (an account on more networks
    than that) is summed each time, so the memo's memory stays bounded."""
    stability._ENTROPIES.clear()
    many = {f"10.0.{n}.0/24": 1 + n % 3 for n in range(40)}
    few = {"10.0.0.0/24": 3, "10.0.1.0/24": 1}
    assert stability._entropy(many) == stability._entropy_of(list(reversed(many.values())))
    assert len(stability._ENTROPIES) == 0
    stability._entropy(few)
    assert list(stability._ENTROPIES) == [(1, 3)]
    assert stability._entropy({"a": 1}) == stability._entropy_of([1]) == 0.0


def test_night_logins_count_the_night_hours() -> None:
    hours = {hour: hour + 1 for hour in range(24)}
    assert stability._night_logins(hours) == sum(hours[h] for h in stability.NIGHT_HOURS)
    assert stability._night_logins({12: 5}) == 0


ZONES = [
    SHANGHAI,
    ZoneInfo("America/New_York"),  # DST both ways
    ZoneInfo("Asia/Kathmandu"),  # +05:45
    ZoneInfo("Australia/Lord_Howe"),  # half-hour DST
    ZoneInfo("UTC"),
    timezone(timedelta(hours=-3, minutes=-30)),
]


@settings(max_examples=500, deadline=None)
@given(
    ts=st.floats(-2_000_000_000, 4_000_000_000, allow_nan=False),
    zone=st.sampled_from(ZONES),
)
def test_local_hour_is_the_astimezone_hour(ts: float, zone: tzinfo) -> None:
    assert stability._local_hour(ts, zone) == datetime.fromtimestamp(ts, UTC).astimezone(zone).hour


@settings(max_examples=500, deadline=None)
@given(values=st.lists(st.integers(1, 300), max_size=30))
def test_entropy_of_is_the_plain_sum(values: list[int]) -> None:
    """The reference hands its counts to the production _entropy_of, so check that one
    against the plain expression, bit for bit (the property tests would not see a change
    in the order or grouping of its float operations)."""
    if len(values) < 2:
        want = 0.0
    else:
        total = sum(values)
        want = round(-sum([n / total * math.log2(n / total) for n in values]) + 0.0, 4)
    got = stability._entropy_of(values)
    assert repr(got) == repr(want)


def test_the_c_walk_is_built_where_ci_runs() -> None:
    """CI has a C compiler, so the package it installs has the C walk: a build that
    quietly fell back to Python would lose the speed without a word."""
    if _native is None:
        if os.environ.get("CI"):
            pytest.fail("fingerprint._native was not built (see setup.py)")
        pytest.skip("fingerprint._native not built here (no C compiler at install)")
    assert stability.native_walk() == (os.environ.get("FINGERPRINT_NATIVE", "").strip() != "0")


@pytest.mark.skipif(_native is None, reason="fingerprint._native not built here")
def test_the_c_walk_leaves_other_inputs_to_python() -> None:
    """Inputs outside the exact case the C walk takes are passed back (None), and the
    function a caller uses still answers them, as the Python walk does."""
    assert _native is not None
    history = [event(NOW - n * 3600, n, hour=n % 24) for n in range(6, 0, -1)]
    current = event(NOW)
    windows = (7 * DAY, 30 * DAY)
    cases: list[tuple[Any, Any, Any, Any]] = [
        (iter(history), current, windows, 0.05),  # not a tuple or list
        (deque(history), current, windows, 0.05),
        ([*history[:-1], history[-1]._replace(ts=int(NOW - 60))], current, windows, 0.05),
        (history, current._replace(ts=int(NOW)), windows, 0.05),  # int times
        (history, current, (7 * DAY, math.nan), 0.05),
        (history, current, (2**53 + 1, 7 * DAY), 0.05),  # no double holds it exactly
        (history, current, (True, 7 * DAY), 0.05),  # a bool is no int here
        (history, current, windows, 1),  # an int share
    ]
    for logins, now, lengths, share in cases:
        assert _native.stability_windows(logins, now, lengths, SHANGHAI, share) is None
        if isinstance(logins, Iterator):
            continue  # used up by the call above
        want = stability.python_stability_windows(logins, now, lengths, SHANGHAI, share)
        assert account_stability_windows(logins, now, lengths, SHANGHAI, share) == want

    # Logins that are no LoginEvent (a list, a tuple of 15 or 16): passed back too
    # (the Python walk then reads them by name, and fails as it always did), and a
    # subclass, which could name its fields otherwise.
    class Subclass(LoginEvent):
        pass

    for odd in (list(history[-1]), tuple(history[-1])[:15], tuple(history[-1])):
        logins = [*history[:-1], odd]
        assert _native.stability_windows(logins, current, windows, SHANGHAI, 0.05) is None
    logins = [*history[:-1], Subclass(*history[-1])]
    assert _native.stability_windows(logins, current, windows, SHANGHAI, 0.05) is None
    assert _native.stability_windows(history, Subclass(*current), windows, SHANGHAI, 0.05) is None


@pytest.mark.skipif(_native is None, reason="fingerprint._native not built here")
def test_the_c_walk_raises_what_the_python_walk_raises() -> None:
    assert _native is not None
    history = (event(NOW - 3600, 1, ip=["not", "hashable"]),)
    for walk in (stability.python_stability_windows, _native_only):
        with pytest.raises(TypeError, match="unhashable"):
            walk(history, event(NOW), (7 * DAY,), SHANGHAI, 0.05)
    # A type that is no tuple: refused when bound, not misread later.
    with pytest.raises(TypeError):
        _native.bind_stability({}, int)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _native.bind_event(int)  # type: ignore[arg-type]


def test_fingerprint_native_0_turns_the_c_walk_off() -> None:
    code = "from fingerprint.features import stability; print(stability.native_walk())"
    env = {**os.environ, "FINGERPRINT_NATIVE": "0"}
    off = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert off.stdout.strip() == "False"


@pytest.mark.skipif(_native is None, reason="fingerprint._native not built here")
def test_an_extension_built_from_other_source_is_not_used() -> None:
    """An editable install whose _native.c changed since it was built (a pull, an
    edit) runs the Python code and says so, rather than C built from other code."""
    assert _native is not None
    assert native.native_source_matches(_native.SOURCE_DIGEST)
    assert not native.native_source_matches("0" * 64)
    built = _native.SOURCE_DIGEST
    try:
        _native.SOURCE_DIGEST = "0" * 64
        with pytest.warns(RuntimeWarning, match="built from another"):
            assert native._load() is None
    finally:
        _native.SOURCE_DIGEST = built
    assert native._load() is _native


@pytest.mark.skipif(_native is None, reason="fingerprint._native not built here")
@settings(max_examples=600, deadline=None)
@given(
    history=st.lists(logins(AGES.map(lambda age: NOW - age)), max_size=60),
    later=st.lists(logins(st.just(NOW + 60)), max_size=3),
    current=logins(st.just(NOW)),
    latitudes=st.lists(st.sampled_from([None, 39.9, 31.2]), min_size=64, max_size=64),
    skip=st.integers(0, 5),
    all_hours=st.booleans(),
    windows=WINDOWS,
    share=st.sampled_from([0.05, 0.2, 0.5]),
)
def test_the_packed_walk_counts_what_the_object_walk_counts(
    history: list[LoginEvent],
    later: list[LoginEvent],
    current: LoginEvent,
    latitudes: list[float | None],
    skip: int,
    all_hours: bool,
    windows: tuple[float, ...],
    share: float,
) -> None:
    """The walk over a packed window (as the memory store keeps it: the logins in
    time order, this one's record among them, later ones after it) gives the object
    walk's numbers over the same logins decoded, as the store hands them out. Places
    of one province differ by their coordinates, so provinces are counted by text,
    not by place; networks are derived from the address or written out. It takes
    every window whose logins all have an hour."""
    assert _native is not None
    from fingerprint import history as store

    if all_hours:  # every login has an hour: the walk counts them all
        current = current._replace(hour=current.hour if current.hour is not None else 5)

    # A store is given text addresses (None is the object walk's own case), and
    # the checker's logins all have an hour (half the examples: the walk's own case).
    history = sorted(
        (
            e._replace(
                latitude=latitudes[n],
                ip=e.ip or "",
                hour=(n * 7) % 24 if all_hours and e.hour is None else e.hour,
            )
            for n, e in enumerate(history)
        ),
        key=lambda e: e.ts,
    )
    current = current._replace(ip=current.ip or "")
    later = [e._replace(ip=e.ip or "") for e in later]
    symbols: list[Any] = [None]
    logins_packed = [*history, current, *later]
    records = b"".join(store._pack(login, symbols) for login in logins_packed)
    window = store._Window(records, tuple(symbols))
    start, position = min(skip, len(history)), len(history)
    decoded = tuple(store._unpack("acct", window, start, position))
    want = stability.python_stability_windows(decoded, current, windows, SHANGHAI, share)
    got = _native.packed_stability(
        window.records, window.symbols, start, position, current, windows, SHANGHAI, share
    )
    if got is None:  # only a login without an hour, inside a window, is passed on
        assert not all_hours and any(login.hour is None for login in decoded)
        return
    assert got == want
    assert [repr(s) for s in got] == [repr(s) for s in want]
    assert all(type(s) is Stability for s in got)
    by_window = stability.stability_by_window(
        stability.StabilityRequest(
            windows_days=tuple(range(len(windows))), windows_seconds=windows,
            unusual_hour_share=share,
        ),
        decoded, current, SHANGHAI, (window.records, window.symbols, start, position),
    )  # fmt: skip
    assert list(by_window.values()) == want


@pytest.mark.skipif(_native is None, reason="fingerprint._native not built here")
@settings(max_examples=300, deadline=None)
@given(
    history=st.lists(logins(AGES.map(lambda age: NOW - age)), min_size=2, max_size=60),
    current=logins(st.just(NOW)),
)
def test_the_c_walk_computes_the_entropies_it_misses_as_python_does(
    history: list[LoginEvent], current: LoginEvent
) -> None:
    """A count pattern missing from the memo is computed in C (the same float
    operations in the same order as _entropy_of) and kept through the memo's own put:
    every entropy the C walk kept is _entropy_of's, to the last bit."""
    assert _native is not None
    history.sort(key=lambda e: e.ts)

    def in_python(counts: tuple[int, ...]) -> float:
        raise AssertionError(f"{counts} computed by the memo's Python compute")

    memo = stability.BoundedMemo(8_192, in_python, keep=lambda counts: len(counts) <= 32)
    with mock.patch.object(stability, "_ENTROPIES", memo):
        _native_only(history, current, (7 * DAY, 30 * DAY), SHANGHAI, 0.05)
    for counts, entropy in memo.items():
        want = stability._entropy_of(list(counts))
        assert entropy == want and repr(entropy) == repr(want)


@pytest.mark.skipif(_native is None, reason="fingerprint._native not built here")
@settings(max_examples=500, deadline=None)
@given(st.lists(st.integers(1, 10**6), min_size=1, max_size=40))
def test_the_c_entropy_is_the_same_float_before_its_rounding(counts: list[int]) -> None:
    """The sum _entropy_of rounds, to the last bit: the terms in the order given,
    summed by sum() (rounding to 4 places would hide a term summed out of order)."""
    assert _native is not None
    total = sum(counts)
    terms = []
    for n in counts:
        share = n / total
        terms.append(share * math.log2(share))
    want = -sum(terms) + 0.0
    got = _native.entropy_sum(tuple(counts))
    assert got == want and repr(got) == repr(want)
    if len(counts) >= 2:
        assert round(got, 4) == stability._entropy_of(counts)
    with pytest.raises((TypeError, ValueError)):
        _native.entropy_sum((*counts, 0))


@pytest.mark.skipif(_native is None, reason="fingerprint._native not built here")
@settings(max_examples=300, deadline=None)
@given(
    history=st.lists(logins(AGES.map(lambda age: NOW - age)), max_size=60),
    current=logins(st.just(NOW)),
)
def test_the_packed_walk_looks_up_the_object_walks_count_patterns(
    history: list[LoginEvent], current: LoginEvent
) -> None:
    """Networks and hours counted in the order the object walk's dicts keep them:
    the same count patterns looked up, in the same order (a rounded entropy would
    hide counts summed in another order)."""
    assert _native is not None
    from fingerprint import history as store

    history = sorted(
        (e._replace(ip=e.ip or "", hour=e.hour if e.hour is not None else 3) for e in history),
        key=lambda e: e.ts,
    )
    current = current._replace(ip=current.ip or "")
    symbols: list[Any] = [None]
    records = b"".join(store._pack(login, symbols) for login in [*history, current])
    decoded = tuple(store._unpack("acct", store._Window(records, tuple(symbols)), 0, len(history)))
    seen: list[tuple[int, ...]] = []

    class Recorded(dict[tuple[int, ...], float]):
        def __missing__(self, counts: tuple[int, ...]) -> float:
            seen.append(counts)
            return stability._entropy_of(list(counts))

    windows = (7 * DAY, 30 * DAY)
    with mock.patch.object(stability, "_ENTROPIES", Recorded()):
        stability.python_stability_windows(decoded, current, windows, SHANGHAI, 0.05)
        want = list(seen)
        seen.clear()
        got = _native.packed_stability(
            records, tuple(symbols), 0, len(history), current, windows, SHANGHAI, 0.05
        )
    assert got is not None
    assert seen == want
