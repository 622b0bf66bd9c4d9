"""User-Agent parsing with ``user-agents`` semantics, cached as a wrapper (after ua-parser 1.0).

``user_agents.parse`` runs ua-parser's legacy ``user_agent_parser.Parse``: about 1,270
Python regexes tried in order, 0.7-0.9 ms for a string it has not seen. Two things make
a first-seen string cheap without changing any result:

* The cold parse asks RE2 (``google-re2``, when installed) which of those regexes match,
  then runs ua-parser's *own* parser objects on just those, in their order, with the
  legacy loop and defaults: the same code computes the same fields, it only skips the
  regexes that cannot match (about 50 µs instead of 0.7-0.9 ms). On printable-ASCII
  strings the regex syntax of the builtin set means the same to RE2 and to Python's
  ``re`` (tests/test_useragent_speed.py audits it); other strings take the legacy path.
* :func:`cached_resolver` keys its memo on :func:`normalise_user_agent`, which rewrites
  the per-login tokens of WeChat, QQ and Alipay UAs (``NetType/4G``, ``Language/en``,
  ``MMWEBID/4508``, ``Process/appbrand0``, ``AlipayDefined(nt:5G,``) to one canonical
  value, so a phone switching from Wi-Fi to 5G is a cache hit. No builtin regex and
  no ``user-agents`` property reads those values (proven on every fixture UA and on
  hand-written variants by the same test file).
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import user_agents
from ua_parser import user_agent_parser
from user_agents.parsers import (
    UserAgent,
    parse_browser,
    parse_device,
    parse_operating_system,
)

from fingerprint.memo import BoundedMemo
from fingerprint.model import UserAgentInfo

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

# Per-login tokens and the only values rewritten (anything else is left alone):
# WeChat/QQ "NetType/", WeChat "Language/" (zh_CN, en) and Alipay's (zh-Hans),
# WeChat's per-install "MMWEBID/<n>" and web-view "Process/", Alipay's "(nt:".
_VOLATILE = re.compile(
    r" (NetType/|Language/|MMWEBID/|Process/|AlipayDefined\(nt:)"
    r"(?:WIFI|[2-5]G|UNKNOWN|[a-z]{2}(?:_[A-Z]{2}|-Han[st])?|\d{1,6}|tools(?:mp)?|appbrand\d)"
    r"(?=[ ,]|$)"
)
_CANONICAL = {
    "NetType/": " NetType/WIFI",
    "Language/": " Language/zh_CN",
    "MMWEBID/": " MMWEBID/1000",
    "Process/": " Process/toolsmp",
    "AlipayDefined(nt:": " AlipayDefined(nt:WIFI",
}


def _canonical(match: re.Match[str]) -> str:
    return _CANONICAL[match[1]]


def normalise_user_agent(text: str) -> str:
    """``text`` with its volatile tokens set to one canonical value (see ``_VOLATILE``).

    Only a cache key: :func:`parse_user_agent` gives the same record for both strings.
    """
    if "NetType/" in text or "Language/" in text:
        return _VOLATILE.sub(_canonical, text)
    return text


def parse_user_agent(text: str) -> UserAgentInfo:
    """Uncached: ``user_agents.parse(text)`` turned into a frozen record (RE2-prefiltered)."""
    backend = _prefilter()
    if backend is not None and text.isascii() and text.isprintable():
        return _info(text, backend.parse(text))
    return _info(text, user_agents.parse(text))


def parse_user_agent_legacy(text: str) -> UserAgentInfo:
    """Uncached, one plain ``user_agents.parse`` call: the reference the fast path equals."""
    return _info(text, user_agents.parse(text))


def _info(text: str, parsed: Any) -> UserAgentInfo:
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


class _Prefilter:
    """ua-parser's legacy parse, run only on the regexes RE2 says match.

    ``user_agent_parser.Parse`` tries every parser in order and keeps the first whose
    family is non-empty; a parser whose regex does not match returns all ``None`` and
    is passed over. So running, in the same order, only the parsers whose regex matches
    gives the same answer; when none gives a family, the loop variables are those of
    the last parser, which is run as the legacy loop would. The dict building below
    is ``_ParseUserAgent``, ``_ParseOS`` and ``_ParseDevice`` of ua-parser 1.0, and the
    object is what ``user_agents.parsers.UserAgent.__init__`` builds from it.
    """

    def __init__(self, re2: Any) -> None:
        self._ua = _Candidates(re2, user_agent_parser.USER_AGENT_PARSERS)
        self._os = _Candidates(re2, user_agent_parser.OS_PARSERS)
        self._device = _Candidates(re2, user_agent_parser.DEVICE_PARSERS)

    def parse(self, text: str) -> Any:
        family, v1, v2, v3 = self._ua.first(text)
        os, os_v1, os_v2, os_v3, os_v4 = self._os.first(text)
        device, brand, model = self._device.first(text)
        parsed = UserAgent.__new__(UserAgent)
        parsed.ua_string = text
        parsed.os = parse_operating_system(
            family=os or "Other", major=os_v1, minor=os_v2, patch=os_v3, patch_minor=os_v4
        )
        parsed.browser = parse_browser(
            family=family or "Other", major=v1 or None, minor=v2 or None, patch=v3 or None
        )
        parsed.device = parse_device(
            family="Other" if device is None else device, brand=brand, model=model
        )
        return parsed


class _Candidates:
    """One domain's parsers and an RE2 filter over their regexes, index for index."""

    def __init__(self, re2: Any, parsers: Sequence[Any]) -> None:
        if not parsers:
            raise ValueError("no parsers")
        self._parsers = list(parsers)
        self._filter = re2.Filter()
        for parser in self._parsers:
            pattern: re.Pattern[str] = parser.user_agent_re
            options = re2.Options()
            options.case_sensitive = not pattern.flags & re.IGNORECASE
            self._filter.Add(pattern.pattern, options)
        self._filter.Compile()

    def first(self, text: str) -> tuple[Any, ...]:
        parsers = self._parsers
        for index in sorted(self._filter.Match(text) or ()):
            found: tuple[Any, ...] = parsers[index].Parse(text)
            if found[0]:
                return found
        last: tuple[Any, ...] = parsers[-1].Parse(text)
        return last


_prefilter_lock = threading.Lock()
_prefilter_state: list[_Prefilter | None] = []  # empty until built (or found missing)


def _prefilter() -> _Prefilter | None:
    """The RE2 prefilter, built once (about 0.2 s); None without ``google-re2``."""
    if _prefilter_state:
        return _prefilter_state[0]
    with _prefilter_lock:
        if not _prefilter_state:
            try:
                built: _Prefilter | None = _Prefilter(importlib.import_module("re2"))
            except Exception:  # not installed, or a regex it cannot take: legacy path
                built = None
            _prefilter_state.append(built)
    return _prefilter_state[0]


def parser_backend() -> str:
    """``"re2-prefilter"`` or ``"legacy"``: which path a printable-ASCII UA takes."""
    return "re2-prefilter" if _prefilter() is not None else "legacy"


def cached_resolver(
    resolver: UserAgentResolver, maxsize: int = 16_384, *, normalise: bool | None = None
) -> UserAgentResolver:
    """Wrap any resolver in a thread-safe bounded memo (:mod:`fingerprint.memo`).

    ``normalise`` keys the cache on :func:`normalise_user_agent` (the resolver then sees
    the normalised string); by default only for :func:`parse_user_agent`, whose results
    are proven not to depend on those tokens. Wrapping :func:`parse_user_agent` also
    builds its RE2 prefilter now rather than on the first login.
    """
    memo: BoundedMemo[str, UserAgentInfo] = BoundedMemo(maxsize, resolver)
    if resolver is parse_user_agent:
        _prefilter()
    if not (resolver is parse_user_agent if normalise is None else normalise):
        return memo.__getitem__

    # The exact string first: normalising costs ~10 µs on a WeChat UA, a hit ~0.2 µs.
    # A string not seen verbatim is looked up by its normalised form.
    by_text: BoundedMemo[str, UserAgentInfo] = BoundedMemo(
        maxsize, lambda text: memo[normalise_user_agent(text)]
    )
    return by_text.__getitem__
