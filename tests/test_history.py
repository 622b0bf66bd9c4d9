"""The packed in-memory store against a plain reference: lists of LoginEvents.

The store packs each login into a struct record and a per-account symbol table that
is rebuilt as logins age out; whatever it does inside, a read must give back exactly
the events a list-of-objects store gives, in the same order, through late inserts,
window trims, the per-account cap and symbol-table rebuilds.
"""

from __future__ import annotations

import bisect
import struct
import sys
import threading
from collections import OrderedDict
from hashlib import blake2b
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingerprint import history
from fingerprint.history import (
    LoginEvent,
    MemoryHistoryStore,
    Windows,
    _pack,
    _python_pack,
    _unpack,
    _Window,
    session_digest,
)

T0 = 1_790_000_000.0


class ReferenceStore:
    """The semantics, spelled out with a sorted list per account."""

    def __init__(self, evict_every: int) -> None:
        self.accounts: OrderedDict[str, list[LoginEvent]] = OrderedDict()
        self.watermark = float("-inf")
        self.evict_every, self.calls = evict_every, 0

    def record_and_fetch(self, event: LoginEvent, windows: Windows) -> tuple[LoginEvent, ...]:
        self.watermark = max(self.watermark, event.ts)
        events = self.accounts.setdefault(event.account_id, [])
        self.accounts.move_to_end(event.account_id)
        times = [e.ts for e in events]
        position = bisect.bisect_right(times, event.ts)
        events.insert(position, event)
        times.insert(position, event.ts)
        start = bisect.bisect_left(times, event.ts - windows.account_seconds)
        before = tuple(events[start:position])
        cutoff = bisect.bisect_left(times, times[-1] - windows.account_seconds)
        cutoff += max(0, len(events) - cutoff - windows.max_events_per_account)
        del events[:cutoff]
        # Every evict_every calls, idle accounts go in least-recently-touched order,
        # up to the first live one.
        self.calls += 1
        while self.calls % self.evict_every == 0 and self.accounts:
            account, kept = next(iter(self.accounts.items()))
            if kept[-1].ts >= self.watermark - windows.account_seconds:
                break
            del self.accounts[account]
        return before


def _event(values: dict[str, Any]) -> LoginEvent:
    return LoginEvent(**values)


events_strategy = st.fixed_dictionaries(
    {
        # Half-hour steps too: logins exactly a window apart (the edge) are common.
        "ts": (st.integers(0, 40 * 3600) | st.integers(0, 80).map(lambda k: k * 1800)).map(
            lambda s: T0 + s
        ),
        "session_digest": st.integers(-(2**63), 2**63 - 1),
        "account_id": st.sampled_from(["a", "b", "c"]),
        "device_id": st.none() | st.sampled_from(["d1", "d2", "设备3"]),
        "ip": st.sampled_from(
            [
                *("1.2.3.4", "1.2.3.5", "240e:3b0::1", "", "01.2.3.4", "1.2.3", "1.2.3.4\x00"),
                *("100.100.100.100", "255.0.10.99"),  # octets of each width at each place
            ]
        )
        | st.integers(0, 2**32 - 1).map(lambda n: f"10.{n % 256}.{n // 256 % 256}.{n % 7}")
        | st.ip_addresses(v=4).map(str),
        "province": st.none() | st.sampled_from(["CN-BJ", "CN-GD", ""]),
        "latitude": st.none() | st.floats(-90, 90),
        "longitude": st.none() | st.floats(-180, 180),
        "accuracy_km": st.none() | st.integers(0, 1000),
        "ip_anonymous": st.booleans(),
        "network": st.none()
        | st.sampled_from(["1.2.3.0/24", "240e:3b0::/48", "100.100.100.0/24", "255.0.10.0/24"]),
        "asn": st.none() | st.integers(0, 2**32 - 1),
        "network_type": st.none() | st.sampled_from(["wifi", "cellular"]),
        "carrier": st.none() | st.sampled_from(["中国移动", "中国联通", "x" * 300]),
        "hour": st.none() | st.integers(0, 23),
        "ip_relay": st.booleans(),
    }
).map(_event)


# The store packs and decodes its windows in C where fingerprint._native is built;
# the store tests run it both ways (None: the Python code, as without a compiler).
DECODERS = [None, *([history.NATIVE] if history.NATIVE is not None else [])]


@pytest.fixture(params=DECODERS, ids=lambda native: "python" if native is None else "c")
def decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "NATIVE", request.param)


@pytest.mark.usefixtures("decoder")
@settings(max_examples=300, deadline=None)
@given(
    st.lists(events_strategy, max_size=120),
    st.integers(1, 30),
    st.integers(1, 40),
    st.integers(1, 6),
    st.sampled_from([(16, 65_536), (1, 1_000), (2, 12), (3, 0), (5, 4)]),
    st.booleans(),
)
def test_packed_store_reads_back_what_a_list_store_reads(
    events: list[LoginEvent],
    window_hours: int,
    cap: int,
    evict_every: int,
    decoded: tuple[int, int],
    in_time_order: bool,
) -> None:
    """Also with the long windows kept decoded from the first login on (1), within a
    budget that drops some (12) or all (0, or 4: below the windows kept). Each window
    kept decoded is as long as the window it decodes. Half the logs come in time
    order, as most do: the store records those its own shorter way (the newest login,
    nothing to trim), up to the cap and the window's edge."""
    if in_time_order:
        events = sorted(events, key=lambda event: event.ts)
    windows = Windows(window_hours * 3600.0, window_hours * 3600.0, max_events_per_account=cap)
    least, budget = decoded
    store = MemoryHistoryStore(evict_every, decoded_from=least, decoded_logins=budget)
    reference = ReferenceStore(evict_every)
    for event in events:
        got = store.record_and_fetch(event, windows).account_events
        assert got == reference.record_and_fetch(event, windows)
        assert 0 <= store.decoded_logins() <= budget
        kept, accounts = store._decoded.entries, store._accounts  # type: ignore[attr-defined]
        assert {a: len(e) for a, e in kept.items()} == {a: accounts[a].logins() for a in kept}


@pytest.mark.parametrize(
    "offsets",
    [
        (0, 3600),  # the first login exactly at the window's edge: still inside
        (0, 3601),  # one second past it: out
        (0, 3599),
        (0, 1, 3601),  # out, while the next one stays
        (0, 3600, 3600, 7200),  # equal times
        (0, 600, 1200, 1800),  # past the cap of 3
        (0, 600, 1200),  # at the cap
    ],
)
def test_logins_in_time_order_at_the_window_edge_and_the_cap(offsets: tuple[int, ...]) -> None:
    """The store's own way for the newest login of a window (nothing to trim) takes
    exactly the logins the reference takes, at the edges where it must step aside."""
    windows = Windows(3600.0, 3600.0, max_events_per_account=3)
    store, reference = MemoryHistoryStore(), ReferenceStore(1_024)
    for n, offset in enumerate(offsets):
        event = LoginEvent(T0 + offset, n, "a", "d", "1.1.1.1", *[None] * 4, False)
        got = store.record_and_fetch(event, windows).account_events
        assert got == reference.record_and_fetch(event, windows)
    assert store._accounts["a"].logins() == len(reference.accounts["a"])  # type: ignore[attr-defined]


def test_long_windows_are_decoded_once() -> None:
    """A window of ``decoded_from`` logins or more is decoded whole once; after that,
    each login decodes only itself, and the logins read are the ones decoded before."""
    windows = Windows(30 * 86_400.0, 30 * 86_400.0)
    store = MemoryHistoryStore(decoded_from=4)
    views = []
    for n in range(8):
        event = LoginEvent(T0 + n * 60, n, "a", "d", "1.2.3.4", *[None] * 4, False)
        views.append(store.record_and_fetch(event, windows).account_events)
    assert [len(v) for v in views] == list(range(8))
    assert views[7][:6] == views[6]
    assert all(a is b for a, b in zip(views[7], views[6], strict=False))  # kept, not redone
    assert views[3][0] is not views[2][0]  # 3 logins in the window: decoded, not kept
    assert views[4][0] is views[3][0]  # 4 at the 4th call: kept from then on
    assert store.decoded_logins() == 8
    later = LoginEvent(T0 + 86_400, 9, "b", "d", "1.2.3.4", *[None] * 4, False)
    store.record_and_fetch(later, windows)
    store._evict_idle(Windows(60.0, 60.0))  # "a" idle a day: evicted, its logins too
    assert store.accounts() == 1
    assert store.decoded_logins() == 0


def test_decoded_windows_stay_within_their_budget() -> None:
    """Least recently used first out; a window decoded while another thread changed
    it is not kept (it would no longer be the window's decoding)."""
    windows = Windows(30 * 86_400.0, 30 * 86_400.0)
    store = MemoryHistoryStore(decoded_from=2, decoded_logins=7)
    for n, account in enumerate("aabbaacc"):
        event = LoginEvent(T0 + n * 60, n, account, "d", "1.2.3.4", *[None] * 4, False)
        store.record_and_fetch(event, windows)
    kept = store._decoded  # type: ignore[attr-defined]
    assert {a: len(e) for a, e in kept.entries.items()} == {"a": 4, "c": 2}  # b: out first
    assert kept.logins == store.decoded_logins() == 6
    window = store._accounts["b"]  # type: ignore[attr-defined]
    stale = window._replace(records=window.records[:])
    decoded = tuple(f"login {n}" for n in range(window.logins()))
    kept.keep("b", decoded, stale, window)  # the window changed meanwhile
    assert "b" not in kept.entries
    kept.keep("b", decoded, window, window)
    assert list(kept.entries) == ["c", "b"]  # "a" out: 2 + 2 logins fit in 7, not 4 more


def test_decoded_windows_hold_under_threads() -> None:
    """Threads recording logins of the same accounts at once, late ones too, the
    thread switch forced every microsecond: each window kept decoded is still exactly
    its packed window decoded, and every read is in time order."""
    windows = Windows(3600.0, 3600.0, max_events_per_account=40)
    store = MemoryHistoryStore(decoded_from=2, decoded_logins=100)
    unordered: list[str] = []

    def record(seed: int) -> None:
        for n in range(300):
            at = T0 + (n * 7 + seed * 13) % 900  # late logins land inside the window
            account = "abc"[(n + seed) % 3]
            event = LoginEvent(
                at, n, account, f"d{n % 5}", f"10.0.{seed}.{n % 7}", *[None] * 4, False
            )
            times = [e.ts for e in store.record_and_fetch(event, windows).account_events]
            if times != sorted(times):
                unordered.append(account)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=record, args=(seed,)) for seed in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not unordered
    kept, accounts = store._decoded.entries, store._accounts  # type: ignore[attr-defined]
    assert kept  # the test exercised the copies
    for account, logins in kept.items():
        window = accounts[account]
        assert logins == tuple(_unpack(account, window, 0, window.logins()))


def test_symbol_table_is_rebuilt_as_logins_age_out() -> None:
    store = MemoryHistoryStore()
    windows = Windows(3600.0, 3600.0, max_events_per_account=5)
    for n in range(5_000):  # a new IP every login: symbols would pass 65,535 unrebuilt
        ip = f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"
        event = LoginEvent(T0 + n, n, "a", "d", ip, None, None, None, None, False, ip + "/32")
        view = store.record_and_fetch(event, windows)
    assert [e.ip for e in view.account_events] == [
        f"10.0.19.{n % 256}" for n in range(4_994, 4_999)
    ]
    window = store._accounts["a"]
    assert len(window.symbols) <= 8 * 5 + 8


def test_device_side_matches_a_dict_of_accounts() -> None:
    store = MemoryHistoryStore()
    windows = Windows(3600.0, 3600.0, max_accounts_per_device=2)
    seen = []
    for n, account in enumerate(["a", "a", "b", "c", "a", "c"]):
        event = LoginEvent(T0 + n * 600, n, account, "shared", "1.1.1.1", *[None] * 4, False)
        seen.append(store.record_and_fetch(event, windows).device_accounts)
    assert seen == [
        (),
        ((T0, "a"),),
        ((T0 + 600, "a"),),
        ((T0 + 600, "a"), (T0 + 1200, "b")),
        ((T0 + 1200, "b"), (T0 + 1800, "c")),  # capped at 2: "a" dropped, then re-added
        ((T0 + 1800, "c"), (T0 + 2400, "a")),
    ]


def test_windows_reject_a_cap_the_symbol_table_cannot_index() -> None:
    with pytest.raises(ValueError, match="max_events_per_account"):
        Windows(3600.0, 3600.0, max_events_per_account=100_000)


def test_session_digest_is_stable_and_takes_any_text() -> None:
    assert session_digest("s-1") == session_digest("s-1") != session_digest("s-2")
    assert isinstance(session_digest("\ud800 lone surrogate"), int)
    assert -(2**63) <= session_digest("x") < 2**63
    # Stored by other processes and versions (Redis): the value never changes.
    assert session_digest("s-1") == 999470128570573571


@given(st.text())
def test_session_digest_is_blake2b_64_of_the_id(session_id: str) -> None:
    """Each digest copies one state made at import: still BLAKE2b-64 of the id's
    UTF-8 (lone surrogates passed), little-endian and signed."""
    raw = blake2b(session_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    assert session_digest(session_id) == int.from_bytes(raw, "little", signed=True)


@pytest.mark.skipif(history.NATIVE is None, reason="fingerprint._native not built here")
@settings(max_examples=300, deadline=None)
@given(st.lists(events_strategy, max_size=60), st.data())
def test_the_c_decoder_reads_what_the_python_decoder_reads(
    events: list[LoginEvent], data: st.DataObject
) -> None:
    """Any span of a packed window: the same LoginEvents, value for value and type for
    type (addresses as inet_ntoa writes them, -0.0 as -0.0, the hour None or an int)."""
    native = history.NATIVE
    assert native is not None
    symbols: list[Any] = [None]
    window = _Window(b"".join(_pack(event, symbols) for event in events), tuple(symbols))
    start = data.draw(st.integers(0, len(events)))
    stop = data.draw(st.integers(start, len(events)))
    want = tuple(_unpack("acct", window, start, stop))
    got = native.unpack_window("acct", window.records, window.symbols, start, stop)
    assert got == want
    assert [repr(login) for login in got] == [repr(login) for login in want]
    assert all(type(login) is LoginEvent for login in got)
    assert all(
        type(a) is type(b)
        for login, wanted in zip(got, want, strict=True)
        for a, b in zip(login, wanted, strict=True)
    )


@pytest.mark.skipif(history.NATIVE is None, reason="fingerprint._native not built here")
def test_the_c_decoder_refuses_what_is_not_a_window() -> None:
    native = history.NATIVE
    assert native is not None
    symbols: list[Any] = [None]
    event = LoginEvent(T0, 1, "a", "d1", "1.2.3.4", None, None, None, None, False)
    records = _pack(event, symbols)
    with pytest.raises(ValueError, match="outside"):
        native.unpack_window("a", records, tuple(symbols), 0, 2)
    with pytest.raises(ValueError, match="outside"):
        native.unpack_window("a", records, tuple(symbols), 1, 0)
    with pytest.raises(IndexError):  # a symbol past its table: corrupt, never guessed
        native.unpack_window("a", records, (None,), 0, 1)
    assert native.unpack_window("a", records, tuple(symbols), 1, 1) == ()


# Text an address may be: dotted quads, near misses (a leading zero, 256, five parts,
# a space, a NUL) and other text, so the C reading of a dotted quad meets them all.
address_text = st.text(alphabet="0123456789.:x \x00é", max_size=20) | st.sampled_from(
    ["1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "1.2.3.04", "1.2.3.4.5",
     "1.2.3.4 ", " 1.2.3.4", "1..3.4", "1.2.3.", "0x7f.0.0.1", "1.2.3.4\x00", "١.2.3.4"]
)  # fmt: skip


@pytest.mark.skipif(history.NATIVE is None, reason="fingerprint._native not built here")
@settings(max_examples=400, deadline=None)
@given(st.lists(events_strategy, max_size=40), st.lists(address_text, max_size=40), st.data())
def test_the_c_packer_packs_what_the_python_packer_packs(
    events: list[LoginEvent], addresses: list[str], data: st.DataObject
) -> None:
    """The same record, byte for byte, and the same symbols added in the same order,
    login after login into one window (a place shared as the Python code shares it)."""
    native = history.NATIVE
    assert native is not None
    for index, address in enumerate(addresses[: len(events)]):
        network = data.draw(st.sampled_from([None, address, f"{address}/24", "1.2.3.0/24"]))
        events[index] = events[index]._replace(ip=address, network=network)
    got: list[Any] = [None]
    want: list[Any] = [None]
    for event in events:
        packed = native.pack_login(event, got, history._PLACES, history._share_place)
        assert packed == _python_pack(event, want)
        assert got == want
        assert [type(value) for value in got] == [type(value) for value in want]
    places = [value for value in got if type(value) is tuple]
    assert all(history._PLACES[place] is place for place in places)


def _raised(call: Any) -> Any:
    try:
        return call()
    except Exception as exc:  # the same exception, or the same value
        return type(exc)


@pytest.mark.skipif(history.NATIVE is None, reason="fingerprint._native not built here")
@pytest.mark.parametrize(
    "change",
    [
        {"ts": int(T0)},  # an int time
        {"session_digest": 2**63},  # past a signed 64-bit integer: struct.error
        {"session_digest": 2**63, "hour": 5},  # ... whatever the hour
        {"session_digest": -(2**63) - 1, "hour": 5},
        {"hour": 2**70},  # past a C long
        {"session_digest": True},
        {"hour": True},
        {"hour": 128},  # past a signed byte: struct.error
        {"hour": -129},
        {"ip": None},  # no text: AttributeError
        {"ip_anonymous": 1},
        {"ip_relay": None},
        {"network": b"1.2.3.0/24"},
        {"latitude": [1.0]},  # no place value
    ],
)
def test_the_c_packer_leaves_the_rest_to_python(change: dict[str, Any]) -> None:
    """Outside the common case the C packer touches nothing and returns None; the
    packer the store calls then answers as the Python one, record or exception."""
    native = history.NATIVE
    assert native is not None
    event = LoginEvent(T0, 1, "a", "d1", "1.2.3.4", "CN-BJ", 1.0, 2.0, 3, False)._replace(**change)
    symbols: list[Any] = [None]
    assert native.pack_login(event, symbols, history._PLACES, history._share_place) is None
    assert symbols == [None]
    assert _raised(lambda: _pack(event, [None])) == _raised(lambda: _python_pack(event, [None]))


@pytest.mark.skipif(history.NATIVE is None, reason="fingerprint._native not built here")
def test_the_c_packer_refuses_a_symbol_past_an_unsigned_short() -> None:
    """A symbol table past 65,535 entries cannot be indexed (the store rebuilds its
    tables long before): the Python packer raises struct.error, the C one passes it
    back with the symbol added, as the Python one adds it, and the store's packer
    raises the same error."""
    native = history.NATIVE
    assert native is not None
    event = LoginEvent(T0, 1, "a", "new device", "1.2.3.4", None, None, None, None, False)
    symbols: list[Any] = [None, *range(1, 0x10000)]
    assert native.pack_login(event, symbols, history._PLACES, history._share_place) is None
    assert symbols[-1] == "new device" and len(symbols) == 0x10001
    with pytest.raises(struct.error):
        _pack(event, symbols)
    with pytest.raises(struct.error):
        _python_pack(event, [None, *range(1, 0x10000)])


def _python_in_order(
    window: _Window, event: LoginEvent, windows: Windows, monkeypatch: pytest.MonkeyPatch
) -> tuple[_Window, int, int, str | None, _Window] | None:
    """The store's own way for the newest login, in Python alone."""
    store = MemoryHistoryStore()
    with monkeypatch.context() as patched:
        patched.setattr(history, "NATIVE", None)
        return store._record_in_order(event, window, windows)  # type: ignore[attr-defined]


@pytest.mark.skipif(history.NATIVE is None, reason="fingerprint._native not built here")
@settings(max_examples=400, deadline=None)
@given(
    st.lists(events_strategy, max_size=30),
    events_strategy,
    st.integers(1, 40),
    st.sampled_from([3600.0, 7200, 40 * 3600.0, 0.0, float("inf")]),
)
def test_the_c_append_appends_what_the_python_store_appends(
    earlier: list[LoginEvent], event: LoginEvent, cap: int, seconds: float
) -> None:
    """The newest login of a window, appended in C: the same window (records, symbols
    and their types), the same count of logins before it and the same copy of the
    device id as the store's Python way, or None wherever the Python way steps aside
    (not the newest, past the window's edge or its cap)."""
    native = history.NATIVE
    assert native is not None
    symbols: list[Any] = [None]
    earlier = sorted(earlier, key=lambda login: login.ts)
    window = _Window(b"".join(_pack(login, symbols) for login in earlier), tuple(symbols))
    windows = Windows(seconds, seconds, max_events_per_account=cap)
    got = native.append_login(
        _Window, window, event, cap, seconds, history._PLACES, history._share_place
    )
    with pytest.MonkeyPatch.context() as monkeypatch:
        want = _python_in_order(window, event, windows, monkeypatch)
    if want is None:
        assert got is None
        return
    assert got is not None
    read, logins, own = got
    assert type(read) is _Window and read == want[0] and want[1:3] == (0, logins)
    assert [type(value) for value in read.symbols] == [type(v) for v in want[0].symbols]
    assert own == want[3] and (own is None or own is read.symbols[read.symbols.index(own)])


@pytest.mark.skipif(history.NATIVE is None, reason="fingerprint._native not built here")
@pytest.mark.parametrize(
    ("change", "cap", "seconds"),
    [
        ({"ts": int(T0) + 10}, 5, 3600.0),  # an int time
        ({"device_id": 7}, 5, 3600.0),  # a device id of no text
        ({"hour": True}, 5, 3600.0),  # the packer's own refusals
        ({}, 5.0, 3600.0),  # a cap of no int
        ({}, True, 3600.0),  # ... a bool
        ({}, 2**70, 3600.0),  # ... past a C long long
        ({}, 5, float("nan")),  # no window
        ({}, 5, 2**60 + 1),  # ... an int no double holds exactly
        ({}, 5, "3600"),
    ],
)
def test_the_c_append_leaves_the_rest_to_python(
    change: dict[str, Any], cap: Any, seconds: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside the common case the C append returns None before it changes anything,
    and the store's Python way then answers."""
    native = history.NATIVE
    assert native is not None
    symbols: list[Any] = [None]
    first = LoginEvent(T0, 1, "a", "d1", "1.2.3.4", "CN-BJ", 1.0, 2.0, 3, False)
    window = _Window(_pack(first, symbols), tuple(symbols))
    event = first._replace(**{"ts": T0 + 10, "session_digest": 2, **change})
    places = dict(history._PLACES)
    args = (window, event, cap, seconds, history._PLACES, history._share_place)
    assert native.append_login(_Window, *args) is None
    assert places == history._PLACES
    with pytest.raises(TypeError):
        native.append_login(_Window, window, event, 5, 3600.0, [], history._share_place)


@pytest.mark.skipif(history.NATIVE is None, reason="fingerprint._native not built here")
@pytest.mark.parametrize("device", [None, "", "d1", "d2"])
def test_the_c_append_gives_the_device_ids_own_copy(device: str | None) -> None:
    """The window's own copy of the device id (the one the table first held), or None
    for no id and for "" (history counts neither as a device)."""
    native = history.NATIVE
    assert native is not None
    symbols: list[Any] = [None]
    first = LoginEvent(T0, 1, "a", "".join(["d", "1"]), "1.2.3.4", None, None, None, None, False)
    window = _Window(_pack(first, symbols), tuple(symbols))
    event = first._replace(ts=T0 + 10, device_id=device)
    got = native.append_login(
        _Window, window, event, 5, 3600.0, history._PLACES, history._share_place
    )
    read, logins, own = got
    assert logins == 1
    # A window of another type: not a window the store made.
    rest = (event, 5, 3600.0, history._PLACES, history._share_place)
    assert native.append_login(_Window, tuple(window), *rest) is None
    if not device:
        assert own is None
    else:
        assert own == device and own is read.symbols[read.symbols.index(device)]
        assert (own is symbols[1]) == (device == "d1")


def _table_state(table: dict[str, Any]) -> list[Any]:
    """A table's keys, pairs and dicts in their order (dict order is recency order)."""
    return [
        (key, list(seen.items()) if isinstance(seen, dict) else seen) for key, seen in table.items()
    ]


# One note on a device or an address: which key, which account, when, how far back
# the caller reads, and the cap on accounts a key keeps.
notes_strategy = st.lists(
    st.tuples(
        st.sampled_from(["k1", "k2", "k3"]),
        st.sampled_from(["a", "b", "c", "d", "e"]),
        st.integers(0, 40) | st.floats(0, 40, allow_nan=False),
        st.integers(0, 20),
        st.integers(1, 4),
    ),
    max_size=60,
)


@pytest.mark.skipif(history.NATIVE is None, reason="fingerprint._native not built here")
@settings(max_examples=300, deadline=None)
@given(notes_strategy)
def test_the_c_record_on_notes_what_python_notes(
    notes: list[tuple[str, str, float, int, int]],
) -> None:
    """The same accounts returned, and the same tables left (keys, pairs, dicts and
    their order), note after note, times early and late, ints and floats, any cap."""
    native = history.NATIVE
    assert native is not None
    in_c: dict[str, Any] = {}
    in_python: dict[str, Any] = {}
    for key, account, ts, back, cap in notes:
        # The key kept is an equal string of another object, as the store's own copy.
        kept = "".join(key)
        got = native.record_on(in_c, key, kept, account, ts, ts - back, cap)
        want = history._python_record_on(in_python, key, kept, account, ts, ts - back, cap)
        assert got == want
        assert _table_state(in_c) == _table_state(in_python)
        assert [type(seen) for seen in in_c.values()] == [type(s) for s in in_python.values()]
        # The key objects kept are the ones given as ``key``, not the popped ones.
        assert [id(k) for k in in_c] == [id(k) for k in in_python]


@pytest.mark.skipif(history.NATIVE is None, reason="fingerprint._native not built here")
@pytest.mark.parametrize(
    ("table", "args"),
    [
        ({"k": (1.0, "a")}, ("k", "k", "b", True, 0.0, 3)),  # a bool is no time here
        ({"k": (1.0, "a")}, ("k", "k", "b", "2", 0.0, 3)),
        ({"k": (1.0, "a")}, ("k", "k", b"b", 2.0, 0.0, 3)),
        ({"k": (1.0, "a")}, ("k", "k", "b", 2.0, 0.0, -1)),  # no cap a store has
        ({"k": (1.0, "a")}, ("k", "k", "b", 2.0, 0.0, 2**70)),
        ({"k": (1.0, "a")}, ("k", "k", "b", 2.0, 0.0, 3.0)),
        ({"k": (1.0, "a", 1)}, ("k", "k", "b", 2.0, 0.0, 3)),  # not a pair
        ({"k": ("1", "a")}, ("k", "k", "b", 2.0, 0.0, 3)),
        ({"k": {"a": 1.0, "b": None}}, ("k", "k", "b", 2.0, 0.0, 3)),
        ({"k": {"a": 1.0, 7: 2.0}}, ("k", "k", "b", 2.0, 0.0, 3)),
        ({"k": [1.0, "a"]}, ("k", "k", "b", 2.0, 0.0, 3)),
        ({("k",): (1.0, "a")}, (("k",), "k", "b", 2.0, 0.0, 3)),
    ],
)
def test_the_c_record_on_leaves_other_values_to_python(
    table: dict[Any, Any], args: tuple[Any, ...]
) -> None:
    """Outside the table's own kinds of values the C function returns None before it
    changes anything; the Python function answers (where it can)."""
    native = history.NATIVE
    assert native is not None
    before = _table_state(table)
    assert native.record_on(table, *args) is None
    assert _table_state(table) == before
    assert native.record_on(OrderedDict(table), *args[:2], "b", 2.0, 0.0, 3) is None
