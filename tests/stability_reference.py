"""The plain reference for the stability features: one window, oldest first.

Kept in the tests as the oracle ``account_stability_windows`` (the one-pass production
code) is compared with, window by window, in tests/test_stability_windows.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from fingerprint.features import stability as production
from fingerprint.features.stability import DAY, NIGHT_HOURS, Stability
from fingerprint.history import LoginEvent


def account_stability(
    history: Sequence[LoginEvent],
    current: LoginEvent,
    window_seconds: float,
    local_tz: tzinfo,
    unusual_hour_share: float = 0.05,
) -> Stability:
    """Stability of the account over the window ending at the current login: the
    logins of the window, oldest first, counted the obvious way."""
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
    everyone = (*before, current)
    relays = sum(1 for e in everyone if e.ip_relay)
    anonymised = sum(1 for e in everyone if e.ip_anonymous and not e.ip_relay)
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
        anonymised_logins=anonymised,
        anonymised_share=round(anonymised / logins, 4),
        relay_logins=relays,
    )


def _local_hour(ts: float, tz: tzinfo) -> int:
    return datetime.fromtimestamp(ts, UTC).astimezone(tz).hour


def _entropy(counts: dict[Any, int]) -> float:
    # Through the production module: a test records the count lists it is handed.
    return production._entropy_of(list(counts.values()))


def _new(value: str | None, seen: list[str | None]) -> bool | None:
    """Is ``value`` absent from an account history that knows this field at all?"""
    if value is None:
        return None
    known = {v for v in seen if v is not None}
    if not known:
        return None  # nothing to compare with: not "new", just unknown
    return value not in known
