"""``emulator``: the session runs in an Android/PC emulator or virtual device.

Definitive tells (a qemu property, an emulator's own file, socket, package or
library, an emulator build, a virtual hardware name, a VM app's marker, a cloud
phone's property) are critical on their own. Weak tells (a generic model name, an
x86 CPU, no sensors, no telephony, a battery pinned at full and charging) are low or
medium alone. They are fused by the *fact* each observes, so two tells that see the
same thing count once (docs/CALIBRATION.md): three independent facts are confident,
and so are two when one of them is an x86 CPU under the name of a maker that never
shipped x86 hardware (that phone cannot exist). One weak tell never blacklists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from fingerprint.checks.base import Check, CheckContext, Hit, NotEvaluated, Outcome
from fingerprint.checks.signatures import SignatureMatcher
from fingerprint.features.records import DeviceFeatures
from fingerprint.rules import (
    EmulatorSignature,
    RulePattern,
    RuleSet,
    Threshold,
    compile_rule_regex,
)
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
# What each weak tell observes. Tells of one fact count once in the fusion: a generic
# brand, model and fingerprint are one build identity; libhoudini (ARM translation)
# and an x86 ABI are one CPU.
_FIELD_FACT = {
    "build_fingerprint": "build identity",
    "hardware": "build identity",
    "board": "build identity",
    "model": "build identity",
    "brand": "build identity",
    "manufacturer": "build identity",
    "product": "build identity",
    "system_prop": "emulator properties",
    "file": "emulator files",
    "package": "emulator apps",
    "lib": "x86 cpu",
}
_HEURISTIC_FACT = {
    "EMU_X86_ABI": "x86 cpu",
    "EMU_NO_SENSORS": "sensors",
    "EMU_NO_TELEPHONY": "radio",
    "EMU_BATTERY_PINNED": "battery",
}
# Where Android init finds a hardware's own rc and fstab files (the name is ro.hardware).
_HW_FILE = (
    r"^/(?:(?:vendor|odm)/etc/(?:init/hw/)?)?"
    r"(?:fstab\.(?:{names})|init\.(?:{names})(?:\.[\w-]+)?\.rc|ueventd\.(?:{names})\.rc)$"
)
_SLASHES = re.compile(r"/{2,}")


def normalise_path(path: str) -> str:
    """The absolute path a probe names. SDKs probe with ``File("vmos.prop")``, which
    an app process resolves against ``/``; doubled and trailing slashes name the same
    file."""
    text = path.strip()
    if not text.startswith("/"):
        text = "/" + text
    if "//" in text:
        text = _SLASHES.sub("/", text)
    if len(text) > 1 and text.endswith("/"):
        text = text.rstrip("/") or "/"
    return text


@dataclass(frozen=True, slots=True)
class _Compiled:
    by_field: dict[str, SignatureMatcher[EmulatorSignature]]
    by_prop: dict[str, SignatureMatcher[EmulatorSignature]]
    # (folded key prefix, matcher): vendor property namespaces.
    prop_prefixes: tuple[tuple[str, SignatureMatcher[EmulatorSignature]], ...]
    prefix_tuple: tuple[str, ...]
    real_x86: tuple[tuple[str, RulePattern], ...]
    x86_makers: frozenset[str]
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
        "EMU_CLOUD_PHONE",
    )

    thresholds: ClassVar[dict[str, Threshold]] = {
        "weak_tells_for_high": Threshold(kind="count", minimum=1, maximum=20),
        "weak_tells_with_impossible_cpu": Threshold(kind="count", minimum=1, maximum=20),
    }

    # Independent weak facts that together are confident.
    weak_tells_for_high: int = 3
    # ... or this many when one is an x86 CPU under an ARM-only maker's name.
    weak_tells_with_impossible_cpu: int = 2
    compiled: _Compiled | None = None

    @classmethod
    def compile(cls, rules: RuleSet, config: dict[str, Any]) -> Check:
        by_field: dict[str, SignatureMatcher[EmulatorSignature]] = {}
        by_prop: dict[str, SignatureMatcher[EmulatorSignature]] = {}
        by_prefix: dict[str, SignatureMatcher[EmulatorSignature]] = {}
        for sig in (*rules.emulator.signatures, *_hardware_signatures(rules)):
            if sig.field == "system_prop":
                assert sig.key is not None
                table = by_prefix if sig.key_match == "prefix" else by_prop
                matcher = table.setdefault(sig.key.lower(), SignatureMatcher())
            else:
                matcher = by_field.setdefault(sig.field, SignatureMatcher())
            value = (
                normalise_path(sig.value)
                if sig.field == "file" and sig.match != "regex"
                else sig.value
            )
            matcher.add(sig.match, value, sig)
        real_x86 = tuple(
            (d.brand.casefold(), compile_rule_regex(d.model))
            for d in rules.emulator.real_x86_devices
        )
        direct = tuple(
            (field, by_field[field], props)
            for field, props in _FIELD_PROPS.items()
            if field in by_field
        )
        prefixes = tuple((key, matcher) for key, matcher in by_prefix.items() if key)
        compiled = _Compiled(
            by_field,
            # An empty key never names a property a session sends (it is not looked up).
            {key: matcher for key, matcher in by_prop.items() if key},
            prefixes,
            tuple(key for key, _ in prefixes),
            real_x86,
            frozenset(m.casefold() for m in rules.emulator.x86_makers),
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
            combined = self._combined([], heuristics)
            if combined is not None:
                heuristics.append(combined)
            return heuristics
        definitive: dict[str, list[dict[str, str]]] = {}
        weak: list[dict[str, str]] = []
        for field, key, text, sigs in matches:
            for sig in sigs:
                seen = {"product": sig.product, "field": field, "value": text[:200]}
                if key:
                    seen["key"] = key
                if sig.strength == "definitive":
                    code = sig.code or _DEFINITIVE_CODES[field]
                    definitive.setdefault(code, []).append(seen)
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
        if not definitive:
            combined = self._combined(unique_weak, heuristics)
            if combined is not None:
                hits.append(combined)
        return hits

    def _combined(self, weak: list[dict[str, str]], heuristics: list[Hit]) -> Hit | None:
        """EMU_WEAK_TELLS_COMBINED when the weak tells' independent facts suffice."""
        if len(weak) + len(heuristics) < self.weak_tells_with_impossible_cpu:
            return None
        facts: dict[str, list[str]] = {}
        for match in weak:
            facts.setdefault(_FIELD_FACT[match["field"]], []).append(
                f"{match['field']}:{match['value']}"
            )
        impossible_cpu = False
        for hit in heuristics:
            facts.setdefault(_HEURISTIC_FACT[hit.code], []).append(hit.code)
            if hit.code == "EMU_X86_ABI" and hit.evidence.get("maker_ships_x86") is False:
                impossible_cpu = True
        needed = self.weak_tells_with_impossible_cpu if impossible_cpu else self.weak_tells_for_high
        if len(facts) < needed:
            return None
        tells = [tell for group in facts.values() for tell in group]
        return Hit(
            "EMU_WEAK_TELLS_COMBINED",
            {
                "tells": tells,
                "count": len(tells),
                "facts": sorted(facts),
                "impossible_cpu": impossible_cpu,
            },
        )

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
            prefix_tuple = compiled.prefix_tuple
            for key, value in props.items():
                folded = key.lower()
                matcher = by_prop.get(folded)
                if matcher is not None:
                    sigs = matcher.match(value)
                    if sigs:
                        found.append(("system_prop", folded, value, sigs))
                if prefix_tuple and folded.startswith(prefix_tuple):
                    for prefix, namespace in compiled.prop_prefixes:
                        if folded.startswith(prefix):
                            sigs = namespace.match(value)
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
            files = [normalise_path(path) for path in device.files_present]
            _match_each(compiled.file, "file", files, found)
        if device.installed_packages and compiled.package is not None:
            _match_each(compiled.package, "package", device.installed_packages, found)
        return found

    def _heuristics(self, device: Device | None, features: DeviceFeatures) -> list[Hit]:
        hits: list[Hit] = []
        if device is None or features.platform not in (None, "android", "harmonyos"):
            return hits
        x86 = self._x86_abi(device, features.brand)
        if x86:
            assert self.compiled is not None
            brand = features.brand
            # Unknown makers are not judged: only a named ARM-only maker is impossible.
            ships_x86 = None if brand is None else brand in self.compiled.x86_makers
            hits.append(
                Hit(
                    "EMU_X86_ABI",
                    {"cpu_abi": x86, "model": device.model, "maker_ships_x86": ships_x86},
                )
            )
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


def _hardware_signatures(rules: RuleSet) -> list[EmulatorSignature]:
    """Each virtual hardware name as the signatures that observe it: the hardware and
    board fields (fed by ro.hardware, ro.boot.hardware, ro.board.platform) and the
    rc/fstab files init reads for that hardware."""
    sigs: list[EmulatorSignature] = []
    for hw in rules.emulator.virtual_hardware:
        names = re.escape(hw.name)
        patterns = (
            ("hardware", "equals", hw.name),
            ("board", "equals", hw.name),
            ("file", "regex", _HW_FILE.format(names=names)),
        )
        for field, match, value in patterns:
            sigs.append(
                EmulatorSignature.model_validate(
                    {
                        "product": hw.product,
                        "field": field,
                        "match": match,
                        "value": value,
                        "strength": "definitive",
                        "source": hw.source,
                        "code": hw.code,
                    }
                )
            )
    return sigs


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
