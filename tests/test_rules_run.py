"""Rules that validate, run (issue 19.8) and say what is wrong in one line (18.15).

Each hostile rules folder here once passed ``rules validate`` and then broke
``check()``; now the loader refuses it, naming file and key, and lists every
problem of the folder at once.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from fingerprint import Checker, CheckerConfig, RulesError
from fingerprint.checks import CHECK_CLASSES
from fingerprint.checks.evidence import EVIDENCE_KEYS
from fingerprint.checks.signatures import SignatureMatcher
from fingerprint.cli import main
from fingerprint.rules import (
    Threshold,
    compile_rule_regex,
    default_rules_dir,
    load_rules,
    template_fields,
)


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(
        default_rules_dir(), target, ignore=shutil.ignore_patterns("*.py", "__pycache__")
    )
    return target


def edit(folder: Path, name: str, change: Any) -> None:
    path = folder / name
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def problems(folder: Path) -> list[str]:
    with pytest.raises(RulesError) as caught:
        load_rules(folder)
    return [str(p) for p in caught.value.problems]


def set_threshold(folder: Path, check: str, key: str, value: Any) -> None:
    edit(folder, "checks.yaml", lambda d: d["checks"].setdefault(check, {}).update({key: value}))


# --- regexes: linear time or refused ---------------------------------------------


def test_signature_regexes_run_on_re2() -> None:
    matcher: SignatureMatcher[str] = SignatureMatcher()
    matcher.add("regex", "(a+)+$", "catastrophic under backtracking")
    pattern, _ = matcher._regexes[0]
    assert type(pattern).__module__.startswith("re2")
    assert matcher._any is not None and type(matcher._any).__module__.startswith("re2")
    # The input that hung a backtracking engine: RE2 answers (no timing asserted).
    assert matcher.match("a" * 31 + "!") == ()
    assert matcher.match("xaaa") == ("catastrophic under backtracking",)


def test_every_rules_regex_compiles_with_re2() -> None:
    checker = Checker(CheckerConfig())
    try:
        engine = checker._engine
        emulator = next(c for c in engine.checks if c.name == "emulator")
        vpn = next(c for c in engine.checks if c.name == "vpn_proxy")
        compiled = emulator.compiled  # type: ignore[attr-defined]
        patterns = [p for _, p in compiled.real_x86]
        patterns += [vpn.strong_interfaces, vpn.benign_interfaces]  # type: ignore[attr-defined]
        patterns += [p for p, _ in engine.brands._model_patterns]
        assert patterns
        assert all(type(p).__module__.startswith("re2") for p in patterns)
    finally:
        checker.close()


@pytest.mark.parametrize("pattern", [r"(a)\1", r"x(?=y)", r"(?<!a)b", "(["])
def test_patterns_re2_cannot_run_are_refused(rules_copy: Path, pattern: str) -> None:
    def add(data: dict[str, Any]) -> None:
        data["signatures"].append(
            {
                "product": "x",
                "field": "model",
                "match": "regex",
                "value": pattern,
                "strength": "weak",
                "source": "tests/test_rules_run.py",
            }
        )

    edit(rules_copy, "emulator.yaml", add)
    found = problems(rules_copy)
    assert len(found) == 1
    assert "emulator.yaml: signatures." in found[0] and "RE2" in found[0]
    with pytest.raises(ValueError, match="RE2"):
        compile_rule_regex(pattern)


# --- thresholds against their declarations ---------------------------------------


@pytest.mark.parametrize(
    ("check", "key", "value"),
    [
        ("ip_hopping", "max_switches", "3"),
        ("ip_hopping", "max_switches", 3.0),
        ("ip_hopping", "max_switches", True),
        ("ip_hopping", "window_hours", -24),
        ("ip_hopping", "window_hours", math.nan),
        ("ip_hopping", "window_hours", 1e300),
        ("ip_hopping", "window_hours", 0),
        ("device_sharing", "max_accounts", 0),
        ("device_churn", "window_hours", math.inf),
        ("stability", "windows_days", [7, -30]),
        ("stability", "windows_days", []),
        ("stability", "night_share", 1.5),
        ("emulator", "weak_tells_for_high", None),
    ],
)
def test_threshold_of_wrong_type_or_range_is_refused(
    rules_copy: Path, check: str, key: str, value: Any
) -> None:
    set_threshold(rules_copy, check, key, value)
    found = problems(rules_copy)
    assert len(found) == 1
    assert found[0].startswith(f"{rules_copy / 'checks.yaml'}: checks.{check}.{key}: must be ")


def test_yaml_spellings_of_nan_are_refused(rules_copy: Path) -> None:
    path = rules_copy / "checks.yaml"
    path.write_text(path.read_text().replace("window_hours: 24", "window_hours: .nan"))
    assert problems(rules_copy) == [
        f"{path}: checks.ip_hopping.window_hours: must be a number above 0 to 8784 hours; got nan"
    ]


def test_unknown_threshold_says_which_it_meant(rules_copy: Path) -> None:
    path = rules_copy / "checks.yaml"
    path.write_text(path.read_text().replace("max_switches:", "max_swtiches:"))
    assert problems(rules_copy) == [
        f"{path}: checks.ip_hopping.max_swtiches: unknown threshold (did you mean max_switches?)"
    ]
    set_threshold(rules_copy, "tamper", "level", 3)
    assert f"{path}: checks.tamper.level: unknown threshold (tamper takes none)" in problems(
        rules_copy
    )


def test_internal_fields_are_not_thresholds(rules_copy: Path) -> None:
    set_threshold(rules_copy, "emulator", "compiled", None)
    assert problems(rules_copy) == [
        f"{rules_copy / 'checks.yaml'}: checks.emulator.compiled: "
        "unknown threshold (known: weak_tells_for_high, weak_tells_with_impossible_cpu)"
    ]


def test_declarations_match_the_checks() -> None:
    """Every declared threshold is a field whose default the declaration accepts."""
    for cls in CHECK_CLASSES:
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
        for name, declared in cls.thresholds.items():
            assert name in fields, f"{cls.name}.{name} is declared but not a field"
            default = fields[name].default
            if isinstance(default, tuple):
                default = list(default)
            assert declared.problem(default) is None, f"{cls.name}.{name} default {default!r}"


@given(st.one_of(st.integers(), st.floats(allow_nan=True), st.text(max_size=5), st.none()))
def test_a_count_threshold_accepts_exactly_whole_numbers_in_range(value: Any) -> None:
    declared = Threshold(kind="count", minimum=1, maximum=1000)
    accepted = declared.problem(value) is None
    assert accepted == (
        isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 1000
    )


# --- points, duplicates, messages ------------------------------------------------


def test_negative_points_are_refused(rules_copy: Path) -> None:
    edit(rules_copy, "grading.yaml", lambda d: d["severity_points"].update(low=-400))
    found = problems(rules_copy)
    assert len(found) == 1 and "grading.yaml: severity_points.low:" in found[0]


def test_duplicate_yaml_keys_are_refused(rules_copy: Path) -> None:
    path = rules_copy / "checks.yaml"
    text = path.read_text().replace(
        "    max_switches: 3", "    max_switches: 3\n    max_switches: 99"
    )
    path.write_text(text)
    found = problems(rules_copy)
    assert len(found) == 1
    assert found[0].startswith(f"{path}: checks.ip_hopping.max_switches: duplicate key (line ")


@pytest.mark.parametrize(
    "message",
    [
        "emulator ({product:>100000000})",
        "emulator ({product!r})",
        "emulator ({product.__class__})",
        "emulator ({product[0]})",
        "emulator ({0})",
        "emulator ({product",
        "emulator ({nothing_like_it})",
    ],
)
def test_message_fields_are_plain_evidence_keys(rules_copy: Path, message: str) -> None:
    edit(rules_copy, "codes.yaml", lambda d: d["codes"]["EMU_FILE"].update(message=message))
    found = problems(rules_copy)
    assert len(found) == 1 and "codes.yaml: codes.EMU_FILE.message" in found[0]


def test_every_bundled_message_names_declared_evidence() -> None:
    rules = load_rules()
    for code, spec in rules.codes.codes.items():
        for text in (spec.message, spec.message_zh):
            assert set(template_fields(text)) <= EVIDENCE_KEYS[code], code


def test_every_problem_is_reported_at_once(rules_copy: Path) -> None:
    set_threshold(rules_copy, "ip_hopping", "max_switches", "3")
    set_threshold(rules_copy, "device_churn", "window_hours", -24)
    edit(rules_copy, "grading.yaml", lambda d: d["severity_points"].update(high=-1))
    edit(rules_copy, "codes.yaml", lambda d: d["codes"]["EMU_FILE"].update(message="{x:>9}"))
    found = problems(rules_copy)
    assert len(found) == 4
    assert {Path(p.split(":")[0]).name for p in found} == {
        "checks.yaml",
        "grading.yaml",
        "codes.yaml",
    }


# --- the command line (18.15) -----------------------------------------------------


def test_cli_lists_each_problem_on_one_line(
    rules_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = rules_copy / "grading.yaml"
    path.write_text(path.read_text().replace("weak_cap:", "weak_kap:"))
    set_threshold(rules_copy, "ip_hopping", "max_swtiches", 3)
    assert main(["rules", "validate", str(rules_copy)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"fingerprint: configuration error: {path}: weak_kap: unknown key (did you mean weak_cap?)",
        f"fingerprint: configuration error: {rules_copy / 'checks.yaml'}: "
        "checks.ip_hopping.max_swtiches: unknown threshold (did you mean max_switches?)",
    ]
    assert not any("__init__" in line or "Field required" in line for line in lines)


def test_rules_list_refuses_what_check_would_refuse(
    rules_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_threshold(rules_copy, "ip_hopping", "max_switches", "3")
    assert main(["rules", "list", "--rules", str(rules_copy)]) == 2
    assert capsys.readouterr().out == ""


def test_missing_directory_has_one_colon_per_part(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope"
    assert main(["rules", "list", "--rules", str(missing)]) == 2
    assert (
        capsys.readouterr().err
        == f"fingerprint: configuration error: {missing}: rules directory not found\n"
    )


def test_bad_option_value_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--workers", "x", "-"])
    assert exit_.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.endswith("argument --workers: expected a whole number, 1 or more; got 'x'")
    assert "_positive_int" not in last
