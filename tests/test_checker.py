"""The library API: reports follow the contract; thread safety; failures are contained."""

from __future__ import annotations

import copy
import json
import string
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fingerprint import Checker, InvalidSessionError
from fingerprint.checks.emulator import EmulatorCheck
from fingerprint.reporting import _Evidence, _short, render
from fingerprint.rules import load_rules
from tests.conftest import FIXTURES, make_session

REPORT_KEYS = {
    "session_id",
    "account_id",
    "grade",
    "score",
    "blacklisted",
    "findings",
    "contributions",
    "not_evaluated",
    "features",
    "device_component",
}


def test_report_follows_the_contract(checker: Checker) -> None:
    report = checker.check(make_session(session_id="contract")).to_dict()
    assert set(report) >= REPORT_KEYS
    assert report["grade"] in "ABCDE"
    assert 0 <= report["score"] <= 100
    assert report["features"]["ip_country"] == "CN"
    assert set(report["device_component"]) >= {"weight", "score", "veto", "reasons"}
    assert set(report["device_component"]) >= {"status", "pending_reasons", "coverage"}
    assert sum(report["contributions"].values()) == 100 - report["score"]


def test_check_accepts_a_model_and_a_dict(fresh_checker) -> None:  # type: ignore[no-untyped-def]
    record = make_session(session_id="model")
    from_model = fresh_checker().check(fresh_checker().parse(record)).to_dict()
    assert from_model == fresh_checker().check(record).to_dict()


def test_duplicate_session_id_is_a_warning(fresh_checker) -> None:  # type: ignore[no-untyped-def]
    checker = fresh_checker()
    first = checker.check(make_session(session_id="dup"))
    again = checker.check(make_session(session_id="dup", ts=1_795_133_790))
    assert not first.warnings
    assert any("duplicate session id" in w for w in again.warnings)


def test_device_memo_gives_the_same_reports(fresh_checker) -> None:  # type: ignore[no-untyped-def]
    """The second login of a device reuses its verdict; the report must not change."""
    emulator = {"device.system_props": {"ro.kernel.qemu": "1"}, "device.rooted": True}
    checker = fresh_checker(device_memo_size=16)
    first = checker.check(make_session(session_id="m1", **emulator)).to_dict()
    second = checker.check(make_session(session_id="m2", ts=1_795_133_790, **emulator)).to_dict()
    uncached = fresh_checker().check(make_session(session_id="m2", ts=1_795_133_790, **emulator))
    assert len(checker._engine.device_memo) == 1
    for report in (first, second):
        assert report["findings"] == uncached.to_dict()["findings"]
    history_dependent = ("features", "not_evaluated_reasons")
    fresh = uncached.to_dict()
    assert {k: v for k, v in second.items() if k not in history_dependent} == {
        k: v for k, v in fresh.items() if k not in history_dependent
    }


def test_invalid_record_raises_the_library_error(checker: Checker) -> None:
    with pytest.raises(InvalidSessionError) as caught:
        checker.check(make_session(ip="not-an-ip"))
    assert caught.value.field == "ip"


def test_session_id_is_derived_when_absent(checker: Checker) -> None:
    record = make_session()
    del record["session_id"]
    assert checker.check(record, session_id="file:7").session_id == "file:7"
    assert checker.check(record).session_id.startswith("u-10442@")


def _sessions(count: int) -> list[dict[str, Any]]:
    provinces = ["114.114.114.114", "223.5.5.5", "202.96.128.86", "202.106.0.20", "61.139.2.69"]
    sessions = []
    for n in range(count):
        sessions.append(
            make_session(
                session_id=f"s{n}",
                account_id=f"acct{n % 7}",
                ts=1_795_133_730 + n * 600,
                ip=provinces[(n * 3) % len(provinces)],
                **{"device.device_id": f"dev{n % 5}"},
            )
        )
    return sessions


def test_many_threads_give_the_sequential_answers(fresh_checker) -> None:  # type: ignore[no-untyped-def]
    """Per-session checks are pure: concurrent calls equal sequential ones.

    History checks depend on arrival order by design, so each account's sessions are
    sent by one thread in order while the threads interleave across accounts.
    """
    sessions = _sessions(350)
    sequential = fresh_checker()
    expected = {s["session_id"]: sequential.check(copy.deepcopy(s)).to_dict() for s in sessions}
    concurrent = fresh_checker()
    by_account: dict[str, list[dict[str, Any]]] = {}
    for s in sessions:
        by_account.setdefault(s["account_id"], []).append(s)

    def run(account_sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [concurrent.check(s).to_dict() for s in account_sessions]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [r for batch in pool.map(run, by_account.values()) for r in batch]
    got = {r["session_id"]: r for r in results}
    # Device sharing looks across accounts, so its answer depends on interleaving.
    for sid, report in got.items():
        want = expected[sid]
        strip = {"SHR_DEVICE_SHARED"}
        assert [f for f in report["findings"] if f["code"] not in strip] == [
            f for f in want["findings"] if f["code"] not in strip
        ], sid
    assert len(got) == len(sessions)


def test_same_session_from_many_threads_is_identical(checker: Checker) -> None:
    record = make_session(session_id="hot", account_id="hot-acct")
    with ThreadPoolExecutor(max_workers=8) as pool:
        reports = list(pool.map(lambda _: checker.check(record).to_dict()["findings"], range(200)))
    assert all(r == reports[0] for r in reports)


def test_a_failing_check_is_recorded_and_others_still_run(
    monkeypatch: pytest.MonkeyPatch,
    fresh_checker,  # type: ignore[no-untyped-def]
) -> None:
    def boom(self, ctx):  # type: ignore[no-untyped-def]
        raise RuntimeError("signature table exploded")

    monkeypatch.setattr(EmulatorCheck, "evaluate", boom)
    report = fresh_checker().check(make_session(**{"auth.face_verified": False}))
    assert report.not_evaluated["emulator"].startswith("check failed")
    assert any("signature table exploded" in w for w in report.warnings)
    assert any(f.code == "AUTH_NO_FACE_VERIFICATION" for f in report.findings)


def test_account_summary(fresh_checker) -> None:  # type: ignore[no-untyped-def]
    checker = fresh_checker()
    checker.check(make_session(session_id="a1", ts=1_795_133_730))
    emulator = make_session(
        session_id="a2", ts=1_795_137_330, **{"device.system_props": {"ro.kernel.qemu": "1"}}
    )
    checker.check(emulator)
    summary = checker.account_summary("u-10442")
    assert summary is not None
    data = summary.to_dict()
    assert data["sessions"] == 2
    assert data["worst_grade"] == "E" and data["latest_grade"] == "E"
    assert data["blacklisted"] and data["blacklisted_by"]["session_id"] == "a2"
    assert data["provinces"] == ["CN-BJ"]
    assert checker.account_summary("nobody") is None


def test_device_memo_changes_no_report_on_the_labelled_set(fresh_checker) -> None:  # type: ignore[no-untyped-def]
    """Memo on (a small one, so entries are also evicted) or off: identical reports."""
    lines = (FIXTURES / "labelled.jsonl").read_text(encoding="utf-8").splitlines()[:1500]
    records = [json.loads(line) for line in lines]
    with_memo, without = fresh_checker(device_memo_size=64), fresh_checker(device_memo_size=0)
    for record in records:
        assert with_memo.check(record).to_dict() == without.check(record).to_dict()
    assert 0 < len(with_memo._engine.device_memo) <= 64


def _formatter_render(template: str, evidence: dict[str, Any]) -> str:
    """What ``render`` did before it used ``str.format_map``: ``string.Formatter``."""
    values = _Evidence()
    for key, value in evidence.items():
        if isinstance(value, list | tuple):
            value = ", ".join(_short(v) for v in value)
        values[key] = value
    try:
        return string.Formatter().vformat(template, (), values)
    except (ValueError, IndexError, KeyError, AttributeError):
        return template


def _outcome(render_: Callable[[str, dict[str, Any]], str], *args: Any) -> object:
    try:
        return render_(*args)
    except Exception as exc:  # both must fail the same way where they fail
        return type(exc)


_EVIDENCE = st.dictionaries(
    st.sampled_from(["a", "b", "product", "n", "0"]),
    st.one_of(
        st.integers(), st.floats(), st.text(max_size=4), st.lists(st.text(max_size=3), max_size=2)
    ),
    max_size=4,
)


_TEMPLATE_PARTS = ["{a}", "{b!r}", "{n:>4}", "{n:d}", "{0}", "{}", "{product}", "{a[0]}", "{a.x}"]
_TEMPLATES = st.lists(
    st.sampled_from([*_TEMPLATE_PARTS, "{", "}", "{{", "}}", ":", "!", " ", "x"]), max_size=6
).map("".join) | st.text(alphabet="{}[]!:.0abnrsx>^ ", max_size=14)


# Generation, not the test, is what a busy machine slows down (CI shares its cores).
@settings(suppress_health_check=[HealthCheck.too_slow])
@given(_TEMPLATES, _EVIDENCE)
def test_render_matches_string_formatter(template: str, evidence: dict[str, Any]) -> None:
    assert _outcome(render, template, evidence) == _outcome(_formatter_render, template, evidence)


def test_render_fills_every_rule_template_like_string_formatter() -> None:
    evidence = {"product": "Genymotion", "provinces": ["CN-GD", "CN-BJ"], "count": 3}
    for spec in load_rules(None).codes.codes.values():
        for template in (spec.message, spec.message_zh):
            assert render(template, evidence) == _formatter_render(template, evidence)
