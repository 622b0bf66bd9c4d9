"""Account and device signals from the seeds: device sharing, device churn, off-brand
devices and missing face verification. Weak alone; they slow eligibility down."""

from __future__ import annotations

from dataclasses import dataclass
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
    login_ts,
    logins_since,
)
from fingerprint.history import LoginEvent
from fingerprint.rules import Threshold

_DEVICE_ID = itemgetter(LoginEvent._fields.index("device_id"))


def _device_with_history(ctx: CheckContext) -> str | NotEvaluated:
    """The session's device id, or why a device history check cannot run."""
    unavailable = history_unavailable(ctx)
    if unavailable:
        return unavailable
    device = ctx.session.device
    if device is None or not device.device_id:
        return NotEvaluated("no device_id")
    return device.device_id


@dataclass(frozen=True)
class DeviceSharingCheck(HoursWindow, Check):
    """One device, many accounts inside the window: account farms share phones."""

    name: ClassVar[str] = "device_sharing"
    codes: ClassVar[tuple[str, ...]] = ("SHR_DEVICE_SHARED",)
    needs: ClassVar[Needs] = Needs(history=frozenset({HistoryIndex.DEVICE}))
    thresholds: ClassVar[dict[str, Threshold]] = {
        "window_hours": WINDOW_HOURS,
        "max_accounts": COUNT,
    }

    window_hours: float = 168.0
    max_accounts: int = 3

    def evaluate(self, ctx: CheckContext) -> Outcome:
        device_id = _device_with_history(ctx)
        if isinstance(device_id, NotEvaluated):
            return device_id
        assert ctx.history is not None
        shared = ctx.history.device_accounts
        if len(shared) + 1 < self.max_accounts:
            return []  # too few other accounts on record to reach the limit: most devices
        since = login_ts(ctx) - self.window_hours * 3600
        accounts = {a for ts, a in shared if ts >= since}
        accounts.add(ctx.session.account_id)
        if len(accounts) < self.max_accounts:
            return []
        evidence = {
            "device_id": device_id,
            "accounts": len(accounts),
            "window_hours": self.window_hours,
        }
        return [Hit("SHR_DEVICE_SHARED", evidence)]


@dataclass(frozen=True)
class DeviceChurnCheck(HoursWindow, Check):
    """One account, many devices: frequent device changes delay eligibility (seed)."""

    name: ClassVar[str] = "device_churn"
    codes: ClassVar[tuple[str, ...]] = ("CHN_DEVICE_CHURN",)
    needs: ClassVar[Needs] = Needs(history=frozenset({HistoryIndex.ACCOUNT}))
    thresholds: ClassVar[dict[str, Threshold]] = {
        "window_hours": WINDOW_HOURS,
        "max_devices": COUNT,
    }

    window_hours: float = 168.0
    max_devices: int = 3

    def evaluate(self, ctx: CheckContext) -> Outcome:
        device_id = _device_with_history(ctx)
        if isinstance(device_id, NotEvaluated):
            return device_id
        assert ctx.history is not None
        events = ctx.history.account_events
        if len(events) + 1 < self.max_devices:
            return []  # too few logins on record to reach the limit
        since = login_ts(ctx) - self.window_hours * 3600
        devices = set(map(_DEVICE_ID, logins_since(events, since)))  # a map in C
        devices.discard(None)  # a login without a device id, or an empty one, is no device
        devices.discard("")
        # This login's device as history counts it (the derived key when confident).
        current = ctx.current_event.device_id if ctx.current_event else None
        devices.add(current or device_id)
        if len(devices) < self.max_devices:
            return []
        return [
            Hit("CHN_DEVICE_CHURN", {"devices": len(devices), "window_hours": self.window_hours})
        ]


@dataclass(frozen=True)
class DeviceBrandCheck(Check):
    """Mainstream brands pass far more often than off-brand (山寨) phones (seed)."""

    name: ClassVar[str] = "device_brand"
    device_scoped: ClassVar[bool] = True
    codes: ClassVar[tuple[str, ...]] = ("BRD_OFF_BRAND",)

    def evaluate(self, ctx: CheckContext) -> Outcome:
        device = ctx.features.device
        if device.device_class not in ("mobile", "tablet"):
            return NotEvaluated("not a mobile device")
        if device.mainstream_brand is None:
            return NotEvaluated("device brand unknown")
        if device.mainstream_brand:
            return []
        return [
            Hit("BRD_OFF_BRAND", {"brand": device.brand_raw or device.brand, "model": device.model})
        ]


@dataclass(frozen=True)
class FaceVerificationCheck(Check):
    """Accounts without face verification (人脸核身) wait longer for eligibility (seed)."""

    name: ClassVar[str] = "face_verification"
    codes: ClassVar[tuple[str, ...]] = ("AUTH_NO_FACE_VERIFICATION",)

    def evaluate(self, ctx: CheckContext) -> Outcome:
        auth = ctx.session.auth
        if auth is None or auth.face_verified is None:
            return NotEvaluated("auth.face_verified not reported")
        if auth.face_verified:
            return []
        return [Hit("AUTH_NO_FACE_VERIFICATION", {"face_verified": False})]


@dataclass(frozen=True)
class HistoryHealthCheck(Check):
    """Whether history could be read. A store outage is fail-open by default (the
    history checks list themselves as not evaluated); with ``fail_closed`` the report
    carries a finding instead, so the grade is conservative."""

    name: ClassVar[str] = "history"
    codes: ClassVar[tuple[str, ...]] = ("HIS_UNAVAILABLE",)
    # Reads no window: only whether history could be read at all.
    needs: ClassVar[Needs] = Needs(history=frozenset({HistoryIndex.ACCOUNT}))

    def evaluate(self, ctx: CheckContext) -> Outcome:
        if ctx.history is not None:
            return []
        reason = ctx.history_error or "history unavailable"
        if ctx.fail_closed:
            return [Hit("HIS_UNAVAILABLE", {"reason": reason})]
        return NotEvaluated(reason)
