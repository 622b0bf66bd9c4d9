"""Long-term anonymiser use (issue #22 item 1): the share of an account's logins
through a VPN, proxy, Tor or hosting address is a stability feature with its own
code; privacy relays are apart; Anonymous Plus's confidence is used."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fingerprint import Checker, CheckerConfig
from fingerprint.report import Report
from fingerprint.rules import load_rules
from tests.conftest import TEST_ANON_DB, make_session
from tests.redis_server import RedisServer, require_redis_server

LONG_TERM = "STB_LONG_TERM_ANONYMISER"
RELAY = "VPN_PRIVATE_RELAY"
TEST_ANON_PLUS_DB = Path(TEST_ANON_DB).parent / "test-anonymous-plus.mmdb"
T0 = 1_795_133_730  # 2026-11-20 UTC
HOURS = 3600
RELAY_IP = "172.224.226.9"  # inside rules/network.yaml's iCloud Private Relay range
CONFIG = load_rules().checks.checks["stability"]


def login(
    n: int,
    *,
    vpn: bool = False,
    ip: str = "223.104.3.17",
    account: str = "u-lt",
    home_tz: bool = True,
) -> dict[str, Any]:
    """The n-th login of one account, 11 hours apart (the windows need a day of history)."""
    session = make_session(
        session_id=f"{account}-{n}",
        account_id=account,
        ts=T0 + n * 11 * HOURS,
        ip=ip,
        **{"network.vpn_active": vpn},
    )
    if not home_tz:  # no device time zone: no VPN_TZ_MISMATCH for an IP abroad
        del session["device"]["timezone"]
    return session


def run(checker: Checker, sessions: list[dict[str, Any]]) -> list[Report]:
    return [checker.check(s) for s in sessions]


def lost(report: Report) -> int:
    return 100 - report.score


def test_the_tenth_consecutive_vpn_login_weighs_more_than_the_first() -> None:
    reports = run(Checker(), [login(n, vpn=True) for n in range(10)])
    first, tenth = reports[0], reports[-1]
    assert LONG_TERM not in first.contributions
    assert tenth.contributions[LONG_TERM] == 30
    assert lost(tenth) > lost(first)
    # Added to the login's own VPN code, not swallowed by its group.
    assert tenth.contributions["VPN_OS_FLAG"] == first.contributions["VPN_OS_FLAG"] > 0
    long = tenth.features["stability_30d"]
    assert (long["anonymised_logins"], long["anonymised_share"]) == (10, 1.0)
    evidence = next(f.evidence for f in tenth.findings if f.code == LONG_TERM)
    assert evidence == {"anonymised_logins": 10, "logins": 10, "percent": 100, "window_days": 30}


def test_a_one_off_vpn_login_among_clean_ones_is_not_long_term() -> None:
    sessions = [login(n, vpn=n == 7) for n in range(12)]
    reports = run(Checker(), sessions)
    assert all(LONG_TERM not in r.contributions for r in reports)
    assert "VPN_OS_FLAG" in reports[7].contributions
    assert reports[-1].features["stability_30d"]["anonymised_logins"] == 1


@pytest.mark.parametrize("vpn_logins", [0, 3, 4, 5, 6, 9])
def test_the_code_follows_the_share_and_count_thresholds(vpn_logins: int) -> None:
    """Ten logins, the last ``vpn_logins`` through a VPN: the code needs both the share
    and the count of rules/checks.yaml."""
    sessions = [login(n, vpn=n >= 10 - vpn_logins) for n in range(10)]
    last = run(Checker(), sessions)[-1]
    expected = (
        vpn_logins >= CONFIG["anonymiser_min_logins"]
        and vpn_logins / 10 >= CONFIG["anonymiser_share"]
    )
    assert (LONG_TERM in last.contributions) == expected


def test_a_relay_is_no_vpn() -> None:
    """A relay egress flagged anonymous and hosting by the database is reported as the
    relay (weak), and ten relay logins make no long-term anonymiser."""
    checker = Checker(CheckerConfig(anonymous_ip_db=TEST_ANON_DB))
    reports = run(checker, [login(n, ip=RELAY_IP) for n in range(10)])
    first, last = reports[0], reports[-1]
    assert RELAY in first.contributions
    assert not {"VPN_HOSTING_IP", "VPN_ANONYMOUS_VPN"} & set(first.contributions)
    assert first.grade == "A"
    relay = next(f for f in first.findings if f.code == RELAY)
    assert relay.severity == "low" and relay.evidence["service"] == "iCloud Private Relay"
    assert LONG_TERM not in last.contributions
    long = last.features["stability_30d"]
    assert (long["relay_logins"], long["anonymised_logins"]) == (10, 0)


def test_a_relay_is_recognised_without_any_database() -> None:
    report = Checker().check(login(0, ip=RELAY_IP))
    assert RELAY in report.contributions
    assert "vpn_proxy" not in report.not_evaluated


def test_a_vpn_on_the_device_behind_a_relay_ip_still_counts() -> None:
    reports = run(Checker(), [login(n, vpn=True, ip=RELAY_IP) for n in range(6)])
    long = reports[-1].features["stability_30d"]
    assert (long["anonymised_logins"], long["relay_logins"]) == (6, 0)
    assert LONG_TERM in reports[-1].contributions


@pytest.mark.parametrize(
    ("ip", "code", "severity", "confidence"),
    [
        ("1.0.16.5", "VPN_ANONYMOUS_VPN", "high", 99),  # sure: confident
        ("1.0.17.5", "VPN_ANONYMOUS_VPN", "medium", 30),  # unsure: weak
        ("1.0.17.5", "VPN_HOSTING_IP", "medium", 30),
        ("1.0.18.5", "VPN_TOR_EXIT", "high", 30),  # the confidence speaks to VPNs only
        ("2001:470:2::5", "VPN_ANONYMOUS_VPN", "high", 50),  # at the threshold
    ],
)
def test_anonymous_plus_confidence_sets_the_severity(
    ip: str, code: str, severity: str, confidence: int
) -> None:
    checker = Checker(CheckerConfig(anonymous_ip_db=TEST_ANON_PLUS_DB))
    report = checker.check(login(0, ip=ip))
    found = next(f for f in report.findings if f.code == code)
    assert found.severity == severity
    assert found.evidence["confidence"] == confidence


def test_anonymous_plus_evidence_names_provider_and_last_sighting() -> None:
    report = Checker(CheckerConfig(anonymous_ip_db=TEST_ANON_PLUS_DB)).check(
        login(0, ip="1.0.16.5")
    )
    found = next(f for f in report.findings if f.code == "VPN_ANONYMOUS_VPN")
    assert (found.evidence["provider"], found.evidence["last_seen"]) == ("examplevpn", "2026-11-01")


def test_the_classic_database_has_no_confidence() -> None:
    report = Checker(CheckerConfig(anonymous_ip_db=TEST_ANON_DB)).check(login(0, ip="1.0.0.5"))
    found = next(f for f in report.findings if f.code == "VPN_ANONYMOUS_VPN")
    assert found.severity == "high"
    assert "confidence" not in found.evidence


def test_a_relay_the_database_names_is_a_relay() -> None:
    report = Checker(CheckerConfig(anonymous_ip_db=TEST_ANON_PLUS_DB)).check(
        login(0, ip="104.28.5.7")
    )
    assert RELAY in report.contributions
    assert "VPN_HOSTING_IP" not in report.contributions


def test_unsure_vpn_logins_do_not_make_a_long_term_anonymiser() -> None:
    """Logins the database is unsure of (confidence 30) are weak findings: they do not
    count as anonymised, the sure ones do."""
    config = CheckerConfig(anonymous_ip_db=TEST_ANON_PLUS_DB)
    unsure = run(Checker(config), [login(n, ip="1.0.17.5", home_tz=False) for n in range(8)])
    sure = run(Checker(config), [login(n, ip="1.0.16.5", home_tz=False) for n in range(8)])
    unsure, sure = unsure[-1], sure[-1]
    assert unsure.features["stability_30d"]["anonymised_logins"] == 0
    assert LONG_TERM not in unsure.contributions
    assert LONG_TERM in sure.contributions


# --- the same answers from Redis ---------------------------------------------------


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    running = RedisServer(require_redis_server())
    running.start()
    yield running.url
    running.close()


def test_redis_history_gives_the_same_long_term_answers(redis_url: str) -> None:
    """VPN, relay and clean logins interleaved over two accounts: the memory store and
    Redis store the per-login facts and give the same features and findings."""
    config = CheckerConfig(anonymous_ip_db=TEST_ANON_DB)
    sessions = []
    for n in range(10):
        sessions.append(login(n, vpn=n % 3 != 0, account="u-a"))
        sessions.append(login(n, ip=RELAY_IP if n % 2 else "223.104.3.17", account="u-b"))
    memory = Checker(config)
    shared = Checker(replace(config, history=redis_url, history_timeout=2.0))
    seen: set[str] = set()
    for session in sessions:
        want, got = memory.check(session), shared.check(session)
        assert got.features["stability_30d"] == want.features["stability_30d"]
        assert got.contributions == want.contributions
        seen.update(want.contributions)
    assert {LONG_TERM, RELAY} <= seen  # the logins did exercise both
