"""The check catalogue: one class per family, built from ``rules/checks.yaml``."""

from __future__ import annotations

from fingerprint.checks.account import (
    DeviceBrandCheck,
    DeviceChurnCheck,
    DeviceSharingCheck,
    FaceVerificationCheck,
    HistoryHealthCheck,
)
from fingerprint.checks.base import Check, CheckContext, Hit, NotEvaluated, Outcome
from fingerprint.checks.consistency import ConsistencyCheck
from fingerprint.checks.emulator import EmulatorCheck
from fingerprint.checks.farm_tools import FarmToolsCheck
from fingerprint.checks.identity import DeviceFarmCheck, DeviceForgedCheck, DeviceResetCheck
from fingerprint.checks.ip_accounts import IpAccountsCheck
from fingerprint.checks.ip_hopping import IpHoppingCheck
from fingerprint.checks.multi_open import MultiOpenCheck
from fingerprint.checks.stability import StabilityCheck
from fingerprint.checks.tamper import TamperCheck
from fingerprint.checks.vpn_proxy import VpnProxyCheck

# Report order: the mission's four first, then the signals around them.
CHECK_CLASSES: tuple[type[Check], ...] = (
    EmulatorCheck,
    MultiOpenCheck,
    VpnProxyCheck,
    IpHoppingCheck,
    TamperCheck,
    FarmToolsCheck,
    ConsistencyCheck,
    DeviceSharingCheck,
    DeviceChurnCheck,
    IpAccountsCheck,
    DeviceResetCheck,
    DeviceForgedCheck,
    DeviceFarmCheck,
    DeviceBrandCheck,
    FaceVerificationCheck,
    StabilityCheck,
    HistoryHealthCheck,
)
CHECKS_BY_NAME: dict[str, type[Check]] = {c.name: c for c in CHECK_CLASSES}

__all__ = [
    "CHECKS_BY_NAME",
    "CHECK_CLASSES",
    "Check",
    "CheckContext",
    "Hit",
    "NotEvaluated",
    "Outcome",
]
