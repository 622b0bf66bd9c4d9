"""``ip_accounts``: many distinct accounts log in from one address, or one mobile
carrier block, within a short window, beyond what shared networks explain.

Farms run dozens of accounts through one exit: a home router, a 4G hotspot, a rented
proxy. Shared networks carry many accounts too, so the allowance depends on what
the address is (docs/CALIBRATION.md "ip_accounts"):

- a fixed-line or Wi-Fi address (one household, one office): few accounts an hour;
- a hosting, VPN or proxy exit: fewer still, no consumer lives there;
- a mobile carrier's address behind carrier-grade NAT: many unrelated phones share
  one public address and one /24, so both get a large allowance of their own.

An IPv6 address counts as its /64: a phone's mobile session or a home's LAN holds one
/64 and rotates privacy addresses inside it. IPv6 has no carrier NAT, so it gets the
fixed-line allowance and no block count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from fingerprint.checks.base import (
    COUNT,
    Check,
    CheckContext,
    HistoryIndex,
    Hit,
    Needs,
    NotEvaluated,
    Outcome,
    history_unavailable,
    login_ts,
)
from fingerprint.history import LoginEvent, ip_keys
from fingerprint.rules import RuleSet, Threshold

# A short window: farms work in bursts, and shared networks spread their users over
# the day. Over a day is no burst.
WINDOW_MINUTES = Threshold(
    kind="number", minimum=0, exclusive_minimum=True, maximum=1440, unit="minutes"
)

FIXED, HOSTING, CARRIER = "fixed", "hosting", "carrier"


@dataclass(frozen=True)
class IpAccountsCheck(Check):
    """Distinct accounts per address (and per carrier block) inside the window."""

    name: ClassVar[str] = "ip_accounts"
    codes: ClassVar[tuple[str, ...]] = ("IPA_MANY_ACCOUNTS", "IPA_CARRIER_BLOCK_ACCOUNTS")
    # A privacy relay's egress carries its users at large: not counted (the relay marks).
    needs: ClassVar[Needs] = Needs(history=frozenset({HistoryIndex.ADDRESS}), exit_marks=True)
    thresholds: ClassVar[dict[str, Threshold]] = {
        "window_minutes": WINDOW_MINUTES,
        "fixed_allowance": COUNT,
        "hosting_allowance": COUNT,
        "carrier_allowance": COUNT,
        "carrier_block_allowance": COUNT,
    }

    window_minutes: float = 60.0
    # The most distinct accounts (the current one included) each kind of network
    # explains inside the window; one more is a finding.
    fixed_allowance: int = 9
    hosting_allowance: int = 3
    carrier_allowance: int = 20
    carrier_block_allowance: int = 50
    carrier_asns: frozenset[int] = frozenset()
    hosting_asns: frozenset[int] = frozenset()

    @classmethod
    def compile(cls, rules: RuleSet, config: dict[str, Any]) -> Check:
        network = rules.network
        return cls(
            **config,
            carrier_asns=frozenset(a.asn for a in network.carrier_asns),
            hosting_asns=frozenset(a.asn for a in network.hosting_asns),
        )

    @property
    def largest_allowance(self) -> int:
        """History must keep at least one account more than this per address."""
        return max(
            self.fixed_allowance,
            self.hosting_allowance,
            self.carrier_allowance,
            self.carrier_block_allowance,
        )

    def history_seconds(self) -> float:
        return self.window_minutes * 60

    def history_members(self) -> int:
        return self.largest_allowance + 1

    def evaluate(self, ctx: CheckContext) -> Outcome:
        unavailable = history_unavailable(ctx)
        if unavailable:
            return unavailable
        if ctx.features.network.ip_class != "public":
            return NotEvaluated("the address is not public: no shared exit to count")
        if ctx.current_event is not None and ctx.current_event.ip_relay:
            # iCloud Private Relay and kin: one egress carries its users at large.
            return NotEvaluated("the IP is a privacy relay's egress: shared by all its users")
        assert ctx.history is not None
        kind = self.network_kind(ctx)
        since = login_ts(ctx) - self.window_minutes * 60
        account = ctx.session.account_id
        hits = []
        ip, event = ctx.features.network.ip, ctx.current_event
        address, _ = ip_keys(event.ip if event is not None else str(ip), None)
        allowance = self._address_allowance(kind, ipv6=ip.version == 6)
        on_address = _accounts_since(ctx.history.ip_accounts, since, account, allowance)
        if on_address > allowance and not _regular(ctx.history.account_events, address, since):
            evidence = self._evidence(on_address, allowance) | {"ip": address}
            hits.append(Hit("IPA_MANY_ACCOUNTS", evidence | {"network_kind": kind}))
        if kind == CARRIER and ip.version == 4:
            limit = self.carrier_block_allowance
            on_block = _accounts_since(ctx.history.block_accounts, since, account, limit)
            if on_block > limit:
                network = event.network if event is not None else None
                evidence = self._evidence(on_block, limit) | {"network": network or "?"}
                hits.append(Hit("IPA_CARRIER_BLOCK_ACCOUNTS", evidence))
        return hits

    def network_kind(self, ctx: CheckContext) -> str:
        """hosting (a datacenter, VPN or proxy exit), carrier (a phone on a mobile
        carrier's network) or fixed (anything else: a home, an office, a campus)."""
        network = ctx.features.network
        asn = network.asn.number if network.asn is not None else None
        flags = network.anonymous
        if asn in self.hosting_asns or (flags is not None and flags.any):
            return HOSTING
        link = ctx.session.network
        cellular = link is not None and link.type == "cellular"
        # A cellular claim is the client's word: from an ASN we know and that is no
        # mobile carrier's, it earns no carrier allowance.
        if cellular and (asn is None or asn in self.carrier_asns):
            return CARRIER
        return FIXED

    def _address_allowance(self, kind: str, *, ipv6: bool) -> int:
        if kind == HOSTING:
            return self.hosting_allowance
        if kind == CARRIER and not ipv6:
            # Only IPv4 is shared by carrier NAT: a phone's IPv6 /64 is its own.
            return self.carrier_allowance
        return self.fixed_allowance

    def _evidence(self, accounts: int, allowance: int) -> dict[str, Any]:
        return {
            "accounts": accounts,
            "allowance": allowance,
            "window_minutes": self.window_minutes,
        }


def _regular(events: Sequence[LoginEvent], address: str, since: float) -> bool:
    """Whether the account logged in from this address before the window: a
    returning member of an office or a campus is what its shared network explains;
    a farm's accounts arrive new. (A farm that returns with the same accounts was
    named the first time.)"""
    return any(e.ts < since and ip_keys(e.ip, None)[0] == address for e in events)


def _accounts_since(
    seen: Iterable[tuple[float, str]], since: float, account: str, allowance: int
) -> int:
    """Distinct accounts at or after ``since``, the current one included. A key
    holding no more accounts than the allowance cannot exceed it: most addresses
    stop at the length test."""
    pairs = tuple(seen)
    if len(pairs) < allowance:
        return len(pairs) + 1
    accounts = {who for at, who in pairs if at >= since}
    accounts.add(account)
    return len(accounts)
