"""README.md's `fingerprint explain` examples are what the command prints now."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from fingerprint.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = re.compile(r"```text\n\$ (fingerprint explain [^\n]+)\n(.*?)```", re.DOTALL)
EXAMPLES = EXAMPLE.findall((ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_readme_has_explain_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize(("command", "shown"), EXAMPLES, ids=[c for c, _ in EXAMPLES])
def test_readme_explain_example_matches_a_real_run(
    command: str, shown: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the examples name fixtures/ relative to the checkout
    assert main(shlex.split(command)[1:]) == 0
    printed = capsys.readouterr().out
    assert printed == shown, (
        f"README.md's example differs from what `{command}` prints now; "
        f"paste the new output into README.md (run it from {os.fspath(ROOT)})"
    )
