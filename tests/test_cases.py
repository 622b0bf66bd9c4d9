"""Hand-written hit and miss cases for every reason code (fixtures/cases.jsonl).

Each case checks its sessions in order on a fresh checker (history cases need the
earlier sessions) and asserts on the report of the last one.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fingerprint import Checker
from fingerprint.checker import CheckerConfig
from fingerprint.checks.evidence import EVIDENCE_KEYS

ROOT = Path(__file__).resolve().parent.parent
CASES_FILE = ROOT / "fixtures" / "cases.jsonl"
TEST_ASN_DB = ROOT / "fixtures" / "mmdb" / "test-asn.mmdb"
TEST_ANONYMOUS_DB = ROOT / "fixtures" / "mmdb" / "test-anonymous-ip.mmdb"


def _load_cases() -> list[dict[str, Any]]:
    with CASES_FILE.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


CASES = _load_cases()


def _catalogue() -> set[str]:
    return set(Checker().rules.codes.codes)


class _DownStore:
    """A history store whose backend is unreachable, for the fail-open/closed cases."""

    def record_and_fetch(self, event: Any, windows: Any, now: Any = None) -> Any:
        raise ConnectionError("connection refused")

    def record_device(self, event: Any, windows: Any, now: Any = None) -> None:
        raise ConnectionError("connection refused")


class _FixedWhois:
    """An enricher whose registry always answers with the case's record."""

    def __init__(self, record: dict[str, Any]) -> None:
        from fingerprint.sources.whois import WhoisRecord

        self.record = WhoisRecord(**record)

    def lookup(self, ip: str, wait: float = 0.0) -> Any:
        return self.record


def _checker(case: dict[str, Any]) -> Checker:
    config = CheckerConfig(**case.get("config", {}))
    if "whois" in case:
        checker = Checker(config)
        checker._enricher.whois = _FixedWhois(case["whois"])
        return checker
    if case.get("history") == "down":
        return Checker(config, history=_DownStore())
    if case.get("databases") == "test":
        missing = [p for p in (TEST_ASN_DB, TEST_ANONYMOUS_DB) if not p.is_file()]
        if missing:
            pytest.skip(
                "test MaxMind databases not built "
                f"({', '.join(str(p.relative_to(ROOT)) for p in missing)}); "
                "run: python fixtures/build_mmdb.py"
            )
        return Checker(replace(config, asn_db=TEST_ASN_DB, anonymous_ip_db=TEST_ANONYMOUS_DB))
    return Checker(config)


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_case(case: dict[str, Any]) -> None:
    checker = _checker(case)
    assert case["sessions"], "a case needs at least one session"
    reports = [checker.check(session) for session in case["sessions"]]
    last = reports[-1]
    codes = {f.code for f in last.findings}
    missing = [c for c in case["expect"] if c not in codes]
    unexpected = [c for c in case["absent"] if c in codes]
    detail = {f.code: f.evidence for f in last.findings}
    assert not missing, f"expected {missing}, got {sorted(codes)}: {detail}"
    assert not unexpected, f"must not report {unexpected}: {detail}"
    # Messages may name these keys (rules validation): every finding must carry them.
    for finding in last.findings:
        lacking = EVIDENCE_KEYS[finding.code] - set(finding.evidence)
        assert not lacking, f"{finding.code} lacks evidence {sorted(lacking)}: {detail}"


def test_cases_name_only_known_codes() -> None:
    known = _catalogue()
    for case in CASES:
        unknown = set(case["expect"]) | set(case["absent"])
        unknown -= known
        assert not unknown, f"{case['case']}: unknown codes {sorted(unknown)}"


def test_case_names_are_unique() -> None:
    names = [c["case"] for c in CASES]
    assert len(names) == len(set(names))


def test_every_code_has_a_hit_and_a_miss() -> None:
    known = _catalogue()
    hits = {code for case in CASES for code in case["expect"]}
    # a miss is a case that names the code as absent without also expecting it
    misses = {code for case in CASES for code in case["absent"]}
    assert not known - hits, f"codes without a hit case: {sorted(known - hits)}"
    assert not known - misses, f"codes without a miss case: {sorted(known - misses)}"
