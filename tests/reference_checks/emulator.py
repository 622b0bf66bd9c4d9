"""``emulator``: the session runs in an Android/PC emulator or virtual device.

Definitive tells (a qemu property, an emulator's own file, socket, package or
library, an emulator build) are critical on their own. Weak tells (a generic
model name, an x86 CPU on a phone that only ships ARM, no sensors, no telephony,
a battery pinned at full and charging) are low or medium alone and only become
high when several agree, so one weak tell never blacklists a real phone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from fingerprint.checks.base import Check, CheckContext, Hit, NotEvaluated, Outcome
from fingerprint.checks.signatures import SignatureMatcher
from fingerprint.rules import EmulatorSignature, RuleSet
from fingerprint.session import Device, battery_pinned

# Which SDK fields and system properties feed each signature field.
_FIELD_PROPS: dict[str, tuple[str, ...]] = {
    "build_fingerprint": ("ro.build.fingerprint", "ro.bootimage.build.fingerprint"),
    "hardware": ("ro.hardware", "ro.boot.hardware"),
    "board": ("ro.product.board", "ro.board.platform"),
    "model": ("ro.product.model",),
    "brand": ("ro.product.brand",),
    "manufacturer": ("ro.product.manufacturer",),
    "product": ("ro.product.name", "ro.product.device", "ro.build.product"),
}
_DEFINITIVE_CODES = {
    "system_prop": "EMU_SYSTEM_PROP",
    "build_fingerprint": "EMU_BUILD_FINGERPRINT",
    "hardware": "EMU_HARDWARE",
    "board": "EMU_HARDWARE",
    "model": "EMU_DEVICE_IDENTITY",
    "brand": "EMU_DEVICE_IDENTITY",
    "manufacturer": "EMU_DEVICE_IDENTITY",
    "product": "EMU_DEVICE_IDENTITY",
    "file": "EMU_FILE",
    "package": "EMU_PACKAGE",
    "lib": "EMU_LIBRARY",
}
_MOTION_SENSORS = frozenset({"accelerometer", "gyroscope"})


@dataclass(frozen=True, slots=True)
class _Compiled:
    by_field: dict[str, SignatureMatcher[EmulatorSignature]]
    by_prop: dict[str, SignatureMatcher[EmulatorSignature]]
    real_x86: tuple[tuple[str, re.Pattern[str]], ...]


@dataclass(frozen=True)
class EmulatorCheck(Check):
    name: ClassVar[str] = "emulator"
    device_scoped: ClassVar[bool] = True
    codes: ClassVar[tuple[str, ...]] = (
        "EMU_SYSTEM_PROP",
        "EMU_BUILD_FINGERPRINT",
        "EMU_HARDWARE",
        "EMU_DEVICE_IDENTITY",
        "EMU_FILE",
        "EMU_PACKAGE",
        "EMU_LIBRARY",
        "EMU_WEAK_SIGNATURE",
        "EMU_X86_ABI",
        "EMU_NO_SENSORS",
        "EMU_NO_TELEPHONY",
        "EMU_BATTERY_PINNED",
        "EMU_WEAK_TELLS_COMBINED",
    )

    weak_tells_for_high: int = 3
    compiled: _Compiled | None = None

    @classmethod
    def compile(cls, rules: RuleSet, config: dict[str, Any]) -> Check:
        by_field: dict[str, SignatureMatcher[EmulatorSignature]] = {}
        by_prop: dict[str, SignatureMatcher[EmulatorSignature]] = {}
        for sig in rules.emulator.signatures:
            if sig.field == "system_prop":
                assert sig.key is not None
                matcher = by_prop.setdefault(sig.key.lower(), SignatureMatcher())
            else:
                matcher = by_field.setdefault(sig.field, SignatureMatcher())
            matcher.add(sig.match, sig.value, sig)
        real_x86 = tuple(
            (d.brand.casefold(), re.compile(d.model, re.IGNORECASE))
            for d in rules.emulator.real_x86_devices
        )
        return cls(**config, compiled=_Compiled(by_field, by_prop, real_x86))

    def evaluate(self, ctx: CheckContext) -> Outcome:
        assert self.compiled is not None
        device = ctx.session.device
        ua_model = ctx.features.device.ua.device_model if ctx.features.device.ua else None
        if device is None and not ua_model:
            return NotEvaluated("no device block and no device model in the user agent")
        if ctx.features.device.platform in ("ios", "windows", "macos"):
            return NotEvaluated(f"no emulator signals for platform {ctx.features.device.platform}")
        definitive: dict[str, list[dict[str, str]]] = {}
        weak: list[dict[str, str]] = []
        by_prop, by_field = self.compiled.by_prop, self.compiled.by_field
        for field, key, text in _observed(ctx, ua_model):
            matcher = by_prop.get(key) if key else by_field.get(field)
            if matcher is None:
                continue
            for sig in matcher.match(text):
                seen = {"product": sig.product, "field": field, "value": text[:200]}
                if key:
                    seen["key"] = key
                if sig.strength == "definitive":
                    definitive.setdefault(_DEFINITIVE_CODES[field], []).append(seen)
                else:
                    weak.append(seen)
        hits = [
            Hit(code, {"product": _products(found), "matches": _dedupe(found)})
            for code, found in definitive.items()
        ]
        heuristics = self._heuristics(device, ctx)
        if weak:
            hits.append(Hit("EMU_WEAK_SIGNATURE", {"matches": _dedupe(weak)}))
        hits.extend(heuristics)
        # Each weak signature field and each hardware heuristic is one independent tell.
        tells = [f"{m['field']}:{m['value']}" for m in _dedupe(weak)] + [h.code for h in heuristics]
        if not definitive and len(tells) >= self.weak_tells_for_high:
            hits.append(Hit("EMU_WEAK_TELLS_COMBINED", {"tells": tells, "count": len(tells)}))
        return hits

    def _heuristics(self, device: Device | None, ctx: CheckContext) -> list[Hit]:
        hits: list[Hit] = []
        if device is None or ctx.features.device.platform not in (None, "android", "harmonyos"):
            return hits
        x86 = self._x86_abi(device, ctx.features.device.brand)
        if x86:
            hits.append(Hit("EMU_X86_ABI", {"cpu_abi": x86, "model": device.model}))
        handset = ctx.features.device.device_class != "tablet"
        if device.sensors is not None and not (
            _MOTION_SENSORS & {s.lower() for s in device.sensors}
        ):
            hits.append(Hit("EMU_NO_SENSORS", {"sensors": device.sensors[:20]}))
        if handset and device.has_telephony is False:
            hits.append(Hit("EMU_NO_TELEPHONY", {"has_telephony": False, "model": device.model}))
        battery = device.battery
        if battery is not None and battery_pinned(battery):
            hits.append(
                Hit(
                    "EMU_BATTERY_PINNED",
                    {
                        "level": battery.level,
                        "charging": True,
                        "temperature_c": battery.temperature_c,
                    },
                )
            )
        return hits

    def _x86_abi(self, device: Device, brand: str | None) -> list[str] | None:
        assert self.compiled is not None
        abis = device.cpu_abi or []
        if not abis or not abis[0].lower().startswith("x86"):
            return None
        model = device.model or ""
        for real_brand, pattern in self.compiled.real_x86:
            if brand == real_brand and pattern.search(model):
                return None
        return abis[:8]


def _observed(ctx: CheckContext, ua_model: str | None) -> list[tuple[str, str, str]]:
    """(field, property key or "", text) for every value a signature may match."""
    seen: list[tuple[str, str, str]] = []
    if ua_model:
        seen.append(("model", "", ua_model))
    app = ctx.session.app
    if app is not None and app.loaded_libs:
        seen.extend(("lib", "", lib) for lib in app.loaded_libs)
    device = ctx.session.device
    if device is None:
        return seen
    props = device.system_props or {}
    if props:
        seen.extend(("system_prop", key.lower(), value) for key, value in props.items())
    direct = (
        ("build_fingerprint", device.build_fingerprint),
        ("hardware", device.hardware),
        ("board", device.board),
        ("model", device.model),
        ("brand", device.brand),
        ("manufacturer", device.manufacturer),
        ("product", device.product),
    )
    for field, value in direct:
        if value:
            seen.append((field, "", value))
        for prop in _FIELD_PROPS[field] if props else ():
            prop_value = props.get(prop)
            if prop_value and prop_value != value:
                seen.append((field, "", prop_value))
    if device.files_present:
        seen.extend(("file", "", path) for path in device.files_present)
    if device.installed_packages:
        seen.extend(("package", "", package) for package in device.installed_packages)
    return seen


def _products(found: list[dict[str, str]]) -> str:
    return ", ".join(dict.fromkeys(item["product"] for item in found))


def _dedupe(found: list[dict[str, str]]) -> list[dict[str, str]]:
    unique: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    for item in found:
        unique.setdefault(tuple(sorted(item.items())), item)
    return list(unique.values())[:10]
