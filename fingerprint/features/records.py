"""Small frozen records: what the feature extractors produce and the checks read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fingerprint.session import IPAddress


@dataclass(frozen=True, slots=True)
class GeoInfo:
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


@dataclass(frozen=True, slots=True)
class AsnInfo:
    number: int
    organization: str | None
    network: str | None


@dataclass(frozen=True, slots=True)
class AnonymousIpFlags:
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


@dataclass(frozen=True, slots=True)
class DeviceFeatures:
    device_id: str | None
    platform: str | None  # the SDK's platform when given, else the UA's
    ua_platform: str | None
    os_version: str | None
    browser: str | None
    brand: str | None  # canonical lowercase brand ("xiaomi" for Redmi and POCO)
    brand_raw: str | None
    sdk_brand: str | None  # canonical brand of the SDK's brand/manufacturer field only
    model: str | None
    mainstream_brand: bool | None  # None when the brand is unknown
    device_class: str | None  # mobile, tablet, pc, bot
    ua: UserAgentInfo | None


@dataclass(frozen=True, slots=True)
class NetworkFeatures:
    ip: IPAddress
    ip_version: int
    ip_class: str  # public, private, loopback, link_local, cgnat, multicast, reserved, bogon
    asn: AsnInfo | None
    anonymous: AnonymousIpFlags | None  # None when no Anonymous-IP database is configured


@dataclass(frozen=True, slots=True)
class Features:
    device: DeviceFeatures
    network: NetworkFeatures
    geo: GeoInfo | None

    def summary(self) -> dict[str, Any]:
        """The ``features`` block of a report: flat, JSON-ready, stable names."""
        geo, network, device = self.geo, self.network, self.device
        anonymous = network.anonymous
        return {
            "ip_version": network.ip_version,
            "ip_class": network.ip_class,
            "ip_country": geo.country if geo else None,
            "ip_province": geo.province if geo else None,
            "ip_province_zh": geo.province_name_zh if geo else None,
            "ip_city": geo.city if geo else None,
            "ip_accuracy_km": geo.accuracy_radius_km if geo else None,
            "asn": network.asn.number if network.asn else None,
            "asn_org": network.asn.organization if network.asn else None,
            "anonymous_ip": anonymous.any if anonymous else None,
            "device_id": device.device_id,
            "platform": device.platform,
            "brand": device.brand,
            "mainstream_brand": device.mainstream_brand,
            "model": device.model,
            "device_class": device.device_class,
        }
