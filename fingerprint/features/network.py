"""IP address class: what kind of address the server saw."""

from __future__ import annotations

import ipaddress
from bisect import bisect_right

from fingerprint.memo import BoundedMemo
from fingerprint.model import network_text  # re-exported: it lived here
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


def classify_by_properties(address: IPAddress) -> str:
    """The class from ``ipaddress``'s properties: the definition :func:`classify_ip`
    answers from a table. Several generator expressions over network lists per call
    (~5 µs)."""
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


def _ipv4_table() -> tuple[list[int], list[str]]:
    """IPv4 space cut at every edge of every network the definition reads: ours above
    and ``ipaddress``'s own (its properties are membership tests of the networks and
    addresses in ``_IPv4Constants``), so the class is constant between two cuts and
    is read once, at the first address of each piece. Adjacent pieces of one class
    are merged: (piece starts, their classes), for ``bisect``."""
    edges = {0}
    constants = [
        value
        for value in vars(vars(ipaddress)["_IPv4Constants"]).values()
        for value in (value if isinstance(value, list) else [value])
    ]
    for item in [*constants, _CGNAT, *_BOGONS]:
        if isinstance(item, ipaddress.IPv4Address):
            item = ipaddress.IPv4Network(item)
        if isinstance(item, ipaddress.IPv4Network):
            edges.add(int(item.network_address))
            edges.add(int(item.broadcast_address) + 1)
    starts: list[int] = []
    classes: list[str] = []
    for edge in sorted(e for e in edges if e < 1 << 32):
        kind = classify_by_properties(ipaddress.IPv4Address(edge))
        if not classes or classes[-1] != kind:
            starts.append(edge)
            classes.append(kind)
    return starts, classes


_V4_STARTS, _V4_CLASSES = _ipv4_table()
# IPv6 (rare in the logs, and its loopback/unspecified tests are not network lists):
# the definition, memoised on the address's number.
_V6_CLASSES: BoundedMemo[int, str] = BoundedMemo(
    4_096, lambda number: classify_by_properties(ipaddress.IPv6Address(number))
)


def classify_ip(address: IPAddress) -> str:
    """One of public, private, loopback, link_local, cgnat, multicast, bogon, reserved.

    IPv4 is one binary search in a range table built from the definition (about
    0.3 µs, every address: most logins bring a new one); IPv6 is memoised."""
    if address.version == 4:
        # The number ipaddress keeps (slot `_ip` since 3.3): int(address) goes through a
        # Python-level __int__, 0.45 against 0.08 µs.
        number: int = address._ip  # type: ignore[attr-defined]
        return _V4_CLASSES[bisect_right(_V4_STARTS, number) - 1]
    return _V6_CLASSES[int(address)]


__all__ = ["classify_by_properties", "classify_ip", "network_text"]
