"""docs/CALIBRATION.md "Seed figures traced": every rule key the table names exists in
the bundled rules, and every row names one or says "documented only" and why, so
the trace from the seeds' figures to the rules cannot rot silently."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from fingerprint.rules import default_rules_dir

ROOT = Path(__file__).resolve().parent.parent
CALIBRATION = ROOT / "docs" / "CALIBRATION.md"
SECTION = "## Seed figures traced"
KEY = re.compile(r"`rules/([a-z_]+\.yaml):([A-Za-z0-9_.]+)`")


def _rows() -> list[list[str]]:
    text = CALIBRATION.read_text(encoding="utf-8")
    assert SECTION in text, f"{CALIBRATION.name} lost its {SECTION!r} section"
    body = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in body.splitlines() if line.startswith("|")]
    # header and separator first
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


ROWS = _rows()


def _resolve(document: Any, dotted: str) -> bool:
    node = document
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_the_table_lists_the_seed_figures_the_issue_names() -> None:
    figures = " ".join(row[0] for row in ROWS)
    for figure in ("91%", "4.6×", "12%", "83%", "37 days", "device changes"):
        assert figure in figures, f"no row for {figure}"


@pytest.mark.parametrize("row", ROWS, ids=[row[0] for row in ROWS])
def test_every_row_names_rule_keys_that_exist_or_says_documented_only(row: list[str]) -> None:
    figure, seed_text, carried_by, why = row
    assert seed_text, f"{figure}: no seed text"
    keys = KEY.findall(carried_by)
    if not keys:
        assert carried_by == "documented only", f"{figure}: names no rule key: {carried_by!r}"
        assert why, f"{figure}: documented only, but not why"
        return
    rules = default_rules_dir()
    for file, dotted in keys:
        document = yaml.safe_load((Path(rules) / file).read_text(encoding="utf-8"))
        assert _resolve(document, dotted), f"{figure}: rules/{file} has no key {dotted}"
