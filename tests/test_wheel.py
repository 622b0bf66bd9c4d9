"""The built wheel works away from the checkout: rules ship inside it."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, make_session


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"wheel build failed:\n{result.stdout}\n{result.stderr}")
    (built,) = out.glob("fingerprint-*.whl")
    return built


def test_wheel_contains_rules_and_marker(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for rule_file in (
        "codes",
        "grading",
        "checks",
        "emulator",
        "multi_open",
        "network",
        "devices",
        "tamper",
    ):
        assert f"fingerprint/_rules/{rule_file}.yaml" in names
    assert "fingerprint/py.typed" in names
    assert not any(name.startswith(("tests/", "fixtures/", "benchmarks/")) for name in names)


def test_installed_wheel_runs_from_another_directory(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "in.jsonl").write_text(json.dumps(make_session()) + "\n", encoding="utf-8")
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import fingerprint, fingerprint.rules as r;"
        "assert fingerprint.__file__.startswith(sys.argv[1]), fingerprint.__file__;"
        "assert str(r.default_rules_dir()).startswith(sys.argv[1]), r.default_rules_dir();"
        "from fingerprint.cli import main; sys.exit(main(['check', 'in.jsonl', '-q']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(site)],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["session_id"] == "s-000187" and report["grade"] == "A"
