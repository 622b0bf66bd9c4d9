"""ip_hopping counts mainland provinces only; a move across the border is its own matter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingerprint import Checker, CheckerConfig
from fingerprint.checks import CheckContext
from fingerprint.checks.ip_hopping import IpHoppingCheck
from fingerprint.features.provinces import CN_PROVINCES_ZH, MAINLAND_PROVINCES, is_mainland_province
from fingerprint.history import HistoryView, LoginEvent
from fingerprint.report import Report
from tests.conftest import make_session

T0 = 1_795_133_730
HOUR = 3600
# Placed by the bundled GeoLite2-City (2018) in these subdivisions.
BEIJING, GUANGZHOU, CHENGDU, NANJING = (
    "202.106.0.20",
    "202.96.128.86",
    "61.139.2.69",
    "114.114.114.114",
)
TOKYO, KANAGAWA, SEOUL, SINGAPORE = "27.0.0.1", "203.104.128.1", "112.175.0.1", "165.21.0.1"
HONG_KONG, TAIPEI = "218.188.0.1", "1.160.0.1"
HOME_TZ, TOKYO_TZ = "Asia/Shanghai", "Asia/Tokyo"


def login(n: int, ip: str, hours: float, tz: str | None = HOME_TZ, **extra: Any) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "session_id": f"s{n}",
        "ts": T0 + hours * HOUR,
        "ip": ip,
        "device.timezone": tz,
        "network.vpn_active": False,
        "network.interfaces": ["wlan0"],
        **extra,
    }
    return make_session(**changes)


CHECKER = Checker(CheckerConfig())
ACCOUNTS = count()


def run(logins: list[dict[str, Any]]) -> list[Report]:
    """One new account's logins, in order, through one shared checker."""
    account = f"traveller-{next(ACCOUNTS)}"
    device = {"device_id": f"{account}-phone"}
    return [
        CHECKER.check(
            {
                **s,
                "account_id": account,
                "session_id": f"{account}-{s['session_id']}",
                "device": {**s["device"], **device},
            }
        )
        for s in logins
    ]


def geo_codes(report: Report) -> list[str]:
    return [f.code for f in report.findings if f.check == "ip_hopping"]


def test_the_31_mainland_provinces_and_nothing_else() -> None:
    assert len(MAINLAND_PROVINCES) == 31 == len(CN_PROVINCES_ZH)
    for code in ("CN-TW", "CN-HK", "CN-MO", "HK-HCW", "TW-TPE", "MO", "JP-13", "KR-11", "SG-01"):
        assert not is_mainland_province(code)
    assert is_mainland_province("CN-GD") and not is_mainland_province(None)


def test_a_trip_to_tokyo_with_the_time_zone_following_is_quiet() -> None:
    """Beijing, fly to Tokyo, move around Tokyo and Kanagawa, fly home: today's D."""
    trip = [
        login(0, BEIJING, 0),
        login(1, TOKYO, 5, TOKYO_TZ),
        login(2, KANAGAWA, 6, TOKYO_TZ),
        login(3, TOKYO, 7, TOKYO_TZ),
        login(4, KANAGAWA, 8, TOKYO_TZ),
        login(5, TOKYO, 9, TOKYO_TZ),
        login(6, BEIJING, 16),
    ]
    reports = run(trip)
    assert [geo_codes(r) for r in reports] == [[]] * len(trip)
    assert all(r.grade == "A" for r in reports), [(r.grade, r.contributions) for r in reports]
    assert all("ip_hopping" not in r.not_evaluated for r in reports[1:])


def test_roaming_data_and_hotel_wifi_abroad_are_quiet() -> None:
    """Roaming data is routed home (an IP in China) while Wi-Fi is local: the device's
    time zone abroad explains every jump across the border."""
    day = [login(n, TOKYO if n % 2 else GUANGZHOU, 1 + n * 0.2, TOKYO_TZ) for n in range(8)]
    assert [geo_codes(r) for r in run(day)] == [[]] * len(day)


@pytest.mark.parametrize("abroad", [TOKYO, SEOUL, SINGAPORE, HONG_KONG, TAIPEI])
def test_subdivisions_abroad_are_never_provinces(abroad: str) -> None:
    """Mainland, abroad, mainland in one province: no switch, no hopping."""
    reports = run([login(0, BEIJING, 0), login(1, abroad, 6, None), login(2, BEIJING, 12)])
    assert all("GEO_PROVINCE_HOPPING" not in geo_codes(r) for r in reports)
    assert all("GEO_IMPOSSIBLE_TRAVEL" not in geo_codes(r) for r in reports)


def test_mainland_hopping_is_still_found_across_a_trip_abroad() -> None:
    path = [BEIJING, TOKYO, GUANGZHOU, CHENGDU, NANJING]
    reports = run([login(n, ip, n * 0.5, None) for n, ip in enumerate(path)])
    hop = [f for f in reports[-1].findings if f.code == "GEO_PROVINCE_HOPPING"]
    assert hop and hop[0].evidence["provinces"] == ["CN-BJ", "CN-GD", "CN-SC", "CN-JS"]


def test_a_jump_across_the_border_faster_than_travel_is_weak() -> None:
    """Beijing to Tokyo in ten minutes, with no time zone to account for it."""
    reports = run([login(0, BEIJING, 0, None), login(1, TOKYO, 1 / 6, None)])
    findings = [f for f in reports[1].findings if f.check == "ip_hopping"]
    assert [(f.code, f.severity) for f in findings] == [("GEO_BORDER_IMPOSSIBLE_TRAVEL", "medium")]
    assert not reports[1].blacklisted and reports[1].grade == "B"


def test_a_border_jump_with_home_settings_is_the_vpn_mismatch_alone() -> None:
    """Home time zone, SIM and locale on a Tokyo IP ten minutes after Beijing: the
    VPN mismatch says the exit is not where the device is; hopping does not judge an
    exit (the same fact, in one grading group should both ever be reported)."""
    reports = run([login(0, BEIJING, 0), login(1, TOKYO, 1 / 6)])
    assert [f.code for f in reports[1].findings] == ["VPN_TZ_MISMATCH"]
    assert "ip_hopping" in reports[1].not_evaluated
    assert reports[1].grade == "C"


def test_a_device_abroad_on_a_third_countrys_ip_is_weak() -> None:
    reports = run([login(0, BEIJING, 0, TOKYO_TZ), login(1, SINGAPORE, 0.3, TOKYO_TZ)])
    assert geo_codes(reports[1]) == ["GEO_BORDER_IMPOSSIBLE_TRAVEL"]


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([TOKYO, KANAGAWA, SEOUL, SINGAPORE, HONG_KONG, TAIPEI]),
            st.floats(0.05, 3),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_no_stay_abroad_is_ever_province_hopping(stops: list[tuple[str, float]]) -> None:
    hours, trip = 0.0, [login(0, BEIJING, 0)]
    for n, (ip, gap) in enumerate(stops, start=1):
        hours += gap
        trip.append(login(n, ip, hours, None))
    for report in run(trip):
        assert not {"GEO_PROVINCE_HOPPING", "GEO_IMPOSSIBLE_TRAVEL"} & set(geo_codes(report))


@dataclass(frozen=True)
class _EveryListBuilt(IpHoppingCheck):
    """ip_hopping without its shortcut for logins that stayed in one province."""

    def _stayed(self, recent: Sequence[LoginEvent], province: str) -> bool:
        return False


_PLACES = {  # province: (latitude, longitude, accuracy km)
    "CN-BJ": (39.9, 116.4, 5),
    "CN-GD": (23.1, 113.3, 50),
    "CN-SC": (30.7, 104.1, 300),
    "JP-13": (35.7, 139.7, 5),
    "HK": (22.3, 114.2, 5),
    "": (None, None, None),
}
_provinces = st.sampled_from([None, *_PLACES])
_logins = st.lists(st.tuples(_provinces, st.booleans(), st.floats(0, 30)), max_size=8)


def _event(province: str | None, anonymous: bool, hours_before: float) -> LoginEvent:
    latitude, longitude, accuracy = _PLACES.get(province or "", (None, None, None))
    ts = T0 - hours_before * HOUR
    return LoginEvent(
        ts, 0, "a", "d", "1.2.3.4", province, latitude, longitude, accuracy, anonymous
    )


@settings(max_examples=400, deadline=None)
@given(
    _logins,
    _provinces,
    st.integers(1, 3),
    st.integers(1, 3),
    st.sampled_from([None, "Asia/Shanghai", "Asia/Tokyo"]),
)
def test_the_shortcut_for_logins_in_one_province_changes_no_outcome(
    earlier: list[tuple[str | None, bool, float]],
    province: str | None,
    max_switches: int,
    max_provinces: int,
    device_tz: str | None,
) -> None:
    """Whatever the window holds (provinces, none, "", abroad, anonymous logins) and
    whatever the thresholds (one province too many included), the check answers as
    it does with every list built."""
    session = CHECKER.parse(login(0, TOKYO if province == "JP-13" else BEIJING, 0, device_tz))
    features = CHECKER._enricher.extractor.extract(session)
    events = tuple(sorted((_event(*login) for login in earlier), key=lambda e: e.ts))
    current = _event(province, False, 0)
    ctx = CheckContext(
        session=session,
        features=features,
        history=HistoryView(account_events=events),
        current_event=current,
    )
    thresholds = {"max_switches": max_switches, "max_provinces": max_provinces}
    want = _EveryListBuilt(**thresholds).evaluate(ctx)
    assert IpHoppingCheck(**thresholds).evaluate(ctx) == want
