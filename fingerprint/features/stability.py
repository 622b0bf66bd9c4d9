"""Account stability over a window: the seeds' device-fingerprint cross-checks.

常用设备稳定性 (device stability), IP地址离散度 (IP dispersion), 登录时段规律性
(login-time regularity) and 操作行为一致性 (consistency of the current login with the
account's usual ones). Computed from the same bounded history the other checks read,
so every history store gives the same numbers.

Names and units (``features["stability_7d"]`` and ``features["stability_30d"]``):

=====================  ================================================================
``window_days``        the window, days
``sessions``           logins in the window before this one (this one excluded)
``devices``            distinct devices, this login included: the derived device key
                       where it is confident (issue 21), else the device id
``top_device_share``   share (0-1) of the window's logins on the most used device
``device_changes``     consecutive logins on different devices, this login included
``device_age_days``    days since the current device first appeared in the window
``ips``                distinct IPs, this login included
``networks``           distinct /24 (IPv4) or /48 (IPv6) networks, this login included
``asns``               distinct ASNs (needs an ASN database), this login included
``provinces``          distinct provinces, this login included
``network_entropy``    Shannon entropy of logins over networks, bits
``night_share``        share (0-1) of logins between 23:00 and 05:00 local time
``hour_entropy``       Shannon entropy of the login hour, bits (0 .. log2 24 = 4.58)
``unusual_hour``       this login's hour is one the account rarely uses (bool)
``new_device``         this device was not seen before in the window (bool)
``new_province``       this province was not seen before in the window (bool; null
                       when this login has no province)
``new_carrier``        this SIM carrier was not seen before (bool; null when unknown)
``new_network_type``   this network type (wifi, cellular) was not seen before (bool)
``anonymised_logins``  logins through a VPN, proxy, Tor or hosting address (a confident
                       ``vpn_proxy`` finding; not a privacy relay), this login included
``anonymised_share``   ``anonymised_logins`` over all logins of the window (0-1)
``relay_logins``       logins through a privacy relay (iCloud Private Relay), apart
=====================  ================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import partial
from math import log2
from typing import Any, NamedTuple, cast

from fingerprint.history import LoginEvent, PackedWindow
from fingerprint.memo import BoundedMemo
from fingerprint.native import NATIVE

NIGHT_HOURS = frozenset({23, 0, 1, 2, 3, 4})
DAY = 86_400.0


class Stability(NamedTuple):
    window_days: float
    sessions: int
    devices: int
    top_device_share: float
    device_changes: int
    device_age_days: float | None
    ips: int
    networks: int
    asns: int
    provinces: int
    network_entropy: float
    night_share: float
    hour_entropy: float
    unusual_hour: bool
    new_device: bool | None
    new_province: bool | None
    new_carrier: bool | None
    new_network_type: bool | None
    # Long-term anonymiser use (issue #22): the seed's 91% is about accounts that use a
    # VPN or proxy habitually, not about one login.
    anonymised_logins: int = 0
    anonymised_share: float = 0.0
    relay_logins: int = 0

    def to_dict(self) -> dict[str, Any]:
        # Two windows in every report: made in C where the extension is built (~0.1
        # against ~0.5 µs), else one dict display from one unpacking, not
        # dict(zip(_fields, self)) (~0.1 µs slower). A field added makes the unpacking
        # raise; tests/test_stability.py holds keys and values to _fields either way.
        if NATIVE is not None:
            made: dict[str, Any] | None = NATIVE.fields_dict(_STABILITY_FIELDS, self)
            if made is not None:
                return made
        (
            window_days, sessions, devices, top_device_share, device_changes,
            device_age_days, ips, networks, asns, provinces, network_entropy,
            night_share, hour_entropy, unusual_hour, new_device, new_province,
            new_carrier, new_network_type, anonymised_logins, anonymised_share,
            relay_logins,
        ) = self  # fmt: skip
        return {
            "window_days": window_days,
            "sessions": sessions,
            "devices": devices,
            "top_device_share": top_device_share,
            "device_changes": device_changes,
            "device_age_days": device_age_days,
            "ips": ips,
            "networks": networks,
            "asns": asns,
            "provinces": provinces,
            "network_entropy": network_entropy,
            "night_share": night_share,
            "hour_entropy": hour_entropy,
            "unusual_hour": unusual_hour,
            "new_device": new_device,
            "new_province": new_province,
            "new_carrier": new_carrier,
            "new_network_type": new_network_type,
            "anonymised_logins": anonymised_logins,
            "anonymised_share": anonymised_share,
            "relay_logins": relay_logins,
        }


_STABILITY_FIELDS = Stability._fields

# Built as a tuple, not through the named tuple's __new__ (a Python function of 21
# arguments): ~0.4 µs less per window.
_new_stability = tuple.__new__


@dataclass(frozen=True, slots=True, kw_only=True)
class StabilityRequest:
    """The stability a check reads: its windows (days, ascending, and in seconds) and
    what share of the account's logins makes an hour "unusual"."""

    windows_days: tuple[float, ...]
    windows_seconds: tuple[float, ...]
    unusual_hour_share: float


def stability_by_window(
    request: StabilityRequest,
    history: Sequence[LoginEvent],
    current: LoginEvent,
    local_tz: tzinfo,
    packed: PackedWindow | None = None,
) -> dict[float, Stability]:
    """The account's stability for each requested window, keyed by its days.

    ``packed``: the memory store's window that ``history`` was decoded from
    (:attr:`~fingerprint.history.HistoryView.packed`), walked in C without decoding
    where the extension is built: the same numbers (the tests hold it to the walk
    over ``history``), from each login's bytes rather than the Python objects of its
    values, which are cold by the time an account logs in again."""
    found = None
    if packed is not None and _packed_walk is not None:
        records, symbols, start, position = packed
        found = _packed_walk(
            records, symbols, start, position, current, request.windows_seconds, local_tz,
            request.unusual_hour_share,
        )  # fmt: skip
    if found is None:
        found = account_stability_windows(
            history, current, request.windows_seconds, local_tz, request.unusual_hour_share
        )
    return dict(zip(request.windows_days, found, strict=True))


def account_stability_windows(
    history: Sequence[LoginEvent],
    current: LoginEvent,
    windows_seconds: Sequence[float],
    local_tz: tzinfo,
    unusual_hour_share: float = 0.05,
    *,
    native: bool = True,
) -> list[Stability]:
    """Stability of the account over each window ending at the current login, in one
    pass over the history (oldest first, as stores return it).

    The same walk in C (``fingerprint/_native.c``, built when the package is installed
    with a C compiler: :mod:`fingerprint.native`) answers the calls it takes, every
    call a history store makes, in about a third of the time. ``native=False``, or
    ``FINGERPRINT_NATIVE=0`` in the environment, walks in Python alone: the code
    below, which the C walk is held to (:func:`python_stability_windows`).

    One result per window, in the order given. The history is walked newest to
    oldest, accumulating counters; the features of a window are taken when the walk
    leaves it (windows shortest first: they nest). Counters that depend on the order of
    the logins keep it: ``device_changes`` counts adjacent pairs (the same read either
    way) and the entropy dicts move a key to their end at every sighting, so reading
    them backwards gives the oldest-first order a plain count sums in (the reference
    in tests/stability_reference.py, which the property tests compare with).
    """
    if native and _native_windows is not None:
        found = _native_windows(history, current, windows_seconds, local_tz, unusual_hour_share)
        if found is not None:
            return cast("list[Stability]", found)
    count = len(windows_seconds)
    if not count:
        return []
    results: list[Stability | None] = [None] * count
    order = sorted(range(count), key=windows_seconds.__getitem__)
    cur_ts = current.ts
    cur_device = current.device_id
    cur_hour = current.hour
    if cur_hour is None:
        cur_hour = _local_hour(cur_ts, local_tz)
    # This login: in every window, counted by the dicts, kept out of the sets (which
    # hold only earlier logins: "new" compares with those).
    devices: dict[str, int] = {}
    changes = 0  # runs of the same device, newest first: device_changes + 1
    last: str | None = None
    if cur_device:
        devices[cur_device] = changes = 1
        last = cur_device
    networks: dict[str, int] = {}
    if current.network:
        networks[current.network] = 1
    hours = {cur_hour: 1}
    ips: set[str | None] = set()
    asns: set[int | None] = set()
    provinces: set[str | None] = set()
    first_seen: float | None = None  # oldest earlier login on this device
    blank_device = False  # an earlier login with device id "" (known, but not counted)
    cur_carrier = current.carrier
    carrier_open = cur_carrier is not None  # still looking for it
    carrier_known = False
    cur_type = current.network_type
    type_open = cur_type is not None
    type_known = False
    # A relay login is stored anonymous too (its IP is no location), and counted apart.
    relays = 1 if current.ip_relay else 0
    anonymised = 1 if current.ip_anonymous and not relays else 0
    dev_get, net_pop, hour_pop = devices.get, networks.pop, hours.pop
    ip_add, asn_add, province_add = ips.add, asns.add, provinces.add

    sessions = 0
    previous: Stability | None = None
    earlier = reversed(history)
    event = next(earlier, None)
    for k in order:
        since = cur_ts - windows_seconds[k]
        # ``>=`` is the reference's test: a NaN ts ends the walk there too.
        while event is not None and event.ts >= since:
            # One unpacking instead of ten attribute reads: ~0.1 µs less per login.
            # (A LoginEvent field added or moved makes this raise, not misread.)
            (ts, _, _, device, ip, province, _, _, _, anonymous,
             network, asn, network_type, carrier, hour, relay) = event  # fmt: skip
            sessions += 1
            if relay:
                relays += 1
            elif anonymous:
                anonymised += 1
            if device:
                devices[device] = dev_get(device, 0) + 1
                if device != last:
                    changes += 1
                    last = device
                if device == cur_device:
                    first_seen = ts
            elif device is not None:
                blank_device = True
            if network:
                networks[network] = net_pop(network, 0) + 1
            if hour is None:
                hour = _local_hour(ts, local_tz)
            hours[hour] = hour_pop(hour, 0) + 1
            ip_add(ip)
            asn_add(asn)
            province_add(province)
            if carrier_open:
                if carrier == cur_carrier:
                    carrier_open = False
                elif carrier is not None:
                    carrier_known = True
            if type_open:
                if network_type == cur_type:
                    type_open = False
                elif network_type is not None:
                    type_known = True
            event = next(earlier, None)
        if previous is not None and previous.sessions == sessions:
            # The same logins as the last window: the same numbers, but the window
            # (positional, not _replace(): 0.3 instead of 0.9 µs).
            results[k] = _new_stability(
                Stability, (_WINDOW_DAYS[windows_seconds[k]], *previous[1:])
            )
            continue
        results[k] = previous = _snapshot(
            windows_seconds[k], current, unusual_hour_share,
            sessions, cur_hour, devices, changes, first_seen, blank_device,
            networks, hours, ips, asns, provinces,
            carrier_open, carrier_known, type_open, type_known,
            anonymised, relays,
        )  # fmt: skip
    return cast("list[Stability]", results)


def _snapshot(
    window: float,
    current: LoginEvent,
    unusual_hour_share: float,
    sessions: int,
    cur_hour: int,
    devices: dict[str, int],
    changes: int,
    first_seen: float | None,
    blank_device: bool,
    networks: dict[str, int],
    hours: dict[int, int],
    ips: set[str | None],
    asns: set[int | None],
    provinces: set[str | None],
    carrier_open: bool,
    carrier_known: bool,
    type_open: bool,
    type_known: bool,
    anonymised: int = 0,
    relays: int = 0,
) -> Stability:
    """The features of one window from the one-pass counters (earlier logins only in
    the sets; this login in the dicts too)."""
    cur_device = current.device_id
    device_total = sum(devices.values())
    earlier_devices = device_total - (1 if cur_device else 0)
    if cur_device is None or not (earlier_devices or blank_device):
        new_device = None
    elif cur_device:
        new_device = first_seen is None
    else:  # "": seen before only as a blank id
        new_device = not blank_device
    ip, asn, province = current.ip, current.asn, current.province
    if province is None:
        new_province = None
    elif province in provinces:
        new_province = False
    else:
        new_province = True if len(provinces) - (None in provinces) else None
    # In field order (see _new_stability).
    return _new_stability(Stability, (
        _WINDOW_DAYS[window],  # window_days
        sessions,
        len(devices),  # devices
        _SHARES[max(devices.values()), device_total] if devices else 0.0,  # top_device_share
        changes - 1 if changes else 0,  # device_changes
        round((current.ts - (current.ts if first_seen is None else first_seen)) / DAY, 3)
        if cur_device
        else None,  # device_age_days
        len(ips) + (ip not in ips) - (ip is None or None in ips) - (ip == "" or "" in ips),  # ips
        len(networks),  # networks
        len(asns) + (asn not in asns) - (asn is None or None in asns),  # asns
        len(provinces)
        + (province not in provinces)
        - (province is None or None in provinces)
        - (province == "" or "" in provinces),  # provinces
        _entropy(networks),  # network_entropy
        _SHARES[_night_logins(hours), sessions + 1],  # night_share
        _entropy(hours),  # hour_entropy
        sessions > 0 and (hours[cur_hour] - 1) / sessions < unusual_hour_share,  # unusual_hour
        new_device,
        new_province,
        _new_from(current.carrier, carrier_open, carrier_known),  # new_carrier
        _new_from(current.network_type, type_open, type_known),  # new_network_type
        anonymised,  # anonymised_logins
        _SHARES[anonymised, sessions + 1],  # anonymised_share
        relays,  # relay_logins
    ))  # fmt: skip


# round() with digits formats and parses the number (~0.2 µs); the shares of a window
# are ratios of small counts and its length one of a few windows, so each is rounded
# once and looked up after (~0.05 µs): four to eight a login.
_SHARES: BoundedMemo[tuple[int, int], float] = BoundedMemo(
    4_096, lambda counts: round(counts[0] / counts[1], 4)
)
_WINDOW_DAYS: BoundedMemo[float, float] = BoundedMemo(64, lambda seconds: round(seconds / DAY, 2))


def _night_logins(hours: dict[int, int]) -> int:
    # NIGHT_HOURS spelled out: a comprehension is a function call in 3.11 (~0.3 µs).
    get = hours.get
    return get(23, 0) + get(0, 0) + get(1, 0) + get(2, 0) + get(3, 0) + get(4, 0)


def _new_from(value: str | None, still_open: bool, known: bool) -> bool | None:
    """``_new`` from the one-pass flags: no earlier match yet (``still_open``), some
    earlier non-null value (``known``)."""
    if value is None:
        return None
    if not still_open:
        return False
    return True if known else None


def _local_hour(ts: float, tz: tzinfo) -> int:
    # The same tz.fromutc() call as fromtimestamp(ts, UTC).astimezone(tz), at half the cost.
    return datetime.fromtimestamp(ts, tz).hour


def _entropy(counts: dict[Any, int]) -> float:
    """:func:`_entropy_of` a walk's counts, in the order the walk leaves them reversed
    (see :func:`account_stability_windows`). Accounts repeat few count patterns (one
    network, two networks 3 and 1, ...): each pattern's entropy is computed once."""
    if len(counts) < 2:
        return 0.0
    return _ENTROPIES[tuple(reversed(counts.values()))]


def _entropy_of(values: Sequence[int]) -> float:
    """Shannon entropy of counts, summed in the order given (float sums depend on it)."""
    if len(values) < 2:
        return 0.0  # what the sum gives for one count (or none): exactly 0.0
    total = sum(values)
    # A loop, not a list comprehension (a function call in 3.11): ~0.2 µs less. The
    # terms are still summed by sum(), as before (3.12's sum() compensates rounding).
    terms = []
    for n in values:
        share = n / total
        terms.append(share * log2(share))
    return round(-sum(terms) + 0.0, 4)


# Count patterns and their entropies: patterns of at most 32 counts (~0.3 kB each; a
# longer one, an account on more networks than that, is summed each time).
_ENTROPIES: BoundedMemo[tuple[int, ...], float] = BoundedMemo(
    8_192, _entropy_of, keep=lambda counts: len(counts) <= 32
)


def _bind_native() -> Callable[..., list[Any] | None] | None:
    """The C walk (:mod:`fingerprint.native`), bound to this module's memos and
    record, or None (not built, turned off, or built from other source). It answers
    only LoginEvents with float times, windows of floats or whole ints and a float
    share, and None for the rest (then Python does)."""
    if NATIVE is None:
        return None
    NATIVE.bind_stability(globals(), Stability)
    walk: Callable[..., list[Any] | None] = NATIVE.stability_windows
    return walk


_native_windows = _bind_native()
# The walk over a packed window, bound with the object walk (None where that is off).
_packed_walk: Callable[..., list[Any] | None] | None = (
    NATIVE.packed_stability if _native_windows is not None and NATIVE is not None else None
)

# The walk in Python alone: the reference the C walk is held to (tests, benchmarks).
python_stability_windows = partial(account_stability_windows, native=False)


def native_walk() -> bool:
    """Whether the C walk answers (``fingerprint --version`` says so)."""
    return _native_windows is not None
