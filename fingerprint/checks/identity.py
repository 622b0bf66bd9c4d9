"""The device behind the id it sends: resets, forged identifiers and device farms.

Each check reads the device recognised from its attributes
(:mod:`fingerprint.features.identity`) and what history links to it:

* ``device_reset``: one confidently recognised phone that keeps presenting new
  identifiers (device ids, Android ids) inside a window: reset tools, 改机, farms; or
  that came back factory reset (a low boot count, the app installed moments ago);
* ``device_forged``: one identifier carried by phones whose hardware differs: copied
  or forged. Hardware keys are not unique (identical phones share them), but two
  different hardware keys are certainly two phones, so difference is proof here;
* ``device_farm``: one confidently recognised phone serving many accounts.

A key below :data:`~fingerprint.features.identity.CONFIDENT_MATCH` (hardware or
software level: identical phones of one model could share it) is never taken as one
device: reset and farm are then not evaluated, and say why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from fingerprint.checks.base import (
    COUNT,
    WINDOW_HOURS,
    Check,
    CheckContext,
    HistoryIndex,
    Hit,
    HoursWindow,
    Needs,
    NotEvaluated,
    Outcome,
    history_unavailable,
    login_ts,
)
from fingerprint.features.identity import (
    IDENTIFIER_NAMES,
    IDENTIFIER_NAMES_ZH,
    DeviceIdentity,
)
from fingerprint.history import Link
from fingerprint.rules import Threshold

# Identifiers a reset renews, as history records them on the device key.
_RESET_KINDS = ("device_id", "android_id")
_NOT_CONFIDENT = "no confident device key (identical phones could share this one)"
_NO_LINKS = "history store keeps no identity links"


def reset_link(identity: DeviceIdentity, boot_time: int | None = None) -> Link | None:
    """The device key's link: the identifiers it carried, each with the boot it was
    seen in (``kind:digest@boot_time``), so a renewal without a reboot shows."""
    if not identity.confident:
        return None
    boot = "" if boot_time is None else str(boot_time)
    members = tuple(
        f"{kind}:{digest}@{boot}" for kind, digest in identity.identifiers if kind in _RESET_KINDS
    )
    return f"r:{identity.key}", members


def forged_links(identity: DeviceIdentity) -> list[Link]:
    """Each identifier's link: the hardware keys that carried it, per attribute shape."""
    if identity.hardware_key is None:
        return []
    return [
        (_forged_name(kind, digest, identity.shape), (identity.hardware_key,))
        for kind, digest in identity.identifiers
    ]


def identity_links(identity: DeviceIdentity, boot_time: int | None = None) -> tuple[Link, ...]:
    """Every link a login adds to history (none for a session with no identity data)."""
    reset = reset_link(identity, boot_time)
    links = forged_links(identity)
    return tuple([reset, *links] if reset is not None else links)


def _forged_name(kind: str, digest: str, shape: str) -> str:
    return f"f:{kind}:{digest}:{shape}"


def _links_or_reason(ctx: CheckContext) -> Mapping[str, Pairs] | NotEvaluated:
    """The links history returned with this login, or why there are none."""
    unavailable = history_unavailable(ctx)
    if unavailable:
        return unavailable
    assert ctx.history is not None
    if ctx.history.links is None:
        return NotEvaluated(_NO_LINKS)
    return ctx.history.links


Pairs = tuple[tuple[float, str], ...]


def _members_since(pairs: Sequence[tuple[float, str]] | None, since: float) -> set[str]:
    return {member for ts, member in pairs or () if ts >= since}


@dataclass(frozen=True, slots=True)
class _Sighting:
    """One reset-link member: an identifier and the boot it was seen in."""

    kind: str
    digest: str
    boot: int | None

    @classmethod
    def of(cls, member: str) -> _Sighting:
        kind, _, rest = member.partition(":")
        digest, _, boot = rest.partition("@")
        return cls(kind, digest, int(boot) if boot.isdigit() else None)


def _renewed_without_reboot(
    earlier: Sequence[_Sighting], now: Sequence[_Sighting], slack: float
) -> bool:
    """An Android ID that changed while the phone stayed up: only a factory reset
    renews it, and a factory reset reboots. A tool (改机) did it."""
    for current in now:
        if current.kind != "android_id" or current.boot is None:
            continue
        for seen in earlier:
            same_boot = seen.boot is not None and abs(seen.boot - current.boot) <= slack
            if seen.kind == "android_id" and seen.digest != current.digest and same_boot:
                return True
    return False


@dataclass(frozen=True)
class DeviceResetCheck(HoursWindow, Check):
    """One phone, renewed identifiers: it presents itself as a new device again."""

    name: ClassVar[str] = "device_reset"
    codes: ClassVar[tuple[str, ...]] = ("DEV_ID_RESET", "DEV_FACTORY_RESET")
    needs: ClassVar[Needs] = Needs(history=frozenset({HistoryIndex.LINKS}))
    thresholds: ClassVar[dict[str, Threshold]] = {
        "window_hours": WINDOW_HOURS,
        "min_device_ids": COUNT,
        "min_android_ids": COUNT,
        "max_boot_count": Threshold(kind="count", minimum=0, maximum=100_000),
        "recent_install_hours": WINDOW_HOURS,
        "boot_slack_seconds": Threshold(kind="number", minimum=0, maximum=86_400, unit="seconds"),
    }

    window_hours: float = 72.0
    min_device_ids: int = 3  # device ids on one phone in the window: a reset pattern
    min_android_ids: int = 3  # Android ids change only on factory reset or tooling
    # One boot, as the SDK computes it (clock minus uptime), wobbles by a second or two.
    boot_slack_seconds: float = 60.0
    max_boot_count: int = 5  # a factory-reset phone has booted this few times ...
    recent_install_hours: float = 24.0  # ... and the app was installed this recently

    def evaluate(self, ctx: CheckContext) -> Outcome:
        device = ctx.session.device
        boot_time = device.boot_time if device is not None else None
        link = reset_link(ctx.identity, boot_time)
        if link is None:
            return NotEvaluated(_NOT_CONFIDENT)
        links = _links_or_reason(ctx)
        if isinstance(links, NotEvaluated):
            return links
        name, current = link
        ts = login_ts(ctx)
        earlier = [
            _Sighting.of(m) for m in _members_since(links.get(name), ts - self.history_seconds())
        ]
        now = [_Sighting.of(m) for m in current]
        seen = {(s.kind, s.digest) for s in (*earlier, *now)}
        device_ids = sum(1 for kind, _ in seen if kind == "device_id")
        android_ids = sum(1 for kind, _ in seen if kind == "android_id")
        if (
            device_ids >= self.min_device_ids
            or android_ids >= self.min_android_ids
            or _renewed_without_reboot(earlier, now, self.boot_slack_seconds)
        ):
            evidence = {
                "device_ids": device_ids,
                "android_ids": android_ids,
                "window_hours": self.window_hours,
            }
            return [Hit("DEV_ID_RESET", evidence)]
        mine = {(s.kind, s.digest) for s in now}
        renewed = any((s.kind, s.digest) not in mine for s in earlier)
        return self._factory_reset(ctx, ts) if renewed else []

    def _factory_reset(self, ctx: CheckContext, ts: float) -> Outcome:
        """Seen before under other identifiers, and now freshly reset: few boots since,
        and the app installed moments before the login."""
        device = ctx.session.device
        if device is None or device.boot_count is None or device.first_install_time is None:
            return []
        installed_hours = (ts - device.first_install_time) / 3600
        if device.boot_count > self.max_boot_count:
            return []
        if not 0 <= installed_hours <= self.recent_install_hours:
            return []
        evidence = {
            "boot_count": device.boot_count,
            "installed_hours": round(installed_hours, 1),
        }
        return [Hit("DEV_FACTORY_RESET", evidence)]


@dataclass(frozen=True)
class DeviceForgedCheck(HoursWindow, Check):
    """One identifier, different hardware: the identifier was copied or forged."""

    name: ClassVar[str] = "device_forged"
    codes: ClassVar[tuple[str, ...]] = ("DEV_FORGED_ID",)
    needs: ClassVar[Needs] = Needs(history=frozenset({HistoryIndex.LINKS}))
    thresholds: ClassVar[dict[str, Threshold]] = {
        "window_hours": WINDOW_HOURS,
        "min_hardware_keys": Threshold(kind="count", minimum=2, maximum=100_000),
    }

    window_hours: float = 72.0
    min_hardware_keys: int = 2

    def evaluate(self, ctx: CheckContext) -> Outcome:
        identity = ctx.identity
        if identity.hardware_key is None:
            return NotEvaluated("too few hardware attributes for a hardware key")
        if not identity.identifiers:
            return NotEvaluated("no device identifier")
        links = _links_or_reason(ctx)
        if isinstance(links, NotEvaluated):
            return links
        since = login_ts(ctx) - self.window_hours * 3600
        worst: tuple[int, str] | None = None
        for name, _ in forged_links(identity):
            keys = _members_since(links.get(name), since)
            keys.add(identity.hardware_key)
            kind = name.split(":", 2)[1]
            if len(keys) >= self.min_hardware_keys and (worst is None or len(keys) > worst[0]):
                worst = (len(keys), kind)
        if worst is None:
            return []
        count, kind = worst
        evidence = {
            "identifier": IDENTIFIER_NAMES[kind],
            "identifier_zh": IDENTIFIER_NAMES_ZH[kind],
            "phones": count,
            "window_hours": self.window_hours,
        }
        return [Hit("DEV_FORGED_ID", evidence)]


@dataclass(frozen=True)
class DeviceFarmCheck(HoursWindow, Check):
    """One confidently recognised phone, many accounts."""

    name: ClassVar[str] = "device_farm"
    codes: ClassVar[tuple[str, ...]] = ("DEV_FARM",)
    needs: ClassVar[Needs] = Needs(history=frozenset({HistoryIndex.DEVICE}))
    thresholds: ClassVar[dict[str, Threshold]] = {
        "window_hours": WINDOW_HOURS,
        "min_accounts": COUNT,
    }

    window_hours: float = 168.0
    min_accounts: int = 5

    def evaluate(self, ctx: CheckContext) -> Outcome:
        if not ctx.identity.confident:
            return NotEvaluated(_NOT_CONFIDENT)
        # A store without identity links (Spark's per-account partitions) sees only
        # this account's side of the phone: no answer rather than a partial one.
        links = _links_or_reason(ctx)
        if isinstance(links, NotEvaluated):
            return links
        assert ctx.history is not None
        # History keys the device table on the derived key when it is confident.
        shared = ctx.history.device_accounts
        if len(shared) + 1 < self.min_accounts:
            return []
        since = login_ts(ctx) - self.window_hours * 3600
        accounts = {a for ts, a in shared if ts >= since}
        accounts.add(ctx.session.account_id)
        if len(accounts) < self.min_accounts:
            return []
        evidence = {"accounts": len(accounts), "window_hours": self.window_hours}
        return [Hit("DEV_FARM", evidence)]
