"""Combine the device component with the caller's other components into a decision.

The eligibility model weighs several components (credit history, activity, assets,
...); ``fingerprint`` supplies the device one (12% by default). Weights must sum to
1. Three outcomes: any veto wins over any score (``veto``); otherwise a component
whose ``status`` is ``pending`` (face verification not done, too few signals)
defers the decision (``defer``: not eligible *yet*, with the reasons); otherwise the
weighted score decides (``eligible`` / ``ineligible``).

    >>> from fingerprint.eligibility import Component, combine
    >>> decision = combine({
    ...     "device": report.device_component,
    ...     "credit": Component(weight=0.40, score=0.9),
    ...     "activity": Component(weight=0.48, score=0.7),
    ... })
    >>> decision.outcome, decision.eligible, decision.score, decision.pending
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from fingerprint.errors import FingerprintError

WEIGHT_TOLERANCE = 1e-6

Outcome = Literal["eligible", "ineligible", "defer", "veto"]


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
    status: str = "ok"  # "ok", "veto" or "pending" (see pending_reasons)
    pending_reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    score: float  # weighted 0..1; 0 when vetoed
    eligible: bool  # outcome == "eligible": a deferred decision is not eligible (yet)
    veto: bool
    vetoed_by: tuple[str, ...]
    reasons: dict[str, tuple[str, ...]]
    threshold: float
    outcome: Outcome = "ineligible"
    deferred: bool = False
    # component name -> what it waits for, for every pending component
    pending: dict[str, tuple[str, ...]] = field(default_factory=dict)


def combine(components: Mapping[str, ComponentLike], *, threshold: float = 0.6) -> Decision:
    """Weighted sum of component scores. A veto wins; else a pending component defers
    the decision; else eligible when the score reaches ``threshold``.

    A component without ``status`` (any object with weight, score, veto and reasons)
    is taken as ``ok`` or, when it vetoes, ``veto``."""
    if not components:
        raise EligibilityError("no components")
    _validate(components)
    vetoed_by = tuple(name for name, c in components.items() if c.veto)
    pending = {name: _pending_reasons(c) for name, c in components.items() if _is_pending(c)}
    weighted = sum(c.weight * c.score for c in components.values())
    score = 0.0 if vetoed_by else round(weighted, 6)
    outcome: Outcome
    if vetoed_by:
        outcome = "veto"
    elif pending:
        outcome = "defer"
    else:
        outcome = "eligible" if score >= threshold else "ineligible"
    return Decision(
        score=score,
        eligible=outcome == "eligible",
        veto=bool(vetoed_by),
        vetoed_by=vetoed_by,
        reasons={name: tuple(c.reasons) for name, c in components.items() if c.reasons},
        threshold=threshold,
        outcome=outcome,
        deferred=outcome == "defer",
        pending=pending,
    )


def _is_pending(component: ComponentLike) -> bool:
    return getattr(component, "status", "ok") == "pending"


def _pending_reasons(component: ComponentLike) -> tuple[str, ...]:
    return tuple(getattr(component, "pending_reasons", ()) or ())


def _validate(components: Mapping[str, ComponentLike]) -> None:
    for name, component in components.items():
        if not (math.isfinite(component.weight) and 0 <= component.weight <= 1):
            raise EligibilityError(f"component {name!r}: weight {component.weight} not in 0..1")
        if not (math.isfinite(component.score) and 0 <= component.score <= 1):
            raise EligibilityError(f"component {name!r}: score {component.score} not in 0..1")
    total = sum(c.weight for c in components.values())
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise EligibilityError(f"weights sum to {total:.6f}, not 1")
