"""The device verdict stage: what a device's content always produces, remembered."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

import msgspec

from fingerprint.features import DeviceFeatures
from fingerprint.features.identity import DeviceIdentity
from fingerprint.memo import BoundedMemo
from fingerprint.session import Session
from fingerprint.sources.useragent import normalise_user_agent
from fingerprint.stages.run import Plan, Settled

# MessagePack, not JSON: the same fields, each as typed, ~0.5 µs less to encode and
# ~20% fewer bytes to hash.
_ENCODE = msgspec.msgpack.Encoder().encode
# The key's user agent, normalised once per distinct text (a WeChat UA's tokens take a
# regex substitution); a text too long to be a UA is normalised each time, not kept.
# Logs repeat few UAs (898 distinct in the generator's 200,000 lines: ~0.5 MB kept);
# 4,096 bounds what a log of many long ones can hold to ~9 MB.
_NORMALISED: BoundedMemo[str, str] = BoundedMemo(
    4_096, normalise_user_agent, keep=lambda text: len(text) <= 1_024
)


def for_login(known: DeviceFeatures, session: Session) -> DeviceFeatures:
    """Device features remembered for the device's content, with this login's id."""
    device_id = session.device.device_id if session.device is not None else None
    if known.device_id == device_id:
        return known
    return msgspec.structs.replace(known, device_id=device_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceVerdict:
    """What a device's content, its app and its user agent always produce: the device
    features, the device as recognised from its attributes, and the outcomes of the
    device-scoped checks. The id is no part of the key (see :meth:`DeviceMemo.key`):
    the memo keeps ``features`` without it (a hit carries the current login's,
    :func:`for_login`) and ``identity`` without the id's digest
    (:func:`~fingerprint.features.identity.content_identity`)."""

    features: DeviceFeatures
    identity: DeviceIdentity
    outcomes: tuple[tuple[str, Settled], ...]  # device-scoped checks, findings rendered
    # The session checks a login reusing the verdict runs, between the outcomes above
    # (:func:`~fingerprint.stages.run.session_plan` of the engine's session checks), or
    # None: the check stage looks each check up in ``by_check``.
    plan: Plan | None = None

    @property
    def by_check(self) -> Mapping[str, Settled]:
        """The outcomes by check name, one map for equal outcomes (read only: shared).
        Read only for a verdict without a plan; the checker gives every verdict it
        keeps a plan, so it is not made for each one."""
        return _by_check(self.outcomes)


# BLAKE2b-128's state before any message, copied for each key (its parameters not
# parsed again). Never updated: threads copy it alike.
_KEY_STATE = blake2b(digest_size=16)


class DeviceMemo:
    """Device verdicts keyed on the content that decides them (a bounded LRU).

    Logins repeat their device content far more than their ids: one phone model and
    ROM serve many devices, and an app cloner's copies differ only in their ids. The
    key leaves out what changes per login and what no device-scoped check reads: the
    device id and the battery (which enters only as "pinned or not", the one thing a
    device-scoped check reads of it). The key is a 128-bit BLAKE2b digest of those
    encoded fields (~1.2-1.4 kB of MessagePack): at 4,096 entries the fields
    themselves held ~5.5 MB more for ~2 µs less a login, and at 2 M lines the run's
    peak memory is what is short. A cryptographic digest, not a fast hash: the
    content is the client's, and a collision crafted between a clean device and an
    emulator would hand the emulator the clean verdict (2^-64 by chance at 2^32
    distinct contents). Belongs to one engine, so a rules reload starts empty.
    """

    def __init__(self, max_entries: int = 4_096) -> None:
        self._max = max_entries
        self._entries: OrderedDict[bytes, DeviceVerdict] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(session: Session, *, battery_is_pinned: bool) -> bytes | None:
        """The device and app blocks of a validated session less the device id and the
        battery, and the *normalised* user agent: WeChat's UA changes with the
        network type (NetType/WIFI, 4G) while its parse, all the checks read of it,
        does not (:func:`normalise_user_agent` drops exactly such tokens).

        The blocks as validated, what the checks read (a platform lowercased, system
        properties as text), encoded by msgspec (MessagePack): every field in its
        place and of its type, so equal encodings are equal blocks (~3.7 µs with the
        digest, where encoding the record's JSON objects took ~10 µs and needed the
        decoded record)."""
        device, app = session.device, session.app
        if device is None and app is None:
            return None
        ua = session.user_agent
        if isinstance(ua, str):
            ua = _NORMALISED[ua]
        if device is not None:
            # The fields that change from login to login and that no device-scoped
            # check or device feature reads (the battery enters as pinned or not,
            # below): the id, and a boot's and an install's facts, which device_reset
            # and the identity links read of each login's session.
            device = msgspec.structs.replace(
                device,
                battery=None,
                device_id=None,
                boot_time=None,
                boot_count=None,
                first_install_time=None,
            )
        try:
            # The pinned battery encoded with the blocks, not appended to their
            # encoding (a copy of ~1.3 kB).
            content = _ENCODE((device, app, ua, battery_is_pinned))
        except (TypeError, msgspec.EncodeError):  # a caller's own values: no memo
            return None
        # BLAKE2b, not SHA-256: faster on a CPU without SHA extensions (~2x here under
        # valgrind, which hides them), slower only by ~0.5 µs on one with them.
        state = _KEY_STATE.copy()
        state.update(content)
        return state.digest()

    def get(self, key: bytes) -> DeviceVerdict | None:
        with self._lock:
            verdict = self._entries.get(key)
            if verdict is not None:
                self._entries.move_to_end(key)
            return verdict

    def put(self, key: bytes, verdict: DeviceVerdict) -> None:
        verdict = _shared_parts(verdict)
        with self._lock:
            self._entries[key] = verdict
            if len(self._entries) > self._max:
                self._entries.popitem(last=False)

    @property
    def enabled(self) -> bool:
        return self._max > 0

    def __len__(self) -> int:
        return len(self._entries)


# A verdict's parts that many verdicts hold equal, one copy each: devices of one model
# and ROM share their features (less the id, which a hit replaces: for_login) and their
# identity's keys, and most share their device-scoped outcomes (all clean). On the
# generator's 200,000 lines 16,384 verdicts hold 489 distinct features, 48 identities
# and 542 shareable parts in all: ~0.8 kB an entry instead of ~1.85 kB. Outcomes with
# findings (their evidence is a dict) are kept as they are.
_SHARED: BoundedMemo[Any, Any] = BoundedMemo(4_096, lambda value: value)


def _shared_parts(verdict: DeviceVerdict) -> DeviceVerdict:
    features = verdict.features
    if features.device_id is not None:
        features = msgspec.structs.replace(features, device_id=None)
    return DeviceVerdict(
        features=_shared(features),
        identity=_shared(verdict.identity),
        outcomes=_shared(verdict.outcomes),
        plan=verdict.plan,  # shared already: the engine keeps one plan per outcomes
    )


# One check map for each distinct outcomes (most verdicts' are alike: all clean).
_BY_CHECK: BoundedMemo[tuple[tuple[str, Settled], ...], dict[str, Settled]] = BoundedMemo(
    4_096, dict
)


def _by_check(outcomes: tuple[tuple[str, Settled], ...]) -> Mapping[str, Settled]:
    try:
        return _BY_CHECK[outcomes]
    except TypeError:  # unhashable: a finding's evidence is a dict
        return dict(outcomes)


def _shared(value: Any) -> Any:
    try:
        return _SHARED[value]
    except TypeError:  # unhashable: a finding's evidence is a dict
        return value
