"""The built wheel works away from the checkout: rules ship inside it."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from fingerprint.features.stability import native_walk
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
    (built,) = out.glob("fingerprint_session_risk-*.whl")
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
    assert "fingerprint/_native.pyi" in names
    assert not any(name.startswith(("tests/", "fixtures/", "benchmarks/")) for name in names)


def test_the_wheel_holds_the_compiled_walk_where_a_compiler_built_it(wheel: Path) -> None:
    """Where this checkout's install compiled fingerprint._native, the wheel built
    the same way carries it too, and is tagged for the platform."""
    if importlib.util.find_spec("fingerprint._native") is None:
        pytest.skip("fingerprint._native is not built here (no C compiler at install)")
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in names if n.startswith("fingerprint/_native.") and n.endswith(".so")]
    assert not wheel.name.endswith("-py3-none-any.whl")


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
        "import fingerprint.features.stability as s;"
        "print(s.native_walk(), file=sys.stderr);"
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
    # The installed wheel's own walk answers: C where this checkout's was compiled.
    assert result.stderr.splitlines()[0] == str(native_walk())
    report = json.loads(result.stdout)
    assert report["session_id"] == "s-000187" and report["grade"] == "A"


DOCS = [
    ROOT / "README.md",
    ROOT / "benchmarks" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
_INSTALL = re.compile(r"pip install ([^`\n#]+)")


def _project() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as file:
        project: dict[str, Any] = tomllib.load(file)["project"]
    return project


def _install_lines() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for match in _INSTALL.finditer(doc.read_text(encoding="utf-8")):
            found.append((doc.name, match.group(1).split("&&")[0].strip()))
    return found


def test_the_distribution_name_is_not_the_unrelated_index_project() -> None:
    """`fingerprint` on the package index is someone else's document fingerprinter."""
    assert canonicalize_name(_project()["name"]) != "fingerprint"


def test_every_install_line_in_the_docs_works_as_written() -> None:
    """A requirement is this checkout (with extras it defines), a wheel built from it
    (named as pip names it), or a registry package that is not the unrelated
    `fingerprint` nor this unpublished project."""
    project = _project()
    ours = canonicalize_name(project["name"])
    extras = set(project["optional-dependencies"])
    # Tagged for the platform it is built on (it holds a C extension): the docs name
    # it by a pattern the shell expands to the wheel pip wheel wrote.
    wheel_name = f"{ours.replace('-', '_')}-{project['version']}-*.whl"
    lines = _install_lines()
    assert len(lines) >= 5
    for doc, line in lines:
        for word in shlex.split(line):
            if word.startswith("-"):
                continue
            if word.startswith("."):
                wanted = set(Requirement("x" + word[1:]).extras)
                assert wanted <= extras, (doc, line)
            elif word.endswith(".whl"):
                assert Path(word).name == wheel_name, (doc, line)
            else:
                name = canonicalize_name(Requirement(word).name)
                assert name not in ("fingerprint", ours), (doc, line)
