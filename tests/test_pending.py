"""The device component's status (ok / veto / pending), its coverage, and combine()'s
third outcome, defer (issue #22: pending, not passed; coverage)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from fingerprint import Checker, CheckerConfig
from fingerprint.eligibility import Component, combine
from fingerprint.errors import RulesError
from fingerprint.grading import TOO_FEW_SIGNALS, Grader
from fingerprint.report import Finding
from fingerprint.rules import default_rules_dir, load_rules
from tests.conftest import make_session

RULES = load_rules()
SPEC = RULES.grading.device_component
WEIGHTED_CHECKS = sorted(SPEC.evidence_weights)
BARE = {"account_id": "u-bare", "ts": "2026-11-20T08:15:30+08:00", "ip": "223.104.3.17"}


def _rest(score: float = 1.0) -> Component:
    return Component(weight=1 - SPEC.weight, score=score)


def _finding(code: str) -> Finding:
    spec = RULES.codes.codes[code]
    return Finding(spec.check, code, spec.severity, spec.message, spec.message_zh, {})


def test_no_face_verification_defers_instead_of_passing() -> None:
    report = Checker().check(make_session(**{"auth.face_verified": False}))
    component = report.device_component
    assert component.status == "pending"
    assert component.pending_reasons == ("face_verification_not_done",)
    decision = combine({"device": component, "rest": _rest()})
    assert decision.outcome == "defer" and decision.deferred
    assert not decision.eligible  # backward compatible: deferred is not eligible
    assert decision.pending == {"device": ("face_verification_not_done",)}
    assert decision.score > decision.threshold  # the score alone would have passed


def test_a_full_clean_session_is_ok_and_eligible() -> None:
    component = Checker().check(make_session()).device_component
    assert component.status == "ok" and component.pending_reasons == ()
    assert SPEC.min_coverage <= component.coverage <= 1
    decision = combine({"device": component, "rest": _rest()})
    assert decision.outcome == "eligible" and decision.eligible and not decision.deferred


def test_blacklist_is_a_veto_status_and_wins_over_pending() -> None:
    report = Checker().check(
        make_session(
            **{"device.system_props": {"ro.kernel.qemu": "1"}, "auth.face_verified": False}
        )
    )
    component = report.device_component
    assert component.status == "veto" and component.veto
    decision = combine({"device": component, "rest": _rest()})
    assert decision.outcome == "veto" and not decision.deferred and not decision.eligible


def test_a_line_with_only_account_ts_and_ip_is_pending_never_a_perfect_score() -> None:
    report = Checker().check(dict(BARE))
    component = report.device_component
    assert component.status == "pending"
    assert TOO_FEW_SIGNALS in component.pending_reasons
    assert component.coverage < SPEC.min_coverage
    assert component.score < 1.0
    assert combine({"device": component, "rest": _rest()}).outcome == "defer"


def test_coverage_counts_the_weights_of_the_checks_that_ran() -> None:
    grader = Grader(RULES.grading)
    total = sum(SPEC.evidence_weights.values())
    assert grader.grade([], ()).device_component.coverage == 1.0
    graded = grader.grade([], ["emulator", "whois", "history"])  # unweighted names: no effect
    assert graded.device_component.coverage == pytest.approx(
        1 - SPEC.evidence_weights["emulator"] / total, abs=1e-4
    )


@given(st.sets(st.sampled_from(WEIGHTED_CHECKS)))
def test_coverage_below_the_minimum_is_pending_and_scaled(missing: set[str]) -> None:
    component = Grader(RULES.grading).grade([], sorted(missing)).device_component
    total = sum(SPEC.evidence_weights.values())
    expected = 1 - sum(SPEC.evidence_weights[name] for name in missing) / total
    assert component.coverage == pytest.approx(expected, abs=1e-4)
    short = component.coverage < SPEC.min_coverage
    assert (TOO_FEW_SIGNALS in component.pending_reasons) == short
    assert (component.status == "pending") == short
    if short:
        assert component.score == pytest.approx(component.coverage, abs=1e-4)
    else:
        assert component.score == 1.0


def test_pending_is_per_component_and_other_components_can_be_plain() -> None:
    class Plain:  # a caller's component without status keeps working
        weight = 0.88
        score = 0.9
        veto = False
        reasons: tuple[str, ...] = ()

    ok = Component(weight=0.12, score=1.0)
    assert combine({"device": ok, "credit": Plain()}).outcome == "eligible"
    assert combine({"device": ok, "credit": Component(weight=0.88, score=0.1)}).outcome == (
        "ineligible"
    )
    pending = Component(weight=0.12, score=1.0, status="pending", pending_reasons=("x",))
    assert combine({"device": pending, "credit": Plain()}).pending == {"device": ("x",)}


@pytest.fixture
def custom_rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(
        default_rules_dir(), target, ignore=shutil.ignore_patterns("*.py", "__pycache__")
    )
    return target


def _edit_component(folder: Path, **changes: Any) -> None:
    path = folder / "grading.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["device_component"].update(changes)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


def test_min_coverage_and_pending_codes_are_rules(custom_rules: Path) -> None:
    _edit_component(custom_rules, min_coverage=0.0, pending_codes={})
    checker = Checker(CheckerConfig(rules_dir=custom_rules))
    assert checker.check(dict(BARE)).device_component.status == "ok"
    unverified = checker.check(make_session(**{"auth.face_verified": False}))
    assert unverified.device_component.status == "ok"


def test_a_disabled_check_counts_as_evidence_not_evaluated(custom_rules: Path) -> None:
    path = custom_rules / "checks.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["disabled"] = ["emulator", "multi_open"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    full = Checker().check(make_session()).device_component.coverage
    without = Checker(CheckerConfig(rules_dir=custom_rules)).check(make_session())
    assert without.device_component.coverage < full


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"evidence_weights": {"no_such_check": 1}}, "evidence_weights.no_such_check"),
        ({"pending_codes": {"NO_SUCH_CODE": "x"}}, "pending_codes.NO_SUCH_CODE"),
    ],
)
def test_component_rules_name_real_checks_and_codes(
    custom_rules: Path, changes: dict[str, Any], where: str
) -> None:
    _edit_component(custom_rules, **changes)
    with pytest.raises(RulesError, match=where):
        load_rules(custom_rules)


def test_report_carries_status_pending_reasons_and_coverage() -> None:
    component = Checker().check(dict(BARE)).to_dict()["device_component"]
    assert component["status"] == "pending"
    assert component["pending_reasons"] == [TOO_FEW_SIGNALS]
    assert 0 <= component["coverage"] < 1
    assert _finding("AUTH_NO_FACE_VERIFICATION").code in SPEC.pending_codes
