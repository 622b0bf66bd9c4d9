"""Whois enrichment inside the checker: feeds the hosting rule, never blocks."""

from __future__ import annotations

from typing import Any

from fingerprint import Checker, CheckerConfig
from fingerprint.sources.whois import PENDING, WhoisRecord
from tests.conftest import TEST_ASN_DB, make_session

ALIBABA = WhoisRecord(37963, "ALIBABA-CN-NET", "ALIYUN", "47.96.0.0/11", "CN")


class ScriptedWhois:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.asked: list[tuple[str, float]] = []

    def lookup(self, ip: str, wait: float = 0.0) -> Any:
        self.asked.append((ip, wait))
        return self.answer

    def stats(self) -> Any:
        class Stats:
            def as_dict(self) -> dict[str, Any]:
                return {"hits": 1}

        return Stats()

    def close(self, wait: bool = False) -> None:
        pass


def checker_with(answer: Any, **config: Any) -> tuple[Checker, ScriptedWhois]:
    checker = Checker(CheckerConfig(**config))
    scripted = ScriptedWhois(answer)
    checker._enricher.whois = scripted
    return checker, scripted


def test_registry_record_feeds_the_hosting_rule() -> None:
    checker, scripted = checker_with(ALIBABA, whois_wait=0.0)
    report = checker.check(make_session(ip="47.96.10.10"))
    assert "VPN_HOSTING_WHOIS" in report.contributions
    assert report.features["whois"]["asn"] == 37963
    assert scripted.asked == [("47.96.10.10", 0.0)]
    # The login's IP is a datacenter exit: travel arithmetic leaves it out.
    assert report.not_evaluated["ip_hopping"].startswith("the IP is a VPN")


def test_pending_lookup_is_reported_as_not_evaluated() -> None:
    checker, _ = checker_with(PENDING)
    report = checker.check(make_session(ip="47.96.10.10"))
    assert report.not_evaluated["whois"] == "whois: lookup still running"
    assert "VPN_HOSTING_WHOIS" not in report.contributions


def test_no_lookup_when_an_asn_database_covers_the_ip_or_it_is_private() -> None:
    checker, scripted = checker_with(ALIBABA, asn_db=TEST_ASN_DB)
    checker.check(make_session(ip="223.104.3.17"))  # in the test ASN database
    checker.check(make_session(ip="192.168.1.2", session_id="private"))
    assert scripted.asked == []


def test_whois_is_off_by_default() -> None:
    assert Checker().whois_stats() is None
