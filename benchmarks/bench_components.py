"""Components on their own: UA parsing (cached, uncached), geo lookup (ours vs raw
``maxminddb``), rule loading. Per-call times are one round's time over its batch."""

from __future__ import annotations

import ipaddress
from typing import Any

import maxminddb
import pytest
from ua_parser import user_agent_parser

from benchmarks import report
from benchmarks.generate import load_records
from fingerprint import rules as rules_module
from fingerprint.checker import build_engine
from fingerprint.rules import load_rules
from fingerprint.sources.maxmind import bundled_city_path, open_city
from fingerprint.sources.useragent import cached_resolver, parse_user_agent

SAMPLE_SESSIONS = 20_000
GEO_BATCH = 10_000


@pytest.fixture(scope="module")
def sample() -> list[dict[str, Any]]:
    return load_records(SAMPLE_SESSIONS)


@pytest.fixture(scope="module")
def user_agents(sample: list[dict[str, Any]]) -> list[str]:
    """Distinct user agents in first-seen order (several hundred: more than the
    200-entry cache inside ``ua_parser``'s legacy API, so a pass never hits it)."""
    return list(dict.fromkeys(r["user_agent"] for r in sample if r.get("user_agent")))


@pytest.fixture(scope="module")
def addresses(sample: list[dict[str, Any]]) -> list[Any]:
    """The IPs of the first sessions, as the checker holds them (``ipaddress`` objects)."""
    return [ipaddress.ip_address(r["ip"]) for r in sample[:GEO_BATCH]]


def _per_call(benchmark: Any, name: str, batch: int, **extra: Any) -> None:
    seconds = benchmark.stats.stats.median
    metrics = {"us_per_call": round(seconds / batch * 1e6, 3), "batch": batch, **extra}
    benchmark.extra_info.update(metrics)
    report.record(name, **metrics)


def test_ua_uncached(benchmark: Any, user_agents: list[str]) -> None:
    assert len(user_agents) > user_agent_parser.MAX_CACHE_SIZE

    def parse_all() -> None:
        user_agent_parser._PARSE_CACHE.clear()
        for text in user_agents:
            parse_user_agent(text)

    benchmark.pedantic(parse_all, rounds=3, iterations=1, warmup_rounds=1)
    _per_call(benchmark, "ua_uncached", len(user_agents), distinct=len(user_agents))


def test_ua_cached(benchmark: Any, user_agents: list[str]) -> None:
    resolve = cached_resolver(parse_user_agent)
    for text in user_agents:
        resolve(text)

    def resolve_all() -> None:
        for text in user_agents:
            resolve(text)

    benchmark.pedantic(resolve_all, rounds=200, iterations=1, warmup_rounds=5)
    _per_call(benchmark, "ua_cached", len(user_agents), distinct=len(user_agents))


def test_geo_lookup_warm(benchmark: Any, addresses: list[Any]) -> None:
    city = open_city(bundled_city_path())
    for address in addresses:
        city.lookup(address)

    def lookup_all() -> None:
        lookup = city.lookup
        for address in addresses:
            lookup(address)

    benchmark.pedantic(lookup_all, rounds=50, iterations=1, warmup_rounds=2)
    _per_call(benchmark, "geo_lookup", len(addresses), distinct=len(set(addresses)))


def test_geo_raw_maxminddb(benchmark: Any, addresses: list[Any]) -> None:
    reader = maxminddb.open_database(bundled_city_path())

    def get_all() -> None:
        get = reader.get
        for address in addresses:
            get(address)

    benchmark.pedantic(get_all, rounds=50, iterations=1, warmup_rounds=2)
    _per_call(benchmark, "geo_raw", len(addresses), distinct=len(set(addresses)))


def _forget_rule_sets() -> None:
    """A process's first load: no set loaded before (``load_rules`` keeps those)."""
    rules_module._LOADED.clear()


def test_load_rules(benchmark: Any) -> None:
    benchmark.pedantic(load_rules, setup=_forget_rule_sets, rounds=5, warmup_rounds=1)
    _per_call(benchmark, "rules_load", 1)


def test_load_rules_again(benchmark: Any) -> None:
    """The same files loaded again: read and compared, not parsed."""
    load_rules()
    benchmark.pedantic(load_rules, rounds=5, iterations=1, warmup_rounds=1)
    _per_call(benchmark, "rules_load_again", 1)


def test_build_engine(benchmark: Any) -> None:
    benchmark.pedantic(
        lambda: build_engine(load_rules()), setup=_forget_rule_sets, rounds=5, warmup_rounds=1
    )
    _per_call(benchmark, "rules_engine", 1)
