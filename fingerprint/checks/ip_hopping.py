"""``ip_hopping``: the account's IP moves across provinces too often, or too fast.

Only IPs the City database places in one of the 31 mainland provinces count as
provinces: a country-level placement sits at the country's centroid and says
nothing about travel, and subdivisions abroad (JP-13, KR-11, SG-01) and Hong Kong,
Macau and Taiwan are no provinces, so a trip abroad is no hopping. Impossible
travel allows for both accuracy radii and is not judged for coarse or anonymous
IPs, whose location is not the user's.

A move across the mainland's border is its own, weaker matter
(``GEO_BORDER_IMPOSSIBLE_TRAVEL``, medium): faster than travel allows, and the
device's time zone does not account for it. A traveller's phone follows the trip
(its time zone changes), and switching between roaming data, which is routed home
(an IP in China), and hotel Wi-Fi (an IP abroad) makes such jumps all day. A VPN
exit abroad with home settings is ``VPN_TZ_MISMATCH``, the same fact (one grading
group).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from operator import itemgetter
from typing import ClassVar

from fingerprint.checks.base import (
    COUNT,
    WINDOW_HOURS,
    Check,
    CheckContext,
    HistoryIndex,
    Hit,
    HoursWindow,
    Needs,
    NotEvaluated,
    Outcome,
    history_unavailable,
    logins_since,
)
from fingerprint.features.geo import great_circle_km
from fingerprint.features.provinces import is_mainland_province
from fingerprint.history import LoginEvent
from fingerprint.report import utc_text
from fingerprint.rules import Threshold


@dataclass(frozen=True)
class IpHoppingCheck(HoursWindow, Check):
    name: ClassVar[str] = "ip_hopping"
    codes: ClassVar[tuple[str, ...]] = (
        "GEO_PROVINCE_HOPPING",
        "GEO_IMPOSSIBLE_TRAVEL",
        "GEO_BORDER_IMPOSSIBLE_TRAVEL",
    )
    # An exit's location is not the user's: vpn_proxy's marks say which logins to pass over.
    needs: ClassVar[Needs] = Needs(history=frozenset({HistoryIndex.ACCOUNT}), exit_marks=True)
    thresholds: ClassVar[dict[str, Threshold]] = {
        "window_hours": WINDOW_HOURS,
        "max_switches": COUNT,
        "max_provinces": COUNT,
        "max_speed_kmh": Threshold(kind="number", minimum=1, maximum=100_000, unit="km/h"),
        "max_accuracy_km": Threshold(kind="number", minimum=0, maximum=20_038, unit="km"),
        "min_gap_minutes": Threshold(kind="number", minimum=0, maximum=1_440, unit="minutes"),
    }

    window_hours: float = 24.0
    max_switches: int = 3
    max_provinces: int = 4
    max_speed_kmh: float = 900.0
    max_accuracy_km: float = 200.0
    min_gap_minutes: float = 1.0

    def evaluate(self, ctx: CheckContext) -> Outcome:
        unavailable = history_unavailable(ctx)
        if unavailable:
            return unavailable
        current = ctx.current_event
        if current is None or current.province is None:
            return NotEvaluated("the IP is not located at province level")
        if current.ip_relay:  # stored anonymous too: no location of the user's
            return NotEvaluated("the IP is a privacy relay's egress: not the user's location")
        if current.ip_anonymous:
            return NotEvaluated("the IP is a VPN, proxy or hosting exit: not the user's location")
        assert ctx.history is not None
        since = current.ts - self.window_hours * 3600
        recent = logins_since(ctx.history.account_events, since)
        if self._stayed(recent, current.province):
            return []
        located = [e for e in recent if e.province and not e.ip_anonymous]
        hits = []
        if is_mainland_province(current.province):
            path = [e for e in located if is_mainland_province(e.province)]
            hopping = self._hopping([*path, current])
            if hopping:
                hits.append(hopping)
        travel = self._impossible_travel(located[-1] if located else None, current, ctx)
        if travel:
            hits.append(travel)
        return hits

    def _stayed(self, recent: Sequence[LoginEvent], province: str) -> bool:
        """Most logins: every located login of the window was in this province (or
        none was located), so nothing switched and the last place is this one, and
        there is nothing to find, unless one province is already too many
        (``max_provinces`` 1). Read in C over the province field (~0.4 µs less than
        the lists below)."""
        provinces = set(map(_PROVINCE, recent))
        provinces.discard(None)
        provinces.discard("")
        return self.max_provinces > 1 and provinces <= {province}

    def _hopping(self, path: list[LoginEvent]) -> Hit | None:
        # Count the switches first, building nothing: nearly every account stays in
        # one province. Each new province takes a switch to reach, so there are at
        # most switches + 1 of them.
        count = 0
        previous = path[0].province
        for event in path:
            if event.province != previous:
                count += 1
                previous = event.province
        if count < self.max_switches and count + 1 < self.max_provinces:
            return None
        switches = [(a, b) for a, b in pairwise(path) if a.province != b.province]
        provinces = list(dict.fromkeys(e.province for e in path if e.province))
        if len(switches) < self.max_switches and len(provinces) < self.max_provinces:
            return None
        return Hit(
            "GEO_PROVINCE_HOPPING",
            {
                "switches": len(switches),
                "provinces": provinces,
                "window_hours": self.window_hours,
                "moves": [
                    {"from": a.province, "to": b.province, "at": _iso(b.ts)}
                    for a, b in switches[-10:]
                ],
            },
        )

    def _impossible_travel(
        self, previous: LoginEvent | None, current: LoginEvent, ctx: CheckContext
    ) -> Hit | None:
        if previous is None or previous.province == current.province:
            return None
        mainland = (is_mainland_province(previous.province), is_mainland_province(current.province))
        if not any(mainland):
            return None  # abroad to abroad: no province, and not the border
        border = not all(mainland)
        if border and _device_explains_border(ctx, home_now=mainland[1]):
            return None
        speed = self._speed(previous, current)
        if speed is None or speed[2] <= self.max_speed_kmh:
            return None
        distance, hours, kmh = speed
        return Hit(
            "GEO_BORDER_IMPOSSIBLE_TRAVEL" if border else "GEO_IMPOSSIBLE_TRAVEL",
            {
                "from": previous.province,
                "to": current.province,
                "from_at": _iso(previous.ts),
                "to_at": _iso(current.ts),
                "distance_km": round(distance),
                "hours": round(hours, 2),
                "speed_kmh": round(kmh),
            },
        )

    def _speed(
        self, previous: LoginEvent, current: LoginEvent
    ) -> tuple[float, float, float] | None:
        """(distance km, hours, km/h beyond both accuracy radii), or None when a place
        is unknown or too coarse to time."""
        points = (previous.latitude, previous.longitude, current.latitude, current.longitude)
        if any(p is None for p in points):
            return None
        radii = (previous.accuracy_km or 0, current.accuracy_km or 0)
        if max(radii) > self.max_accuracy_km:
            return None
        distance = great_circle_km(*points)  # type: ignore[arg-type]
        slack = max(0.0, distance - sum(radii))
        hours = max(current.ts - previous.ts, self.min_gap_minutes * 60) / 3600
        return distance, hours, slack / hours


def _device_explains_border(ctx: CheckContext, *, home_now: bool) -> bool:
    """A jump across the border the device's own time zone accounts for.

    Back on a mainland IP, any time zone does: at home it confirms the place, abroad
    it is a traveller on roaming data, which is routed home. On an IP abroad, the
    device's time zone must be that IP's: a phone that followed the trip. A device
    with no time zone explains nothing.
    """
    device, geo = ctx.session.device, ctx.features.geo
    device_tz = (device.timezone or "").strip().casefold() if device else ""
    if not device_tz:
        return False
    if home_now:
        return True
    ip_tz = geo.time_zone if geo else None
    return ip_tz is not None and ip_tz.casefold() == device_tz


_PROVINCE = itemgetter(LoginEvent._fields.index("province"))


def _iso(ts: float) -> str:
    return utc_text(datetime.fromtimestamp(ts, UTC))
