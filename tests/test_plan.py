"""The engine plans history's windows and the derived features from what the checks
declare (``Check.needs``), never from their names or their thresholds' names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from fingerprint.checker import build_engine, plan_windows
from fingerprint.checks import CHECK_CLASSES, Check, CheckContext, Outcome
from fingerprint.checks.base import HistoryIndex, Needs
from fingerprint.rules import load_rules

DAY = 86_400.0


def test_the_shipped_rules_plan_the_windows_their_thresholds_say() -> None:
    """rules/checks.yaml: ip_hopping 24 h, device_churn 168 h and stability 7/30 days
    read the account (30 days); device_sharing and device_farm 168 h read the device;
    ip_accounts 60 min reads the address, allowances up to 50; device_reset and
    device_forged 72 h read the identity links."""
    engine = build_engine(load_rules())
    windows = engine.windows
    assert windows is not None
    assert windows.account_seconds == 30 * DAY
    assert windows.device_seconds == 168 * 3600
    assert windows.ip_seconds == 60 * 60
    assert windows.max_accounts_per_ip == 200  # at least 200; 51 would do for 50
    assert windows.link_seconds == 72 * 3600
    assert engine.stability is not None
    assert engine.stability.windows_days == (7, 30)
    assert engine.exit_checks == {"vpn_proxy"}
    assert engine.relay_codes == {"VPN_PRIVATE_RELAY"}


@dataclass(frozen=True)
class _LongMemory(Check):
    """A check no code knows by name, reading 90 days of the account and the address."""

    name: ClassVar[str] = "long_memory"
    codes: ClassVar[tuple[str, ...]] = ()
    needs: ClassVar[Needs] = Needs(history=frozenset({HistoryIndex.ACCOUNT, HistoryIndex.ADDRESS}))
    days: float = 90.0

    def evaluate(self, ctx: CheckContext) -> Outcome:
        return []

    def history_seconds(self) -> float:
        return self.days * DAY

    def history_members(self) -> int:
        return 500


def test_a_new_check_gets_the_windows_it_declares() -> None:
    check = _LongMemory()
    assert check.uses_history  # derived from its needs
    windows = plan_windows([check])
    assert windows.account_seconds == 90 * DAY
    assert windows.ip_seconds == 90 * DAY
    assert windows.max_accounts_per_ip == 500
    assert windows.device_seconds == windows.link_seconds == 3600  # the floor: an hour


def test_without_an_address_reader_no_address_history_is_kept() -> None:
    windows = plan_windows([])
    assert windows.ip_seconds == 0.0
    assert windows.account_seconds == 3600


@pytest.mark.parametrize("cls", CHECK_CLASSES, ids=lambda c: c.name)
def test_history_checks_are_exactly_those_that_declare_history(cls: type[Check]) -> None:
    assert cls.uses_history == (bool(cls.needs.history) or cls.needs.stability)
    if cls.needs.stability:
        assert HistoryIndex.ACCOUNT in cls.needs.history  # stability is the account's
