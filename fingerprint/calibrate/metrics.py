"""The figures a credit-risk team reads off a score: AUC, KS, deciles, bad rate per
grade, PSI. Pure Python (no numpy), so ``calibrate --psi`` works without the extra.

Convention: a *lower* score is riskier, and a bad outcome is the event the score
should rank first. Ties are never split: rows with one score fall into one decile and
one step of the curves.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

PSI_FLOOR = 1e-4  # share given to an empty bin, so its term stays finite
PSI_STABLE, PSI_MODERATE = 0.1, 0.25
PSI_BAND = 10  # score points per PSI band


@dataclass(frozen=True, slots=True, kw_only=True)
class CurvePoint:
    score: int  # rows with this score or lower are flagged
    bad_share: float  # cumulative share of bads flagged (true positive rate)
    good_share: float  # cumulative share of goods flagged (false positive rate)


@dataclass(frozen=True, slots=True, kw_only=True)
class Decile:
    decile: int  # 1 = riskiest
    low: int
    high: int
    rows: int
    bads: int
    bad_rate: float
    cumulative_bad_share: float
    lift: float
    cumulative_lift: float


@dataclass(frozen=True, slots=True, kw_only=True)
class GradeRate:
    grade: str
    rows: int
    bads: int
    bad_rate: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoreMetrics:
    rows: int
    bads: int
    auc: float
    ks: float
    ks_score: int  # KS peaks when rows at or below this score are flagged
    deciles: list[Decile]
    grades: list[GradeRate]
    curve: list[CurvePoint]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def curve(scores: Sequence[int], bad: Sequence[bool]) -> list[CurvePoint]:
    """ROC / KS curve from the riskiest score up, one point per distinct score."""
    bads, goods = sum(bad), len(bad) - sum(bad)
    by_score: dict[int, list[int]] = {}
    for score, is_bad in zip(scores, bad, strict=True):
        counts = by_score.setdefault(score, [0, 0])
        counts[0 if is_bad else 1] += 1
    points, seen_bad, seen_good = [], 0, 0
    for score in sorted(by_score):
        seen_bad += by_score[score][0]
        seen_good += by_score[score][1]
        points.append(
            CurvePoint(score=score, bad_share=seen_bad / bads, good_share=seen_good / goods)
        )
    return points


def auc(scores: Sequence[int], bad: Sequence[bool]) -> float:
    """P(a bad scores below a good), ties counting half (Mann-Whitney)."""
    points = curve(scores, bad)
    area, previous_bad, previous_good = 0.0, 0.0, 0.0
    for point in points:
        area += (point.good_share - previous_good) * (point.bad_share + previous_bad) / 2
        previous_bad, previous_good = point.bad_share, point.good_share
    return area


def ks(scores: Sequence[int], bad: Sequence[bool]) -> tuple[float, int]:
    """The largest gap between the bads' and goods' cumulative shares, and its score."""
    best = max(curve(scores, bad), key=lambda p: p.bad_share - p.good_share)
    return best.bad_share - best.good_share, best.score


def deciles(scores: Sequence[int], bad: Sequence[bool]) -> list[Decile]:
    """Rows by score from the riskiest, in tenths by average rank (ties together)."""
    n = len(scores)
    order = sorted(range(n), key=lambda i: scores[i])
    groups: dict[int, list[int]] = {}
    start = 0
    while start < n:
        end = start
        while end < n and scores[order[end]] == scores[order[start]]:
            end += 1
        middle = (start + end - 1) / 2
        groups.setdefault(min(9, int(middle * 10 / n)), []).extend(order[start:end])
        start = end
    total_bads = sum(bad)
    overall = total_bads / n
    table, seen_rows, seen_bads = [], 0, 0
    for index in sorted(groups):
        members = groups[index]
        bads = sum(bad[i] for i in members)
        seen_rows += len(members)
        seen_bads += bads
        rate = bads / len(members)
        table.append(
            Decile(
                decile=index + 1,
                low=min(scores[i] for i in members),
                high=max(scores[i] for i in members),
                rows=len(members),
                bads=bads,
                bad_rate=rate,
                cumulative_bad_share=seen_bads / total_bads,
                lift=rate / overall if overall else 0.0,
                cumulative_lift=(seen_bads / seen_rows) / overall if overall else 0.0,
            )
        )
    return table


def grade_rates(grades: Sequence[str], bad: Sequence[bool]) -> list[GradeRate]:
    rows: Counter[str] = Counter(grades)
    bads: Counter[str] = Counter(g for g, b in zip(grades, bad, strict=True) if b)
    return [
        GradeRate(grade=g, rows=rows[g], bads=bads[g], bad_rate=bads[g] / rows[g])
        for g in sorted(rows)
    ]


def score_metrics(
    scores: Sequence[int], grades: Sequence[str], bad: Sequence[bool]
) -> ScoreMetrics:
    """Every figure at once; needs at least one bad and one good row."""
    if not 0 < sum(bad) < len(bad):
        raise ValueError("metrics need both bad and good rows")
    value, at = ks(scores, bad)
    return ScoreMetrics(
        rows=len(scores),
        bads=sum(bad),
        auc=auc(scores, bad),
        ks=value,
        ks_score=at,
        deciles=deciles(scores, bad),
        grades=grade_rates(grades, bad),
        curve=curve(scores, bad),
    )


# --- PSI --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PsiBin:
    low: int  # scores low..high inclusive
    high: int
    expected: float  # share of the old run
    actual: float  # share of the new run
    term: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PsiResult:
    psi: float
    reading: str
    old_rows: int
    new_rows: int
    bins: list[PsiBin]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def psi_reading(value: float) -> str:
    if value < PSI_STABLE:
        return "stable (< 0.1)"
    if value <= PSI_MODERATE:
        return "moderate shift (0.1-0.25): investigate"
    return "significant shift (> 0.25): the score no longer means what it did"


def psi(old: Sequence[int], new: Sequence[int], width: int = PSI_BAND) -> PsiResult:
    """Population stability index of ``new`` against ``old`` over fixed score bands
    (0-9, 10-19, ..., 90-99, 100). Fixed bands, not the old run's quantiles: most
    sessions score exactly 100, so quantile bins would collapse to two or three and
    hide a shift inside them."""
    if not old or not new:
        raise ValueError("PSI needs scores in both runs")
    old_counts, new_counts = _bands(old, width), _bands(new, width)
    table, total = [], 0.0
    for band in sorted(old_counts.keys() | new_counts.keys()):
        expected = old_counts[band] / len(old)
        actual = new_counts[band] / len(new)
        e, a = max(expected, PSI_FLOOR), max(actual, PSI_FLOOR)
        term = (a - e) * math.log(a / e)
        total += term
        low = band * width
        high = low if low >= 100 else min(99, low + width - 1)
        table.append(PsiBin(low=low, high=high, expected=expected, actual=actual, term=term))
    return PsiResult(
        psi=total, reading=psi_reading(total), old_rows=len(old), new_rows=len(new), bins=table
    )


def _bands(scores: Sequence[int], width: int) -> Counter[int]:
    return Counter(min(100, max(0, score)) // width for score in scores)
