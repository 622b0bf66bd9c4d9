"""``vpn_proxy``: the connection goes through a VPN, proxy, Tor or a hosting network.

The device's own view (the OS VPN flag, tunnel interfaces, a system proxy) and the
server's view (anonymous-IP database flags, hosting ASNs) are independent signals.
The time-zone test compares what the device says of itself with where the IP is:
a phone's time zone follows a trip, a SIM's country does not, so a traveller abroad
(time zone abroad) and a foreign SIM on Chinese Wi-Fi (IP in China) both pass.

A privacy relay built into the OS (iCloud Private Relay, ``relays`` in
rules/network.yaml) is no consumer VPN: its egress is reported as the weak
``VPN_PRIVATE_RELAY`` instead of what the IP databases say of the address (they
may flag it anonymous or hosting). Where the database gives its confidence (GeoIP
Anonymous Plus ``anonymizer_confidence``), a VPN or hosting flag below
``min_anonymizer_confidence`` is reported at ``medium``: the database itself is
unsure the network is an active VPN today.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fingerprint.checks.base import Check, CheckContext, Hit, NotEvaluated, Outcome
from fingerprint.features.records import AnonymousIpFlags
from fingerprint.memo import BoundedMemo
from fingerprint.rules import (
    HomeCountry,
    NetworkFile,
    RelayService,
    RulePattern,
    RuleSet,
    Threshold,
    compile_rule_regex,
)
from fingerprint.session import Device, IPAddress

_UTUN = re.compile(r"^utun(\d+)$")

# What one interface name is, as bit flags: names repeat across millions of logins
# (lo, wlan0, rmnet_data0, utun0...), so each is classified once and cached.
_TUNNEL, _EXTRA_UTUN = 1, 2
# Names are client-supplied: past this many the cache starts over instead of growing,
# and a name longer than any real one is classified but not kept.
INTERFACE_CACHE_SIZE = 1_024
_MAX_CACHED_NAME = 64
# A phone sends the same interface list login after login (6-7 names here): the list's
# tunnels and extra utuns are kept per list too, up to this many names a list.
_MAX_CACHED_LIST = 32

# Anonymous-IP database flag -> reason code, strongest first.
_ANONYMOUS_FLAGS = (
    ("tor_exit", "VPN_TOR_EXIT"),
    ("vpn", "VPN_ANONYMOUS_VPN"),
    ("public_proxy", "VPN_PUBLIC_PROXY"),
    ("residential_proxy", "VPN_RESIDENTIAL_PROXY"),
    ("hosting", "VPN_HOSTING_IP"),
)
# Flags Anonymous Plus's confidence speaks to: "percent confidence that the network is
# currently part of an actively used VPN service" (MaxMind). Tor, proxy lists are
# other evidence and keep their severity.
_CONFIDENCE_FLAGS = frozenset({"vpn", "hosting"})


@dataclass(frozen=True)
class VpnProxyCheck(Check):
    name: ClassVar[str] = "vpn_proxy"
    # A confident finding: the IP is an anonymising exit (history keeps it as no
    # location of the user's); a privacy relay's egress is no location, but no VPN.
    marks_anonymous_exit: ClassVar[bool] = True
    relay_codes: ClassVar[frozenset[str]] = frozenset({"VPN_PRIVATE_RELAY"})
    codes: ClassVar[tuple[str, ...]] = (
        "VPN_OS_FLAG",
        "VPN_TUNNEL_INTERFACE",
        "VPN_EXTRA_UTUN",
        "VPN_HTTP_PROXY",
        "VPN_TOR_EXIT",
        "VPN_ANONYMOUS_VPN",
        "VPN_PUBLIC_PROXY",
        "VPN_RESIDENTIAL_PROXY",
        "VPN_HOSTING_IP",
        "VPN_HOSTING_ASN",
        "VPN_HOSTING_WHOIS",
        "VPN_HOSTING_NAME",
        "VPN_TZ_MISMATCH",
        "VPN_PRIVATE_RELAY",
    )
    thresholds: ClassVar[dict[str, Threshold]] = {
        # Anonymous Plus gives 30, 50 or 99 today (MaxMind); 1-99 is its range.
        "min_anonymizer_confidence": Threshold(kind="count", minimum=1, maximum=99),
    }

    min_anonymizer_confidence: int = 50
    strong_interfaces: RulePattern | None = None
    benign_interfaces: RulePattern | None = None
    ios_utun_normal: int = 4
    hosting_asns: dict[int, tuple[str, str]] | None = None
    network_rules: NetworkFile | None = None
    relays: _Relays | None = None
    # interface name -> _TUNNEL | _EXTRA_UTUN bits (fingerprint.memo: thread-safe,
    # cleared when full; names longer than _MAX_CACHED_NAME are classified, not kept).
    _interface_kinds: BoundedMemo[str, int] = field(init=False, repr=False, compare=False)
    # an interface list -> (its tunnels, its extra utuns), in its order (~0.7 µs a login
    # less than classifying the list name by name); lists of kept names only.
    _interface_lists: BoundedMemo[tuple[str, ...], tuple[list[str], list[str]]] = field(
        init=False, repr=False, compare=False
    )
    _home: _FoldedHome | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kinds = BoundedMemo(INTERFACE_CACHE_SIZE, self._interface_kind, keep=_cacheable_name)
        object.__setattr__(self, "_interface_kinds", kinds)
        lists = BoundedMemo(INTERFACE_CACHE_SIZE, self._classified, keep=_cacheable_list)
        object.__setattr__(self, "_interface_lists", lists)
        if self.network_rules is not None:
            object.__setattr__(self, "_home", _FoldedHome.of(self.network_rules.home_country))

    @classmethod
    def compile(cls, rules: RuleSet, config: dict[str, Any]) -> Check:
        tunnels = rules.network.tunnel_interfaces
        return cls(
            **config,
            strong_interfaces=_alternation(tunnels.strong),
            benign_interfaces=_alternation(tunnels.benign_virtual),
            ios_utun_normal=tunnels.ios_utun_normal,
            hosting_asns={a.asn: (a.org, a.kind) for a in rules.network.hosting_asns},
            network_rules=rules.network,
            relays=_Relays.of(rules.network.relays),
        )

    def evaluate(self, ctx: CheckContext) -> Outcome:
        network, features = ctx.session.network, ctx.features
        relay = self._relay(ctx)
        ip_signals = (
            features.network.anonymous is not None
            or features.network.asn is not None
            or ctx.whois is not None
            or relay is not None
        )
        device = ctx.session.device
        tz_signal = device is not None and device.timezone is not None and features.geo is not None
        if network is None and not ip_signals and not tz_signal:
            return NotEvaluated(
                "no network block, no ASN or anonymous-IP data, no device time zone to compare"
            )
        hits = self._device_view(ctx) + self._server_view(ctx, relay)
        # A relay's egress is no location of the user's: Apple places it in the user's
        # region through its own feed, which a City database may lag (the bundled
        # 2018 one predates the relay and puts Akamai's range in the US).
        mismatch = None if relay is not None else self._tz_mismatch(ctx, device)
        if mismatch:
            hits.append(mismatch)
        return hits

    def _device_view(self, ctx: CheckContext) -> list[Hit]:
        network = ctx.session.network
        if network is None:
            return []
        hits = []
        if network.vpn_active:
            hits.append(Hit("VPN_OS_FLAG", {"vpn_active": True}))
        strong: list[str] = []
        extra_utun: list[str] = []
        if network.interfaces:
            # Read only: the lists are the memo's (the evidence below takes slices).
            strong, extra_utun = self._interface_lists[tuple(network.interfaces)]
        if strong:
            hits.append(Hit("VPN_TUNNEL_INTERFACE", {"interfaces": strong[:10]}))
        if extra_utun and not strong and not network.vpn_active:
            hits.append(
                Hit(
                    "VPN_EXTRA_UTUN",
                    {"interfaces": extra_utun[:10], "normal_count": self.ios_utun_normal},
                )
            )
        if network.http_proxy:
            hits.append(Hit("VPN_HTTP_PROXY", {"http_proxy": network.http_proxy[:200]}))
        return hits

    def _classified(self, interfaces: tuple[str, ...]) -> tuple[list[str], list[str]]:
        """An interface list's tunnels and extra utuns, in the list's order."""
        kinds = self._interface_kinds
        strong = [name for name in interfaces if kinds[name] & _TUNNEL]
        extra_utun = [name for name in interfaces if kinds[name] & _EXTRA_UTUN]
        return strong, extra_utun

    def _interface_kind(self, interface: str) -> int:
        """Classify a name the memo has not seen."""
        return (_TUNNEL if self._is_tunnel(interface) else 0) | (
            _EXTRA_UTUN if self._extra_utun(interface) else 0
        )

    def _is_tunnel(self, interface: str) -> bool:
        assert self.strong_interfaces is not None
        if self.benign_interfaces is not None and self.benign_interfaces.search(interface):
            return False
        return self.strong_interfaces.search(interface) is not None

    def _extra_utun(self, interface: str) -> bool:
        found = _UTUN.match(interface)
        return found is not None and int(found[1]) >= self.ios_utun_normal

    def _relay(self, ctx: CheckContext) -> str | None:
        """The relay service whose egress the IP is, or None."""
        relays = self.relays
        if relays is None or ctx.features.network.ip_class != "public":
            return None
        network = ctx.features.network
        anonymous = network.anonymous
        return relays.find(
            network.ip,
            network.asn.number if network.asn else None,
            anonymous.provider if anonymous else None,
        )

    def _server_view(self, ctx: CheckContext, relay: str | None = None) -> list[Hit]:
        anonymous = ctx.features.network.anonymous
        if relay is not None:
            # The relay explains what the databases say of its egress (anonymous,
            # hosting, a CDN's ASN): one weak code instead of the VPN ones.
            return [
                Hit("VPN_PRIVATE_RELAY", {"ip": str(ctx.features.network.ip), "service": relay})
            ]
        if anonymous is None and ctx.features.network.asn is None and ctx.whois is None:
            return []  # no IP data at all: skip formatting the address (~1 µs)
        hits = []
        ip = str(ctx.features.network.ip)
        if anonymous is not None:
            hits.extend(self._anonymous_hits(anonymous, ip))
        asn = ctx.features.network.asn
        listed = self.hosting_asns.get(asn.number) if asn and self.hosting_asns else None
        if asn and listed:
            hits.append(
                Hit(
                    "VPN_HOSTING_ASN",
                    {"ip": ip, "asn": asn.number, "org": listed[0], "kind": listed[1]},
                )
            )
        elif ctx.whois is not None:
            hits.extend(self._whois_view(ctx, ip))
        return hits

    def _anonymous_hits(self, anonymous: AnonymousIpFlags, ip: str) -> list[Hit]:
        """The anonymous-IP database's flags; with Anonymous Plus, its confidence,
        provider and last sighting go into the evidence, and a VPN or hosting flag
        below ``min_anonymizer_confidence`` is weak (``medium``)."""
        extra: dict[str, Any] = {}
        if anonymous.confidence is not None:
            extra["confidence"] = anonymous.confidence
        if anonymous.provider:
            extra["provider"] = anonymous.provider
        if anonymous.last_seen:
            extra["last_seen"] = anonymous.last_seen
        unsure = (
            anonymous.confidence is not None
            and anonymous.confidence < self.min_anonymizer_confidence
        )
        hits = []
        for flag, code in _ANONYMOUS_FLAGS:
            if getattr(anonymous, flag):
                weak = unsure and flag in _CONFIDENCE_FLAGS
                evidence = {"ip": ip, "flag": flag, **extra}
                hits.append(Hit(code, evidence, severity="medium" if weak else None))
        return hits

    def _whois_view(self, ctx: CheckContext, ip: str) -> list[Hit]:
        """Registry data (RDAP via ipwhois) for an IP no ASN database covers."""
        from fingerprint.sources.whois import is_hosting

        assert self.network_rules is not None
        found = is_hosting(ctx.whois, self.network_rules)
        if found is None:
            return []
        record = ctx.whois
        evidence = {
            "ip": ip,
            "asn": record.asn,
            "network": record.network_name,
            "cidr": record.cidr,
            "source": "whois",
        }
        name, kind = found
        if kind == "pattern":  # a broad name pattern (CLOUD, HOSTING, VPS): weaker
            return [Hit("VPN_HOSTING_NAME", {**evidence, "pattern": name})]
        return [Hit("VPN_HOSTING_WHOIS", {**evidence, "org": name, "kind": kind})]

    def _tz_mismatch(self, ctx: CheckContext, device: Device | None) -> Hit | None:
        geo = ctx.features.geo
        home = self._home
        assert home is not None
        if device is None or geo is None or geo.country == home.iso_code:
            return None
        says_home = _says_home(device, home)
        if not says_home:
            return None
        return Hit("VPN_TZ_MISMATCH", {**says_home, "ip_country": geo.country})


def _cacheable_name(interface: str) -> bool:
    return len(interface) <= _MAX_CACHED_NAME


def _cacheable_list(interfaces: tuple[str, ...]) -> bool:
    return len(interfaces) <= _MAX_CACHED_LIST and all(map(_cacheable_name, interfaces))


@dataclass(frozen=True, slots=True)
class _Relays:
    """``relays`` of rules/network.yaml, built once for lookups: address ranges as
    integers (a few comparisons, no ``ip_network`` objects per login), ASNs and
    folded provider names, each naming its service."""

    ranges: tuple[tuple[int, int, int, str], ...]  # (version, first, last, service)
    asns: dict[int, str]
    providers: dict[str, str]

    @classmethod
    def of(cls, services: list[RelayService]) -> _Relays | None:
        if not services:
            return None
        ranges = []
        for service in services:
            for text in service.networks:
                net = ipaddress.ip_network(text)
                first = int(net.network_address)
                ranges.append((net.version, first, first + net.num_addresses - 1, service.name))
        return cls(
            tuple(ranges),
            {asn: s.name for s in services for asn in s.asns},
            {name.casefold(): s.name for s in services for name in s.provider_names},
        )

    def find(self, address: IPAddress, asn: int | None, provider: str | None) -> str | None:
        if provider:
            named = self.providers.get(provider.casefold())
            if named is not None:
                return named
        if asn is not None and asn in self.asns:
            return self.asns[asn]
        if type(address) is ipaddress.IPv4Address:
            # Its number as ipaddress keeps it (slot ``_ip``): version and int() are
            # Python-level property and __int__ calls (~0.3 µs a login).
            version, number = 4, address._ip  # type: ignore[attr-defined]
        else:
            version, number = address.version, int(address)
        for net_version, first, last, service in self.ranges:
            if net_version == version and first <= number <= last:
                return service
        return None


@dataclass(frozen=True, slots=True)
class _FoldedHome:
    """:class:`HomeCountry` as sets, built once: its ``folded_*`` properties build a
    new frozenset on every read."""

    iso_code: str
    time_zones: frozenset[str]
    locales: frozenset[str]
    locale_suffix: str
    mcc: frozenset[str]

    @classmethod
    def of(cls, home: HomeCountry) -> _FoldedHome:
        return cls(
            home.iso_code,
            home.folded_time_zones,
            home.folded_locales,
            home.locale_suffix,
            frozenset(home.mcc),
        )


def device_says_home(device: Device, home: HomeCountry) -> dict[str, str] | None:
    """Time zone at home and every other present signal (SIM country, locale) too.

    Needs the time zone and at least one of SIM country and locale, so a lone
    setting never decides.
    """
    return _says_home(device, _FoldedHome.of(home))


def _says_home(device: Device, home: _FoldedHome) -> dict[str, str] | None:
    tz = (device.timezone or "").strip()
    if tz.casefold() not in home.time_zones:
        return None
    mcc = device.sim.mcc if device.sim else None
    locale = (device.locale or "").replace("_", "-").casefold()
    locale_home = locale in home.locales or locale.endswith(home.locale_suffix) if locale else None
    mcc_home = mcc in home.mcc if mcc else None
    # Every present signal says home; at least one is present.
    if mcc_home is False or locale_home is False or (mcc_home is None and locale_home is None):
        return None
    evidence = {"device_tz": tz}
    if mcc:
        evidence["sim_mcc"] = mcc
    if locale:
        evidence["locale"] = device.locale or ""
    return evidence


def _alternation(patterns: list[str]) -> RulePattern | None:
    """One case-insensitive RE2 regex (linear time); leading ``(?i)`` flags fold into it."""
    if not patterns:
        return None
    bodies = (p.removeprefix("(?i)") for p in patterns)
    return compile_rule_regex("|".join(f"(?:{b})" for b in bodies))
