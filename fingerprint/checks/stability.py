"""``stability``: the seeds' stability cross-checks as weak signals.

Reads the stability features the checker computed from the account's history
(:mod:`fingerprint.features.stability`). Until an account has a minimum history the
features are not meaningful, and the check says so instead of penalising a new
account.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from fingerprint.checks.base import (
    COUNT,
    SHARE,
    Check,
    CheckContext,
    HistoryIndex,
    Hit,
    Needs,
    NotEvaluated,
    Outcome,
    history_unavailable,
)
from fingerprint.features.stability import DAY, Stability, StabilityRequest
from fingerprint.rules import Threshold


@dataclass(frozen=True)
class StabilityCheck(Check):
    name: ClassVar[str] = "stability"
    codes: ClassVar[tuple[str, ...]] = (
        "STB_DISPERSED_NETWORKS",
        "STB_NIGHT_LOGINS",
        "STB_UNSTABLE_DEVICE",
        "STB_UNUSUAL_HOUR_NEW_DEVICE",
        "STB_NEW_DEVICE_PROVINCE_CARRIER",
        "STB_LONG_TERM_ANONYMISER",
    )
    # The long-term anonymiser habit counts the logins marked as exits.
    needs: ClassVar[Needs] = Needs(
        history=frozenset({HistoryIndex.ACCOUNT}), stability=True, exit_marks=True
    )
    thresholds: ClassVar[dict[str, Threshold]] = {
        "windows_days": Threshold(
            kind="number", minimum=0, exclusive_minimum=True, maximum=366, unit="days", many=True
        ),
        "min_sessions": Threshold(kind="count", minimum=0, maximum=100_000),
        "min_history_days": Threshold(kind="number", minimum=0, maximum=366, unit="days"),
        "unusual_hour_share": SHARE,
        "dispersed_networks": COUNT,
        "dispersed_entropy_bits": Threshold(kind="number", minimum=0, maximum=64, unit="bits"),
        "night_share": SHARE,
        "unstable_top_device_share": SHARE,
        "unstable_min_devices": COUNT,
        "anonymiser_share": SHARE,
        "anonymiser_min_logins": COUNT,
    }

    windows_days: tuple[float, ...] = (7, 30)
    min_sessions: int = 5  # earlier logins needed before the features mean anything
    min_history_days: float = 1.0  # ... spread over at least this long
    unusual_hour_share: float = 0.05  # an hour used for under 5% of logins is unusual
    dispersed_networks: int = 8  # short window: this many distinct /24 or /48 networks
    dispersed_entropy_bits: float = 2.5  # ... spread this evenly
    night_share: float = 0.3  # long window: share of logins 23:00-05:00
    unstable_top_device_share: float = 0.5  # long window: the main device below this share
    unstable_min_devices: int = 3
    # Long-term anonymiser use (seed: long-term VPN/proxy users are rejected 91% of the
    # time): in either window, at least this share of the logins, and this many.
    anonymiser_share: float = 0.5
    anonymiser_min_logins: int = 5

    # windows_days in seconds, derived once here rather than on every login.
    windows_seconds: tuple[float, ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "windows_days", tuple(sorted(self.windows_days)))
        seconds = tuple(days * 86_400 for days in self.windows_days)
        object.__setattr__(self, "windows_seconds", seconds)

    def history_seconds(self) -> float:
        return max(self.windows_seconds, default=0.0)

    def stability_request(self) -> StabilityRequest:
        return StabilityRequest(
            windows_days=self.windows_days,
            windows_seconds=self.windows_seconds,
            unusual_hour_share=self.unusual_hour_share,
        )

    def evaluate(self, ctx: CheckContext) -> Outcome:
        unavailable = history_unavailable(ctx)
        if unavailable:
            return unavailable
        if not ctx.stability:
            return NotEvaluated("no stability features")
        short = ctx.stability[self.windows_days[0]]
        long = ctx.stability[self.windows_days[-1]]
        span = _span_days(ctx)
        if long.sessions < self.min_sessions or span < self.min_history_days:
            return NotEvaluated(
                f"not yet meaningful: {long.sessions} earlier logins over {span:.1f} days "
                f"(needs {self.min_sessions} over {self.min_history_days:g})"
            )
        hits: list[Hit] = []
        if (
            short.networks >= self.dispersed_networks
            and short.network_entropy >= self.dispersed_entropy_bits
        ):
            hits.append(
                Hit(
                    "STB_DISPERSED_NETWORKS",
                    {
                        "networks": short.networks,
                        "entropy_bits": short.network_entropy,
                        "window_days": short.window_days,
                    },
                )
            )
        if long.night_share >= self.night_share:
            hits.append(
                Hit(
                    "STB_NIGHT_LOGINS",
                    {"night_share": long.night_share, "window_days": long.window_days},
                )
            )
        if (
            long.devices >= self.unstable_min_devices
            and long.top_device_share < self.unstable_top_device_share
        ):
            hits.append(
                Hit(
                    "STB_UNSTABLE_DEVICE",
                    {
                        "devices": long.devices,
                        "top_device_share": long.top_device_share,
                        "window_days": long.window_days,
                    },
                )
            )
        if long.unusual_hour and long.new_device:
            hits.append(
                Hit(
                    "STB_UNUSUAL_HOUR_NEW_DEVICE",
                    {"hour_entropy": long.hour_entropy, "window_days": long.window_days},
                )
            )
        if long.new_device and long.new_province and long.new_carrier:
            hits.append(Hit("STB_NEW_DEVICE_PROVINCE_CARRIER", {"window_days": long.window_days}))
        habit = self._long_term_anonymiser(long, short)
        if habit:
            hits.append(habit)
        return hits

    def _long_term_anonymiser(self, long: Stability, short: Stability) -> Hit | None:
        """The account's habit, not this login: most of its logins in a window came
        through a VPN, proxy, Tor or hosting address. The long window is reported
        when both qualify (the longer habit)."""
        for window in (long, short):
            if (
                window.anonymised_logins >= self.anonymiser_min_logins
                and window.anonymised_share >= self.anonymiser_share
            ):
                days = window.window_days
                return Hit(
                    "STB_LONG_TERM_ANONYMISER",
                    {
                        "anonymised_logins": window.anonymised_logins,
                        "logins": window.sessions + 1,
                        "percent": round(window.anonymised_share * 100),
                        # whole days print as "30", not "30.0"
                        "window_days": int(days) if days == int(days) else days,
                    },
                )
        return None


def _span_days(ctx: CheckContext) -> float:
    assert ctx.history is not None and ctx.current_event is not None
    events = ctx.history.account_events
    if not events:
        return 0.0
    return (ctx.current_event.ts - events[0].ts) / DAY
