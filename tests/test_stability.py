"""Account stability features with hand-built histories: exact numbers."""

from __future__ import annotations

import math
from datetime import datetime
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fingerprint import Checker
from fingerprint.features import stability as stability_module
from fingerprint.features.stability import Stability, account_stability_windows
from fingerprint.history import LoginEvent
from tests.conftest import make_session

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = 86_400
MIDNIGHT = datetime(2026, 11, 20, tzinfo=SHANGHAI).timestamp()
WEEK = 7 * DAY


def account_stability(
    history: list[LoginEvent], current: LoginEvent, window: float, tz: ZoneInfo
) -> Stability:
    return account_stability_windows(history, current, [window], tz)[0]


def login(
    hours: float,
    device: str = "d1",
    network: str = "1.1.1.0/24",
    *,
    province: str | None = "CN-BJ",
    carrier: str | None = "中国移动",
    net_type: str | None = "wifi",
    asn: int | None = 9808,
    ip: str | None = None,
) -> LoginEvent:
    ts = MIDNIGHT + hours * 3600
    return LoginEvent(
        ts,
        hours,
        "acct",
        device,
        ip or network.replace("0/24", "9"),
        province,
        None,
        None,
        None,
        False,
        network,
        asn,
        net_type,
        carrier,
    )


def test_device_stability() -> None:
    history = [login(10, "d1"), login(34, "d1"), login(58, "d2"), login(82, "d1")]
    current = login(106, "d3")
    got = account_stability(history, current, WEEK, SHANGHAI)
    assert got.sessions == 4
    assert got.devices == 3
    assert got.top_device_share == 0.6  # d1 in 3 of 5 logins
    assert got.device_changes == 3  # d1 d1 d2 d1 d3
    assert got.device_age_days == 0.0  # d3 is new
    assert got.new_device is True
    again = account_stability(history, login(106, "d2"), WEEK, SHANGHAI)
    assert again.device_age_days == 2.0  # d2 first seen 48 h earlier
    assert again.new_device is False


def test_ip_dispersion() -> None:
    nets = ["1.1.1.0/24", "1.1.1.0/24", "2.2.2.0/24", "3.3.3.0/24"]
    history = [
        login(10 + n, network=net, asn=100 + n % 2, province=f"CN-{p}")
        for n, (net, p) in enumerate(zip(nets, ["BJ", "BJ", "SH", "GD"], strict=True))
    ]
    current = login(20, network="4.4.4.0/24", asn=100, province="CN-BJ")
    got = account_stability(history, current, WEEK, SHANGHAI)
    assert got.networks == 4
    assert got.ips == 4  # two logins share 1.1.1.9
    assert got.asns == 2
    assert got.provinces == 3
    # five logins over networks 2/1/1/1: H = -(0.4 log 0.4 + 3 * 0.2 log 0.2)
    expected = -(0.4 * math.log2(0.4) + 3 * 0.2 * math.log2(0.2))
    assert got.network_entropy == pytest.approx(expected, abs=1e-4)
    assert got.new_province is False


def test_login_time_regularity() -> None:
    # Nine logins at 10:00 local on nine days, then one at 02:00.
    history = [login(24 * d + 10) for d in range(9)]
    current = login(24 * 9 + 2)
    got = account_stability(history, current, 30 * DAY, SHANGHAI)
    assert got.night_share == 0.1
    assert got.unusual_hour is True
    expected = -(0.9 * math.log2(0.9) + 0.1 * math.log2(0.1))
    assert got.hour_entropy == pytest.approx(expected, abs=1e-4)
    usual = account_stability(history, login(24 * 9 + 10), 30 * DAY, SHANGHAI)
    assert usual.unusual_hour is False and usual.hour_entropy == 0.0


def test_consistency_with_usual_device_network_carrier_province() -> None:
    history = [login(10 * n, carrier="中国移动", net_type="cellular") for n in range(5)]
    current = login(60, "new-phone", province="CN-GD", carrier="中国联通", net_type="wifi")
    got = account_stability(history, current, WEEK, SHANGHAI)
    assert (got.new_device, got.new_province, got.new_carrier, got.new_network_type) == (
        True,
        True,
        True,
        True,
    )
    unknown = account_stability(history, login(60, carrier=None, province=None), WEEK, SHANGHAI)
    assert unknown.new_carrier is None and unknown.new_province is None


def test_window_bounds_the_history() -> None:
    old = login(-8 * 24, "old-phone")
    got = account_stability([old, login(1)], login(2), WEEK, SHANGHAI)
    assert got.sessions == 1 and got.devices == 1


def _sessions(plan: list[tuple[float, str, str, str]]) -> list[dict[str, Any]]:
    out = []
    for n, (hours, device, ip, carrier) in enumerate(plan):
        out.append(
            make_session(
                session_id=f"p{n}",
                ts=MIDNIGHT + hours * 3600,
                ip=ip,
                **{"device.device_id": device, "device.sim.carrier": carrier},
            )
        )
    return out


def test_new_account_is_not_penalised() -> None:
    checker = Checker()
    report = checker.check(make_session(session_id="first"))
    assert report.not_evaluated["stability"].startswith("not yet meaningful")
    assert "stability_7d" in report.features and "stability_30d" in report.features
    assert not any(f.check == "stability" for f in report.findings)


def test_new_device_province_and_carrier_at_once_is_reported() -> None:
    beijing = "202.106.0.20"
    plan = [(24 * d + 10, "home", beijing, "中国移动") for d in range(6)]
    plan.append((24 * 6 + 11, "stranger", "202.96.128.86", "中国联通"))
    checker = Checker()
    reports = [checker.check(s) for s in _sessions(plan)]
    last = reports[-1]
    assert "STB_NEW_DEVICE_PROVINCE_CARRIER" in last.contributions
    assert last.features["stability_30d"]["new_device"] is True
    assert all("STB_NEW_DEVICE_PROVINCE_CARRIER" not in r.contributions for r in reports[:-1])


def test_unusual_hour_on_a_new_device_is_reported() -> None:
    plan = [(24 * d + 10, "home", "202.106.0.20", "中国移动") for d in range(6)]
    plan.append((24 * 6 + 3, "other", "202.106.0.20", "中国移动"))
    checker = Checker()
    last = [checker.check(s) for s in _sessions(plan)][-1]
    assert "STB_UNUSUAL_HOUR_NEW_DEVICE" in last.contributions
    assert last.features["stability_30d"]["unusual_hour"] is True


@pytest.mark.parametrize("native", [None, stability_module.NATIVE], ids=["python", "native"])
def test_a_window_reads_as_a_dict_of_its_fields_in_order(
    native: ModuleType | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In C where the extension is built, and by the Python code (without it)."""
    monkeypatch.setattr(stability_module, "NATIVE", native)
    # Distinct values in every field: a key paired with the wrong value shows.
    values = tuple(range(len(Stability._fields)))
    stability = Stability(*values)
    shown = stability.to_dict()
    assert list(shown) == list(Stability._fields)
    assert tuple(shown.values()) == values
    if native is not None:  # two tuples of one length only; else the Python code
        assert native.fields_dict(("a", "b"), (1,)) is None
        assert native.fields_dict(["a"], (1,)) is None
