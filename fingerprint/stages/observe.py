"""The device's identity for :meth:`Checker.observation` of a record that was not
prepared with its identity, remembered by the device's content."""

from __future__ import annotations

import msgspec

from fingerprint.features.identity import DeviceIdentity, IdentityHasher, identity_of
from fingerprint.memo import BoundedMemo
from fingerprint.session import Device


class IdentityMemo:
    """Device identities by the device's content.

    :func:`identity_of` costs ~30 µs (up to seven keyed hashes) and a phone sends the
    same attributes login after login, where its content encoded costs ~5 µs. The
    battery changes from login to login and the identity never reads it, so it is
    left out of the key (tests/test_observe.py holds the identity to that). Any
    other difference makes another key: equal keys are equal devices, so a
    remembered identity is the device's identity. Thread-safe as the memo is.
    """

    def __init__(self, hasher: IdentityHasher, max_entries: int) -> None:
        self._hasher = hasher
        self._encode = msgspec.msgpack.Encoder().encode
        self._memo: BoundedMemo[bytes, DeviceIdentity] | None = (
            BoundedMemo(max_entries) if max_entries > 0 else None
        )

    def of(self, device: Device | None) -> DeviceIdentity:
        """``identity_of(device, hasher)``, computed once per device content kept."""
        if device is None or self._memo is None:
            return identity_of(device, self._hasher)
        key = self._encode(msgspec.structs.replace(device, battery=None))
        found = self._memo.get(key)
        if found is None:
            found = self._memo.put(key, identity_of(device, self._hasher))
        return found
