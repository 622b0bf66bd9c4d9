"""Points are stable (issue #22 item 5): a code alone takes its catalogue points in
every session; where the weak cap or the 100-point floor scales points, the report
says so in ``points_scaled`` beside ``contributions``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fingerprint import Checker
from fingerprint.grading import Grader
from fingerprint.report import Finding
from fingerprint.rules import CONFIDENT, load_rules
from tests.conftest import make_session

RULES = load_rules()
CODES = sorted(RULES.codes.codes)
GRADER = Grader(RULES.grading)


def _finding(code: str) -> Finding:
    spec = RULES.codes.codes[code]
    return Finding(spec.check, code, spec.severity, spec.message, spec.message_zh, {})


@given(st.sampled_from(CODES))
def test_a_code_alone_always_takes_its_catalogue_points(code: str) -> None:
    finding = _finding(code)
    graded = GRADER.grade([finding])
    assert graded.contributions == {code: GRADER.points(finding)}
    assert graded.points_scaled is None


@given(st.lists(st.sampled_from(CODES), unique=True, max_size=12))
def test_every_point_that_differs_from_the_catalogue_is_reported_as_scaled(
    codes: list[str],
) -> None:
    findings = [_finding(c) for c in codes]
    graded = GRADER.grade(findings)
    scaled = graded.points_scaled or {"catalogue_points": {}}
    for finding in findings:
        took = graded.contributions[finding.code]
        if took in (0, GRADER.points(finding)):
            continue  # its catalogue points, or a group member carried by another
        # Anything else is a scaled code: the report names its catalogue points.
        assert scaled["catalogue_points"].get(finding.code) == GRADER.points(finding)
    assert sum(graded.contributions.values()) == 100 - graded.score


def test_a_capped_report_says_so() -> None:
    weak = [c for c in CODES if RULES.codes.codes[c].severity not in CONFIDENT]
    # Weak codes of no group, enough of them to pass the cap.
    grouped = {code for members in RULES.grading.groups.values() for code in members}
    chosen = [c for c in weak if c not in grouped][:6]
    findings = [_finding(c) for c in chosen]
    catalogue = {f.code: GRADER.points(f) for f in findings}
    assert sum(catalogue.values()) > RULES.grading.weak_cap  # the premise
    graded = GRADER.grade(findings)
    scaled = graded.points_scaled
    assert scaled is not None
    assert scaled["applied"] == ["weak_cap"]
    assert scaled["weak_cap"] == RULES.grading.weak_cap
    assert scaled["catalogue_points"] == catalogue
    assert scaled["weak_scale"] < 1
    assert sum(graded.contributions.values()) == RULES.grading.weak_cap == 100 - graded.score


def test_the_100_point_floor_is_reported_too() -> None:
    confident = ["VPN_HTTP_PROXY", "VPN_OS_FLAG", "VPN_TOR_EXIT", "VPN_TZ_MISMATCH"]
    graded = GRADER.grade([_finding(c) for c in confident])
    assert graded.score == 0
    assert graded.points_scaled is not None
    assert "total_100" in graded.points_scaled["applied"]
    assert graded.points_scaled["catalogue_points"] == {c: 30 for c in sorted(confident)}


def test_the_report_json_carries_points_scaled_only_when_scaled() -> None:
    checker = Checker()
    clean = checker.check(make_session()).to_dict()
    assert "points_scaled" not in clean
    # Root, a hooking framework and a debugger: three medium findings, 36 > 29 points.
    weak = make_session(
        session_id="s-weak",
        **{"device.rooted": True, "device.hooks": ["xposed"], "device.debugger_attached": True},
    )
    report = checker.check(weak).to_dict()
    scaled = report["points_scaled"]
    assert scaled["applied"] == ["weak_cap"]
    assert set(scaled["catalogue_points"]) <= set(report["contributions"])
    assert sum(report["contributions"].values()) == 100 - report["score"]
