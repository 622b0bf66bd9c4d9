"""Per-code points fitted to outcomes: a penalised logistic regression under the grade's rules.

The model is the grade itself. A case's deduction ``D`` is what the grader takes
off 100 (confident findings in full, weak ones together at most ``weak_cap``, all
of them at most 100), and

    logit P(bad) = intercept + D / points_per_logit

so a code's points are its log-odds times ``points_per_logit`` (25 by default, the
scale docs/CALIBRATION.md already uses: 25 x ln RR, about 17 points to double the
odds). The constraints are the grade's: points >= 0, a weak code at most
``weak_cap``, a confident one above it (the loader's rule), blacklist codes stay
vetoes with their points unchanged and the vetoed cases out of the fit (the veto,
not the score, decides them), and a code seen in fewer than ``min_cases`` training
cases keeps its prior. The penalty pulls every fitted code towards its prior
(rules/grading.yaml's points) with a Gaussian of ``prior_sd`` points, so thin
evidence moves a number little. L-BFGS-B minimises it within the bounds; standard
errors come from the penalised observed information (the posterior spread under
that Gaussian prior).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize

from fingerprint.calibrate.data import Case, Pattern, is_confident
from fingerprint.rules import GradingFile, RuleSet

Vector = NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class FitOptions:
    points_per_logit: float = 25.0
    prior_sd: float = 25.0  # points: how far the data must argue to move a number
    min_cases: int = 30  # training cases with the code before its points are fitted


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeFit:
    code: str
    severity: str  # codes.yaml's, which sets the bounds
    prior: int
    points: int  # what the overlay writes
    estimate: float | None  # unrounded fitted points
    se: float | None
    cases: int  # training cases (vetoed ones excluded) with the code
    bads: int
    status: str  # fitted | at bound | too few cases | veto

    @property
    def fitted(self) -> bool:
        return self.estimate is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class FitResult:
    codes: list[CodeFit]
    intercept: float  # log-odds of a bad outcome with no deduction
    intercept_se: float
    options: FitOptions
    rows: int  # training cases in the fit
    bads: int
    vetoed: int  # training cases left to the veto
    converged: bool
    message: str

    @property
    def code_points(self) -> dict[str, int]:
        return {fit.code: fit.points for fit in self.codes}


class _Design:
    """Distinct finding patterns of the training cases, and the grader's deduction for
    each as a function of the free codes' points.

    It mirrors ``Grader._raw_deductions``: a group of codes (``groups`` in
    grading.yaml, where present) takes its largest member's points once; confident
    findings take their points in full, weak ones together at most ``weak_cap``, all
    of them at most 100. The deduction is piecewise linear in the points, so its
    derivative is 1 for a free code that carries points and 0 where a cap binds.
    Patterns are few (most cases have no finding at all), so a loop over them is cheap.
    """

    def __init__(
        self,
        counts: dict[Pattern, tuple[int, int]],
        free: list[str],
        fixed: dict[str, float],
        grading: GradingFile,
    ) -> None:
        column = {code: k for k, code in enumerate(free)}
        self.free = len(free)
        self.weak_cap = float(grading.weak_cap)
        groups: dict[str, list[str]] = getattr(grading, "groups", None) or {}
        group_of = {
            code: (name, rank) for name, codes in groups.items() for rank, code in enumerate(codes)
        }
        # Per pattern: (column or -1, fixed points, confident, group name or "", rank).
        self.rows = [
            [
                (
                    column.get(code, -1),
                    fixed.get(code, float(grading.severity_points[severity])),  # type: ignore[index]
                    is_confident(severity),
                    *group_of.get(code, ("", 0)),
                )
                for code, severity in pattern
            ]
            for pattern in counts
        ]
        self.totals = np.array([n for n, _ in counts.values()], dtype=float)
        self.bads = np.array([b for _, b in counts.values()], dtype=float)

    def evaluate(self, points: Vector) -> tuple[Vector, NDArray[np.float64]]:
        """The deduction per pattern and its derivative by each free code's points."""
        deduction = np.zeros(len(self.rows))
        jacobian = np.zeros((len(self.rows), self.free))
        for row, entries in enumerate(self.rows):
            carried = _carriers(entries, points)
            weak = sum(value for _, value, confident in carried if not confident)
            total = sum(value for _, value, confident in carried if confident)
            total += min(weak, self.weak_cap)
            deduction[row] = min(total, 100.0)
            if total >= 100.0:
                continue
            for k, _, confident in carried:
                if k >= 0 and (confident or weak < self.weak_cap):
                    jacobian[row, k] = 1.0
        return deduction, jacobian


def _carriers(
    entries: list[tuple[int, float, bool, str, int]], points: Vector
) -> list[tuple[int, float, bool]]:
    """(column, points, confident) of the findings that take points: every ungrouped
    one, and per group the member with the most points (the first listed on a tie)."""
    carried: list[tuple[int, float, bool]] = []
    best: dict[str, tuple[float, int, int, bool]] = {}
    for k, fixed, confident, group, rank in entries:
        value = float(points[k]) if k >= 0 else fixed
        if not group:
            carried.append((k, value, confident))
            continue
        held = best.get(group)
        if held is None or (value, -rank) > (held[0], -held[1]):
            best[group] = (value, rank, k, confident)
    carried += [(k, value, confident) for value, _, k, confident in best.values()]
    return carried


def fit(train: Sequence[Case], rules: RuleSet, options: FitOptions) -> FitResult:
    grading = rules.grading
    blacklist = frozenset(grading.blacklist_codes)
    fit_cases = [case for case in train if not _vetoed(case.pattern, blacklist)]
    counts = _pattern_counts(fit_cases)
    support = _support(fit_cases)
    priors = _priors(rules, support)
    free = [
        code
        for code in sorted(priors)
        if code not in blacklist
        and code in rules.codes.codes
        and support.get(code, (0, 0))[0] >= options.min_cases
    ]
    # Unfitted codes take what the grader gives them: their override, else their
    # finding's severity's points (a code can be reported at more than one severity).
    fixed = {code: float(p) for code, p in grading.code_points.items() if code not in free}
    design = _Design(counts, free, fixed, grading)
    scale = options.points_per_logit
    prior = np.array([priors[code] for code in free], dtype=float)
    bounds = [_bounds(rules, code) for code in free]
    start = np.concatenate(([_start_intercept(design, prior, scale)], prior / scale))
    penalty = (scale / options.prior_sd) ** 2  # in logits: prior sd = prior_sd / scale

    def objective(x: Vector) -> tuple[float, Vector]:
        deduction, jacobian = design.evaluate(x[1:] * scale)
        eta = x[0] + deduction / scale
        loss = float(np.sum(design.totals * np.logaddexp(0.0, eta) - design.bads * eta))
        residual = design.totals * _sigmoid(eta) - design.bads
        gradient = np.empty_like(x)
        gradient[0] = residual.sum()
        gradient[1:] = jacobian.T @ residual
        shift = x[1:] - prior / scale
        loss += 0.5 * penalty * float(shift @ shift)
        gradient[1:] += penalty * shift
        return loss, gradient

    box = [(None, None)] + [(low / scale, high / scale) for low, high in bounds]
    result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=box)
    ses = _standard_errors(design, result.x, penalty, scale)
    # A code whose every case is already at the 100 cap (or whose weak points are all
    # capped) tells the fit nothing: it keeps its prior rather than a number that only
    # looks fitted.
    _, by_points = design.evaluate(result.x[1:] * scale)
    informed = [bool(by_points[:, k].any()) for k in range(len(free))]
    fits = _code_fits(
        rules, priors, support, free, result.x[1:] * scale, ses[1:], bounds, blacklist, informed
    )
    return FitResult(
        codes=fits,
        intercept=float(result.x[0]),
        intercept_se=float(ses[0]),
        options=options,
        rows=len(fit_cases),
        bads=sum(case.bad for case in fit_cases),
        vetoed=len(train) - len(fit_cases),
        converged=bool(result.success),
        message=str(result.message),
    )


def _vetoed(pattern: Pattern, blacklist: frozenset[str]) -> bool:
    return any(code in blacklist and is_confident(severity) for code, severity in pattern)


def _pattern_counts(cases: Sequence[Case]) -> dict[Pattern, tuple[int, int]]:
    totals: Counter[Pattern] = Counter(case.pattern for case in cases)
    bads: Counter[Pattern] = Counter(case.pattern for case in cases if case.bad)
    return {pattern: (n, bads[pattern]) for pattern, n in totals.items()}


def _support(cases: Sequence[Case]) -> dict[str, tuple[int, int]]:
    seen: Counter[str] = Counter()
    bad: Counter[str] = Counter()
    for case in cases:
        for code, _ in case.pattern:
            seen[code] += 1
            bad[code] += case.bad
    return {code: (n, bad[code]) for code, n in seen.items()}


def prior_points(rules: RuleSet, code: str) -> int:
    grading = rules.grading
    override = grading.code_points.get(code)
    if override is not None:
        return override
    spec = rules.codes.codes.get(code)
    return grading.severity_points[spec.severity] if spec is not None else 0


def _priors(rules: RuleSet, support: dict[str, tuple[int, int]]) -> dict[str, int]:
    """Every code the rules know or the cases show, with today's points."""
    codes = set(rules.codes.codes) | set(support)
    return {code: prior_points(rules, code) for code in codes}


def _bounds(rules: RuleSet, code: str) -> tuple[float, float]:
    cap = rules.grading.weak_cap
    if is_confident(rules.codes.codes[code].severity):
        return float(cap + 1), 100.0  # the loader's rule: above every weak total
    return 0.0, float(cap)


def _start_intercept(design: _Design, prior: Vector, scale: float) -> float:
    rate = (design.bads.sum() + 0.5) / (design.totals.sum() + 1.0)
    deduction, _ = design.evaluate(prior)
    mean = float((design.totals * deduction).sum() / max(design.totals.sum(), 1.0))
    return math.log(rate / (1 - rate)) - mean / scale


def _sigmoid(eta: Vector) -> Vector:
    result: Vector = np.exp(-np.logaddexp(0.0, -eta))
    return result


def _standard_errors(design: _Design, x: Vector, penalty: float, scale: float) -> Vector:
    """Square roots of the inverse penalised information's diagonal, in logits
    (intercept) and points (codes)."""
    deduction, by_points = design.evaluate(x[1:] * scale)
    mu = _sigmoid(x[0] + deduction / scale)
    weights = design.totals * mu * (1 - mu)
    jacobian = np.column_stack((np.ones(len(weights)), by_points))
    information = jacobian.T @ (jacobian * weights[:, None])
    information[1:, 1:] += penalty * np.eye(len(x) - 1)
    covariance = np.linalg.pinv(information)
    spread: Vector = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    spread[1:] *= scale
    return spread


def _code_fits(
    rules: RuleSet,
    priors: dict[str, int],
    support: dict[str, tuple[int, int]],
    free: list[str],
    estimates: Vector,
    ses: Vector,
    bounds: list[tuple[float, float]],
    blacklist: frozenset[str],
    informed: list[bool],
) -> list[CodeFit]:
    fitted = {code: k for k, code in enumerate(free)}
    fits = []
    for code in sorted(priors):
        if code not in rules.codes.codes:
            continue
        cases, bads = support.get(code, (0, 0))
        severity = rules.codes.codes[code].severity
        k = fitted.get(code)
        if k is None or not informed[k]:
            status = (
                "veto"
                if code in blacklist
                else "too few cases"
                if k is None
                else "no information (capped)"
            )
            fits.append(
                CodeFit(
                    code=code,
                    severity=severity,
                    prior=priors[code],
                    points=priors[code],
                    estimate=None,
                    se=None,
                    cases=cases,
                    bads=bads,
                    status=status,
                )
            )
            continue
        low, high = bounds[k]
        estimate = float(estimates[k])
        points = int(min(high, max(low, round(estimate))))
        at_bound = estimate <= low + 1e-6 or estimate >= high - 1e-6
        fits.append(
            CodeFit(
                code=code,
                severity=severity,
                prior=priors[code],
                points=points,
                estimate=estimate,
                se=float(ses[k]),
                cases=cases,
                bads=bads,
                status="at bound" if at_bound else "fitted",
            )
        )
    return fits
