"""The labelled ip_accounts set (fixtures/identity/ip_accounts.jsonl): farms behind one
address or one carrier block are found (recall >= 0.95) and the shared networks that
carry many accounts legitimately are not (precision >= 0.98)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fingerprint.cli import main as cli_main
from fixtures.identity import build_ip_accounts

SET = Path(build_ip_accounts.OUT)
MIN_PRECISION = 0.98
MIN_RECALL = 0.95


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[dict[str, Any], bool]]:
    """(label, detected) for every line, from the CLI's reports."""
    out = tmp_path_factory.mktemp("ipa") / "reports.jsonl"
    assert cli_main(["check", str(SET), "-q", "-o", str(out)]) == 0
    with SET.open(encoding="utf-8") as fh:
        labels = {s["session_id"]: s["_label"] for s in map(json.loads, fh)}
    with out.open(encoding="utf-8") as fh:
        reports = {r["session_id"]: r for r in map(json.loads, fh)}
    assert set(reports) == set(labels)
    return [
        (labels[sid], any(f["check"] == "ip_accounts" for f in report["findings"]))
        for sid, report in reports.items()
    ]


def test_precision_and_recall(scored: list[tuple[dict[str, Any], bool]]) -> None:
    judged = [(label["ip_accounts"], found) for label, found in scored if "ip_accounts" in label]
    tp = sum(1 for truth, found in judged if truth and found)
    fp = sum(1 for truth, found in judged if found and not truth)
    fn = sum(1 for truth, found in judged if truth and not found)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert precision >= MIN_PRECISION and recall >= MIN_RECALL, (tp, fp, fn, precision, recall)


def test_the_set_has_every_family_and_both_labels(
    scored: list[tuple[dict[str, Any], bool]],
) -> None:
    kinds = {label["kind"] for label, _ in scored}
    assert kinds == {family.kind for family in build_ip_accounts.FAMILIES}
    truths = [label["ip_accounts"] for label, _ in scored if "ip_accounts" in label]
    assert truths.count(True) >= 100 and truths.count(False) >= 1000


def test_no_shared_network_family_is_named_wholesale(
    scored: list[tuple[dict[str, Any], bool]],
) -> None:
    """Per family, almost no line of a legitimate shared network is named."""
    for kind in ("office_nat", "campus_wifi", "carrier_nat", "family_home", "clean_user"):
        lines = [found for label, found in scored if label["kind"] == kind]
        assert sum(lines) <= 0.01 * len(lines), (kind, sum(lines), len(lines))


def test_the_committed_set_is_what_its_builder_writes(tmp_path: Path) -> None:
    rebuilt = tmp_path / "ip_accounts.jsonl"
    assert build_ip_accounts.main(["-o", str(rebuilt)]) == 0
    assert rebuilt.read_bytes() == SET.read_bytes(), "rebuild fixtures/identity/ip_accounts.jsonl"
