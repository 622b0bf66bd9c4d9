"""API edges (issue 19.9): options checked where they are written, errors that say
what is wanted, the types the docs name, a checker that closes what it opened."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fingerprint import Checker, CheckerConfig
from fingerprint.errors import ConfigError
from fingerprint.explain import explain
from fingerprint.history import MemoryHistoryStore
from tests.conftest import make_session


def test_naive_tz_takes_a_zone_name_and_checks_it_at_once() -> None:
    config = CheckerConfig(naive_tz="Asia/Shanghai")
    assert config.naive_tz == ZoneInfo("Asia/Shanghai") == config.time_zone
    with Checker(config) as checker:
        report = checker.check(make_session(ts="2026-11-16T00:07:28"))
    assert report.ts == datetime(2026, 11, 15, 16, 7, 28, tzinfo=UTC)
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        CheckerConfig(naive_tz="Mars/Olympus")
    with pytest.raises(ConfigError, match="tzinfo or a zone name"):
        CheckerConfig(naive_tz=8)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("history_timeout", -1),
        ("history_timeout", 0),
        ("history_timeout", math.nan),
        ("history_timeout", "0.05"),
        ("whois_timeout", -3.0),
        ("whois_wait", -1),
        ("whois_wait", math.inf),
        ("track_accounts", -5),
        ("ua_cache_size", 1.5),
        ("device_memo_size", True),
        ("whois_budget", -1),
    ],
)
def test_options_out_of_range_are_refused_when_written(option: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=option):
        CheckerConfig(**{option: value})


def test_explain_names_the_languages_it_speaks() -> None:
    with Checker() as checker:
        report = checker.check(make_session())
        assert explain(report, checker.rules, "en").startswith("Session ")
        with pytest.raises(ValueError, match=r"lang must be one of zh, en; got 'fr'"):
            explain(report, checker.rules, "fr")  # type: ignore[arg-type]


def test_report_has_the_not_evaluated_reasons_the_readme_names() -> None:
    with Checker() as checker:
        report = checker.check(make_session(**{"auth.face_verified": None}))
    assert report.not_evaluated_reasons["face_verification"] == "auth.face_verified not reported"
    assert report.not_evaluated_reasons == report.to_dict()["not_evaluated_reasons"]


def test_account_summary_holds_the_documented_types() -> None:
    with Checker() as checker:
        checker.check(make_session(session_id="a1", ts=1_795_133_730))
        checker.check(
            make_session(session_id="a2", ts=1_795_137_330, **{"device.device_id": "other"})
        )
        summary = checker.account_summary("u-10442")
        assert summary is not None
        assert isinstance(summary.devices, tuple) and len(summary.devices) == 2
        assert all(isinstance(d, str) for d in summary.devices)
        assert summary.provinces == ("CN-BJ",)
        assert summary.to_dict()["devices"] == list(summary.devices)
        # Documented: None for an account the checker has not seen (or evicted).
        assert checker.account_summary("nope") is None


class _ClosingStore(MemoryHistoryStore):
    closed = 0

    def close(self) -> None:
        self.closed += 1


def test_checker_is_a_context_manager_that_releases_what_it_opened(tmp_path: Path) -> None:
    store = _ClosingStore()
    config = CheckerConfig(whois=True, whois_cache=tmp_path / "whois.sqlite3")
    with Checker(config, history=store) as checker:
        whois = checker._enricher.whois
        city = checker._enricher.extractor.city
        assert whois is not None and city is not None
        checker.check(make_session())
    assert store.closed == 1
    assert checker._enricher.whois is None and whois._closed
    with pytest.raises(ValueError):  # maxminddb: a closed reader
        city._reader.get("1.2.3.4")
    checker.close()  # idempotent


def test_out_of_order_calls_see_only_older_logins_as_the_readme_says() -> None:
    """Three devices in a week is churn in time order; newest first, no login sees
    the others (each sees only older, already recorded logins)."""
    logins = [
        make_session(session_id=f"s{n}", ts=1_795_133_730 + n * 3600, **{"device.device_id": d})
        for n, d in enumerate(("d-a", "d-b", "d-c"))
    ]

    def churn(order: list[dict[str, Any]]) -> list[bool]:
        with Checker() as checker:
            reports = [checker.check(login) for login in order]
        return [any(f.code == "CHN_DEVICE_CHURN" for f in r.findings) for r in reports]

    assert churn(logins) == [False, False, True]
    assert churn(logins[::-1]) == [False, False, False]
