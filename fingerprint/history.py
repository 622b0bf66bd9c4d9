"""Per-account and per-device windows behind a small store protocol.

A check never touches storage: the checker asks the store, in one call, to record
the current login and hand back what came before it inside the windows. That one
call is the unit a shared store (Redis) makes atomic.
"""

from __future__ import annotations

import ipaddress
import struct
import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from hashlib import blake2b
from socket import inet_ntoa
from typing import Any, NamedTuple, Protocol

import msgspec

from fingerprint._session_values import dotted_quad, v4_block_text
from fingerprint.native import NATIVE


class LoginEvent(NamedTuple):
    """What history keeps of one login: only what history checks read.

    A named tuple, not a dataclass: stores rebuild these for every history read, and
    a tuple is built ten times faster than a frozen dataclass.
    """

    ts: float  # epoch seconds
    session_digest: int  # session_digest(session id): duplicates, without the id's bytes
    account_id: str
    device_id: str | None
    ip: str
    province: str | None
    latitude: float | None
    longitude: float | None
    accuracy_km: int | None
    ip_anonymous: bool
    network: str | None = None  # the IP's /24 (IPv4) or /48 (IPv6)
    asn: int | None = None
    network_type: str | None = None  # wifi, cellular, ...
    carrier: str | None = None
    hour: int | None = None  # local hour of day (0-23), for login-time regularity
    # The IP is a privacy relay's egress (iCloud Private Relay): stored anonymous (no
    # location of the user's) but no VPN, so long-term anonymiser use leaves it out.
    ip_relay: bool = False


def session_digest(session_id: str) -> int:
    """A stable signed 64-bit digest of a session id (the same in every process)."""
    state = _DIGEST_STATE.copy()
    state.update(session_id.encode("utf-8", "surrogatepass"))
    return int.from_bytes(state.digest(), "little", signed=True)


# BLAKE2b-64's state before any message, copied for each digest (~0.31 against ~0.44
# µs a login, the parameters not parsed again). Never updated: threads copy it alike.
_DIGEST_STATE = blake2b(digest_size=8)


def ip_keys(ip: str, network: str | None) -> tuple[str, str | None]:
    """Where a login's accounts are counted: its address and its block. An IPv4
    address is its own key and its block the /24 (``network``). An IPv6 address
    counts as its /64, one subscriber line or one phone's mobile session (privacy
    addresses change inside it), and has no block: IPv6 needs no carrier NAT, and
    carriers hand phones /64s from pools far wider than a /48."""
    if ":" not in ip:
        return ip, network
    return _v6_line(ip), None


@lru_cache(maxsize=8_192)
def _v6_line(ip: str) -> str:
    try:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    except ValueError:  # not an address (a store fed by hand): count it as written
        return ip


# An identity link: an index name (a device key, an identifier) and the members this
# login adds to it (identifiers on the key, hardware keys carrying the identifier).
Link = tuple[str, tuple[str, ...]]


# An account's packed window as read for one login: its records, its symbols, the
# first login of the view's account_events and the current login's own record.
PackedWindow = tuple[bytes, tuple[Any, ...], int, int]


class HistoryView(msgspec.Struct, frozen=True, kw_only=True):
    """The logins before the current one, inside the windows, oldest first."""

    account_events: tuple[LoginEvent, ...]
    device_accounts: tuple[tuple[float, str], ...] = ()  # (ts, account_id) on the same device
    # (newest ts, account_id) of the other logins from the same address (IPv6: its
    # /64) and from the same block (the /24 or /48), when ``Windows.ip_seconds`` is on.
    ip_accounts: tuple[tuple[float, str], ...] = ()
    block_accounts: tuple[tuple[float, str], ...] = ()
    # Identity links (see :meth:`MemoryHistoryStore.record_links`): for each link
    # recorded with this login, its earlier (ts, member) pairs inside the link window;
    # None when the store keeps no links.
    links: Mapping[str, tuple[tuple[float, str], ...]] | None = None
    # The memory store's packed window read for this login, which the stability walk
    # reads without decoding (fingerprint._native.packed_stability).
    packed: PackedWindow | None = None


@dataclass(frozen=True, slots=True)
class Windows:
    account_seconds: float
    device_seconds: float
    max_events_per_account: int = 200
    max_accounts_per_device: int = 200
    # Accounts per address and per block (ip_accounts); 0 seconds: not kept at all.
    ip_seconds: float = 0.0
    max_accounts_per_ip: int = 200
    # Identity links (device key -> identifiers, identifier -> hardware keys): how long
    # a member is kept, and how many members one link keeps at most (most recent).
    link_seconds: float = 0.0
    max_members_per_link: int = 64

    def __post_init__(self) -> None:
        # The in-memory store indexes a window's distinct values with 16 bits
        # (7 per login at most): 9,000 logins per account is its ceiling.
        if not 1 <= self.max_events_per_account <= MAX_EVENTS_PER_ACCOUNT:
            raise ValueError(
                f"max_events_per_account must be 1..{MAX_EVENTS_PER_ACCOUNT}, "
                f"not {self.max_events_per_account}"
            )


MAX_EVENTS_PER_ACCOUNT = 9_000


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryStats:
    """What went wrong with history calls since the store was built (counters)."""

    failures: int = 0  # calls that raised: history not read, the write not confirmed
    timeouts: int = 0  # of which the call's deadline passed (queueing included)
    queue_timeouts: int = 0  # of which it passed waiting for a free connection
    fast_failures: int = 0  # of which were skipped while the breaker was open
    breaker_trips: int = 0  # times Redis was marked down
    breaker_open: bool = False  # marked down right now


class HistoryStore(Protocol):
    """Where history lives. ``now`` is the caller's clock (epoch seconds): the
    service's own clock, or a batch run's clock. Stores derive every trim and
    eviction from it, never from a login's own ``ts`` beyond it, so no login, however
    it is dated, moves the windows of other accounts or devices. ``None`` trusts the
    login's own time: only for a store that holds one account (Spark's partitions)."""

    def record_and_fetch(
        self, event: LoginEvent, windows: Windows, now: float | None = None
    ) -> HistoryView:
        """Append ``event`` and return the history before it, atomically."""
        ...

    def record_device(self, event: LoginEvent, windows: Windows, now: float | None = None) -> None:
        """Append only the device side of ``event`` (a login another shard checks)."""
        ...


class LinkStore(Protocol):
    """A store that also keeps identity links (every store of this package does; a
    store without them leaves the identity checks not evaluated)."""

    def record_links(
        self, links: Sequence[Link], ts: float, windows: Windows, now: float | None = None
    ) -> dict[str, tuple[tuple[float, str], ...]]:
        """Add each link's members at ``ts`` and return, per link, the (ts, member)
        pairs it held before inside ``windows.link_seconds`` of ``ts``, atomically."""
        ...


# One login of an account window, packed: ts, session digest, the IPv4 address's 4
# bytes, then indexes into the window's symbol table for device, IP (when not IPv4 in
# dotted-quad form), /24 (when not the IPv4 address's own), place (province, lat,
# lon, accuracy), ASN, carrier and network type (0 is None); the local hour (-1:
# none); flags (anonymous, IPv4 packed, /24 derived, relay).
_RECORD = struct.Struct("<dq4sHHHHHHHbB")
_SIZE = _RECORD.size
_TS = struct.Struct("<d")
_TIMES = struct.Struct(f"<d{_SIZE - 8}x")
_ANONYMOUS, _PACKED_V4, _DERIVED_NETWORK, _RELAY = 1, 2, 4, 8
_NO_V4 = bytes(4)
_MAX_SYMBOLS = 0xFFFF


class _Window(NamedTuple):
    """One account's logins in time order: packed records and the values they name.

    About 36 bytes per login plus each distinct value once, against ~250 bytes for a
    tuple of Python objects: history holds every login of the window (30 days for
    the stability features), millions in a batch run.
    """

    records: bytes
    symbols: tuple[Any, ...]  # symbols[0] is None

    def times(self) -> list[float]:
        """Every login's ts: the first 8 bytes of each record."""
        return [ts for (ts,) in _TIMES.iter_unpack(self.records)]

    def last_ts(self) -> float:
        return float(_TS.unpack_from(self.records, len(self.records) - _SIZE)[0])

    def logins(self) -> int:
        return len(self.records) // _SIZE


# Built as a tuple, not through the named tuple's Python-level __new__ (once a login).
_new_window = tuple.__new__

if NATIVE is not None:
    NATIVE.bind_event(LoginEvent)


def _decode(account_id: str, window: _Window, start: int, stop: int) -> tuple[LoginEvent, ...]:
    """The window's logins ``start`` to ``stop``: :func:`_unpack`'s, decoded in C
    where the extension is built (:mod:`fingerprint.native`)."""
    if NATIVE is not None:
        logins: tuple[LoginEvent, ...] = NATIVE.unpack_window(
            account_id, window.records, window.symbols, start, stop
        )
        return logins
    return tuple(_unpack(account_id, window, start, stop))


def _pack(event: LoginEvent, symbols: list[Any]) -> bytes:
    """One login's record, its values added to the window's ``symbols`` as needed:
    :func:`_python_pack`'s, packed in C where the extension is built (it passes the
    logins it does not take, a subclass or an int time, back)."""
    if NATIVE is not None:
        packed: bytes | None = NATIVE.pack_login(event, symbols, _PLACES, _share_place)
        if packed is not None:
            return packed
    return _python_pack(event, symbols)


def _python_pack(event: LoginEvent, symbols: list[Any]) -> bytes:
    def ref(value: Any) -> int:
        if value is None:
            return 0
        # Test, then index: a miss (~2.6 a login on the generator's log) raising
        # ValueError formats the value's repr into its message, ~1 µs for a place.
        if value in symbols:
            return symbols.index(value)
        symbols.append(value)
        return len(symbols) - 1

    found = (event.province, event.latitude, event.longitude, event.accuracy_km)
    # Places come from the city database, a bounded set: one shared copy each.
    place = None if found == _NO_PLACE else _PLACES.get(found) or _share_place(found)
    # IPv4 addresses, the bulk, live in the record, not as strings: ~60 bytes each.
    v4 = dotted_quad(event.ip)
    flags = (
        (_ANONYMOUS if event.ip_anonymous else 0)
        | (_PACKED_V4 if v4 else 0)
        | (_RELAY if event.ip_relay else 0)
    )
    if v4 and event.network == _network_v4(v4):
        flags |= _DERIVED_NETWORK
    return _RECORD.pack(
        event.ts,
        event.session_digest,
        v4 or _NO_V4,
        ref(event.device_id),
        0 if v4 else ref(event.ip),
        0 if flags & _DERIVED_NETWORK else ref(event.network),
        ref(place),
        ref(event.asn),
        ref(event.carrier),
        ref(event.network_type),
        -1 if event.hour is None else event.hour,
        flags,
    )


def _own_copy(symbols: list[Any], value: str | None) -> str | None:
    """The window's own copy of ``value`` (a symbol it names), or None for none or "":
    the device table keys on that copy, so each id is stored once."""
    return symbols[symbols.index(value)] if value else None


_network_v4 = lru_cache(maxsize=8_192)(v4_block_text)


@lru_cache(maxsize=8_192)
def _text_v4(packed: bytes) -> str:
    return inet_ntoa(packed)


def _unpack(account_id: str, window: _Window, start: int, stop: int) -> Iterator[LoginEvent]:
    symbols, new = window.symbols, tuple.__new__
    for (
        ts,
        digest,
        v4,
        device,
        ip,
        network,
        place,
        asn,
        carrier,
        kind,
        hour,
        flags,
    ) in _RECORD.iter_unpack(window.records[start * _SIZE : stop * _SIZE]):
        province, latitude, longitude, accuracy = symbols[place] or _NO_PLACE
        yield new(
            LoginEvent,
            (
                ts,
                digest,
                account_id,
                symbols[device],
                _text_v4(v4) if flags & _PACKED_V4 else symbols[ip] or "",
                province,
                latitude,
                longitude,
                accuracy,
                flags & _ANONYMOUS == 1,
                _network_v4(v4) if flags & _DERIVED_NETWORK else symbols[network],
                symbols[asn],
                symbols[kind],
                symbols[carrier],
                None if hour < 0 else hour,
                flags & _RELAY != 0,
            ),
        )


_INF = float("inf")
_NO_PLACE = (None, None, None, None)
_PLACES: dict[tuple[Any, ...], tuple[Any, ...]] = {}
_MAX_PLACES = 1 << 18  # GeoLite2-City has ~100,000 distinct locations


def _share_place(place: tuple[Any, ...]) -> tuple[Any, ...]:
    return _PLACES.setdefault(place, place) if len(_PLACES) < _MAX_PLACES else place


# A key's accounts: a (ts, account) pair while one account uses it, then a dict of
# account -> newest ts in recency order.
KeyAccounts = dict[str, tuple[float, str] | dict[str, float]]


class _AccountsOn:
    """Accounts per key (an address, a block) with each one's newest login, for the
    ip_accounts check: like the device table, a ``(ts, account)`` pair while one
    account uses the key (most addresses), then a dict in recency order capped at
    ``Windows.max_accounts_per_ip``; keys idle past the window are evicted."""

    __slots__ = ("table",)

    def __init__(self) -> None:
        self.table: KeyAccounts = {}

    def record(
        self, key: str, account: str, ts: float, seconds: float, cap: int
    ) -> tuple[tuple[float, str], ...]:
        """Note ``account`` on ``key`` at ``ts``; return the accounts seen on it
        before, each with its newest ts, inside ``seconds`` before ``ts``."""
        return _record_on(self.table, key, key, account, ts, ts - seconds, cap)

    def evict(self, horizon: float) -> None:
        """Drop keys whose newest login is before ``horizon``, oldest first."""
        idle = []
        for key, seen in self.table.items():
            newest = seen[0] if isinstance(seen, tuple) else max(seen.values(), default=None)
            if newest is not None and newest >= horizon:
                break
            idle.append(key)
        for key in idle:
            del self.table[key]


_NEG_INF = float("-inf")


def _record_on(
    table: KeyAccounts, pop_key: str, key: str, account: str, ts: float, low: float, cap: int
) -> tuple[tuple[float, str], ...]:
    """Note ``account`` at ``ts`` on a device or an address (``pop_key``, kept as
    ``key``: an equal string, the store's own copy); return the accounts seen on it
    before, each with its newest ts, from ``low`` on. In C where the extension is
    built (three times a login: 1.8 µs of the latency benchmark's p50 in alternated
    rounds), for the table's own kinds of values; :func:`_python_record_on` for any
    other, and the tests' reference."""
    if NATIVE is not None:
        earlier: tuple[tuple[float, str], ...] | None = NATIVE.record_on(
            table, pop_key, key, account, ts, low, cap
        )
        if earlier is not None:
            return earlier
    return _python_record_on(table, pop_key, key, account, ts, low, cap)


def _python_record_on(
    table: KeyAccounts, pop_key: str, key: str, account: str, ts: float, low: float, cap: int
) -> tuple[tuple[float, str], ...]:
    seen = table.pop(pop_key, None)
    if seen is None:
        table[key] = (ts, account)
        return ()
    if isinstance(seen, tuple):
        earlier: tuple[tuple[float, str], ...] = (seen,) if seen[0] >= low else ()
        if seen[1] == account:
            table[key] = (max(seen[0], ts), account)
            return earlier
        seen = {seen[1]: seen[0]}
    else:
        earlier = tuple((at, who) for who, at in seen.items() if at >= low)
    if seen.get(account, _NEG_INF) < ts:
        seen.pop(account, None)  # re-insert: dict order is recency order
        seen[account] = ts
    if len(seen) > cap:  # the least recent accounts go
        for stale in list(seen)[: len(seen) - cap]:
            del seen[stale]
    table[key] = seen
    return earlier


# Windows of this many logins or more are kept decoded too, up to this many logins in
# all (~260 bytes each: ~4 MB). Decoding costs ~0.7 µs a login, so an account at the
# 200-login cap spent ~140 µs decoding its window on every login: a long tail of the
# decision service's latency. Most windows are far shorter (about 10 logins a month)
# and stay packed only: at 16 logins and 65,536 in all, the 2M-line run's peak RSS grew
# by 17 MB, past its 400 MB target.
DECODED_FROM = 32
DECODED_LOGINS = 16_384


class MemoryHistoryStore:
    """In-process, thread-safe, bounded store.

    Memory grows with the accounts and devices active inside the window, not with
    the number of logins: entries are trimmed on each touch, and every
    ``evict_every`` calls idle keys are evicted in least-recently-active order once
    the caller's clock (``now``) passes their window. The clock is the caller's,
    never the newest login's: one login dated 2099 would otherwise evict every
    other account. Logins are kept packed
    (:class:`_Window`), ~36 bytes each.

    Plain dicts, not ``OrderedDict``: a touched key is popped and re-inserted, so
    insertion order is recency order, at ~60 bytes less per key (400,000 keys at
    2 M lines). Eviction walks the dict's front, so it runs in batches: walking from
    the front on every call would re-scan the holes pops leave there.
    """

    def __init__(
        self,
        evict_every: int = 1_024,
        *,
        decoded_from: int = DECODED_FROM,
        decoded_logins: int = DECODED_LOGINS,
    ) -> None:
        self._accounts: dict[str, _Window] = {}
        # The long windows again, decoded (see _Decoded): a heavy account's read costs
        # one login's decoding, not its whole window's.
        self._decoded = _Decoded(decoded_from, decoded_logins)
        # device -> (newest ts, account) while one account uses it, then a dict
        # account -> newest ts in recency order: most devices have one account.
        self._devices: KeyAccounts = {}
        # address (IPv6: /64) and block (/24, /48) -> accounts, for ip_accounts
        self._ips = _AccountsOn()
        self._blocks = _AccountsOn()
        # link -> member -> newest ts, in recency order (like the device table).
        self._links: dict[str, dict[str, float]] = {}
        self._watermark = float("-inf")
        self._evict_every = max(1, evict_every)
        self._calls = 0
        self._lock = threading.Lock()

    def record_and_fetch(
        self, event: LoginEvent, windows: Windows, now: float | None = None
    ) -> HistoryView:
        account = event.account_id
        with self._lock:
            self._watermark = max(self._watermark, event.ts if now is None else now)
            window, start, position, device_key, kept = self._record_account(
                event, windows, _INF if now is None else now
            )
            device = self._record_device(event, windows, device_key) if device_key else ()
            on_ip, on_block = self._record_ip(event, windows)
            self._tick(windows)
            decoded = self._decoded.insert(account, window, position, kept)
        if decoded is not None:
            before = decoded[start:position]
        elif self._decoded.wants(window):
            # Decoded outside the lock (a window is immutable once built), then kept
            # if the account's window is still the one decoded.
            logins = _decode(account, window, 0, window.logins())
            before = logins[start:position]
            with self._lock:
                self._decoded.keep(account, logins, kept, self._accounts.get(account))
        else:
            before = _decode(account, window, start, position)
        return HistoryView(
            account_events=before,
            device_accounts=device,
            ip_accounts=on_ip,
            block_accounts=on_block,
            packed=(window.records, window.symbols, start, position),
        )

    def record_device(self, event: LoginEvent, windows: Windows, now: float | None = None) -> None:
        """Record what other accounts' checks read of a login another shard checks:
        its device's accounts and its address's and block's accounts."""
        if not event.device_id and not (windows.ip_seconds and event.ip):
            return
        with self._lock:
            self._watermark = max(self._watermark, event.ts if now is None else now)
            if event.device_id:
                self._record_device(event, windows)
            self._record_ip(event, windows)
            self._tick(windows)

    def _record_ip(
        self, event: LoginEvent, windows: Windows
    ) -> tuple[tuple[tuple[float, str], ...], tuple[tuple[float, str], ...]]:
        """The accounts seen before on the login's address and block (when kept)."""
        seconds = windows.ip_seconds
        if not seconds or not event.ip:
            return (), ()
        address, block = ip_keys(event.ip, event.network)
        cap, account, ts = windows.max_accounts_per_ip, event.account_id, event.ts
        on_ip = self._ips.record(address, account, ts, seconds, cap)
        on_block = self._blocks.record(block, account, ts, seconds, cap) if block else ()
        return on_ip, on_block

    def record_links(
        self, links: Sequence[Link], ts: float, windows: Windows, now: float | None = None
    ) -> dict[str, tuple[tuple[float, str], ...]]:
        """Identity links: each link's earlier members inside the link window, then
        this login's members added (newest ts kept per member, at most
        ``max_members_per_link`` most recent members per link)."""
        found: dict[str, tuple[tuple[float, str], ...]] = {}
        with self._lock:
            self._watermark = max(self._watermark, ts if now is None else now)
            for name, members in links:
                found[name] = self._record_link(name, members, ts, windows, now)
            self._tick(windows)
        return found

    def _record_link(
        self, name: str, members: tuple[str, ...], ts: float, windows: Windows, now: float | None
    ) -> tuple[tuple[float, str], ...]:
        seen = self._links.pop(name, None)
        if seen is None:
            seen = {}
        low = ts - windows.link_seconds
        earlier = tuple((at, member) for member, at in seen.items() if at >= low)
        for member in members:
            if seen.get(member, -_INF) < ts:
                seen.pop(member, None)  # re-insert: dict order is recency order
                seen[member] = ts
        if not seen:  # a link that never had a member: a device key with no identifier
            return earlier  # of the kinds a reset link carries (nothing to keep, as Redis)
        # Trim back from the link's newest sighting (or the caller's clock, when that
        # is earlier), as the Redis script does.
        newest = min(max(seen.values()), _INF if now is None else now)
        for member in [m for m, at in seen.items() if at < newest - windows.link_seconds]:
            del seen[member]
        excess = len(seen) - windows.max_members_per_link
        for member in list(seen)[: max(0, excess)]:
            del seen[member]
        if seen:
            self._links[name] = seen
        return earlier

    def _record_account(
        self, event: LoginEvent, windows: Windows, now: float
    ) -> tuple[_Window, int, int, str | None, _Window]:
        """Insert the login in time order (late lines land where they belong); return
        the window read back, the span of logins before it inside the window, the
        window's own copy of the device id (the device table keys on that copy, so
        each id is stored once without a global intern table) and the window kept."""
        window = self._accounts.pop(event.account_id, None)
        if window is None:
            window = _Window(b"", (None,))
        fast = self._record_in_order(event, window, windows)
        if fast is not None:
            return fast
        times = window.times()
        position = len(times)
        while position and times[position - 1] > event.ts:
            position -= 1
        symbols = list(window.symbols)
        record = _pack(event, symbols)
        cut = position * _SIZE
        records = window.records[:cut] + record + window.records[cut:]
        times.insert(position, event.ts)
        # The times are in order (each login goes in where it belongs): the window's
        # first login is found by bisection, not by walking back over the window.
        start = bisect_left(times, event.ts - windows.account_seconds, 0, position)
        read = _new_window(_Window, (records, tuple(symbols)))
        kept = self._accounts[event.account_id] = _trim(read, times, windows, now)
        return read, start, position, _own_copy(symbols, event.device_id), kept

    def _record_in_order(
        self, event: LoginEvent, window: _Window, windows: Windows
    ) -> tuple[_Window, int, int, str | None, _Window] | None:
        """:meth:`_record_account` for most logins: the newest of a window that keeps
        every login, no older one to find or drop. The window's times are not read
        (every login's, ~0.1 µs each), and what is read is what is kept. None for the
        others, ``_record_account`` then goes the general way. In C where the
        extension is built (the same tests, the same packer), else the code below."""
        if NATIVE is not None:
            appended = NATIVE.append_login(
                _Window,
                window,
                event,
                windows.max_events_per_account,
                windows.account_seconds,
                _PLACES,
                _share_place,
            )
            if appended is not None:
                read, logins, own = appended
                self._accounts[event.account_id] = read
                return read, 0, logins, own, read
        records, ts = window.records, event.ts
        logins = len(records) // _SIZE
        if logins + 1 > windows.max_events_per_account:
            return None
        first, last = (_TS.unpack_from(records)[0], window.last_ts()) if logins else (ts, ts)
        # Positive tests: a NaN time fails them and goes the general way.
        if not (ts >= last and first >= ts - windows.account_seconds):
            return None
        symbols = list(window.symbols)
        record = _pack(event, symbols)
        if len(symbols) >= _MAX_SYMBOLS // 2:  # _trim rebuilds the table
            return None
        read = _new_window(_Window, (records + record, tuple(symbols)))
        self._accounts[event.account_id] = read
        return read, 0, logins, _own_copy(symbols, event.device_id), read

    def _record_device(
        self, event: LoginEvent, windows: Windows, key: str | None = None
    ) -> tuple[tuple[float, str], ...]:
        assert event.device_id is not None
        return _record_on(
            self._devices,
            event.device_id,
            key or event.device_id,
            event.account_id,
            event.ts,
            event.ts - windows.device_seconds,
            windows.max_accounts_per_device,
        )

    def _tick(self, windows: Windows) -> None:
        self._calls += 1
        if self._calls % self._evict_every == 0:
            self._evict_idle(windows)

    def _evict_idle(self, windows: Windows) -> None:
        horizon = self._watermark - windows.account_seconds
        idle = []
        for key, window in self._accounts.items():
            if window.last_ts() >= horizon:
                break
            idle.append(key)
        for key in idle:
            del self._accounts[key]
            self._decoded.forget(key)
        device_horizon = self._watermark - windows.device_seconds
        idle = []
        for key, seen in self._devices.items():
            newest = seen[0] if isinstance(seen, tuple) else max(seen.values(), default=None)
            if newest is not None and newest >= device_horizon:
                break
            idle.append(key)
        for key in idle:
            del self._devices[key]
        if windows.ip_seconds:
            ip_horizon = self._watermark - windows.ip_seconds
            self._ips.evict(ip_horizon)
            self._blocks.evict(ip_horizon)
        link_horizon = self._watermark - windows.link_seconds
        idle = []
        for key, members in self._links.items():
            if max(members.values()) >= link_horizon:
                break
            idle.append(key)
        for key in idle:
            del self._links[key]

    def accounts(self) -> int:
        return len(self._accounts)

    def decoded_logins(self) -> int:
        """Logins kept decoded, of the long windows (at most ``decoded_logins``)."""
        return self._decoded.logins

    def devices(self) -> int:
        return len(self._devices)

    def addresses(self) -> int:
        """Addresses (IPv6: /64s) whose accounts are kept for ip_accounts."""
        return len(self._ips.table)

    def links(self) -> int:
        return len(self._links)


class _Decoded:
    """The long windows' logins decoded, most recently used last, within a budget of
    logins. An entry is always the decoding of the account's window as kept: each
    change to the window (a login inserted, logins trimmed from the front) is made to
    it too, under the store's lock, and an account evicted or over the budget loses it."""

    __slots__ = ("budget", "entries", "least", "logins")

    def __init__(self, least: int, budget: int) -> None:
        self.least = max(1, least)
        self.budget = budget
        self.entries: OrderedDict[str, tuple[LoginEvent, ...]] = OrderedDict()
        self.logins = 0

    def wants(self, window: _Window) -> bool:
        return self.budget > 0 and window.logins() >= self.least

    def insert(
        self, account: str, read: _Window, position: int, kept: _Window
    ) -> tuple[LoginEvent, ...] | None:
        """The read window decoded, from its entry and the one login inserted at
        ``position``; the entry follows the window kept. None: no entry."""
        entry = self.entries.pop(account, None)
        if entry is None:
            return None
        self.logins -= len(entry)
        if len(entry) + 1 != read.logins():  # a guard: each change is made to both
            return None
        inserted = _decode(account, read, position, position + 1)
        if position == len(entry):  # in time order: one copy of the entry, in C
            logins = entry + inserted
        else:
            logins = entry[:position] + inserted + entry[position:]
        self._add(account, logins[len(logins) - kept.logins() :])
        return logins

    def keep(
        self,
        account: str,
        logins: tuple[LoginEvent, ...],
        kept: _Window,
        current: _Window | None,
    ) -> None:
        """Keep ``logins``, a read window's decoding, if ``kept`` (the window trimmed
        from it) is still the account's window and no entry was made meanwhile."""
        if current is kept and account not in self.entries:
            self._add(account, logins[len(logins) - kept.logins() :])

    def forget(self, account: str) -> None:
        entry = self.entries.pop(account, None)
        if entry is not None:
            self.logins -= len(entry)

    def _add(self, account: str, logins: tuple[LoginEvent, ...]) -> None:
        if len(logins) < self.least or len(logins) > self.budget:
            return
        self.entries[account] = logins
        self.logins += len(logins)
        while self.logins > self.budget:
            _, dropped = self.entries.popitem(last=False)
            self.logins -= len(dropped)


def _trim(window: _Window, times: list[float], windows: Windows, now: float) -> _Window:
    """Drop logins older than the window before the newest one (or before ``now``,
    when the newest is dated after it), and any beyond the per-account cap; rebuild
    the symbol table once most of it names dropped logins."""
    newest = min(times[-1], now)
    cutoff = bisect_left(times, newest - windows.account_seconds)
    cutoff += max(0, len(times) - cutoff - windows.max_events_per_account)
    if cutoff == 0 and len(window.symbols) < _MAX_SYMBOLS // 2:
        return window
    kept = _Window(window.records[cutoff * _SIZE :], window.symbols)
    if len(kept.symbols) <= 8 * kept.logins() + 8 and len(kept.symbols) < _MAX_SYMBOLS // 2:
        return kept
    symbols: list[Any] = [None]
    events = _unpack("", kept, 0, kept.logins())
    return _Window(b"".join(_pack(event, symbols) for event in events), tuple(symbols))
