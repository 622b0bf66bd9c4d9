"""``consistency``: the session's own statements disagree with each other.

The UA's platform against the SDK's, and the build fingerprint's brand against the
device brand. Spoofed or modified devices rarely keep every field in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from fingerprint.checks.base import Check, CheckContext, Hit, NotEvaluated, Outcome
from fingerprint.features.device import BrandNormalizer
from fingerprint.rules import RuleSet

# HarmonyOS apps often send an Android UA; Android-compatible platforms count as one.
_PLATFORM_FAMILIES = {"harmonyos": "android", "android": "android"}


@dataclass(frozen=True)
class ConsistencyCheck(Check):
    name: ClassVar[str] = "consistency"
    device_scoped: ClassVar[bool] = True
    codes: ClassVar[tuple[str, ...]] = ("CON_PLATFORM_MISMATCH", "CON_BRAND_MISMATCH")

    brands: BrandNormalizer | None = None

    @classmethod
    def compile(cls, rules: RuleSet, config: dict[str, Any]) -> Check:
        return cls(**config, brands=BrandNormalizer(rules.devices))

    def evaluate(self, ctx: CheckContext) -> Outcome:
        device = ctx.session.device
        features = ctx.features.device
        sdk_platform = device.platform if device else None
        # "web" names the channel, not an OS: any desktop or mobile UA is consistent with it.
        can_compare_platform = (
            sdk_platform not in (None, "web") and features.ua_platform is not None
        )
        fingerprint_brand = _fingerprint_brand(device.build_fingerprint if device else None)
        can_compare_brand = fingerprint_brand is not None and features.sdk_brand is not None
        if not can_compare_platform and not can_compare_brand:
            return NotEvaluated("needs the SDK platform and a UA, or a build fingerprint and brand")
        hits = []
        if can_compare_platform and _family(sdk_platform) != _family(features.ua_platform):
            hits.append(
                Hit(
                    "CON_PLATFORM_MISMATCH",
                    {"sdk_platform": sdk_platform, "ua_platform": features.ua_platform},
                )
            )
        if can_compare_brand:
            canonical = self.brands.brand(fingerprint_brand) if self.brands else fingerprint_brand
            if canonical != features.sdk_brand:
                hits.append(
                    Hit(
                        "CON_BRAND_MISMATCH",
                        {"fingerprint_brand": fingerprint_brand, "brand": features.brand_raw},
                    )
                )
        return hits


def _family(platform: str | None) -> str | None:
    return _PLATFORM_FAMILIES.get(platform or "", platform)


def _fingerprint_brand(fingerprint: str | None) -> str | None:
    """``brand/product/device:release/id/incremental:type/tags`` -> brand."""
    if not fingerprint or "/" not in fingerprint:
        return None
    brand = fingerprint.split("/", 1)[0].strip()
    return brand or None
