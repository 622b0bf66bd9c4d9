"""Feature extraction against the real bundled GeoLite2-City and the mmdb fixtures."""

from __future__ import annotations

import ipaddress
from itertools import pairwise
from typing import Any

import geoip2.database
import geoip2.models
import maxminddb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingerprint import Checker, CheckerConfig, ConfigError
from fingerprint.features.device import BrandNormalizer
from fingerprint.features.network import classify_by_properties, classify_ip, network_text
from fingerprint.features.provinces import CN_PROVINCES_ZH
from fingerprint.features.records import GeoInfo
from fingerprint.rules import load_rules
from fingerprint.sources.maxmind import (
    NetworkCache,
    build_geo,
    bundled_city_path,
    open_anonymous_ip,
    open_asn,
    open_city,
)
from fingerprint.sources.useragent import cached_resolver, parse_user_agent
from tests.conftest import TEST_ANON_DB, TEST_ASN_DB, make_session


@pytest.fixture(scope="module")
def city():  # type: ignore[no-untyped-def]
    return open_city(bundled_city_path())


@pytest.mark.parametrize(
    ("ip", "province", "zh"),
    [
        ("114.114.114.114", "CN-JS", "江苏省"),
        ("223.5.5.5", "CN-ZJ", "浙江省"),
        ("202.96.128.86", "CN-GD", "广东省"),
        ("202.106.0.20", "CN-BJ", "北京市"),
    ],
)
def test_bundled_city_places_chinese_ips_in_provinces(city, ip, province, zh) -> None:  # type: ignore[no-untyped-def]
    geo = city.lookup(ipaddress.ip_address(ip))
    assert geo is not None
    assert geo.country == "CN"
    assert geo.province == province
    assert geo.province_name_zh == zh
    assert geo.latitude is not None and geo.accuracy_radius_km is not None


def test_foreign_ip_has_no_guessed_province(city) -> None:  # type: ignore[no-untyped-def]
    geo = city.lookup(ipaddress.ip_address("8.8.8.8"))
    assert geo is not None
    assert geo.country == "US"
    assert geo.province is None


def test_country_level_chinese_ipv6_has_no_province(city) -> None:  # type: ignore[no-untyped-def]
    geo = city.lookup(ipaddress.ip_address("240e:3b0::1"))
    assert geo is not None and geo.country == "CN"
    assert geo.province is None


def test_not_found_is_none(city) -> None:  # type: ignore[no-untyped-def]
    assert city.lookup(ipaddress.ip_address("10.1.2.3")) is None


def test_lookups_agree_with_geoip2_reader(city) -> None:  # type: ignore[no-untyped-def]
    reader = geoip2.database.Reader(bundled_city_path())
    for ip in [
        "114.114.114.114",
        "114.114.115.115",
        "223.5.5.5",
        "1.2.4.8",
        "36.110.1.1",
        "183.232.231.172",
    ]:
        ours = city.lookup(ipaddress.ip_address(ip))
        theirs = reader.city(ip)
        assert ours is not None
        assert ours.country == theirs.country.iso_code
        code = theirs.subdivisions.most_specific.iso_code
        assert ours.province == (f"CN-{code}" if code else None)
        assert ours.latitude == theirs.location.latitude
        assert ours.network == str(theirs.traits.network)


def test_network_cache_shares_one_record_per_network(city) -> None:  # type: ignore[no-untyped-def]
    first = city.lookup(ipaddress.ip_address("114.114.114.114"))
    second = city.lookup(ipaddress.ip_address("114.114.115.115"))
    assert first is second  # same /16 in the database: the cached object is reused
    other = city.lookup(ipaddress.ip_address("223.5.5.5"))
    assert other is not first


def test_network_cache_is_bounded() -> None:
    cache: NetworkCache[str] = NetworkCache(max_entries=2)
    for n in range(5):
        cache.put(ipaddress.ip_address(f"10.0.{n}.1"), 24, f"net{n}")
    assert len(cache) <= 2
    assert cache.get(ipaddress.ip_address("10.0.4.200")) == "net4"


def test_asn_and_anonymous_fixtures_read_through_geoip2() -> None:
    with geoip2.database.Reader(str(TEST_ASN_DB)) as reader:
        assert reader.asn("47.96.1.1").autonomous_system_number == 37963
    with geoip2.database.Reader(str(TEST_ANON_DB)) as reader:
        assert reader.anonymous_ip("1.0.3.9").is_tor_exit_node
    asn = open_asn(TEST_ASN_DB).lookup(ipaddress.ip_address("47.96.1.1"))
    assert asn is not None and asn.number == 37963 and asn.network == "47.96.0.0/16"
    assert open_asn(TEST_ASN_DB).lookup(ipaddress.ip_address("8.8.8.8")) is None
    flags = open_anonymous_ip(TEST_ANON_DB).lookup(ipaddress.ip_address("1.0.1.7"))
    assert flags is not None and flags.public_proxy and not flags.vpn


def test_unopenable_database_names_the_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "nope.mmdb"
    with pytest.raises(ConfigError) as caught:
        Checker(CheckerConfig(city_db=missing))
    assert str(missing) in str(caught.value)
    junk = tmp_path / "junk.mmdb"
    junk.write_bytes(b"not a database")
    with pytest.raises(ConfigError, match=r"junk\.mmdb"):
        Checker(CheckerConfig(asn_db=junk))


def test_wrong_database_type_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"expected a ASN database"):
        Checker(CheckerConfig(asn_db=TEST_ANON_DB))


@pytest.mark.parametrize(
    ("ip", "kind"),
    [
        ("8.8.8.8", "public"),
        ("10.0.0.1", "private"),
        ("192.168.1.1", "private"),
        ("127.0.0.1", "loopback"),
        ("100.64.1.1", "cgnat"),
        ("169.254.1.1", "link_local"),
        ("224.0.0.1", "multicast"),
        ("192.0.2.1", "bogon"),
        ("240.0.0.1", "bogon"),
        ("2001:db8::1", "bogon"),
        ("fd00::1", "private"),
        ("2409:8a00::1", "public"),
    ],
)
def test_ip_classes(ip: str, kind: str) -> None:
    assert classify_ip(ipaddress.ip_address(ip)) == kind


def test_private_ip_gets_no_geo(checker) -> None:  # type: ignore[no-untyped-def]
    report = checker.check(make_session(ip="192.168.1.9", session_id="priv"))
    assert report.features["ip_class"] == "private"
    assert report.features["ip_country"] is None


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("HUAWEI", "huawei"),
        ("Huawei", "huawei"),
        ("huawei", "huawei"),
        ("华为", "huawei"),
        ("Redmi", "xiaomi"),
        ("POCO", "xiaomi"),
        ("Xiaomi", "xiaomi"),
        ("OPPO", "oppo"),
        ("Kirin-Fake", "kirin-fake"),
    ],
)
def test_brand_normalisation(raw: str, canonical: str) -> None:
    brands = BrandNormalizer(load_rules().devices)
    assert brands.brand(raw) == canonical


def test_brand_from_model_code_when_no_brand_field() -> None:
    brands = BrandNormalizer(load_rules().devices)
    assert brands.brand_from_model("ALN-AL00") == "huawei"
    assert brands.brand_from_model("V2218A") == "vivo"


def test_device_features_merge_ua_and_sdk(checker) -> None:  # type: ignore[no-untyped-def]
    report = checker.check(make_session(session_id="merge"))
    assert report.features["brand"] == "vivo"
    assert report.features["platform"] == "android"
    assert report.features["mainstream_brand"] is True
    # SDK wins where both speak; the UA alone fills in when there is no SDK block.
    ua_only = make_session(session_id="ua-only", device=None)
    ua_only["user_agent"] = ua_only["user_agent"].replace("V2218A", "ALN-AL00")
    report = checker.check(ua_only)
    assert report.features["model"] == "ALN-AL00"
    assert report.features["brand"] == "huawei"


def test_user_agent_parsing_is_cached() -> None:
    calls: list[str] = []

    def counting(text: str):  # type: ignore[no-untyped-def]
        calls.append(text)
        return parse_user_agent(text)

    resolve = cached_resolver(counting, maxsize=16)
    ua = make_session()["user_agent"]
    first = resolve(ua)
    assert resolve(ua) is first
    assert calls == [ua]
    assert first.platform == "android" and first.is_mobile


@pytest.mark.parametrize(
    ("ua", "platform"),
    [
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.43",
            "ios",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0 Safari/537.36",
            "windows",
        ),
        (
            "Mozilla/5.0 (Linux; Android 12; HarmonyOS; ALN-AL00) AppleWebKit/537.36 Chrome/99",
            "harmonyos",
        ),
    ],
)
def test_ua_platforms(ua: str, platform: str) -> None:
    assert parse_user_agent(ua).platform == platform


def _geo_through_geoip2_model(address: Any, prefix_len: int, record: dict[str, Any]) -> Any:
    """What build_geo returned when it built geoip2's City model (the reference)."""
    city = geoip2.models.City(["en"], ip_address=address, prefix_len=prefix_len, **record)
    country = city.country.iso_code
    if country is None:
        return None
    subdivision = city.subdivisions[0] if city.subdivisions else None
    province = province_zh = province_en = None
    if subdivision is not None and subdivision.iso_code:
        province = f"{country}-{subdivision.iso_code}"
        province_en, province_zh = subdivision.names.get("en"), subdivision.names.get("zh-CN")
        province_zh = CN_PROVINCES_ZH.get(province, province_zh)
    return GeoInfo(
        country=country,
        province=province,
        province_name=province_en,
        province_name_zh=province_zh,
        city=city.city.names.get("en"),
        city_zh=city.city.names.get("zh-CN"),
        latitude=city.location.latitude,
        longitude=city.location.longitude,
        accuracy_radius_km=city.location.accuracy_radius,
        time_zone=city.location.time_zone,
        network=str(city.traits.network) if city.traits.network else None,
    )


_BUNDLED = maxminddb.open_database(bundled_city_path())
# Mostly mainland China (the product's users), then anywhere, then IPv6.
_ADDRESSES = (
    st.sampled_from([0x01000000, 0x24000000, 0x3A000000, 0x70000000, 0x7D000000, 0xDA000000])
    .flatmap(lambda base: st.integers(base, base + 0xFFFFFF))
    .map(ipaddress.IPv4Address)
    | st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
    | st.integers(0x2400_0000 << 96, (0x2400_FFFF << 96) + 2**96 - 1).map(ipaddress.IPv6Address)
)


@settings(max_examples=500, deadline=None)  # the first reads page the database in
@given(_ADDRESSES)
def test_city_records_read_as_geoip2_models_read_them(address: Any) -> None:
    record, prefix_len = _BUNDLED.get_with_prefix_len(address)
    if not isinstance(record, dict):
        return
    expected = _geo_through_geoip2_model(address, prefix_len, record)
    assert build_geo(address, prefix_len, record) == expected


@pytest.mark.parametrize(
    "record",
    [
        {"country": {"iso_code": "CN"}},  # no location, city or subdivisions
        {"country": {"iso_code": "CN"}, "subdivisions": [{"names": {"en": "X"}}]},
        {"country": {"iso_code": "CN"}, "subdivisions": [{"iso_code": "GD"}], "city": {}},
        {"country": {}, "location": {"latitude": 1.0}},
        {},
    ],
)
def test_sparse_city_records_read_as_geoip2_models_read_them(record: dict[str, Any]) -> None:
    address = ipaddress.IPv4Address("203.0.113.7")
    assert build_geo(address, 24, record) == _geo_through_geoip2_model(address, 24, record)


@given(
    st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
    | st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
    st.integers(0, 128),
)
def test_network_text_is_the_network_the_stdlib_builds(address: Any, prefix_len: int) -> None:
    prefix_len = min(prefix_len, address.max_prefixlen)
    expected = str(ipaddress.ip_network((address, prefix_len), strict=False))
    assert network_text(address, prefix_len) == expected


_V4_NETWORKS = st.builds(
    lambda number, length: ipaddress.ip_network((number >> (32 - length) << (32 - length), length)),
    st.integers(0, 2**32 - 1),
    st.integers(8, 32),
)
_V6_NETWORKS = st.builds(
    lambda number, length: ipaddress.ip_network(
        (number >> (128 - length) << (128 - length), length)
    ),
    st.integers(0, 2**128 - 1),
    st.integers(16, 128),
)


@given(
    st.lists(_V4_NETWORKS | _V6_NETWORKS, max_size=12),
    st.lists(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address), max_size=8),
    st.integers(1, 16),
)
def test_network_cache_finds_what_a_scan_of_disjoint_networks_finds(
    networks: list[Any], probes: list[Any], capacity: int
) -> None:
    """A MaxMind tree's networks are disjoint: keep the first of overlapping ones."""
    disjoint: list[Any] = []
    for network in networks:
        if not any(network.version == kept.version and network.overlaps(kept) for kept in disjoint):
            disjoint.append(network)
    cache: NetworkCache[str] = NetworkCache(max_entries=capacity)
    stored: dict[Any, str] = {}
    for number, network in enumerate(disjoint):
        if len(stored) >= capacity:
            stored.clear()  # the cache starts over when full
        cache.put(network.network_address, network.prefixlen, f"net{number}")
        stored[network] = f"net{number}"
    addresses = probes + [n.network_address for n in disjoint] + [n[-1] for n in disjoint]
    for address in addresses:
        found = [v for n, v in stored.items() if n.version == address.version and address in n]
        expected = found[0] if found else None
        got = cache.get(address)
        assert (got if isinstance(got, str) else None) == expected  # else: _MISSING
    assert len(cache) == len(stored)
    for version in (4, 6):  # probed fullest first: the order only saves probes
        sizes = [len(table) for _, table in cache._probes[version]]
        assert sizes == sorted(sizes, reverse=True)


# --- classify_ip: a range table, against the definition ------------------------------


def _special_networks(version: int) -> list[Any]:
    constants = vars(ipaddress)[f"_IPv{version}Constants"]
    found = []
    for value in vars(constants).values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, ipaddress.IPv4Address | ipaddress.IPv6Address):
                item = ipaddress.ip_network(item)
            if isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network):
                found.append(item)
    extra = ["100.64.0.0/10", "0.0.0.0/8", "192.0.0.0/24", "198.18.0.0/15", "240.0.0.0/4"]
    extra += ["::/128", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "2002::/16", "100::/64"]
    return found + [n for n in map(ipaddress.ip_network, extra) if n.version == version]


def _near_special(version: int) -> list[Any]:
    """Addresses at, just inside and just outside the edges of every special network:
    every one (a few hundred), not a sample."""
    top = (1 << (32 if version == 4 else 128)) - 1
    numbers = {
        min(max(base + delta, 0), top)
        for net in _special_networks(version)
        for base in (int(net.network_address), int(net.broadcast_address))
        for delta in range(-2, 3)
    }
    kind = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return [kind(number) for number in sorted(numbers)]


_ANY_IP = st.one_of(
    st.ip_addresses(v=4),
    st.ip_addresses(v=6),
    # IPv4-mapped IPv6: ipaddress answers some properties from the IPv4 address.
    st.ip_addresses(v=4).map(lambda a: ipaddress.IPv6Address(f"::ffff:{a}")),
)


# Was 3,000 when 2 in 5 draws sampled the special networks' edges, now all checked below.
@settings(max_examples=1_000)
@given(_ANY_IP)
def test_classify_ip_answers_as_the_properties_do(address: Any) -> None:
    """Anywhere in either space. Where the IPv4 table can be wrong, at an edge, every
    address is checked by the two tests below (and the special networks' edges in IPv6
    and IPv4-mapped IPv6 too)."""
    assert classify_ip(address) == classify_by_properties(address)
    assert classify_ip(address) == classify_by_properties(address)  # memoised IPv6 too


def test_classify_ip_near_every_special_network_edge() -> None:
    v4 = _near_special(4)
    mapped = [ipaddress.IPv6Address(f"::ffff:{a}") for a in v4]
    for address in [*v4, *_near_special(6), *mapped]:
        assert classify_ip(address) == classify_by_properties(address), address
        assert classify_ip(address) == classify_by_properties(address), address  # memoised


def test_classify_ip_at_every_table_edge() -> None:
    """Each piece of the IPv4 table, at its first and last address."""
    from fingerprint.features import network

    starts = [*network._V4_STARTS, 1 << 32]
    for first, following in pairwise(starts):
        for number in (first, following - 1):
            address = ipaddress.IPv4Address(number)
            assert classify_ip(address) == classify_by_properties(address)
