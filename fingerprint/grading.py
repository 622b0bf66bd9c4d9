"""Findings -> score, grade, blacklist and the device component.

Confident findings (high, critical) take their full points; weak ones (low,
medium) together take at most ``weak_cap``, which is below any confident finding,
so many weak signals add up but never outweigh one confident signal. Codes that
observe one underlying fact form a group (``groups`` in grading.yaml): the group
takes its largest member's points once, carried by that member; the other members
stay in ``contributions`` at 0. Independent facts add up. The points taken are
apportioned to whole numbers per code that sum exactly to 100 - score.

Points are stable: a code alone always takes its catalogue points (``points``).
Only two things scale them, and the grade says so in ``points_scaled``: the weak
cap (weak findings together above ``weak_cap``) and the 100-point floor (findings
together above 100).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import msgspec

from fingerprint.memo import BoundedMemo
from fingerprint.report import DeviceComponent, Finding
from fingerprint.rules import CONFIDENT, GradingFile

# The pending reason when less of the device evidence ran than ``min_coverage``.
TOO_FEW_SIGNALS = "too_few_signals"

# Distinct finding sets seen; past this many the memo starts over instead of growing.
GRADE_CACHE_SIZE = 4_096
# (code, severity) pairs of the findings, then the checks whose evidence is missing.
_GradeKey = tuple[tuple[tuple[str, str], ...], tuple[str, ...]]


class Grade(msgspec.Struct, frozen=True):
    score: int
    grade: str
    blacklisted: bool
    contributions: dict[str, int]
    device_component: DeviceComponent
    # None when every finding took its catalogue points; else how they were scaled
    # (see :func:`_scaling`): ``contributions`` alone cannot say it.
    points_scaled: dict[str, Any] | None = None


class Grader:
    def __init__(self, grading: GradingFile, *, disabled: Collection[str] = ()) -> None:
        self._grading = grading
        spec = grading.device_component
        self._evidence = {name: w for name, w in spec.evidence_weights.items() if w > 0}
        self._evidence_total = sum(self._evidence.values())
        # A disabled check's evidence is never evaluated.
        # intersection(), not ``& keys()``: that gives a set (dict_keys' __rand__), where
        # the type says frozenset (mypyc, which checks it at run time, refused it).
        self._disabled = frozenset(disabled).intersection(self._evidence)
        self._blacklist = frozenset(grading.blacklist_codes)
        self._bands = [(band.min_score, band.grade) for band in grading.bands]
        # code -> (group name, rank in the group): the first listed member carries a tie.
        self._group_of = {
            code: (name, rank)
            for name, members in grading.groups.items()
            for rank, code in enumerate(members)
        }
        # A grade depends only on each finding's code and severity, and few
        # combinations occur (no finding at all for most logins): (code, severity)
        # pairs in order -> the grade (fingerprint.memo: thread-safe, cleared when full).
        self._memo: BoundedMemo[_GradeKey, Grade] = BoundedMemo(GRADE_CACHE_SIZE)
        # The names of the checks not evaluated come in few combinations (7 in the
        # generator's first 10,000 lines, 11 in the few-UA log's): each one's missing
        # evidence is worked out once (~1 µs a login less).
        self._missing: BoundedMemo[tuple[str, ...], tuple[str, ...]] = BoundedMemo(
            1_024, self._missing_evidence
        )

    def points(self, finding: Finding) -> int:
        override = self._grading.code_points.get(finding.code)
        return override if override is not None else self._grading.severity_points[finding.severity]

    def grade(self, findings: Sequence[Finding], not_evaluated: Collection[str] = ()) -> Grade:
        """The grade of ``findings``; ``not_evaluated`` names the checks that did not
        run, which lowers the device component's ``coverage``."""
        missing = self._missing[tuple(not_evaluated)]
        # Most logins have no finding: no list built for them.
        key = (tuple([(f.code, f.severity) for f in findings]) if findings else (), missing)
        memo = self._memo
        known = memo.get(key)
        if known is None:
            known = memo.put(key, self._grade(findings, missing))
        # Each report owns its contributions dict: the memo's must never be shared.
        return Grade(
            known.score,
            known.grade,
            known.blacklisted,
            dict(known.contributions),
            known.device_component,
            _copied(known.points_scaled),
        )

    def _missing_evidence(self, not_evaluated: Collection[str]) -> tuple[str, ...]:
        """The weighted checks whose evidence was not evaluated, sorted (a memo key)."""
        evidence = self._evidence
        missing = self._disabled.union([name for name in not_evaluated if name in evidence])
        return tuple(sorted(missing))

    def coverage(self, missing: Collection[str]) -> float:
        """Evaluated share of the device evidence when the checks ``missing`` did not run."""
        if self._evidence_total <= 0:
            return 1.0
        lost = sum(self._evidence[name] for name in set(missing) if name in self._evidence)
        return round(1 - lost / self._evidence_total, 4)

    def _grade(self, findings: Sequence[Finding], missing: tuple[str, ...] = ()) -> Grade:
        raw, scaled = self._raw_deductions(findings)
        contributions = _apportion(raw, min(100, round(sum(raw.values()))))
        score = 100 - sum(contributions.values())
        blacklisted = any(f.code in self._blacklist and f.severity in CONFIDENT for f in findings)
        letter = self._grading.blacklist_grade if blacklisted else self.band(score)
        return Grade(
            score,
            letter,
            blacklisted,
            contributions,
            self._component(score, blacklisted, contributions, findings, missing),
            scaled,
        )

    def band(self, score: int) -> str:
        for minimum, letter in self._bands:
            if score >= minimum:
                return letter
        return self._bands[-1][1]

    def _raw_deductions(
        self, findings: Sequence[Finding]
    ) -> tuple[dict[str, float], dict[str, Any] | None]:
        """Points per code before rounding, and how they were scaled (None: not)."""
        carried = self._one_per_fact(findings)
        confident = {f.code: float(self.points(f)) for f in carried if f.severity in CONFIDENT}
        weak = {f.code: float(self.points(f)) for f in carried if f.severity not in CONFIDENT}
        catalogue = {**weak, **confident}
        weak_total = sum(weak.values())
        weak_scale = total_scale = 1.0
        if weak_total > self._grading.weak_cap:
            weak_scale = self._grading.weak_cap / weak_total
            weak = {code: points * weak_scale for code, points in weak.items()}
        raw = {**weak, **confident}
        total = sum(raw.values())
        if total > 100:
            total_scale = 100 / total
            raw = {code: points * total_scale for code, points in raw.items()}
        for finding in findings:  # a group's other members took nothing, and say so
            raw.setdefault(finding.code, 0.0)
        # Report order: largest deduction first, then code, for stable output.
        ordered = dict(sorted(raw.items(), key=lambda item: (-item[1], item[0])))
        # The 100-point floor scales every code; the weak cap only the weak ones.
        scaled_codes = catalogue if total_scale < 1 else weak if weak_scale < 1 else {}
        return ordered, self._scaling(weak_scale, total_scale, catalogue, scaled_codes)

    def _scaling(
        self,
        weak_scale: float,
        total_scale: float,
        catalogue: dict[str, float],
        scaled_codes: Collection[str],
    ) -> dict[str, Any] | None:
        """The ``points_scaled`` report field: which scale applied, by how much, and
        the catalogue points of the codes it scaled (``contributions`` holds what they
        took). None when nothing was scaled."""
        if not scaled_codes:
            return None
        applied = [
            name
            for name, scale in (("weak_cap", weak_scale), ("total_100", total_scale))
            if scale < 1
        ]
        return {
            "applied": applied,
            "weak_cap": self._grading.weak_cap,
            "weak_scale": round(weak_scale, 4),
            "total_scale": round(total_scale, 4),
            "catalogue_points": {code: int(catalogue[code]) for code in sorted(scaled_codes)},
        }

    def _one_per_fact(self, findings: Sequence[Finding]) -> list[Finding]:
        """The findings that take points: all ungrouped ones, and per group the member
        with the most points (the first listed on a tie)."""
        group_of = self._group_of
        if not group_of or not any(f.code in group_of for f in findings):
            return list(findings)
        carrier: dict[str, tuple[int, int, Finding]] = {}
        kept: list[Finding] = []
        for finding in findings:
            grouped = group_of.get(finding.code)
            if grouped is None:
                kept.append(finding)
                continue
            name, rank = grouped
            best = carrier.get(name)
            candidate = (self.points(finding), -rank, finding)
            if best is None or candidate[:2] > best[:2]:
                carrier[name] = candidate
        return kept + [best[2] for best in carrier.values()]

    def _component(
        self,
        score: int,
        blacklisted: bool,
        contributions: dict[str, int],
        findings: Sequence[Finding],
        missing: tuple[str, ...],
    ) -> DeviceComponent:
        spec = self._grading.device_component
        reasons = tuple(code for code, points in contributions.items() if points > 0)
        coverage = self.coverage(missing)
        pending = list(
            dict.fromkeys(
                spec.pending_codes[f.code] for f in findings if f.code in spec.pending_codes
            )
        )
        value = score / 100
        if coverage < spec.min_coverage:
            pending.append(TOO_FEW_SIGNALS)
            value *= coverage  # evidence nobody looked at earns no credit
        status = "veto" if blacklisted else "pending" if pending else "ok"
        return DeviceComponent(
            weight=spec.weight,
            score=round(value, 4),
            veto=blacklisted,
            reasons=reasons[: spec.top_reasons],
            status=status,
            pending_reasons=tuple(pending),
            coverage=coverage,
        )


def _copied(scaled: dict[str, Any] | None) -> dict[str, Any] | None:
    """Each report owns its ``points_scaled``: the memo's must never be shared."""
    if scaled is None:
        return None
    return {
        **scaled,
        "applied": list(scaled["applied"]),
        "catalogue_points": dict(scaled["catalogue_points"]),
    }


def _apportion(raw: dict[str, float], total: int) -> dict[str, int]:
    """Largest-remainder rounding: integers, in ``raw``'s order, summing to ``total``."""
    floors = {code: int(points) for code, points in raw.items()}
    left = total - sum(floors.values())
    by_remainder = sorted(raw, key=lambda code: -(raw[code] - floors[code]))
    for code in by_remainder[: max(0, left)]:
        floors[code] += 1
    return floors
