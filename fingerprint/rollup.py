"""Per-account roll-up: eligibility is per user, not per login."""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fingerprint.report import Report, utc_text

_MAX_DISTINCT = 50  # devices / provinces kept per account; beyond that only counted


@dataclass(slots=True)
class AccountSummary:
    """One account's logins as this checker saw them. ``devices`` and ``provinces``
    are the distinct device ids and IP provinces in first-seen order (at most 50)."""

    account_id: str
    sessions: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    latest_grade: str | None = None
    latest_score: int | None = None
    worst_grade: str | None = None
    worst_score: int | None = None
    # Insertion-ordered sets (dict keys); read them as tuples through the properties.
    _devices: dict[str, None] = field(default_factory=dict, repr=False)
    _provinces: dict[str, None] = field(default_factory=dict, repr=False)
    checks: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    blacklisted: bool = False
    blacklisted_by: dict[str, Any] | None = None
    # The latest login's device component status (ok, pending, veto): an account whose
    # grade A came from a login with too few signals is pending, not a clean pass.
    latest_device_status: str | None = None

    def add(self, report: Report, device_id: str | None, grade_rank: dict[str, int]) -> None:
        self.sessions += 1
        ts = report.ts
        if self.first_seen is None or ts < self.first_seen:
            self.first_seen = ts
        if self.last_seen is None or ts >= self.last_seen:
            self.last_seen = ts
            self.latest_grade, self.latest_score = report.grade, report.score
            self.latest_device_status = report.device_component.status
        if self.worst_grade is None or _worse(report, self, grade_rank):
            self.worst_grade, self.worst_score = report.grade, report.score
        if device_id and len(self._devices) < _MAX_DISTINCT:
            self._devices[device_id] = None
        province = report.features.get("ip_province")
        if province and len(self._provinces) < _MAX_DISTINCT:
            self._provinces[province] = None
        findings = report.findings
        if findings:  # most logins have none: skip the counting entirely
            # Plain dict get/set: Counter.update costs ~1 us per call in Python-level
            # type checks, more than the counting for a handful of findings.
            checks, codes = self.checks, self.codes
            for check in {f.check for f in findings}:  # a check counts once per login
                checks[check] = checks.get(check, 0) + 1
            for finding in findings:
                codes[finding.code] = codes.get(finding.code, 0) + 1
        if report.blacklisted and not self.blacklisted:
            self.blacklisted = True
            self.blacklisted_by = {
                "session_id": report.session_id,
                "ts": _iso(ts),
                "codes": [f.code for f in findings if f.code in report.contributions],
            }

    @property
    def devices(self) -> tuple[str, ...]:
        """Distinct device ids, first seen first (at most 50)."""
        return tuple(self._devices)

    @property
    def provinces(self) -> tuple[str, ...]:
        """Distinct IP provinces (ISO 3166-2, e.g. CN-BJ), first seen first (at most 50)."""
        return tuple(self._provinces)

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "sessions": self.sessions,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "latest_grade": self.latest_grade,
            "latest_score": self.latest_score,
            "latest_device_status": self.latest_device_status,
            "worst_grade": self.worst_grade,
            "worst_score": self.worst_score,
            "devices": list(self._devices),
            "provinces": list(self._provinces),
            "checks": dict(sorted(self.checks.items())),
            "codes": dict(self.codes.most_common()),
            "blacklisted": self.blacklisted,
            "blacklisted_by": self.blacklisted_by,
        }


def _worse(report: Report, summary: AccountSummary, rank: dict[str, int]) -> bool:
    current = rank.get(summary.worst_grade or "", -1)
    new = rank.get(report.grade, -1)
    return new > current or (new == current and report.score < (summary.worst_score or 101))


def _iso(when: datetime | None) -> str | None:
    return utc_text(when) if when else None


class AccountRollup:
    """Thread-safe map of account summaries, least recently active evicted past a bound."""

    def __init__(self, grade_order: list[str], max_accounts: int | None = 100_000) -> None:
        # grade_order is best first (A..E); a higher rank is worse.
        self._rank = {grade: i for i, grade in enumerate(grade_order)}
        self._max = max_accounts
        self._accounts: OrderedDict[str, AccountSummary] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, report: Report, device_id: str | None) -> None:
        with self._lock:
            summary = self._accounts.get(report.account_id)
            if summary is None:
                summary = AccountSummary(report.account_id)
                self._accounts[report.account_id] = summary
            else:
                self._accounts.move_to_end(report.account_id)
            summary.add(report, device_id, self._rank)
            if self._max is not None and len(self._accounts) > self._max:
                self._accounts.popitem(last=False)

    def get(self, account_id: str) -> AccountSummary | None:
        with self._lock:
            return self._accounts.get(account_id)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._accounts.values()))

    def __len__(self) -> int:
        return len(self._accounts)
