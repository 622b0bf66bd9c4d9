"""Score, grade, blacklist, device component and eligibility."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from fingerprint import Checker, CheckerConfig
from fingerprint.eligibility import Component, EligibilityError, combine
from fingerprint.grading import Grader
from fingerprint.report import Finding
from fingerprint.rules import SEVERITIES, RulesError, default_rules_dir, load_rules
from tests.conftest import make_session

RULES = load_rules()
CODES = list(RULES.codes.codes)


def finding(code: str) -> Finding:
    spec = RULES.codes.codes[code]
    return Finding(spec.check, code, spec.severity, spec.message, spec.message_zh, {})


@given(st.lists(st.sampled_from(CODES), unique=True, max_size=12))
def test_contributions_sum_to_100_minus_score(codes: list[str]) -> None:
    graded = Grader(RULES.grading).grade([finding(c) for c in codes])
    assert sum(graded.contributions.values()) == 100 - graded.score
    assert 0 <= graded.score <= 100
    assert set(graded.contributions) == set(codes)
    assert all(points >= 0 for points in graded.contributions.values())


def test_many_weak_signals_stay_below_one_confident_finding() -> None:
    grader = Grader(RULES.grading)
    weak = [c for c, s in RULES.codes.codes.items() if s.severity in ("low", "medium")]
    all_weak = grader.grade([finding(c) for c in weak])
    one_confident = grader.grade([finding("VPN_HTTP_PROXY")])
    assert all_weak.score > one_confident.score
    assert not all_weak.blacklisted


def test_blacklist_needs_a_confident_blacklist_code() -> None:
    grader = Grader(RULES.grading)
    assert grader.grade([finding("EMU_FILE")]).blacklisted
    assert grader.grade([finding("EMU_FILE")]).grade == "E"
    assert grader.grade([finding("MO_UID_MISMATCH")]).blacklisted
    dual = grader.grade([finding("MO_SYSTEM_DUAL_APP")])
    assert not dual.blacklisted and dual.grade != "E"
    weak_emulator = grader.grade([finding("EMU_X86_ABI"), finding("EMU_NO_SENSORS")])
    assert not weak_emulator.blacklisted


def test_device_component() -> None:
    graded = Grader(RULES.grading).grade([finding("VPN_OS_FLAG"), finding("BRD_OFF_BRAND")])
    component = graded.device_component
    assert component.weight == 0.12
    assert component.score == graded.score / 100
    assert not component.veto
    assert component.reasons[0] == "VPN_OS_FLAG"
    vetoed = Grader(RULES.grading).grade([finding("EMU_PACKAGE")]).device_component
    assert vetoed.veto


@pytest.fixture
def custom_rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(
        default_rules_dir(), target, ignore=shutil.ignore_patterns("*.py", "__pycache__")
    )
    return target


def _edit_grading(folder: Path, **changes: object) -> None:
    path = folder / "grading.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


def test_custom_bands_and_weights_change_the_result(custom_rules: Path) -> None:
    session = make_session(**{"auth.face_verified": False})
    default = Checker().check(session)
    assert (default.score, default.grade) == (90, "A")
    _edit_grading(
        custom_rules,
        code_points={"AUTH_NO_FACE_VERIFICATION": 20},
        bands=[
            {"grade": "A", "min_score": 95},
            {"grade": "B", "min_score": 80},
            {"grade": "C", "min_score": 0},
        ],
    )
    custom = Checker(CheckerConfig(rules_dir=custom_rules)).check(session)
    assert (custom.score, custom.grade) == (80, "B")
    assert custom.contributions == {"AUTH_NO_FACE_VERIFICATION": 20}


def test_blacklist_codes_are_configurable(custom_rules: Path) -> None:
    session = make_session(
        **{"app.data_dir": "/data/user/999/com.tencent.mm", "app.process_uid": 99910234}
    )
    assert not Checker().check(session).blacklisted
    path = custom_rules / "codes.yaml"
    codes = yaml.safe_load(path.read_text(encoding="utf-8"))
    codes["codes"]["MO_SYSTEM_DUAL_APP"]["severity"] = "high"
    path.write_text(yaml.safe_dump(codes, allow_unicode=True), encoding="utf-8")
    grading = yaml.safe_load((custom_rules / "grading.yaml").read_text(encoding="utf-8"))
    _edit_grading(
        custom_rules,
        blacklist_codes=[*grading["blacklist_codes"], "MO_SYSTEM_DUAL_APP"],
        code_points={**grading["code_points"], "MO_SYSTEM_DUAL_APP": 30},
    )
    report = Checker(CheckerConfig(rules_dir=custom_rules)).check(session)
    assert report.blacklisted and report.grade == "E"


def test_severity_points_cover_every_severity() -> None:
    assert set(RULES.grading.severity_points) == set(SEVERITIES)


def test_eligibility_combines_and_veto_wins() -> None:
    device = Component(weight=0.12, score=1.0)
    decision = combine({"device": device, "credit": Component(weight=0.88, score=0.5)})
    assert decision.score == pytest.approx(0.12 + 0.44)
    assert not decision.eligible  # below the default 0.6 threshold
    assert combine({"device": device, "credit": Component(weight=0.88, score=0.9)}).eligible
    vetoed = combine(
        {
            "device": Component(weight=0.12, score=1.0, veto=True),
            "credit": Component(weight=0.88, score=1.0),
        }
    )
    assert vetoed.veto and not vetoed.eligible and vetoed.vetoed_by == ("device",)
    assert vetoed.score == 0.0


def test_eligibility_takes_the_report_component_directly() -> None:
    report = Checker().check(make_session(**{"device.system_props": {"ro.kernel.qemu": "1"}}))
    decision = combine(
        {"device": report.device_component, "rest": Component(weight=0.88, score=1.0)}
    )
    assert decision.veto and decision.reasons["device"][0] == "EMU_SYSTEM_PROP"


@pytest.mark.parametrize(
    "components",
    [
        {"a": Component(weight=0.5, score=1.0)},
        {"a": Component(weight=0.5, score=1.5), "b": Component(weight=0.5, score=1.0)},
        {"a": Component(weight=float("nan"), score=1.0)},
        {},
    ],
)
def test_eligibility_refuses_bad_components(components: dict[str, Component]) -> None:
    with pytest.raises(EligibilityError):
        combine(components)


# --- one fact counts once, and CALIBRATION.md's grade promises -----------------


def _vpn_facts() -> list[list[str]]:
    """The confident vpn_proxy codes, one list per independent fact (a grading group,
    or a code no group holds)."""
    confident = [
        code
        for code, spec in RULES.codes.codes.items()
        if spec.check == "vpn_proxy" and spec.severity in ("high", "critical")
    ]
    facts: dict[str, list[str]] = {}
    for code in confident:
        group = next((n for n, m in RULES.grading.groups.items() if code in m), code)
        facts.setdefault(group, []).append(code)
    return list(facts.values())


def test_vpn_codes_form_at_least_three_independent_facts() -> None:
    facts = _vpn_facts()
    assert len(facts) >= 3
    assert ["VPN_OS_FLAG", "VPN_TUNNEL_INTERFACE"] in [f[:2] for f in facts]


@pytest.mark.parametrize("fact", _vpn_facts(), ids=lambda f: "+".join(f))
def test_one_vpn_is_grade_c_however_many_codes_observe_it(fact: list[str]) -> None:
    grader = Grader(RULES.grading)
    for code in fact:
        assert grader.grade([finding(code)]).grade == "C", code
    together = grader.grade([finding(c) for c in fact])
    assert together.grade == "C"
    assert sum(1 for p in together.contributions.values() if p > 0) == 1
    assert set(together.contributions) == set(fact)


def test_two_independent_vpn_signals_are_grade_d() -> None:
    grader = Grader(RULES.grading)
    facts = _vpn_facts()
    pairs = [(a, b) for i, fa in enumerate(facts) for fb in facts[i + 1 :] for a in fa for b in fb]
    assert pairs
    for a, b in pairs:
        graded = grader.grade([finding(a), finding(b)])
        assert graded.grade == "D" and not graded.blacklisted, (a, b, graded.score)
        assert graded.contributions[a] > 0 and graded.contributions[b] > 0


def test_the_200k_runs_commonest_vpn_sessions() -> None:
    """The issue's figure: the OS flag and the tunnel interface of one VPN took 70
    points (grade E); with the home-settings mismatch beside them they are two facts."""
    grader = Grader(RULES.grading)
    one = grader.grade([finding("VPN_OS_FLAG"), finding("VPN_TUNNEL_INTERFACE")])
    assert (one.score, one.grade) == (70, "C")
    assert one.contributions == {"VPN_OS_FLAG": 30, "VPN_TUNNEL_INTERFACE": 0}
    two = [finding(c) for c in ("VPN_OS_FLAG", "VPN_TUNNEL_INTERFACE", "VPN_TZ_MISMATCH")]
    assert grader.grade(two).grade == "D"


def test_hopping_and_impossible_travel_are_one_movement() -> None:
    grader = Grader(RULES.grading)
    alone = grader.grade([finding("GEO_PROVINCE_HOPPING")])
    both = grader.grade([finding("GEO_IMPOSSIBLE_TRAVEL"), finding("GEO_PROVINCE_HOPPING")])
    assert alone.score == both.score == 60 and both.grade == "C"


group_members = st.sampled_from(sorted(RULES.grading.groups)).flatmap(
    lambda name: st.lists(st.sampled_from(RULES.grading.groups[name]), min_size=1, unique=True)
)


@given(group_members, st.lists(st.sampled_from(CODES), unique=True, max_size=6))
def test_a_group_takes_its_largest_member_once(members: list[str], others: list[str]) -> None:
    grader = Grader(RULES.grading)
    others = [c for c in others if not any(c in m for m in RULES.grading.groups.values())]
    largest = max(members, key=lambda c: grader.points(finding(c)))
    everything = grader.grade([finding(c) for c in [*members, *others]])
    carrier_only = grader.grade([finding(c) for c in [largest, *others]])
    assert everything.score == carrier_only.score
    assert sum(everything.contributions.values()) == 100 - everything.score
    assert set(everything.contributions) == {*members, *others}
    assert sum(1 for c in members if everything.contributions[c] > 0) <= 1


def test_independent_evidence_still_adds_up() -> None:
    grader = Grader(RULES.grading)
    vpn = grader.grade([finding("VPN_OS_FLAG")])
    with_hopping = grader.grade([finding("VPN_OS_FLAG"), finding("GEO_PROVINCE_HOPPING")])
    assert with_hopping.score == vpn.score - 40


def test_a_code_in_two_groups_is_refused(custom_rules: Path) -> None:
    _edit_grading(
        custom_rules,
        groups={"a": ["VPN_OS_FLAG"], "b": ["VPN_OS_FLAG", "VPN_TZ_MISMATCH"]},
    )
    with pytest.raises(RulesError, match="VPN_OS_FLAG"):
        load_rules(custom_rules)


def test_an_unknown_group_member_is_refused(custom_rules: Path) -> None:
    _edit_grading(custom_rules, groups={"a": ["VPN_NO_SUCH_CODE"]})
    with pytest.raises(RulesError, match="VPN_NO_SUCH_CODE"):
        load_rules(custom_rules)
