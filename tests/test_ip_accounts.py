"""ip_accounts: distinct accounts per address and per mobile-carrier block in a window."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fingerprint import Checker
from fingerprint.checker import CheckerConfig
from fingerprint.history import LoginEvent, MemoryHistoryStore, Windows, ip_keys
from fingerprint.report import Report
from fingerprint.rules import default_rules_dir

ROOT = Path(__file__).resolve().parent.parent
ASN_DB = ROOT / "fixtures" / "mmdb" / "test-asn.mmdb"
T0 = 1_795_000_000.0  # 2026-11-18, a clock the tests pass explicitly
MINUTE = 60.0


def _login(account: str, minutes: float, ip: str, kind: str = "wifi") -> dict[str, Any]:
    return {
        "account_id": account,
        "ts": T0 + minutes * MINUTE,
        "ip": ip,
        "network": {"type": kind, "vpn_active": False},
    }


def _run(checker: Checker, logins: Iterable[dict[str, Any]]) -> list[Report]:
    return [checker.check(login, now=login["ts"]) for login in logins]


def _codes(report: Report) -> set[str]:
    return {f.code for f in report.findings if f.check == "ip_accounts"}


def _asn_checker() -> Checker:
    if not ASN_DB.is_file():
        pytest.skip("fixtures/mmdb/test-asn.mmdb not built: python fixtures/build_mmdb.py")
    return Checker(CheckerConfig(asn_db=ASN_DB))


def test_ten_accounts_from_one_address_within_45_minutes_are_found() -> None:
    """Issue 21's case: ten accounts from one IP within 45 minutes were all grade A."""
    reports = _run(Checker(), (_login(f"farm-{i}", i * 5, "36.110.20.5") for i in range(10)))
    flagged = [r for r in reports if "IPA_MANY_ACCOUNTS" in _codes(r)]
    # A stream knows a burst once it has happened: at the tenth account.
    assert [r.account_id for r in flagged] == ["farm-9"]
    last = flagged[-1].findings[-1]
    assert last.severity == "medium"
    assert last.evidence["accounts"] == 10 and last.evidence["allowance"] == 9
    assert last.evidence["network_kind"] == "fixed"
    assert "36.110.20.5" in last.message and "10" in last.message_zh
    assert all(r.grade != "A" for r in flagged)


def test_the_same_accounts_spread_over_a_day_are_not() -> None:
    reports = _run(Checker(), (_login(f"office-{i}", i * 50, "36.110.20.6") for i in range(20)))
    assert not any(_codes(r) for r in reports)


def test_a_returning_member_of_a_busy_network_is_what_it_explains() -> None:
    """Yesterday's office regulars return in a busy hour: the regulars are not
    named; a newcomer in the same hour is."""
    office = "36.110.20.11"
    yesterday = [_login(f"staff-{i}", i * 30, office) for i in range(12)]
    today = [_login(f"staff-{i}", 24 * 60 + i * 4, office) for i in range(12)]
    reports = _run(Checker(), [*yesterday, *today, _login("newcomer", 24 * 60 + 50, office)])
    assert not any(_codes(r) for r in reports[:-1])
    assert _codes(reports[-1]) == {"IPA_MANY_ACCOUNTS"}


def test_one_account_logging_in_often_is_one_account() -> None:
    reports = _run(Checker(), (_login("busy", i, "36.110.20.7") for i in range(30)))
    assert not any(_codes(r) for r in reports)


def test_a_carrier_address_carries_more_accounts_than_a_home() -> None:
    cellular = _run(
        Checker(), (_login(f"phone-{i}", i * 2, "223.104.3.17", "cellular") for i in range(15))
    )
    assert not any(_codes(r) for r in cellular)
    wifi = _run(Checker(), (_login(f"home-{i}", i * 2, "36.110.20.8") for i in range(15)))
    assert "IPA_MANY_ACCOUNTS" in _codes(wifi[-1])


def test_a_carrier_address_beyond_its_allowance_is_found() -> None:
    reports = _run(
        Checker(), (_login(f"pool-{i}", i, "223.104.3.18", "cellular") for i in range(22))
    )
    finding = next(f for f in reports[-1].findings if f.code == "IPA_MANY_ACCOUNTS")
    assert finding.evidence["network_kind"] == "carrier"
    assert finding.evidence["allowance"] == 20 and finding.evidence["accounts"] == 22


def test_a_carrier_block_burst_is_found_and_counted_once_in_the_grade() -> None:
    logins = (_login(f"sim-{i}", i * 0.5, f"223.104.4.{i % 2}", "cellular") for i in range(60))
    last = _run(Checker(), logins)[-1]
    assert _codes(last) == {"IPA_MANY_ACCOUNTS", "IPA_CARRIER_BLOCK_ACCOUNTS"}
    block = next(f for f in last.findings if f.code == "IPA_CARRIER_BLOCK_ACCOUNTS")
    assert block.evidence["network"] == "223.104.4.0/24" and block.evidence["accounts"] == 60
    assert block.severity == "low"
    # One burst seen twice (address and block) takes one group's points.
    assert last.contributions["IPA_CARRIER_BLOCK_ACCOUNTS"] == 0
    assert last.score == 100 - last.contributions["IPA_MANY_ACCOUNTS"]


def test_normal_carrier_load_on_a_block_is_not_found() -> None:
    logins = (_login(f"sub-{i}", i * 1.5, f"223.104.5.{i % 40}", "cellular") for i in range(40))
    assert not any(_codes(r) for r in _run(Checker(), logins))


def test_ipv6_counts_per_64_without_blocks() -> None:
    same_64 = (
        _login(f"v6-{i}", i, f"240e:3a1:4c2:51f0:{i + 1:x}:9a2b:11cd:7e01") for i in range(10)
    )
    assert "IPA_MANY_ACCOUNTS" in _codes(_run(Checker(), same_64)[-1])
    other_64s = (_login(f"v6b-{i}", i, f"240e:3a1:4c2:{i + 1:x}::1") for i in range(12))
    assert not any(_codes(r) for r in _run(Checker(), other_64s))
    assert ip_keys("240e:3a1:4c2:51f0::1", "240e:3a1:4c2::/48") == ("240e:3a1:4c2:51f0::/64", None)
    assert ip_keys("36.110.20.5", "36.110.20.0/24") == ("36.110.20.5", "36.110.20.0/24")


def test_a_cellular_claim_from_a_known_non_carrier_asn_gets_no_allowance(tmp_path: Path) -> None:
    """AS9808 (the test database's 223.104.0.0/16) taken out of the carrier table:
    the phone still says cellular, the server knows the network is no carrier's."""
    _asn_checker()
    network = yaml.safe_load((default_rules_dir() / "network.yaml").read_text(encoding="utf-8"))
    network["carrier_asns"] = [a for a in network["carrier_asns"] if a["asn"] != 9808]
    (tmp_path / "network.yaml").write_text(yaml.safe_dump(network), encoding="utf-8")
    (tmp_path / "overlay.yaml").write_text("version: 1\nbase: bundled\n", encoding="utf-8")
    checker = Checker(CheckerConfig(asn_db=ASN_DB, rules_dir=tmp_path))
    logins = (_login(f"claim-{i}", i, "223.104.6.1", "cellular") for i in range(11))
    finding = next(f for f in _run(checker, logins)[-1].findings if f.check == "ip_accounts")
    assert finding.evidence["network_kind"] == "fixed"
    listed = _run(
        _asn_checker(), (_login(f"c-{i}", i, "223.104.6.2", "cellular") for i in range(9))
    )
    assert not _codes(listed[-1])  # with AS9808 listed: a carrier address


def test_a_hosting_exit_has_the_smallest_allowance() -> None:
    checker = _asn_checker()
    reports = _run(checker, (_login(f"dc-{i}", i, "47.96.1.1") for i in range(4)))
    finding = next(f for f in reports[-1].findings if f.check == "ip_accounts")
    assert finding.evidence["network_kind"] == "hosting" and finding.evidence["accounts"] == 4
    assert not _codes(reports[-2])


def test_private_addresses_and_missing_history_are_not_evaluated() -> None:
    report = Checker().check(_login("lan", 0, "192.168.1.20"), now=T0)
    assert "not public" in report.not_evaluated["ip_accounts"]


def test_a_privacy_relay_egress_is_not_counted() -> None:
    """iCloud Private Relay egress (rules/network.yaml relays) carries its users at
    large: many accounts there are the relay's, not a farm's."""
    reports = _run(Checker(), (_login(f"relay-{i}", i, "172.225.8.9") for i in range(12)))
    assert not any(_codes(r) for r in reports)
    assert "privacy relay" in reports[-1].not_evaluated["ip_accounts"]


class _DownStore:
    def record_and_fetch(self, event: Any, windows: Any, now: Any = None) -> Any:
        raise ConnectionError("refused")

    def record_device(self, event: Any, windows: Any, now: Any = None) -> None:
        raise ConnectionError("refused")


def test_history_down_means_not_evaluated() -> None:
    report = Checker(history=_DownStore()).check(_login("x", 0, "36.110.20.9"), now=T0)
    assert "ip_accounts" in report.not_evaluated


# --- the store ----------------------------------------------------------------------

WINDOWS = Windows(3600.0, 3600.0, ip_seconds=3600.0, max_accounts_per_ip=5)


def _event(account: str, ts: float, ip: str) -> LoginEvent:
    network = ip.rsplit(".", 1)[0] + ".0/24"
    return LoginEvent(ts, 0, account, None, ip, None, None, None, None, False, network=network)


def test_the_store_keeps_a_bounded_set_per_address_and_evicts_idle_ones() -> None:
    store = MemoryHistoryStore(evict_every=1)
    for i in range(50):
        store.record_and_fetch(_event(f"a{i}", T0 + i, "1.2.3.4"), WINDOWS, now=T0 + i)
    view = store.record_and_fetch(_event("late", T0 + 60, "1.2.3.4"), WINDOWS, now=T0 + 60)
    assert len(view.ip_accounts) == 5  # the cap: the five most recent accounts
    assert {who for _, who in view.ip_accounts} == {f"a{i}" for i in range(45, 50)}
    assert store.addresses() == 1
    later = T0 + 2 * 3600
    store.record_and_fetch(_event("other", later, "5.6.7.8"), WINDOWS, now=later)
    assert store.addresses() == 1  # 1.2.3.4 went idle past the window and was evicted


def test_no_ip_window_keeps_nothing() -> None:
    store = MemoryHistoryStore()
    windows = Windows(3600.0, 3600.0)
    view = store.record_and_fetch(_event("a", T0, "1.2.3.4"), windows, now=T0)
    view = store.record_and_fetch(_event("b", T0 + 1, "1.2.3.4"), windows, now=T0 + 1)
    assert view.ip_accounts == () and store.addresses() == 0


_ACCOUNTS = st.sampled_from([f"acct-{i}" for i in range(12)])
_ADDRESSES = st.sampled_from(["9.9.9.1", "9.9.9.2", "9.9.8.1"])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3 * 3600), _ACCOUNTS, _ADDRESSES), min_size=1, max_size=60)
)
def test_the_store_answers_what_a_brute_force_count_answers(
    logins: list[tuple[int, str, str]],
) -> None:
    """Before each login, the accounts on its address inside the window are exactly
    the distinct accounts of the earlier logins there (time order, like the CLI)."""
    logins.sort(key=lambda login: login[0])
    windows = Windows(3600.0, 3600.0, ip_seconds=1800.0, max_accounts_per_ip=50)
    store = MemoryHistoryStore(evict_every=3)
    for index, (offset, account, ip) in enumerate(logins):
        ts = T0 + offset
        view = store.record_and_fetch(_event(account, ts, ip), windows, now=ts)
        earlier = logins[:index]
        expected = {a for at, a, where in earlier if where == ip and T0 + at >= ts - 1800}
        assert {who for at, who in view.ip_accounts if at >= ts - 1800} == expected
        block = ip.rsplit(".", 1)[0]
        in_block = {
            a for at, a, where in earlier if where.startswith(block) and T0 + at >= ts - 1800
        }
        assert {who for at, who in view.block_accounts if at >= ts - 1800} == in_block


def test_sharded_runs_see_every_account_on_an_address(tmp_path: Path) -> None:
    """Workers shard by account; each still counts the other shards' accounts."""
    import orjson

    from fingerprint.cli import main

    log = tmp_path / "farm.jsonl"
    with log.open("wb") as fh:
        for i in range(14):
            fh.write(orjson.dumps(_login(f"w-{i}", i * 3, "36.110.20.10")) + b"\n")
    outputs = []
    for workers in ("1", "2"):
        out = tmp_path / f"out-{workers}.jsonl"
        assert main(["check", str(log), "-q", "--workers", workers, "-o", str(out)]) == 0
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    reports = [orjson.loads(line) for line in outputs[0].splitlines()]
    flagged = [r["account_id"] for r in reports if r["contributions"].get("IPA_MANY_ACCOUNTS")]
    assert flagged == [f"w-{i}" for i in range(9, 14)]  # from the tenth account on
