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
from fingerprint.features.records import DeviceFeatures
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
    # The device fields some signature covers, in _FIELD_PROPS order: (field, its
    # matcher, the system properties that also feed it). Fields no signature covers
    # are left out, so a login never reads or matches them.
    direct: tuple[tuple[str, SignatureMatcher[EmulatorSignature], tuple[str, ...]], ...]
    lib: SignatureMatcher[EmulatorSignature] | None
    file: SignatureMatcher[EmulatorSignature] | None
    package: SignatureMatcher[EmulatorSignature] | None
    model: SignatureMatcher[EmulatorSignature] | None


# (field, property key or "", text, the signatures it matches): one observed value
# that matched at least one signature.
_Match = tuple[str, str, str, tuple[EmulatorSignature, ...]]


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
        direct = tuple(
            (field, by_field[field], props)
            for field, props in _FIELD_PROPS.items()
            if field in by_field
        )
        compiled = _Compiled(
            by_field,
            # An empty key never names a property a session sends (it is not looked up).
            {key: matcher for key, matcher in by_prop.items() if key},
            real_x86,
            direct,
            by_field.get("lib"),
            by_field.get("file"),
            by_field.get("package"),
            by_field.get("model"),
        )
        return cls(**config, compiled=compiled)

    def evaluate(self, ctx: CheckContext) -> Outcome:
        features = ctx.features.device
        device = ctx.session.device
        ua_model = features.ua.device_model if features.ua else None
        if device is None and not ua_model:
            return NotEvaluated("no device block and no device model in the user agent")
        if features.platform in ("ios", "windows", "macos"):
            return NotEvaluated(f"no emulator signals for platform {features.platform}")
        matches = self._matches(ctx, device, ua_model)
        heuristics = self._heuristics(device, features)
        if not matches:
            # The usual device: no signature matched, so the hardware heuristics are
            # the only tells and there is no evidence to gather or deduplicate.
            if len(heuristics) >= self.weak_tells_for_high:
                tells = [h.code for h in heuristics]
                heuristics.append(
                    Hit("EMU_WEAK_TELLS_COMBINED", {"tells": tells, "count": len(tells)})
                )
            return heuristics
        definitive: dict[str, list[dict[str, str]]] = {}
        weak: list[dict[str, str]] = []
        for field, key, text, sigs in matches:
            for sig in sigs:
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
        unique_weak = _dedupe(weak)
        if weak:
            hits.append(Hit("EMU_WEAK_SIGNATURE", {"matches": unique_weak}))
        hits.extend(heuristics)
        # Each weak signature field and each hardware heuristic is one independent tell.
        if not definitive and len(unique_weak) + len(heuristics) >= self.weak_tells_for_high:
            tells = [f"{m['field']}:{m['value']}" for m in unique_weak]
            tells += [h.code for h in heuristics]
            hits.append(Hit("EMU_WEAK_TELLS_COMBINED", {"tells": tells, "count": len(tells)}))
        return hits

    def _matches(
        self, ctx: CheckContext, device: Device | None, ua_model: str | None
    ) -> list[_Match]:
        """Every observed value that matches a signature, in the order the evidence
        lists them: the UA model, loaded libraries, system properties, the device
        fields (each followed by the properties that feed it), files, packages."""
        compiled = self.compiled
        assert compiled is not None
        found: list[_Match] = []
        if ua_model and compiled.model is not None:
            sigs = compiled.model.match(ua_model)
            if sigs:
                found.append(("model", "", ua_model, sigs))
        app = ctx.session.app
        if app is not None and app.loaded_libs and compiled.lib is not None:
            _match_each(compiled.lib, "lib", app.loaded_libs, found)
        if device is None:
            return found
        props = device.system_props
        if props:
            by_prop = compiled.by_prop
            for key, value in props.items():
                folded = key.lower()
                matcher = by_prop.get(folded)
                if matcher is not None:
                    sigs = matcher.match(value)
                    if sigs:
                        found.append(("system_prop", folded, value, sigs))
        for field, matcher, feeding in compiled.direct:
            value = getattr(device, field)
            if value:
                sigs = matcher.match(value)
                if sigs:
                    found.append((field, "", value, sigs))
            if props:
                for prop in feeding:
                    prop_value = props.get(prop)
                    if prop_value and prop_value != value:
                        sigs = matcher.match(prop_value)
                        if sigs:
                            found.append((field, "", prop_value, sigs))
        if device.files_present and compiled.file is not None:
            _match_each(compiled.file, "file", device.files_present, found)
        if device.installed_packages and compiled.package is not None:
            _match_each(compiled.package, "package", device.installed_packages, found)
        return found

    def _heuristics(self, device: Device | None, features: DeviceFeatures) -> list[Hit]:
        hits: list[Hit] = []
        if device is None or features.platform not in (None, "android", "harmonyos"):
            return hits
        x86 = self._x86_abi(device, features.brand)
        if x86:
            hits.append(Hit("EMU_X86_ABI", {"cpu_abi": x86, "model": device.model}))
        handset = features.device_class != "tablet"
        if device.sensors is not None and not _has_motion_sensor(device.sensors):
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


def _match_each(
    matcher: SignatureMatcher[EmulatorSignature], field: str, texts: list[str], found: list[_Match]
) -> None:
    match = matcher.match
    for text in texts:
        sigs = match(text)
        if sigs:
            found.append((field, "", text, sigs))


def _has_motion_sensor(sensors: list[str]) -> bool:
    # Stops at the first motion sensor (usually the first name) instead of folding
    # every name into a set.
    return any(sensor.lower() in _MOTION_SENSORS for sensor in sensors)


def _products(found: list[dict[str, str]]) -> str:
    return ", ".join(dict.fromkeys(item["product"] for item in found))


def _dedupe(found: list[dict[str, str]]) -> list[dict[str, str]]:
    unique: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    for item in found:
        unique.setdefault(tuple(sorted(item.items())), item)
    return list(unique.values())[:10]
