"""The enrich stage: the user agent, City/ASN/anonymous-IP lookups (each cached on its
own), whois for IPs no ASN database covers, and the device recognised from its
attributes."""

from __future__ import annotations

from typing import Any

import msgspec

from fingerprint.features import DeviceFeatures, FeatureExtractor, Features
from fingerprint.features.device import BrandNormalizer
from fingerprint.features.identity import (
    DeviceIdentity,
    IdentityHasher,
    for_device_id,
    identity_of,
)
from fingerprint.session import Session


class Enriched(msgspec.Struct, frozen=True, kw_only=True):
    """What the lookups add to a session. (The stages' hand-offs are frozen msgspec
    structs: ~0.1 µs to build, where a frozen dataclass takes ~1 µs.)"""

    features: Features
    whois: Any  # a WhoisRecord, or None
    whois_pending: str | None  # why there is no whois record yet, when one was asked
    identity: DeviceIdentity


class Enricher:
    """Holds the lookups; thread-safe (each lookup's cache is)."""

    def __init__(
        self,
        extractor: FeatureExtractor,
        *,
        whois: Any,
        whois_wait: float,
        hasher: IdentityHasher,
    ) -> None:
        self.extractor = extractor
        self.whois = whois
        self._whois_wait = whois_wait
        self._hasher = hasher

    def enrich(
        self,
        session: Session,
        *,
        brands: BrandNormalizer,
        device: DeviceFeatures | None,
        identity: DeviceIdentity | None = None,
        login_identity: DeviceIdentity | None = None,
    ) -> Enriched:
        """``device``: device features the verdict already knows (None: extract them);
        ``identity``: the identity it knows for the device's content, without the
        device id (None: recognise the device from its attributes);
        ``login_identity``: this login's identity, already found (used as it is)."""
        features = self._extract(session, brands, device)
        whois, pending = self._whois_lookup(features)
        if login_identity is None:
            login_identity = self.login_identity(session, identity)
        return Enriched(
            features=features, whois=whois, whois_pending=pending, identity=login_identity
        )

    def login_identity(self, session: Session, content: DeviceIdentity | None) -> DeviceIdentity:
        """The login's device identity: from ``content``, the identity of the device's
        content the verdict keeps (one digest for the device id), else recognised
        from the device's attributes."""
        if content is None:
            return identity_of(session.device, self._hasher)
        device_id = session.device.device_id if session.device is not None else None
        return for_device_id(content, device_id, self._hasher)

    def _extract(
        self, session: Session, brands: BrandNormalizer, device: DeviceFeatures | None
    ) -> Features:
        extractor = self.extractor
        if extractor.brands is not brands:
            # Rules were reloaded: brand tables are rule data, lookups are not.
            extractor = FeatureExtractor(
                extractor.resolve_ua,
                brands,
                extractor.city,
                extractor.asn,
                extractor.anonymous_ip,
            )
            self.extractor = extractor
        return extractor.extract(session, device)

    def _whois_lookup(self, features: Features) -> tuple[Any, str | None]:
        """The registry record of an IP no ASN database covers: (record, why not)."""
        if self.whois is None or features.network.asn is not None:
            return None, None
        if features.network.ip_class != "public":
            return None, None
        from fingerprint.sources.whois import WhoisRecord

        found = self.whois.lookup(str(features.network.ip), wait=self._whois_wait)
        if isinstance(found, WhoisRecord):
            return found, None
        if found is None:
            return None, "whois: no registry answer (failed, budget spent or breaker open)"
        return None, "whois: lookup still running"

    def close(self) -> None:
        """Release the whois pool and its cache, and the MaxMind readers."""
        if self.whois is not None:
            self.whois.close()
            self.whois = None
        extractor = self.extractor
        for reader in (extractor.city, extractor.asn, extractor.anonymous_ip):
            if reader is not None:
                reader.close()
