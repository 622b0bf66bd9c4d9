"""Device features: the User-Agent merged with the SDK's device block (the SDK wins)."""

from __future__ import annotations

from fingerprint.features.records import DeviceFeatures, UserAgentInfo
from fingerprint.rules import DevicesFile, compile_rule_regex
from fingerprint.session import Session
from fingerprint.sources.useragent import UserAgentResolver


class BrandNormalizer:
    """Spellings and model codes to one canonical lowercase brand (HUAWEI/华为 -> huawei)."""

    def __init__(self, devices: DevicesFile) -> None:
        self._aliases: dict[str, str] = {}
        for canonical, spellings in devices.brand_aliases.items():
            self._aliases[canonical.casefold()] = canonical
            for spelling in spellings:
                self._aliases[spelling.casefold()] = canonical
        self._model_patterns = [
            (compile_rule_regex(p.pattern), p.brand) for p in devices.model_brand_patterns
        ]
        self.mainstream = frozenset(b.casefold() for b in devices.mainstream_brands)

    def brand(self, raw: str | None) -> str | None:
        if not raw:
            return None
        text = raw.strip().casefold()
        return self._aliases.get(text, text) if text else None

    def brand_from_model(self, model: str | None) -> str | None:
        if not model:
            return None
        for pattern, brand in self._model_patterns:
            if pattern.search(model):
                return brand
        return None


_DEVICE_CLASS_ORDER = (("is_bot", "bot"), ("is_tablet", "tablet"), ("is_mobile", "mobile"))


def extract_device(
    session: Session, resolve_ua: UserAgentResolver, brands: BrandNormalizer
) -> DeviceFeatures:
    ua = resolve_ua(session.user_agent) if session.user_agent else None
    sdk = session.device
    sdk_raw = (sdk.brand or sdk.manufacturer) if sdk else None
    sdk_brand = brands.brand(sdk_raw)
    model = (sdk.model if sdk and sdk.model else None) or (ua.device_model if ua else None)
    brand = sdk_brand or brands.brand(ua.device_brand if ua else None)
    brand = brand or brands.brand_from_model(model)
    platform = (sdk.platform if sdk and sdk.platform else None) or (ua.platform if ua else None)
    return DeviceFeatures(
        device_id=sdk.device_id if sdk else None,
        platform=platform,
        ua_platform=ua.platform if ua else None,
        os_version=(sdk.os_version if sdk and sdk.os_version else None)
        or (ua.os_version if ua else None),
        browser=ua.browser if ua else None,
        brand=brand,
        brand_raw=sdk_raw or (ua.device_brand if ua else None),
        sdk_brand=sdk_brand,
        model=model,
        mainstream_brand=None if brand is None else brand in brands.mainstream,
        device_class=_device_class(ua, platform),
        ua=ua,
    )


def _device_class(ua: UserAgentInfo | None, platform: str | None) -> str | None:
    if ua is not None:
        for attribute, name in _DEVICE_CLASS_ORDER:
            if getattr(ua, attribute):
                return name
        if ua.is_pc:
            return "pc"
    if platform in ("android", "ios", "harmonyos"):
        return "mobile"
    if platform in ("windows", "macos", "linux"):
        return "pc"
    return None
