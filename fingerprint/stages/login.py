"""The login as history keeps it (:class:`~fingerprint.history.LoginEvent`), and the
warnings its arrival earns (late, or a session id seen before)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo
from functools import lru_cache
from ipaddress import IPv4Address
from operator import itemgetter
from socket import inet_ntoa
from sys import intern

from fingerprint._session_values import v4_block_text
from fingerprint.features import Features
from fingerprint.features.identity import DeviceIdentity, identity_text
from fingerprint.history import HistoryView, LoginEvent, session_digest
from fingerprint.model import network_text
from fingerprint.native import NATIVE
from fingerprint.session import IPAddress, Session


def derived_session_id(session: Session) -> str:
    return f"{session.account_id}@{int(session.ts.timestamp() * 1000)}"


def login_event(
    *,
    sid: str,
    session: Session,
    features: Features,
    anonymous: bool,
    local_tz: tzinfo,
    identity: DeviceIdentity,
    relay: bool = False,
) -> LoginEvent:
    geo = features.geo
    device, network = session.device, session.network
    ip, block = address_texts(session.ip)
    # Built as a tuple in field order, not through the named tuple's __new__ (a Python
    # function of 16 keywords): 0.12 instead of 0.9 µs, once a login.
    return _new_event(LoginEvent, (
        session.ts.timestamp(),  # ts
        session_digest(sid),
        session.account_id,
        # The device as history counts it: the derived key when it is confident (one
        # phone under renewed ids stays one device), else the client's device id.
        identity_text(identity, device.device_id if device else None) or None,  # device_id
        ip,  # ip
        geo.province if geo else None,  # province
        geo.latitude if geo else None,  # latitude
        geo.longitude if geo else None,  # longitude
        geo.accuracy_radius_km if geo else None,  # accuracy_km
        anonymous,  # ip_anonymous
        block,  # network
        features.network.asn.number if features.network.asn else None,  # asn
        # Carriers and network types are interned: few, shared by millions of accounts.
        # Not ids, IPs and networks: mostly one account's (the store shares its own
        # copies between its tables), and the interned table never shrinks.
        intern(network.type) if network and network.type else None,  # network_type
        intern(device.sim.carrier)
        if device and device.sim and device.sim.carrier
        else None,  # carrier
        session.ts.astimezone(local_tz).hour,  # hour
        relay,  # ip_relay
    ))  # fmt: skip


_new_event = tuple.__new__


def observed_event(*, session: Session, device_id: str | None) -> LoginEvent:
    """The login as the history of a process that does not check it keeps it
    (:meth:`fingerprint.checker.Checker.observation`): its time, account, device and
    address with its block, which the device's and the address's accounts count (the
    address and block too: ip_accounts counts every account on them). No place and no
    exit marks: those are the checking process's."""
    ip, block = address_texts(session.ip)
    return LoginEvent(
        ts=session.ts.timestamp(),
        session_digest=session_digest(session.session_id or ""),
        account_id=session.account_id,
        device_id=device_id or None,
        ip=ip,
        province=None,
        latitude=None,
        longitude=None,
        accuracy_km=None,
        ip_anonymous=False,
        network=block,
    )


def address_texts(address: IPAddress) -> tuple[str, str]:
    """(:func:`ip_text`, :func:`network_of`) of the address: history's address and
    block. Of an IPv4Address, written in C from its number where the extension is
    built (~0.1 µs instead of ~0.8: each function reads ``packed``, two Python calls)."""
    if _NATIVE_TEXTS is not None:
        texts = _NATIVE_TEXTS(address)
        if texts is not None:
            return texts
    return ip_text(address), network_of(address)


_NATIVE_TEXTS: Callable[[IPAddress], tuple[str, str] | None] | None = (
    NATIVE.v4_texts if NATIVE is not None else None
)


def ip_text(address: IPAddress) -> str:
    """``str(address)``. An IPv4 address written by ``inet_ntoa`` from its 4 bytes
    (~0.15 µs), not looked up in a cache: an address object's hash is Python code
    that formats its number in hex (~0.15 µs a hit), and in the latency benchmark 43%
    of the lookups missed a cache of 4,096, paying ``str`` (~0.6 µs) too."""
    if type(address) is IPv4Address:
        return inet_ntoa(address.packed)
    return _cached_text(address)


def network_of(address: IPAddress) -> str:
    """The /24 (IPv4) or /48 (IPv6) holding the address: one subscriber line or site.
    An IPv4 one from the address's first 3 bytes, as :func:`ip_text` writes the
    address (``network_text(address, 24)``, which the tests hold it to)."""
    if type(address) is IPv4Address:
        return v4_block_text(address.packed)
    return _cached_network(address)


# IPv6 addresses (and any address of another type than IPv4Address itself).
@lru_cache(maxsize=4_096)
def _cached_text(address: IPAddress) -> str:
    return str(address)


@lru_cache(maxsize=4_096)
def _cached_network(address: IPAddress) -> str:
    return network_text(address, 24 if address.version == 4 else 48)


_DIGEST = itemgetter(1)  # LoginEvent.session_digest


def arrival_warnings(
    sid: str, event: LoginEvent, history: HistoryView | None, late_by: float | None
) -> list[str]:
    warnings = []
    if late_by is not None:
        warnings.append(f"late arrival: {late_by:.0f} s behind the newest line")
    # A map in C, not a generator of attribute reads: ~0.1 µs less a login in the window.
    if history is not None and event.session_digest in map(_DIGEST, history.account_events):
        warnings.append(f"duplicate session id {sid!r} within the history window")
    return warnings
