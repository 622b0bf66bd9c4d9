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
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any, NamedTuple

from fingerprint.history import LoginEvent

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

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


def account_stability(
    history: Sequence[LoginEvent],
    current: LoginEvent,
    window_seconds: float,
    local_tz: tzinfo,
    unusual_hour_share: float = 0.05,
) -> Stability:
    """Stability of the account over the window ending at the current login.

    One pass over the window (history is oldest first) with plain dicts: this runs
    for every login. The hour of each login is computed once, when it is recorded
    (``LoginEvent.hour``).
    """
    since = current.ts - window_seconds
    start = len(history)
    while start > 0 and history[start - 1].ts >= since:
        start -= 1
    before = history[start:]
    devices: dict[str, int] = {}
    networks: dict[str, int] = {}
    hours: dict[int, int] = {}
    ips, asns, provinces = set(), set(), set()
    changes, last_device, first_seen = 0, None, None
    for event in (*before, current):
        device = event.device_id
        if device:
            devices[device] = devices.get(device, 0) + 1
            if last_device is not None and device != last_device:
                changes += 1
            last_device = device
            if device == current.device_id and first_seen is None:
                first_seen = event.ts
        if event.network:
            networks[event.network] = networks.get(event.network, 0) + 1
        hour = event.hour if event.hour is not None else _local_hour(event.ts, local_tz)
        hours[hour] = hours.get(hour, 0) + 1
        ips.add(event.ip)
        asns.add(event.asn)
        provinces.add(event.province)
    logins = len(before) + 1
    current_hour = current.hour if current.hour is not None else _local_hour(current.ts, local_tz)
    return Stability(
        window_days=round(window_seconds / DAY, 2),
        sessions=len(before),
        devices=len(devices),
        top_device_share=round(max(devices.values()) / sum(devices.values()), 4)
        if devices
        else 0.0,
        device_changes=changes,
        device_age_days=round((current.ts - first_seen) / DAY, 3)
        if current.device_id and first_seen is not None
        else None,
        ips=len(ips - {None, ""}),
        networks=len(networks),
        asns=len(asns - {None}),
        provinces=len(provinces - {None, ""}),
        network_entropy=_entropy(networks),
        night_share=round(sum(hours.get(h, 0) for h in NIGHT_HOURS) / logins, 4),
        hour_entropy=_entropy(hours),
        unusual_hour=bool(before) and (hours[current_hour] - 1) / len(before) < unusual_hour_share,
        new_device=_new(current.device_id, [e.device_id for e in before]),
        new_province=_new(current.province, [e.province for e in before]),
        new_carrier=_new(current.carrier, [e.carrier for e in before]),
        new_network_type=_new(current.network_type, [e.network_type for e in before]),
    )


def _local_hour(ts: float, tz: tzinfo) -> int:
    return datetime.fromtimestamp(ts, UTC).astimezone(tz).hour


def _entropy(counts: dict[Any, int]) -> float:
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
