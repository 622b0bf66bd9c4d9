"""The per-login stages (fingerprint/stages/): each in its own module, handing the
next a frozen keyword-only record, none reaching back into the checker that wires
them."""

from __future__ import annotations

import ast
from pathlib import Path

import msgspec
import pytest

import fingerprint.stages
from fingerprint.checker import Prepared, _Pending
from fingerprint.stages.enrich import Enriched

STAGES = Path(fingerprint.stages.__file__).parent


@pytest.mark.parametrize("record", [Prepared, Enriched, _Pending], ids=lambda r: r.__name__)
def test_hand_offs_are_frozen_and_keyword_only(record: type[msgspec.Struct]) -> None:
    fields = msgspec.structs.fields(record)
    assert record.__struct_config__.frozen
    with pytest.raises(TypeError):
        record(*[None] * len(fields))  # positional: refused
    made = record(**{f.name: None for f in fields})
    with pytest.raises(AttributeError):
        setattr(made, fields[0].name, 1)  # frozen: refused


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
