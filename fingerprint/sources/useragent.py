"""User-Agent parsing through ``user-agents``, cached as a wrapper (after ua-parser 1.0).

``user_agents.parse`` costs about 1 ms per new string; real logs repeat a few
thousand strings, so a bounded LRU in front of it makes the steady state a dict hit.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import user_agents

from fingerprint.features.records import UserAgentInfo

UserAgentResolver = Callable[[str], UserAgentInfo]

# The UA's OS family to the platform names of SESSION-LOG.md.
_PLATFORMS = {
    "android": "android",
    "ios": "ios",
    "ipados": "ios",
    "harmonyos": "harmonyos",
    "windows": "windows",
    "mac os x": "macos",
    "macos": "macos",
    "linux": "linux",
    "ubuntu": "linux",
    "chrome os": "chromeos",
}

_GENERIC_BRANDS = {"generic", "generic_android", "generic_inettv", "unknown", "other"}


def parse_user_agent(text: str) -> UserAgentInfo:
    """Uncached: one ``user_agents.parse`` call turned into a frozen record."""
    parsed = user_agents.parse(text)
    os_family = parsed.os.family if parsed.os.family != "Other" else None
    platform = _platform(text, os_family)
    brand = parsed.device.brand
    model = parsed.device.model
    return UserAgentInfo(
        platform=platform,
        os_family=os_family,
        os_version=parsed.os.version_string or None,
        browser=parsed.browser.family if parsed.browser.family != "Other" else None,
        browser_version=parsed.browser.version_string or None,
        device_brand=None if not brand or brand.lower() in _GENERIC_BRANDS else brand,
        device_model=model or None,
        is_mobile=bool(parsed.is_mobile),
        is_tablet=bool(parsed.is_tablet),
        is_pc=bool(parsed.is_pc),
        is_bot=bool(parsed.is_bot),
    )


def _platform(text: str, os_family: str | None) -> str | None:
    # HarmonyOS browsers still say "Android" in the OS token; the marker wins.
    if "HarmonyOS" in text or "OpenHarmony" in text:
        return "harmonyos"
    if os_family is None:
        return None
    return _PLATFORMS.get(os_family.lower())


def cached_resolver(resolver: UserAgentResolver, maxsize: int = 16_384) -> UserAgentResolver:
    """Wrap any resolver in a thread-safe LRU cache."""
    return lru_cache(maxsize=maxsize)(resolver)
