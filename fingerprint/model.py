"""Records and reference data shared by the sources and the feature extractors.

The sources (MaxMind databases, the User-Agent parser) produce these records and the
feature extractors (``fingerprint.features``) combine them; both import them from here,
so neither package imports the other's internals. This module imports neither
``fingerprint.sources`` nor ``fingerprint.features`` (tests/test_import_layers.py).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from socket import inet_ntoa

import msgspec

from fingerprint.session import IPAddress


class GeoInfo(msgspec.Struct, frozen=True, array_like=True):
    """Where a City database places an IP. ``province`` is None at country level."""

    country: str
    province: str | None  # ISO 3166-2, e.g. "CN-GD"
    province_name: str | None
    province_name_zh: str | None
    city: str | None
    city_zh: str | None
    latitude: float | None
    longitude: float | None
    accuracy_radius_km: int | None
    time_zone: str | None
    network: str | None


class AsnInfo(msgspec.Struct, frozen=True, array_like=True):
    number: int
    organization: str | None
    network: str | None


class AnonymousIpFlags(msgspec.Struct, frozen=True, array_like=True):
    anonymous: bool
    vpn: bool
    hosting: bool
    public_proxy: bool
    residential_proxy: bool
    tor_exit: bool
    # GeoIP Anonymous Plus only (None from the classic Anonymous-IP database):
    # MaxMind's percent confidence (1-99) that the network is an actively used VPN,
    # the provider's name, and the last day MaxMind saw the network anonymising.
    confidence: int | None = None
    provider: str | None = None
    last_seen: str | None = None  # ISO date, YYYY-MM-DD

    @property
    def any(self) -> bool:
        return (
            self.anonymous
            or self.vpn
            or self.hosting
            or self.public_proxy
            or self.residential_proxy
            or self.tor_exit
        )


@dataclass(frozen=True, slots=True)
class UserAgentInfo:
    """What the User-Agent says, parsed once per distinct string."""

    platform: str | None  # android, ios, harmonyos, windows, macos, linux, or None
    os_family: str | None
    os_version: str | None
    browser: str | None
    browser_version: str | None
    device_brand: str | None
    device_model: str | None
    is_mobile: bool
    is_tablet: bool
    is_pc: bool
    is_bot: bool


def network_text(address: IPAddress, prefix_len: int) -> str:
    """``str(ip_network((address, prefix_len), strict=False))``: IPv4 by arithmetic,
    ~10x cheaper than building the network object (one login in seven brings a new
    address in the latency benchmark)."""
    if address.version == 4:
        host_bits = 32 - prefix_len
        first = int(address) >> host_bits << host_bits
        return f"{inet_ntoa(first.to_bytes(4, 'big'))}/{prefix_len}"
    return str(ipaddress.ip_network((address, prefix_len), strict=False))


# The 31 provincial divisions of mainland China, with their official Chinese names.
#
# The GeoLite2 data spells them inconsistently ("广东" next to "江苏省"); reports
# should name a province one way. Only these 31 are provinces for hopping: Hong
# Kong, Macau and Taiwan have their own ISO country codes (HK, MO, TW), time zones
# and networks, and subdivisions abroad (JP-13, KR-11, SG-01) are no provinces.
CN_PROVINCES_ZH: dict[str, str] = {
    "CN-BJ": "北京市",
    "CN-TJ": "天津市",
    "CN-HE": "河北省",
    "CN-SX": "山西省",
    "CN-NM": "内蒙古自治区",
    "CN-LN": "辽宁省",
    "CN-JL": "吉林省",
    "CN-HL": "黑龙江省",
    "CN-SH": "上海市",
    "CN-JS": "江苏省",
    "CN-ZJ": "浙江省",
    "CN-AH": "安徽省",
    "CN-FJ": "福建省",
    "CN-JX": "江西省",
    "CN-SD": "山东省",
    "CN-HA": "河南省",
    "CN-HB": "湖北省",
    "CN-HN": "湖南省",
    "CN-GD": "广东省",
    "CN-GX": "广西壮族自治区",
    "CN-HI": "海南省",
    "CN-CQ": "重庆市",
    "CN-SC": "四川省",
    "CN-GZ": "贵州省",
    "CN-YN": "云南省",
    "CN-XZ": "西藏自治区",
    "CN-SN": "陕西省",
    "CN-GS": "甘肃省",
    "CN-QH": "青海省",
    "CN-NX": "宁夏回族自治区",
    "CN-XJ": "新疆维吾尔自治区",
}

MAINLAND_PROVINCES: frozenset[str] = frozenset(CN_PROVINCES_ZH)


def is_mainland_province(code: str | None) -> bool:
    """One of the 31 mainland provinces (ISO 3166-2 ``CN-xx``), not HK/MO/TW or abroad."""
    return code in MAINLAND_PROVINCES


__all__ = [
    "CN_PROVINCES_ZH",
    "MAINLAND_PROVINCES",
    "AnonymousIpFlags",
    "AsnInfo",
    "GeoInfo",
    "UserAgentInfo",
    "is_mainland_province",
    "network_text",
]
