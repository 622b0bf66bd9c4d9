"""Findings and reports: the output contract of SESSION-LOG.md (report format v1)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from fingerprint.native import NATIVE
from fingerprint.rules import Severity


class Finding(msgspec.Struct, frozen=True, array_like=True):
    check: str
    code: str
    severity: Severity
    message: str
    message_zh: str
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "message_zh": self.message_zh,
            "evidence": self.evidence,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """The finding :meth:`to_dict` gave (a report read back)."""
        return cls(
            check=data["check"],
            code=data["code"],
            severity=data["severity"],
            message=data["message"],
            message_zh=data["message_zh"],
            evidence=data["evidence"],
        )


class DeviceComponent(msgspec.Struct, frozen=True):
    """What the eligibility model consumes: 12% of the evaluation by default."""

    weight: float
    score: float  # 0..1
    veto: bool
    reasons: tuple[str, ...]
    # ``ok``, ``veto`` (blacklisted) or ``pending``: something the decision must wait
    # for (``pending_reasons``: face verification not done, too few signals evaluated).
    status: str = "ok"
    pending_reasons: tuple[str, ...] = ()
    # Share (0..1) of the device evidence that was evaluated, by the evidence weights
    # of the checks that ran (grading.yaml ``device_component.evidence_weights``).
    coverage: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "weight": self.weight,
            "score": self.score,
            "veto": self.veto,
            "reasons": list(self.reasons),
            "status": self.status,
            "pending_reasons": list(self.pending_reasons),
            "coverage": self.coverage,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceComponent:
        """The component :meth:`to_dict` gave; one written before ``status``,
        ``pending_reasons`` and ``coverage`` existed reads as a plain ``ok``."""
        veto = data["veto"]
        coverage = data.get("coverage")
        return cls(
            weight=data["weight"],
            score=data["score"],
            veto=veto,
            reasons=tuple(data["reasons"]),
            status=data.get("status") or ("veto" if veto else "ok"),
            pending_reasons=tuple(data.get("pending_reasons") or ()),
            coverage=1.0 if coverage is None else coverage,
        )


def _python_utc_text(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def utc_text(when: datetime) -> str:
    """A report's time as its JSON writes it: ISO 8601, ``Z`` for UTC. Written in C
    for a time in ``datetime.UTC`` (every session's, ~0.1 µs against ~0.7 for
    ``isoformat`` and the replace), by :func:`_python_utc_text` otherwise."""
    if _NATIVE_UTC_TEXT is not None:
        text = _NATIVE_UTC_TEXT(when)
        if text is not None:
            return text
    return _python_utc_text(when)


_NATIVE_UTC_TEXT: Callable[[datetime], str | None] | None = (
    NATIVE.utc_text if NATIVE is not None else None
)


class Report(msgspec.Struct, frozen=True):
    session_id: str
    account_id: str
    ts: datetime
    grade: str
    score: int
    blacklisted: bool
    findings: tuple[Finding, ...]
    contributions: dict[str, int]
    not_evaluated: dict[str, str]  # check name -> why
    features: dict[str, Any]
    device_component: DeviceComponent
    warnings: tuple[str, ...] = ()
    # How the points were scaled, when they were (the weak cap, the 100-point floor):
    # ``contributions`` holds the points taken, this the catalogue points and scale.
    points_scaled: dict[str, Any] | None = None

    @property
    def not_evaluated_reasons(self) -> dict[str, str]:
        """Check name -> why it was not evaluated: ``not_evaluated`` itself, under the
        name the JSON gives it (where ``not_evaluated`` is the list of names)."""
        return self.not_evaluated

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "session_id": self.session_id,
            "account_id": self.account_id,
            "ts": utc_text(self.ts),
            "grade": self.grade,
            "score": self.score,
            "blacklisted": self.blacklisted,
            "findings": [f.to_dict() for f in self.findings] if self.findings else [],
            "contributions": self.contributions,
            "not_evaluated": list(self.not_evaluated),
            "not_evaluated_reasons": self.not_evaluated,
            "features": self.features,
            "device_component": self.device_component.to_dict(),
        }
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if self.points_scaled is not None:
            out["points_scaled"] = self.points_scaled
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """The report :meth:`to_dict` gave (a line of ``fingerprint check`` read back):
        ``Report.from_dict(r.to_dict()) == r``. ``ts`` may also be a datetime."""
        ts = data["ts"]
        ts = datetime.fromisoformat(ts) if isinstance(ts, str) else ts
        return cls(
            session_id=data["session_id"],
            account_id=data["account_id"],
            ts=ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC),
            grade=data["grade"],
            score=data["score"],
            blacklisted=data["blacklisted"],
            findings=tuple(Finding.from_dict(f) for f in data["findings"]),
            contributions=dict(data["contributions"]),
            not_evaluated=dict(data["not_evaluated_reasons"]),
            features=data["features"],
            device_component=DeviceComponent.from_dict(data["device_component"]),
            warnings=tuple(data.get("warnings") or ()),
            points_scaled=data.get("points_scaled"),
        )
