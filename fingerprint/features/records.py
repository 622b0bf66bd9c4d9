"""Small frozen records: what the feature extractors produce and the checks read.

The records the sources produce (geo, ASN, anonymous-IP flags, the parsed User-Agent)
live in :mod:`fingerprint.model`; they are re-exported here for existing imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from fingerprint.model import AnonymousIpFlags, AsnInfo, GeoInfo, UserAgentInfo
from fingerprint.session import IPAddress

# The address as msgspec sees it: anything (it holds an ipaddress object, which a
# two-process run sends as an integer or text and turns back, fingerprint.pipelined);
# msgspec cannot decode a union of two classes of its own. Type checkers see the
# address.
if TYPE_CHECKING:
    _Address = IPAddress
else:
    _Address = Any


class DeviceFeatures(msgspec.Struct, frozen=True, array_like=True):
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


class NetworkFeatures(msgspec.Struct, frozen=True, array_like=True):
    ip: _Address
    ip_version: int
    ip_class: str  # public, private, loopback, link_local, cgnat, multicast, reserved, bogon
    asn: AsnInfo | None
    anonymous: AnonymousIpFlags | None  # None when no Anonymous-IP database is configured


class Features(msgspec.Struct, frozen=True, array_like=True):
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


__all__ = [
    "AnonymousIpFlags",
    "AsnInfo",
    "DeviceFeatures",
    "Features",
    "GeoInfo",
    "NetworkFeatures",
    "UserAgentInfo",
]
