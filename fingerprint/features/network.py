"""IP address class: what kind of address the server saw."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from fingerprint.model import network_text
from fingerprint.session import IPAddress

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# Unallocated or documentation-only space that no real client should come from.
_BOGONS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
        "255.255.255.255/32",
        "100::/64",
        "2001:db8::/32",
    )
)


@lru_cache(maxsize=4_096)
def classify_ip(address: IPAddress) -> str:
    """One of public, private, loopback, link_local, cgnat, multicast, bogon, reserved."""
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link_local"
    if address.is_multicast:
        return "multicast"
    if address.version == 4 and address in _CGNAT:
        return "cgnat"
    if any(address.version == net.version and address in net for net in _BOGONS):
        return "bogon"
    if address.is_private:
        return "private"
    if address.is_reserved or address.is_unspecified:
        return "reserved"
    return "public"


__all__ = ["classify_ip", "network_text"]
