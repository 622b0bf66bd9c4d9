"""The grade and report stage: the ``features`` block, the grade and the report."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fingerprint.checks import CheckContext
from fingerprint.features.stability import Stability
from fingerprint.grading import Grader
from fingerprint.report import Report
from fingerprint.stages.run import CheckRun


def features_summary(ctx: CheckContext, stability: dict[float, Stability] | None) -> dict[str, Any]:
    """The report's ``features``: the session's, whois, the device key, stability."""
    summary = ctx.features.summary()
    whois = ctx.whois
    if whois is not None:
        summary["whois"] = {
            "asn": whois.asn,
            "org": whois.asn_description,
            "network": whois.network_name,
            "cidr": whois.cidr,
            "country": whois.country,
            "from_cache": whois.from_cache,
        }
    identity = ctx.identity
    summary["device_key"] = identity.key
    summary["device_key_level"] = identity.level
    summary["device_key_confidence"] = identity.confidence
    for days, values in (stability or {}).items():
        summary[_stability_name(days)] = values.to_dict()
    return summary


@lru_cache(maxsize=64)  # the rules' windows: a few, formatted once each
def _stability_name(days: float) -> str:
    return f"stability_{days:g}d"


def graded_report(
    *,
    grader: Grader,
    sid: str,
    ctx: CheckContext,
    run: CheckRun,
    features: dict[str, Any],
    warnings: list[str],
) -> Report:
    """Grade what the checks found and make the report."""
    session = ctx.session
    graded = grader.grade(run.findings, run.not_evaluated)
    return Report(
        session_id=sid,
        account_id=session.account_id,
        ts=session.ts,
        grade=graded.grade,
        score=graded.score,
        blacklisted=graded.blacklisted,
        findings=tuple(run.findings),
        contributions=graded.contributions,
        not_evaluated=run.not_evaluated,
        features=features,
        device_component=graded.device_component,
        warnings=tuple(run.warnings + warnings),
        points_scaled=graded.points_scaled,
    )
