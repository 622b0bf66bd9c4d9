"""The engine plans history's windows and the derived features from what the checks
declare (``Check.needs``), never from their names or their thresholds' names."""

from __future__ import annotations

import inspect
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from fingerprint.checker import build_engine, plan_windows, unmarked_exit_readers
from fingerprint.checks import CHECK_CLASSES, Check, CheckContext, Outcome
from fingerprint.checks.base import HistoryIndex, Needs
from fingerprint.cli import main
from fingerprint.rules import default_rules_dir, load_rules

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
    assert cls.uses_history == (
        bool(cls.needs.history) or cls.needs.stability or cls.needs.exit_marks
    )
    if cls.needs.stability:
        assert HistoryIndex.ACCOUNT in cls.needs.history  # stability is the account's


# What a login's IP is, in other checks' words: the fields a reader of the exit marks
# reads (the login's, history's, and the stability features' count of them).
_EXIT_MARKS = (".ip_anonymous", ".ip_relay", ".anonymised_")


@pytest.mark.parametrize("cls", CHECK_CLASSES, ids=lambda c: c.name)
def test_a_check_that_reads_the_exit_marks_declares_them(cls: type[Check]) -> None:
    """The marks are other checks' outputs: a check reading them says so (Needs), so
    the engine runs it after the checks that make them and can warn when none does."""
    source = inspect.getsource(cls)
    reads = any(mark in source for mark in _EXIT_MARKS)
    assert cls.needs.exit_marks == reads


def test_the_shipped_readers_of_the_exit_marks() -> None:
    readers = {c.name for c in CHECK_CLASSES if c.needs.exit_marks}
    assert readers == {"ip_accounts", "ip_hopping", "stability"}
    makers = {c.name for c in CHECK_CLASSES if c.marks_anonymous_exit or c.relay_codes}
    assert makers == {"vpn_proxy"}
    assert not any(c.uses_history for c in CHECK_CLASSES if c.name in makers)


def test_a_reader_of_the_exit_marks_runs_after_the_checks_that_make_them() -> None:
    @dataclass(frozen=True)
    class ExitReader(Check):
        name: ClassVar[str] = "exit_reader"
        codes: ClassVar[tuple[str, ...]] = ()
        needs: ClassVar[Needs] = Needs(exit_marks=True)

        def evaluate(self, ctx: CheckContext) -> Outcome:
            return []

    assert ExitReader.uses_history  # with the history checks: the marks are made by then


@pytest.mark.parametrize(
    "needs", [Needs(exit_marks=True), Needs(history=frozenset({HistoryIndex.ACCOUNT}))]
)
@pytest.mark.parametrize("marks", ["anonymous exits", "relays"])
def test_a_check_that_makes_the_marks_cannot_read_what_comes_after_them(
    needs: Needs, marks: str
) -> None:
    with pytest.raises(TypeError, match="must run before history records the login"):
        type(
            "Late",
            (Check,),
            {
                "name": "late",
                "codes": (),
                "needs": needs,
                "marks_anonymous_exit": marks == "anonymous exits",
                "relay_codes": frozenset({"X"}) if marks == "relays" else frozenset(),
            },
        )


def _rules_without(tmp_path: Path, disabled: list[str]) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(
        default_rules_dir(), target, ignore=shutil.ignore_patterns("*.py", "__pycache__")
    )
    checks = target / "checks.yaml"
    data = yaml.safe_load(checks.read_text(encoding="utf-8"))
    data["disabled"] = disabled
    checks.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return target


def test_the_engine_warns_when_no_enabled_check_makes_the_marks_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fingerprint.rules"):
        build_engine(load_rules())
        assert not caplog.records
        engine = build_engine(load_rules(_rules_without(tmp_path / "a", ["vpn_proxy"])))
    assert "vpn_proxy" not in {c.name for c in engine.checks}
    (record,) = caplog.records
    assert record.getMessage().startswith("ip_accounts, ip_hopping, stability read whether")
    assert "which no enabled check decides (vpn_proxy disabled): " in record.getMessage()
    assert engine.warnings == (record.getMessage(),)


def test_the_command_line_prints_the_rules_warning_even_when_quiet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = _rules_without(tmp_path, ["vpn_proxy"])
    sample = Path(__file__).resolve().parents[1] / "fixtures" / "sample.jsonl"
    out = tmp_path / "out.jsonl"
    assert main(["check", str(sample), "-o", str(out), "-q", "--rules", str(rules)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("fingerprint: warning: ip_accounts, ip_hopping, stability read")
    assert err.count("\n") == 1
    assert main(["check", str(sample), "-o", str(out), "-q"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["rules", "validate", str(rules)]) == 0  # valid rules, and the warning
    printed = capsys.readouterr()
    assert printed.out.startswith("ok: ")
    assert printed.err.startswith("fingerprint: warning: ip_accounts, ip_hopping, stability")


def test_no_warning_when_no_enabled_check_reads_the_marks(tmp_path: Path) -> None:
    readers = ["vpn_proxy", "ip_accounts", "ip_hopping", "stability"]
    engine = build_engine(load_rules(_rules_without(tmp_path, readers)))
    assert unmarked_exit_readers(engine.checks) is None
    assert unmarked_exit_readers([*engine.checks, _LongMemory()]) is None
