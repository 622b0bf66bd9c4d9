"""Precision and recall of the four headline checks on the labelled fixture set.

fixtures/labelled.jsonl is written by fixtures/generate.py; each session's ``_label``
says what the generator built (see that module's docstring). The counting lives in
fixtures/heldout/evaluate.py, shared with the held-out sets (tests/test_heldout.py).
A session counts as detected by a check when the report has a finding of that check
at severity high or critical; for kind ``system_dual_app`` any ``multi_open``
finding counts, since the OS's own dual-app feature is reported at medium by design.
"""

from __future__ import annotations

import json

import pytest

from fingerprint.cli import main
from fixtures.heldout.evaluate import (
    CHECKS,
    LABELLED,
    Confusion,
    confusion,
    detected,
    read_labels,
    run_checker,
)

MIN_PRECISION = 0.98
MIN_RECALL = 0.95


@pytest.fixture(scope="module")
def measured() -> dict[str, Confusion]:
    labels = read_labels(LABELLED)
    reports = run_checker(LABELLED)
    assert set(reports) == set(labels), "every labelled session must get exactly one report"
    return confusion(labels, reports)


def test_labelled_set_has_positives_and_negatives() -> None:
    counts = {check: [0, 0] for check in CHECKS}
    with LABELLED.open(encoding="utf-8") as fh:
        for line in fh:
            label = json.loads(line)["_label"]
            for check in CHECKS:
                counts[check][bool(label[check])] += 1
    for check, (negatives, positives) in counts.items():
        assert positives >= 30 and negatives >= 1000, f"{check}: {positives}+ / {negatives}-"


@pytest.mark.parametrize("check", CHECKS)
def test_precision_and_recall(measured: dict[str, Confusion], check: str) -> None:
    cell = measured[check]
    assert cell.precision >= MIN_PRECISION and cell.recall >= MIN_RECALL, cell.describe(check)


def test_detection_rule_counts_only_confident_findings() -> None:
    report = {"findings": [{"check": "emulator", "severity": "medium"}]}
    assert not detected("emulator", {"kind": "emulator_nox"}, report)
    report = {"findings": [{"check": "multi_open", "severity": "medium"}]}
    assert detected("multi_open", {"kind": "system_dual_app"}, report)
    assert not detected("multi_open", {"kind": "container_virtualapp"}, report)


@pytest.fixture(scope="module")
def last_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, set[str]]]:
    """Per account: its kind and the codes of its last session's report."""
    kinds: dict[str, tuple[str, str]] = {}
    with LABELLED.open(encoding="utf-8") as fh:
        for line in fh:
            session = json.loads(line)
            kinds[session["session_id"]] = (session["_label"]["kind"], session["account_id"])
    out = tmp_path_factory.mktemp("stability") / "reports.jsonl"
    assert main(["check", str(LABELLED), "-o", str(out), "-q", "--workers", "1"]) == 0
    last: dict[str, tuple[str, set[str]]] = {}
    with out.open(encoding="utf-8") as fh:
        for report in map(json.loads, fh):
            kind, account = kinds[report["session_id"]]
            last[account] = (kind, set(report["contributions"]))
    return last


def test_device_churners_and_network_scatterers_are_seen(
    last_reports: dict[str, tuple[str, set[str]]],
) -> None:
    churners = [codes for kind, codes in last_reports.values() if kind == "device_churner"]
    scatterers = [codes for kind, codes in last_reports.values() if kind == "network_scatterer"]
    assert churners and scatterers
    assert all({"CHN_DEVICE_CHURN", "STB_UNSTABLE_DEVICE"} & codes for codes in churners)
    assert all("STB_DISPERSED_NETWORKS" in codes for codes in scatterers)
    ordinary = [
        codes
        for kind, codes in last_reports.values()
        if kind in ("ordinary_android", "iphone", "commuter", "real_trip")
    ]
    dispersed = sum("STB_DISPERSED_NETWORKS" in codes for codes in ordinary)
    churned = sum("STB_UNSTABLE_DEVICE" in codes for codes in ordinary)
    assert dispersed == 0 and churned == 0, (dispersed, churned, len(ordinary))
