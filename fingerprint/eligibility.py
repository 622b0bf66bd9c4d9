"""Combine the device component with the caller's other components into a decision.

The eligibility model weighs several components (credit history, activity, assets,
...); ``fingerprint`` supplies the device one (12% by default). Weights must sum to
1; any veto wins over any score.

    >>> from fingerprint.eligibility import Component, combine
    >>> decision = combine({
    ...     "device": report.device_component,
    ...     "credit": Component(weight=0.40, score=0.9),
    ...     "activity": Component(weight=0.48, score=0.7),
    ... })
    >>> decision.eligible, decision.score, decision.vetoed_by
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from fingerprint.errors import FingerprintError

WEIGHT_TOLERANCE = 1e-6


class EligibilityError(FingerprintError, ValueError):
    """The components cannot be combined (weights, scores out of range)."""


class ComponentLike(Protocol):
    @property
    def weight(self) -> float: ...
    @property
    def score(self) -> float: ...
    @property
    def veto(self) -> bool: ...
    @property
    def reasons(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Component:
    weight: float
    score: float  # 0..1
    veto: bool = False
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    score: float  # weighted 0..1; 0 when vetoed
    eligible: bool
    veto: bool
    vetoed_by: tuple[str, ...]
    reasons: dict[str, tuple[str, ...]]
    threshold: float


def combine(components: Mapping[str, ComponentLike], *, threshold: float = 0.6) -> Decision:
    """Weighted sum of component scores; eligible when no veto and score >= threshold."""
    if not components:
        raise EligibilityError("no components")
    _validate(components)
    vetoed_by = tuple(name for name, c in components.items() if c.veto)
    weighted = sum(c.weight * c.score for c in components.values())
    score = 0.0 if vetoed_by else round(weighted, 6)
    return Decision(
        score=score,
        eligible=not vetoed_by and score >= threshold,
        veto=bool(vetoed_by),
        vetoed_by=vetoed_by,
        reasons={name: tuple(c.reasons) for name, c in components.items() if c.reasons},
        threshold=threshold,
    )


def _validate(components: Mapping[str, ComponentLike]) -> None:
    for name, component in components.items():
        if not (math.isfinite(component.weight) and 0 <= component.weight <= 1):
            raise EligibilityError(f"component {name!r}: weight {component.weight} not in 0..1")
        if not (math.isfinite(component.score) and 0 <= component.score <= 1):
            raise EligibilityError(f"component {name!r}: score {component.score} not in 0..1")
    total = sum(c.weight for c in components.values())
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise EligibilityError(f"weights sum to {total:.6f}, not 1")
