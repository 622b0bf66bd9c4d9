"""Our own rule files are validated strictly: a typo fails loudly with file and key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from fingerprint import Checker, CheckerConfig, RulesError
from fingerprint.checks import CHECK_CLASSES
from fingerprint.rules import SEVERITIES, default_rules_dir, load_rules


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(
        default_rules_dir(), target, ignore=shutil.ignore_patterns("*.py", "__pycache__")
    )
    return target


def edit(folder: Path, name: str, change) -> None:  # type: ignore[no-untyped-def]
    path = folder / name
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def test_bundled_rules_load() -> None:
    rules = load_rules()
    assert len(rules.codes.codes) >= 40
    assert rules.grading.device_component.weight == 0.12


def test_every_code_has_messages_weight_and_a_check() -> None:
    rules = load_rules()
    emitted = {code for cls in CHECK_CLASSES for code in cls.codes}
    assert emitted == set(rules.codes.codes), "codes.yaml and the checks disagree"
    for code, spec in rules.codes.codes.items():
        assert spec.message and spec.message_zh and spec.advice and spec.advice_zh, code
        assert spec.severity in SEVERITIES
        points = rules.grading.code_points.get(code, rules.grading.severity_points[spec.severity])
        assert points > 0, code
        prefix = code.split("_", 1)[0]
        assert prefix in {
            "EMU",
            "MO",
            "VPN",
            "GEO",
            "TAM",
            "CON",
            "SHR",
            "CHN",
            "BRD",
            "AUTH",
            "HIS",
            "STB",
            "IPA",
            "FRM",
            "DEV",
        }


def test_unknown_key_names_file_and_key(rules_copy: Path) -> None:
    edit(rules_copy, "grading.yaml", lambda d: d.update(weak_capp=3))
    with pytest.raises(RulesError) as caught:
        load_rules(rules_copy)
    assert caught.value.file.endswith("grading.yaml")
    assert "weak_capp" in caught.value.key


def test_bad_regex_is_refused(rules_copy: Path) -> None:
    def corrupt(data):  # type: ignore[no-untyped-def]
        data["signatures"].append(
            {
                "product": "x",
                "field": "model",
                "match": "regex",
                "value": "([",
                "strength": "weak",
                "source": "test",
            }
        )

    edit(rules_copy, "emulator.yaml", corrupt)
    with pytest.raises(RulesError, match=r"emulator\.yaml.*invalid regex"):
        load_rules(rules_copy)


def test_system_prop_signature_needs_a_key(rules_copy: Path) -> None:
    edit(
        rules_copy,
        "emulator.yaml",
        lambda d: d["signatures"].append(
            {
                "product": "x",
                "field": "system_prop",
                "value": "1",
                "strength": "weak",
                "source": "test",
            }
        ),
    )
    with pytest.raises(RulesError, match="key"):
        load_rules(rules_copy)


def test_wrong_severity_type(rules_copy: Path) -> None:
    edit(rules_copy, "codes.yaml", lambda d: d["codes"]["EMU_FILE"].update(severity="huge"))
    with pytest.raises(RulesError) as caught:
        load_rules(rules_copy)
    assert caught.value.key == "codes.EMU_FILE.severity"


def test_unknown_check_and_threshold(rules_copy: Path) -> None:
    edit(rules_copy, "checks.yaml", lambda d: d["checks"].update(emulater={}))
    with pytest.raises(RulesError, match="emulater"):
        Checker(CheckerConfig(rules_dir=rules_copy))
    edit(rules_copy, "checks.yaml", lambda d: d["checks"].pop("emulater"))
    edit(rules_copy, "checks.yaml", lambda d: d["checks"]["ip_hopping"].update(max_switch=2))
    with pytest.raises(RulesError, match=r"checks\.ip_hopping"):
        Checker(CheckerConfig(rules_dir=rules_copy))


def test_weak_cap_must_stay_below_confident_points(rules_copy: Path) -> None:
    edit(rules_copy, "grading.yaml", lambda d: d.update(weak_cap=40))
    with pytest.raises(RulesError, match="weak_cap"):
        load_rules(rules_copy)


def test_blacklist_code_must_exist(rules_copy: Path) -> None:
    edit(rules_copy, "grading.yaml", lambda d: d["blacklist_codes"].append("EMU_NOPE"))
    with pytest.raises(RulesError, match="EMU_NOPE"):
        load_rules(rules_copy)


def test_missing_file_and_directory(rules_copy: Path, tmp_path: Path) -> None:
    (rules_copy / "network.yaml").unlink()
    with pytest.raises(RulesError, match=r"network\.yaml.*file not found"):
        load_rules(rules_copy)
    with pytest.raises(RulesError, match="rules directory not found"):
        load_rules(tmp_path / "nowhere")


def test_a_set_read_again_unchanged_is_the_set_loaded_before(rules_copy: Path) -> None:
    """Loading is remembered by every file's text, never by the folder alone: an
    edited file is loaded anew, a broken one still fails, the old text comes back."""
    first = load_rules(rules_copy)
    assert load_rules(rules_copy) is first
    assert load_rules(str(rules_copy)) is first
    original = (rules_copy / "checks.yaml").read_text(encoding="utf-8")
    edit(rules_copy, "checks.yaml", lambda d: d["checks"]["device_sharing"].update(max_accounts=7))
    edited = load_rules(rules_copy)
    assert edited is not first
    assert edited.checks.checks["device_sharing"]["max_accounts"] == 7
    assert first.checks.checks["device_sharing"]["max_accounts"] == 3
    (rules_copy / "checks.yaml").write_text("checks: [", encoding="utf-8")
    with pytest.raises(RulesError, match=r"checks\.yaml.*invalid YAML"):
        load_rules(rules_copy)
    (rules_copy / "checks.yaml").write_text(original, encoding="utf-8")
    # The same as the first (the same object while the bounded memo still keeps it).
    assert load_rules(rules_copy).checks.checks["device_sharing"]["max_accounts"] == 3
    (rules_copy / "checks.yaml").unlink()
    with pytest.raises(RulesError, match="file not found"):
        load_rules(rules_copy)


def test_invalid_yaml(rules_copy: Path) -> None:
    (rules_copy / "devices.yaml").write_text("brand_aliases: [unclosed", encoding="utf-8")
    with pytest.raises(RulesError, match="invalid YAML"):
        load_rules(rules_copy)


def test_disabled_check_is_not_run(rules_copy: Path) -> None:
    edit(rules_copy, "checks.yaml", lambda d: d.update(disabled=["face_verification"]))
    checker = Checker(CheckerConfig(rules_dir=rules_copy))
    report = checker.check(
        {"account_id": "a", "ts": 1795133730, "ip": "1.1.1.1", "auth": {"face_verified": False}}
    )
    assert all(f.check != "face_verification" for f in report.findings)
    assert "face_verification" not in report.not_evaluated
