"""A login that reuses a device verdict runs the verdict's plan (the checks left to
evaluate, between the outcomes it holds): the same findings, in the same order, the
same reasons and warnings, as looking every check up in the verdict's outcomes."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fingerprint.checks import CheckContext, NotEvaluated
from fingerprint.report import Finding
from fingerprint.stages.run import CheckRun, KnownOutcomes, run_checks, run_plan, session_plan

_CODES: dict[str, Any] = {}


class _Stub:
    """A check whose outcome is fixed: no hits, a reason, or an error."""

    uses_history = False

    def __init__(self, name: str, device_scoped: bool, outcome: Any) -> None:
        self.name, self.device_scoped, self._outcome = name, device_scoped, outcome

    def evaluate(self, ctx: CheckContext) -> Any:
        if isinstance(self._outcome, Exception):
            raise self._outcome
        return self._outcome


def _finding(name: str, n: int) -> Finding:
    return Finding(name, f"{name.upper()}_{n}", "high", f"m{n}", f"m{n}", {"n": n})


# What a verdict may hold for a device-scoped check: nothing (not in the map), clean,
# why it was not evaluated, or findings.
_settled = st.one_of(
    st.none(),
    st.just(()),
    st.builds(NotEvaluated, st.sampled_from(["no signals", "no device block"])),
    st.integers(1, 3),
)
# What a check evaluates to when it runs: no hits, a reason, or a failure.
_evaluated = st.sampled_from([[], NotEvaluated("absent"), ValueError("broken")])


@given(st.lists(st.tuples(st.booleans(), _settled, _evaluated), max_size=10))
def test_a_plan_runs_what_the_lookup_runs(spec: list[tuple[bool, Any, Any]]) -> None:
    checks, known = [], {}
    for i, (device_scoped, settled, evaluated) in enumerate(spec):
        name = f"c{i}"
        checks.append(_Stub(name, device_scoped, evaluated))
        if settled is None:
            continue
        if isinstance(settled, int):
            settled = tuple(_finding(name, n) for n in range(settled))
        known[name] = settled
    ctx: Any = None  # the stubs read nothing
    looked_up, planned = CheckRun(), CheckRun()
    looked_up.not_evaluated["whois"] = planned.not_evaluated["whois"] = "pending"
    run_checks(checks, ctx, codes=_CODES, known=known, run=looked_up)  # type: ignore[arg-type]
    plan = session_plan(checks, known)  # type: ignore[arg-type]
    run_plan(plan, ctx, codes=_CODES, run=planned)
    assert planned.findings == looked_up.findings
    assert list(planned.not_evaluated.items()) == list(looked_up.not_evaluated.items())
    assert planned.warnings == looked_up.warnings
    assert planned.device == looked_up.device
    assert planned.failed == looked_up.failed
    # Nothing that a lookup only copies is evaluated again.
    evaluated = [c.name for step in plan if isinstance(step, tuple) for c in step]
    assert evaluated == [c.name for c in checks if c.name not in known]


def test_a_clean_devices_plan_is_the_checks_it_does_not_hold() -> None:
    device = [_Stub(f"d{i}", True, []) for i in range(3)]
    other = [_Stub("n0", False, []), _Stub("n1", False, [])]
    checks = [device[0], other[0], device[1], device[2], other[1]]
    clean = {c.name: () for c in device}
    assert session_plan(checks, clean) == (tuple(other),)  # type: ignore[arg-type]
    reason = NotEvaluated("no signals")
    plan = session_plan(checks, {**clean, "d1": reason})  # type: ignore[arg-type]
    assert plan == ((other[0],), KnownOutcomes((), (("d1", "no signals"),)), (other[1],))
