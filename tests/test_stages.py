"""The per-login stages (fingerprint/stages/): each in its own module, handing the
next a frozen keyword-only record, none reaching back into the checker that wires
them."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import fingerprint.stages
from fingerprint.checker import Prepared, _Pending
from fingerprint.stages.enrich import Enriched

STAGES = Path(fingerprint.stages.__file__).parent


@pytest.mark.parametrize("record", [Prepared, Enriched, _Pending], ids=lambda r: r.__name__)
def test_hand_offs_are_frozen_and_keyword_only(record: type) -> None:
    params = record.__dataclass_params__  # type: ignore[attr-defined]
    assert params.frozen
    assert all(f.kw_only for f in dataclasses.fields(record))
    with pytest.raises(TypeError):
        record(*[None] * len(dataclasses.fields(record)))  # positional: refused


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("module", sorted(STAGES.glob("*.py")), ids=lambda p: p.stem)
def test_no_stage_reaches_back_into_the_checker_or_the_command_line(module: Path) -> None:
    forbidden = {"fingerprint.checker", "fingerprint.cli", "fingerprint.pipeline"}
    assert not (_imports(module) & forbidden)
