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
from dataclasses import asdict, dataclass
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
        return asdict(self)


def account_stability(
    history: Sequence[LoginEvent],
    current: LoginEvent,
    window_seconds: float,
    local_tz: tzinfo,
    unusual_hour_share: float = 0.05,
) -> Stability:
    """Stability of the account over the window ending at the current login."""
    since = current.ts - window_seconds
    before = [e for e in history if e.ts >= since]
    logins = [*before, current]
    devices = [e.device_id for e in logins if e.device_id]
    hours = [_local_hour(e.ts, local_tz) for e in logins]
    hour_counts = Counter(hours[:-1])
    current_hour = hours[-1]
    return Stability(
        window_days=round(window_seconds / DAY, 2),
        sessions=len(before),
        devices=len(set(devices)),
        top_device_share=_top_share(devices),
        device_changes=_changes([e.device_id for e in logins]),
        device_age_days=_age(before, current),
        ips=len({e.ip for e in logins if e.ip}),
        networks=len({e.network for e in logins if e.network}),
        asns=len({e.asn for e in logins if e.asn is not None}),
        provinces=len({e.province for e in logins if e.province}),
        network_entropy=_entropy(Counter(e.network for e in logins if e.network)),
        night_share=round(sum(h in NIGHT_HOURS for h in hours) / len(hours), 4),
        hour_entropy=_entropy(Counter(hours)),
        unusual_hour=bool(before) and hour_counts[current_hour] / len(before) < unusual_hour_share,
        new_device=_new(current.device_id, [e.device_id for e in before]),
        new_province=_new(current.province, [e.province for e in before]),
        new_carrier=_new(current.carrier, [e.carrier for e in before]),
        new_network_type=_new(current.network_type, [e.network_type for e in before]),
    )


def _local_hour(ts: float, tz: tzinfo) -> int:
    return datetime.fromtimestamp(ts, UTC).astimezone(tz).hour


def _top_share(values: list[str]) -> float:
    if not values:
        return 0.0
    return round(Counter(values).most_common(1)[0][1] / len(values), 4)


def _changes(values: list[str | None]) -> int:
    known = [v for v in values if v]
    return sum(1 for a, b in pairwise(known) if a != b)


def _age(before: list[LoginEvent], current: LoginEvent) -> float | None:
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
