"""Hot reload: validate fully, swap atomically, keep the old rules on error."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
import yaml

from fingerprint import Checker, CheckerConfig, RulesError
from fingerprint.checks.account import FaceVerificationCheck
from fingerprint.rules import default_rules_dir
from tests.conftest import make_session

NO_FACE = {"auth.face_verified": False}


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(
        default_rules_dir(), target, ignore=shutil.ignore_patterns("*.py", "__pycache__")
    )
    return target


def set_face_points(folder: Path, points: int) -> None:
    path = folder / "grading.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["code_points"]["AUTH_NO_FACE_VERIFICATION"] = points
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


def test_reload_swaps_in_new_rules(rules_dir: Path) -> None:
    checker = Checker(CheckerConfig(rules_dir=rules_dir))
    assert checker.check(make_session(session_id="a", **NO_FACE)).score == 90
    set_face_points(rules_dir, 25)
    checker.reload_rules()
    assert checker.check(make_session(session_id="b", **NO_FACE)).score == 75


def test_invalid_rules_are_rejected_and_the_old_ones_stay(rules_dir: Path) -> None:
    checker = Checker(CheckerConfig(rules_dir=rules_dir))
    before = checker.rules
    (rules_dir / "checks.yaml").write_text(
        "version: 1\nchecks: {ip_hopping: {windw: 3}}\n", encoding="utf-8"
    )
    with pytest.raises(RulesError, match="ip_hopping"):
        checker.reload_rules()
    assert checker.rules is before
    assert checker.check(make_session(**NO_FACE)).score == 90


def test_checks_in_flight_finish_on_the_old_rules(
    rules_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checker = Checker(CheckerConfig(rules_dir=rules_dir))
    inside, release = threading.Event(), threading.Event()
    original = FaceVerificationCheck.evaluate

    def slow(self, ctx):  # type: ignore[no-untyped-def]
        if ctx.session.session_id == "slow":
            inside.set()
            release.wait(10)
        return original(self, ctx)

    monkeypatch.setattr(FaceVerificationCheck, "evaluate", slow)
    result: dict[str, int] = {}
    worker = threading.Thread(
        target=lambda: result.update(
            score=checker.check(make_session(session_id="slow", **NO_FACE)).score
        )
    )
    worker.start()
    assert inside.wait(10)
    set_face_points(rules_dir, 25)
    checker.reload_rules()  # the slow check holds the old engine
    assert checker.check(make_session(session_id="fresh", **NO_FACE)).score == 75
    release.set()
    worker.join(10)
    assert result["score"] == 90
