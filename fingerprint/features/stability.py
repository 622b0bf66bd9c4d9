"""Account stability over a window: the seeds' device-fingerprint cross-checks.

常用设备稳定性 (device stability), IP地址离散度 (IP dispersion), 登录时段规律性
(login-time regularity) and 操作行为一致性 (consistency of the current login with the
account's usual ones). Computed from the same bounded history the other checks read,
so every history store gives the same numbers.

Names and units (``features["stability_7d"]`` and ``features["stability_30d"]``):

=====================  ================================================================
``window_days``        the window, days
``sessions``           logins in the window before this one (this one excluded)
``devices``            distinct device ids, this login included
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
=====================  ================================================================
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, tzinfo
from itertools import pairwise
from typing import Any

from fingerprint.history import LoginEvent

NIGHT_HOURS = frozenset({23, 0, 1, 2, 3, 4})
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Stability:
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

    def to_dict(self) -> dict[str, Any]:
        # Every field is a plain value: no deep copy needed (dataclasses.asdict is 10x slower).
        return {name: getattr(self, name) for name in _FIELDS}


_FIELDS = tuple(f.name for f in fields(Stability))


def account_stability(
    history: Sequence[LoginEvent],
    current: LoginEvent,
    window_seconds: float,
    local_tz: tzinfo,
    unusual_hour_share: float = 0.05,
) -> Stability:
    """Stability of the account over the window ending at the current login.

    One pass over the window (history is oldest first); the hour of each login is
    computed once, when it is recorded (``LoginEvent.hour``).
    """
    since = current.ts - window_seconds
    start = len(history)
    while start > 0 and history[start - 1].ts >= since:
        start -= 1
    before = history[start:]
    logins = [*before, current]
    hours = [e.hour if e.hour is not None else _local_hour(e.ts, local_tz) for e in logins]
    devices: Counter[str] = Counter()
    networks: Counter[str] = Counter()
    ips, asns, provinces = set(), set(), set()
    for event in logins:
        if event.device_id:
            devices[event.device_id] += 1
        if event.network:
            networks[event.network] += 1
        ips.add(event.ip)
        asns.add(event.asn)
        provinces.add(event.province)
    hour_counts = Counter(hours)
    current_hour = hours[-1]
    earlier_at_hour = hour_counts[current_hour] - 1
    total_devices = sum(devices.values())
    return Stability(
        window_days=round(window_seconds / DAY, 2),
        sessions=len(before),
        devices=len(devices),
        top_device_share=round(max(devices.values()) / total_devices, 4) if devices else 0.0,
        device_changes=_changes([e.device_id for e in logins]),
        device_age_days=_age(before, current),
        ips=len(ips - {None, ""}),
        networks=len(networks),
        asns=len(asns - {None}),
        provinces=len(provinces - {None, ""}),
        network_entropy=_entropy(networks),
        night_share=round(sum(hour_counts[h] for h in NIGHT_HOURS) / len(hours), 4),
        hour_entropy=_entropy(hour_counts),
        unusual_hour=bool(before) and earlier_at_hour / len(before) < unusual_hour_share,
        new_device=_new(current.device_id, [e.device_id for e in before]),
        new_province=_new(current.province, [e.province for e in before]),
        new_carrier=_new(current.carrier, [e.carrier for e in before]),
        new_network_type=_new(current.network_type, [e.network_type for e in before]),
    )


def _local_hour(ts: float, tz: tzinfo) -> int:
    return datetime.fromtimestamp(ts, UTC).astimezone(tz).hour


def _changes(values: list[str | None]) -> int:
    known = [v for v in values if v]
    return sum(1 for a, b in pairwise(known) if a != b)


def _age(before: Sequence[LoginEvent], current: LoginEvent) -> float | None:
    if not current.device_id:
        return None
    first = min((e.ts for e in before if e.device_id == current.device_id), default=current.ts)
    return round((current.ts - first) / DAY, 3)


def _entropy(counts: Counter[Any]) -> float:
    total = sum(counts.values())
    if total == 0:
        return 0.0
    bits = -sum(n / total * math.log2(n / total) for n in counts.values())
    return round(bits + 0.0, 4)


def _new(value: str | None, seen: list[str | None]) -> bool | None:
    """Is ``value`` absent from an account history that knows this field at all?"""
    if value is None:
        return None
    known = {v for v in seen if v is not None}
    if not known:
        return None  # nothing to compare with: not "new", just unknown
    return value not in known
