"""MaxMind-format databases (City, ASN, Anonymous-IP) behind small cached lookups.

The raw tree search is maxminddb's (the reader geoip2 itself wraps). ASN and
Anonymous-IP records are built through geoip2's models, so their schema handling is
geoip2's; City records, read for one login in ten by a service (a new network), are
read straight from the decoded dict for the few fields we keep: building geoip2's
``City`` model costs ~20 µs, the dict reads ~3 µs (a test compares both on the
bundled database). Decoding a City record with every locale costs ~12 µs more, so
results are cached per database *network*: every address of a network shares one
record, and the next address of a known network costs a few dictionary probes
instead of a decode.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from sys import intern
from typing import Any, Generic, TypeVar

import geoip2.models
import maxminddb

from fingerprint.errors import ConfigError
from fingerprint.model import CN_PROVINCES_ZH, AnonymousIpFlags, AsnInfo, GeoInfo, network_text
from fingerprint.session import IPAddress

T = TypeVar("T")

_MISSING = object()


class NetworkCache(Generic[T]):
    """Maps an address to the value cached for the database network containing it.

    Networks in a MaxMind tree are disjoint, so probing each prefix length seen so
    far finds at most one entry. Bounded: cleared whole when full, which keeps the
    hot path free of bookkeeping; a refill costs one decode per network. Not a
    :class:`~fingerprint.memo.BoundedMemo`: a memo answers the one key it was given,
    where an address here is found under its network, one table per prefix length.

    Readers take one reference, the IP version's probe list: (shift, table) pairs,
    the fullest table first, rebuilt as a new tuple when a prefix length is first
    seen or a table outgrows the one before it, so a probe is one shift and one dict
    lookup (~20 prefix lengths occur; ~3 probed a hit).
    """

    def __init__(self, max_entries: int = 32_768) -> None:
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._tables: dict[tuple[int, int], dict[int, T | None]] = {}
        self._probes: dict[int, tuple[tuple[int, dict[int, T | None]], ...]] = {4: (), 6: ()}
        self._size = 0

    def get(self, address: IPAddress) -> T | object | None:
        """The cached value (possibly None for "not found"), or ``_MISSING``."""
        number = int(address)
        for shift, table in self._probes[address.version]:
            value = table.get(number >> shift, _MISSING)
            if value is not _MISSING:
                return value
        return _MISSING

    def put(self, address: IPAddress, prefix_len: int, value: T | None) -> None:
        version, bits = address.version, address.max_prefixlen
        with self._lock:
            if self._size >= self._max_entries:
                self._reset()
            table = self._tables.get((version, prefix_len))
            probes = self._probes[version]
            first_of_its_length = table is None
            if table is None:
                table = self._tables[(version, prefix_len)] = {}
                probes = (*probes, (bits - prefix_len, table))
            table[int(address) >> (bits - prefix_len)] = value
            self._size += 1
            # The fullest tables first: the networks are disjoint, so the order changes
            # no answer, only how many tables a hit probes (10.5 on average longest
            # prefix first, ~3 fullest first, in the latency benchmark). Sorted again
            # only when this table has outgrown the one before it.
            at = next(i for i, (_, probed) in enumerate(probes) if probed is table)
            if first_of_its_length or (at and len(probes[at - 1][1]) < len(table)):
                # A fresh tuple: readers never see it half-built.
                self._probes = {
                    **self._probes,
                    version: tuple(sorted(probes, key=_fullest_first)),
                }

    def __len__(self) -> int:
        return self._size


def _fullest_first(probe: tuple[int, dict[int, Any]]) -> int:
    return -len(probe[1])


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    path: str
    database_type: str
    build_epoch: int


class MaxMindLookup(Generic[T]):
    """One open database plus its network cache; ``lookup`` returns None when not found."""

    def __init__(
        self,
        path: str | Path,
        expected_type: str,
        build: Callable[[IPAddress, int, dict[str, Any]], T | None],
        cache_size: int = 200_000,
    ) -> None:
        self.path = str(path)
        try:
            self._reader = maxminddb.open_database(self.path)
        except FileNotFoundError:
            raise ConfigError("database file not found", self.path) from None
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise ConfigError(f"cannot open MaxMind database ({exc})", self.path) from None
        metadata = self._reader.metadata()
        # "Anonymous-IP|Anonymous-Plus": any of the alternatives names the type.
        if not any(kind in metadata.database_type for kind in expected_type.split("|")):
            self._reader.close()
            wanted = " or ".join(expected_type.split("|"))
            raise ConfigError(
                f"expected a {wanted} database, found {metadata.database_type!r}",
                self.path,
            )
        self.info = DatabaseInfo(self.path, metadata.database_type, metadata.build_epoch)
        self._build = build
        self._cache: NetworkCache[T] = NetworkCache(cache_size)

    def lookup(self, address: IPAddress) -> T | None:
        cached = self._cache.get(address)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        try:
            record, prefix_len = self._reader.get_with_prefix_len(address)
        except (ValueError, maxminddb.InvalidDatabaseError):
            # An IPv6 address in an IPv4-only database, or a corrupt node: not found.
            return None
        value = self._build(address, prefix_len, record) if isinstance(record, dict) else None
        self._cache.put(address, prefix_len, value)
        return value

    def close(self) -> None:
        self._reader.close()


def _shared(text: str | None) -> str | None:
    return None if text is None else intern(text)  # database vocabulary: bounded


def _names(names: dict[str, str]) -> tuple[str | None, str | None]:
    return names.get("en"), names.get("zh-CN")


def build_geo(address: IPAddress, prefix_len: int, record: dict[str, Any]) -> GeoInfo | None:
    """The fields of a City record we keep, read from the record as geoip2's ``City``
    model reads them (a missing block reads as empty)."""
    country = _block(record, "country").get("iso_code")
    if country is None:
        return None
    subdivisions = record.get("subdivisions")
    subdivision = subdivisions[0] if isinstance(subdivisions, list) and subdivisions else None
    province = province_zh = province_en = None
    if isinstance(subdivision, dict) and subdivision.get("iso_code"):
        province = f"{country}-{subdivision['iso_code']}"
        province_en, province_zh = _names(_block(subdivision, "names"))
        province_zh = CN_PROVINCES_ZH.get(province, province_zh)
    location = _block(record, "location")
    city_en, city_zh = _names(_block(_block(record, "city"), "names"))
    # Names repeat across thousands of cached networks: one shared copy of each.
    return GeoInfo(
        country=intern(country),
        province=_shared(province),
        province_name=_shared(province_en),
        province_name_zh=_shared(province_zh),
        city=_shared(city_en),
        city_zh=_shared(city_zh),
        latitude=location.get("latitude"),
        longitude=location.get("longitude"),
        accuracy_radius_km=location.get("accuracy_radius"),
        time_zone=_shared(location.get("time_zone")),
        network=network_text(address, prefix_len),
    )


def _block(record: dict[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def build_asn(address: IPAddress, prefix_len: int, record: dict[str, Any]) -> AsnInfo | None:
    asn = geoip2.models.ASN(address, prefix_len=prefix_len, **record)
    if asn.autonomous_system_number is None:
        return None
    return AsnInfo(
        number=asn.autonomous_system_number,
        organization=asn.autonomous_system_organization,
        network=str(asn.network) if asn.network else None,
    )


def build_anonymous(
    address: IPAddress, prefix_len: int, record: dict[str, Any]
) -> AnonymousIpFlags | None:
    # geoip2's Anonymous Plus model reads both schemas: a classic Anonymous-IP record
    # has only the booleans, and its confidence and provider read as None. The date is
    # kept as the database's text, when it is one: geoip2 5.3 parses it with
    # date.fromisoformat (a bad value would raise) and leaves the attribute unset when
    # the record has none.
    seen = record.get("network_last_seen")
    fields = {key: value for key, value in record.items() if key != "network_last_seen"}
    flags = geoip2.models.AnonymousPlus(address, prefix_len=prefix_len, **fields)
    confidence = flags.anonymizer_confidence
    provider = flags.provider_name
    return AnonymousIpFlags(
        anonymous=flags.is_anonymous,
        vpn=flags.is_anonymous_vpn,
        hosting=flags.is_hosting_provider,
        public_proxy=flags.is_public_proxy,
        residential_proxy=flags.is_residential_proxy,
        tor_exit=flags.is_tor_exit_node,
        confidence=confidence if isinstance(confidence, int) else None,
        provider=_shared(provider) if isinstance(provider, str) else None,
        last_seen=seen if isinstance(seen, str) and _ISO_DATE.fullmatch(seen) else None,
    )


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def open_city(path: str | Path) -> MaxMindLookup[GeoInfo]:
    return MaxMindLookup(path, "City", build_geo)


def open_asn(path: str | Path) -> MaxMindLookup[AsnInfo]:
    return MaxMindLookup(path, "ASN", build_asn)


def open_anonymous_ip(path: str | Path) -> MaxMindLookup[AnonymousIpFlags]:
    """The classic GeoIP2 Anonymous IP database or GeoIP Anonymous Plus (which adds
    ``anonymizer_confidence``, ``provider_name`` and ``network_last_seen``)."""
    return MaxMindLookup(path, "Anonymous-IP|Anonymous-Plus", build_anonymous)


def bundled_city_path() -> str:
    """Path of the GeoLite2-City database that ``maxminddb-geolite2`` ships (2018 data)."""
    try:
        from _maxminddb_geolite2 import geolite2_database
    except ImportError:  # pragma: no cover - a declared dependency
        raise ConfigError("the bundled database package maxminddb-geolite2 is missing") from None
    return str(geolite2_database())


__all__ = [
    "DatabaseInfo",
    "MaxMindLookup",
    "NetworkCache",
    "bundled_city_path",
    "open_anonymous_ip",
    "open_asn",
    "open_city",
]
