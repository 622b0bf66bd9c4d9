"""The whole calibration: join, split by account, fit, grade the held-out accounts
before and after, and the fitted grading file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fingerprint.calibrate.data import (
    CalibrationInputError,
    Case,
    Joined,
    join,
    read_outcomes,
    read_reports,
    split_by_account,
)
from fingerprint.calibrate.fit import FitOptions, FitResult, fit
from fingerprint.calibrate.metrics import ScoreMetrics, score_metrics
from fingerprint.grading import Grader
from fingerprint.report import Finding
from fingerprint.rules import GradingFile, RuleSet, Severity


@dataclass(frozen=True, slots=True, kw_only=True)
class CalibrateOptions:
    holdout: float = 0.3
    seed: int = 0
    fit: FitOptions = field(default_factory=FitOptions)
    ignore_unknown: bool = False
    min_rows: int = 100  # training cases, below which no fit is attempted
    min_class: int = 10  # bads and goods each in training


@dataclass(frozen=True, slots=True, kw_only=True)
class Calibration:
    joined: Joined
    train: int
    held_out: int
    held_out_accounts: int
    fit: FitResult
    before: ScoreMetrics
    after: ScoreMetrics
    grading: GradingFile  # the base grading with the fitted code points
    options: CalibrateOptions

    def to_dict(self) -> dict[str, Any]:
        fitted = self.fit
        return {
            "unit": self.joined.unit,
            "cases": len(self.joined.cases),
            "unlabelled_report_rows": self.joined.unlabelled,
            "sessions_after_outcome": self.joined.sessions_after_outcome,
            "duplicate_outcomes": self.joined.duplicates,
            "labels": [
                {"label": label, "read_as": "bad" if bad else "good", "count": n}
                for (bad, label), n in sorted(self.joined.labels.items())
            ],
            "split": {
                "holdout": self.options.holdout,
                "seed": self.options.seed,
                "train_cases": self.train,
                "held_out_cases": self.held_out,
                "held_out_accounts": self.held_out_accounts,
            },
            "fit": {
                "points_per_logit": fitted.options.points_per_logit,
                "prior_sd_points": fitted.options.prior_sd,
                "min_cases": fitted.options.min_cases,
                "intercept": fitted.intercept,
                "intercept_se": fitted.intercept_se,
                "rows": fitted.rows,
                "bads": fitted.bads,
                "vetoed_rows": fitted.vetoed,
                "converged": fitted.converged,
                "message": fitted.message,
                "codes": [
                    {
                        "code": c.code,
                        "severity": c.severity,
                        "prior": c.prior,
                        "points": c.points,
                        "estimate": c.estimate,
                        "se": c.se,
                        "cases": c.cases,
                        "bads": c.bads,
                        "status": c.status,
                    }
                    for c in fitted.codes
                ],
            },
            "held_out": {"before": self.before.to_dict(), "after": self.after.to_dict()},
            "code_points": dict(self.grading.code_points),
        }


def calibrate_files(
    reports: str | Path, outcomes: str | Path, rules: RuleSet, options: CalibrateOptions
) -> Calibration:
    index = read_reports(reports, rules)
    joined = join(index, read_outcomes(outcomes), ignore_unknown=options.ignore_unknown)
    return calibrate(joined, rules, options)


def calibrate(joined: Joined, rules: RuleSet, options: CalibrateOptions) -> Calibration:
    if not 0 < options.holdout < 1:
        raise CalibrationInputError(f"--holdout must be between 0 and 1, not {options.holdout}")
    _enough(joined.cases, "labelled", options)
    train, test = split_by_account(joined.cases, holdout=options.holdout, seed=options.seed)
    _enough(train, "training", options)
    if not 0 < sum(c.bad for c in test) < len(test):
        raise CalibrationInputError(
            f"the {len(test)} held-out cases have one class only: "
            "more accounts or a larger --holdout are needed"
        )
    result = fit(train, rules, options.fit)
    grading = fitted_grading(rules.grading, result)
    return Calibration(
        joined=joined,
        train=len(train),
        held_out=len(test),
        held_out_accounts=len({c.account_id for c in test}),
        fit=result,
        before=measure(test, rules.grading),
        after=measure(test, grading),
        grading=grading,
        options=options,
    )


def _enough(cases: Sequence[Case], what: str, options: CalibrateOptions) -> None:
    bads = sum(case.bad for case in cases)
    goods = len(cases) - bads
    if bads == 0 or goods == 0:
        only = "bad" if goods == 0 else "good"
        raise CalibrationInputError(f"all {len(cases)} {what} cases are {only}: a fit needs both")
    if len(cases) < options.min_rows:
        raise CalibrationInputError(
            f"{len(cases)} {what} cases: at least {options.min_rows} are needed for a fit"
        )
    if min(bads, goods) < options.min_class:
        raise CalibrationInputError(
            f"{what} cases hold {bads} bad and {goods} good: "
            f"at least {options.min_class} of each are needed"
        )


def fitted_grading(base: GradingFile, result: FitResult) -> GradingFile:
    """The base grading with every fitted code's points (unfitted codes as they were)."""
    points = dict(base.code_points)
    points.update({c.code: c.points for c in result.codes if c.fitted})
    return GradingFile.model_validate({**base.model_dump(), "code_points": points})


def grade_cases(cases: Sequence[Case], grading: GradingFile) -> tuple[list[int], list[str]]:
    """Each case's score and grade as ``check`` would give its findings."""
    grader = Grader(grading)
    scores, grades = [], []
    for case in cases:
        graded = grader.grade([_finding(code, severity) for code, severity in case.pattern])
        scores.append(graded.score)
        grades.append(graded.grade)
    return scores, grades


def measure(cases: Sequence[Case], grading: GradingFile) -> ScoreMetrics:
    scores, grades = grade_cases(cases, grading)
    return score_metrics(scores, grades, [case.bad for case in cases])


def _finding(code: str, severity: str) -> Finding:
    level: Severity = severity  # type: ignore[assignment]  # validated when read
    return Finding(check="", code=code, severity=level, message="", message_zh="", evidence={})
