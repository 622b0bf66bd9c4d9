"""Turn a session into device, network and geo features (small frozen records)."""

from __future__ import annotations

from dataclasses import dataclass

from fingerprint.features.device import BrandNormalizer, extract_device
from fingerprint.features.network import classify_ip
from fingerprint.features.records import (
    AnonymousIpFlags,
    AsnInfo,
    DeviceFeatures,
    Features,
    GeoInfo,
    NetworkFeatures,
    UserAgentInfo,
)
from fingerprint.session import IPAddress, Session
from fingerprint.sources.maxmind import MaxMindLookup
from fingerprint.sources.useragent import UserAgentResolver


@dataclass(frozen=True, slots=True)
class FeatureExtractor:
    """Holds the lookups; each is cached on its own, so extraction is cheap when warm."""

    resolve_ua: UserAgentResolver
    brands: BrandNormalizer
    city: MaxMindLookup[GeoInfo] | None
    asn: MaxMindLookup[AsnInfo] | None = None
    anonymous_ip: MaxMindLookup[AnonymousIpFlags] | None = None

    def extract(self, session: Session, device: DeviceFeatures | None = None) -> Features:
        """Features of one session; ``device`` reuses device features already known."""
        address = session.ip
        ip_class = classify_ip(address)
        routable = ip_class == "public"
        network = NetworkFeatures(
            ip=address,
            ip_version=address.version,
            ip_class=ip_class,
            asn=self.asn.lookup(address) if self.asn and routable else None,
            anonymous=self._anonymous(address, routable),
        )
        geo = self.city.lookup(address) if self.city and routable else None
        return Features(
            device=device or extract_device(session, self.resolve_ua, self.brands),
            network=network,
            geo=geo,
        )

    def _anonymous(self, address: IPAddress, routable: bool) -> AnonymousIpFlags | None:
        if self.anonymous_ip is None:
            return None
        if not routable:
            return _NOT_ANONYMOUS
        found = self.anonymous_ip.lookup(address)
        return found if found is not None else _NOT_ANONYMOUS


# With a database configured, "not listed" is a real answer: not anonymous.
_NOT_ANONYMOUS = AnonymousIpFlags(False, False, False, False, False, False)

__all__ = [
    "AnonymousIpFlags",
    "AsnInfo",
    "DeviceFeatures",
    "FeatureExtractor",
    "Features",
    "GeoInfo",
    "NetworkFeatures",
    "UserAgentInfo",
]
