"""The check stages: run a set of checks over a login's context, collecting findings,
what was not evaluated and why, and the device-scoped outcomes the verdict keeps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import msgspec

from fingerprint.checks import Check, CheckContext, NotEvaluated
from fingerprint.report import Finding
from fingerprint.reporting import finding_from_hit
from fingerprint.rules import CONFIDENT

# A check's result once settled: why it was not evaluated, or its findings.
Settled = NotEvaluated | tuple[Finding, ...]


class CheckRun(msgspec.Struct, array_like=True):
    """What the checks of one login found so far (both check stages add to it)."""

    findings: list[Finding] = msgspec.field(default_factory=list)
    not_evaluated: dict[str, str] = msgspec.field(default_factory=dict)
    warnings: list[str] = msgspec.field(default_factory=list)
    device: tuple[tuple[str, Settled], ...] = ()
    failed: bool = False


def run_checks(
    checks: Sequence[Check],
    ctx: CheckContext,
    *,
    codes: Mapping[str, Any],
    known: Mapping[str, Settled] | None,
    run: CheckRun,
) -> None:
    """Run ``checks`` into ``run`` (reusing ``known`` device-scoped results, already
    rendered as findings, which it only reads); one failing check is recorded and the
    others still run."""
    device_results: list[tuple[str, Settled]] = []
    for check in checks:
        result = known.get(check.name) if known is not None else None
        if result is None:
            try:
                outcome = check.evaluate(ctx)
            except Exception as exc:
                run.failed = True
                run.not_evaluated[check.name] = f"check failed: {type(exc).__name__}"
                run.warnings.append(f"{check.name} failed: {type(exc).__name__}: {exc}"[:300])
                continue
            if not outcome:  # no hits: most checks, most logins (a NotEvaluated is true)
                if check.device_scoped:
                    device_results.append((check.name, ()))
                continue
            if isinstance(outcome, NotEvaluated):
                result = outcome
            else:
                late = ctx.late_by if check.uses_history else None
                result = tuple([finding_from_hit(check.name, hit, codes, late) for hit in outcome])
            if check.device_scoped:
                device_results.append((check.name, result))
        if isinstance(result, NotEvaluated):
            run.not_evaluated[check.name] = result.reason
        elif result:
            run.findings.extend(result)
    if device_results:
        run.device += tuple(device_results)


class KnownOutcomes(msgspec.Struct, frozen=True):
    """Outcomes a device verdict already holds for a run of device-scoped checks, in
    check order: their findings (rendered) and why some were not evaluated."""

    findings: tuple[Finding, ...]
    reasons: tuple[tuple[str, str], ...]  # (check name, why not evaluated)


# The session checks a login that reuses a device verdict still runs, in order: runs of
# checks to evaluate, between the outcomes the verdict holds for the others.
Plan = tuple[tuple[Check, ...] | KnownOutcomes, ...]


def session_plan(checks: Sequence[Check], known: Mapping[str, Settled]) -> Plan:
    """What :func:`run_checks` does with ``known`` over ``checks``, made once per
    verdict: the checks it would evaluate, grouped, between what it would copy from
    ``known``. A clean device's plan is the checks that are not device-scoped (two of
    eight by default), where every login looked up all eight."""
    steps: list[tuple[Check, ...] | KnownOutcomes] = []
    to_run: list[Check] = []
    findings: list[Finding] = []
    reasons: list[tuple[str, str]] = []
    for check in checks:
        result = known.get(check.name)
        if result is None:
            if findings or reasons:
                steps.append(KnownOutcomes(tuple(findings), tuple(reasons)))
                findings, reasons = [], []
            to_run.append(check)
        elif result:  # findings, or why not evaluated (a NotEvaluated is true)
            if to_run:
                steps.append(tuple(to_run))
                to_run = []
            if isinstance(result, NotEvaluated):
                reasons.append((check.name, result.reason))
            else:
                findings.extend(result)
    if to_run:
        steps.append(tuple(to_run))
    if findings or reasons:
        steps.append(KnownOutcomes(tuple(findings), tuple(reasons)))
    return tuple(steps)


def run_plan(plan: Plan, ctx: CheckContext, *, codes: Mapping[str, Any], run: CheckRun) -> None:
    """:func:`run_checks` with a verdict's outcomes, as :func:`session_plan` made it."""
    for step in plan:
        if type(step) is tuple:
            run_checks(step, ctx, codes=codes, known=None, run=run)
        else:
            known = cast(KnownOutcomes, step)
            run.findings.extend(known.findings)
            run.not_evaluated.update(known.reasons)


def exit_verdict(
    findings: Sequence[Finding], *, exit_checks: frozenset[str], relay_codes: frozenset[str]
) -> tuple[bool, bool]:
    """(anonymous, relay): whether the session checks found the IP an anonymising exit
    (a confident finding of a check that declares ``marks_anonymous_exit``), or else a
    privacy relay's egress. History keeps both as no location of the user's."""
    if not findings:  # most logins: no two generators made to find nothing (~0.3 µs)
        return False, False
    anonymous = any(f.check in exit_checks and f.severity in CONFIDENT for f in findings)
    relay = not anonymous and any(f.code in relay_codes for f in findings)
    return anonymous, relay
