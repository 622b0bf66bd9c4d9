"""UA parsing: the fast paths give exactly what ``user_agents.parse`` gives.

Two claims of fingerprint/sources/useragent.py are checked here:

* the cache-key normaliser (``NetType/``, ``Language/``, ``MMWEBID/``, ``Process/``,
  Alipay's ``nt:``) never changes a parse: every distinct UA of the fixtures and
  hand-written WeChat/QQ/Alipay variants parse the same raw and normalised, and no
  single builtin regex of ua-parser sees a difference;
* the RE2 prefilter returns the legacy parse, field for field.

How much faster it is cold, and what the normaliser and a cache hit cost, is
measured, not asserted (timings are no test): ``python tests/test_useragent_speed.py``
prints the figures.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import user_agents
from ua_parser import user_agent_parser

from fingerprint.sources import useragent
from fingerprint.sources.useragent import (
    cached_resolver,
    normalise_user_agent,
    parse_user_agent,
    parse_user_agent_legacy,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FIXTURE_FILES = ("labelled.jsonl", "sample.jsonl", "cases.jsonl")


def _user_agents_in(value: Any) -> Iterator[str]:
    """Every ``user_agent`` string in a decoded line (cases.jsonl nests them in sessions)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "user_agent" and isinstance(item, str):
                yield item
            else:
                yield from _user_agents_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _user_agents_in(item)


def fixture_uas(*names: str) -> list[str]:
    """Distinct UA strings of the fixture files, first-seen order (bad lines skipped)."""
    found: dict[str, None] = {}
    for name in names or FIXTURE_FILES:
        for line in (FIXTURES / name).read_bytes().splitlines():
            try:
                decoded = json.loads(line)
            except ValueError:  # sample.jsonl holds deliberately broken lines
                continue
            found.update(dict.fromkeys(_user_agents_in(decoded)))
    return list(found)


# Hand-written shapes of public WeChat, QQ and Alipay UAs; the fields vary per login.
TEMPLATES = (
    # WeChat on Android, XWEB web view, with the per-install MMWEBID.
    "Mozilla/5.0 (Linux; Android 13; 23049RAD8C Build/TKQ1.221114.001; wv) AppleWebKit/537.36"
    " (KHTML, like Gecko) Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160083"
    " MMWEBSDK/20230303 MMWEBID/{webid} MicroMessenger/8.0.34.2340(0x2800225F) WeChat/arm64"
    " Weixin NetType/{net} Language/{lang} ABI/arm64",
    # WeChat on Android, TBS web view, with the web-view process.
    "Mozilla/5.0 (Linux; Android 10; WLZ-AL10 Build/HUAWEIWLZ-AL10; wv) AppleWebKit/537.36"
    " (KHTML, like Gecko) Version/4.0 Chrome/77.0.3865.120 MQQBrowser/6.2 TBS/045513 Mobile"
    " Safari/537.36 MMWEBID/{webid} MicroMessenger/7.0.22.1820(0x2700163B) Process/{proc}"
    " WeChat/arm64 Weixin NetType/{net} Language/{lang} ABI/arm64",
    # WeChat mini program on Android.
    "Mozilla/5.0 (Linux; Android 15; PJZ110 Build/AP3A.240617.008; wv) AppleWebKit/537.36"
    " (KHTML, like Gecko) Version/4.0 Chrome/130.0.6723.103 Mobile Safari/537.36 XWEB/1300289"
    " MMWEBSDK/20241103 MMWEBID/{webid} MicroMessenger/8.0.55.2780(0x28003737) WeChat/arm64"
    " Weixin GPVersion/1 NetType/{net} Language/{lang} ABI/arm64 MiniProgramEnv/android",
    # WeChat on a HarmonyOS phone (the platform comes from the marker, not the regexes).
    "Mozilla/5.0 (Linux; Android 12; HarmonyOS; NOH-AN00; HMSCore 6.12.0.302) AppleWebKit/537.36"
    " (KHTML, like Gecko) Chrome/99.0.4844.88 Mobile Safari/537.36 MMWEBID/{webid}"
    " MicroMessenger/8.0.47.2560(0x28002F35) WeChat/arm64 Weixin NetType/{net}"
    " Language/{lang} ABI/arm64",
    # WeChat on iPhone and iPad; once with NetType last.
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.44(0x18002c2d) NetType/{net}"
    " Language/{lang}",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Mobile/15E148 MicroMessenger/8.0.42(0x18002a2d) NetType/{net} Language/{lang}",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 15_7_9 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/{net}",
    # WeChat on Windows and macOS.
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/107.0.0.0 Safari/537.36 NetType/{net} MicroMessenger/7.0.20.1781(0x6700143B)"
    " WindowsWechat(0x6309092b) XWEB/8555 Flue",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Mobile/15E148 MicroMessenger/6.8.0(0x16080000) NetType/{net} Language/{lang}"
    " Branch/Br_trunk MiniProgramEnv/Mac",
    # QQ on Android and iPhone, and TIM.
    "Mozilla/5.0 (Linux; Android 13; PHB110 Build/TP1A.220905.001; wv) AppleWebKit/537.36"
    " (KHTML, like Gecko) Version/4.0 Chrome/109.0.5414.86 MQQBrowser/6.2 TBS/047205 Mobile"
    " Safari/537.36 V1_AND_SQ_8.9.80_4614_YYB_D QQ/8.9.80.12440 NetType/{net} WebP/0.3.0"
    " AppId/537176863 Pixel/1080 StatusBarHeight/96 SimpleUISwitch/0 QQTheme/1000",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Mobile/15E148 QQ/8.9.78.614 V1_IPH_SQ_8.9.78_1_APP_A Pixel/1170"
    " Core/WKWebView Device/Apple(iPhone 13) NetType/{net} QBWebViewType/1 WKType/1",
    "Mozilla/5.0 (Linux; Android 8.1.0; Redmi Note 5 Build/OPM1.171019.011; wv)"
    " AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/66.0.3359.158 Mobile"
    " Safari/537.36 V1_AND_SQ_7.1.0_0_TIM_D TIM2.0/2.1.5.1754 QQ/6.5.5 NetType/{net}"
    " WebP/0.4.1 Pixel/1080",
    # Alipay on Android and iPhone.
    "Mozilla/5.0 (Linux; Android 13; SM-G9980 Build/TP1A.220624.014; wv) AppleWebKit/537.36"
    " (KHTML, like Gecko) Version/4.0 Chrome/107.0.5304.105 Mobile Safari/537.36"
    " AlipayDefined(nt:{nt},ws:360|0|3.0) AliApp(AP/10.5.36.8000) AlipayClient/10.5.36.8000"
    " Language/{alang} useStatusBar/true isConcaveScreen/true Region/CN",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Mobile/15E148 Ariver/1.1.0 AliApp(AP/10.5.30.6000) Nebula WK"
    " RVKType(1) AlipayDefined(nt:{nt},ws:390|780|3.0) AlipayClient/10.5.30.6000 Alipay"
    " Language/{alang} Region/CN NebulaX/1.0.0",
)
VALUES = {
    "net": ("WIFI", "2G", "3G", "4G", "5G", "UNKNOWN"),
    "lang": ("zh_CN", "zh_TW", "zh_HK", "en", "en_US", "ja"),
    "alang": ("zh-Hans", "zh-Hant", "en"),
    "webid": ("4508", "1", "999999"),
    "proc": ("toolsmp", "tools", "appbrand0", "appbrand4"),
    "nt": ("WIFI", "4G", "5G", "3G", "2G", "UNKNOWN"),
}


def variants(template: str) -> list[str]:
    """The template with each field run through its values, one field at a time."""
    fields = [name for name in VALUES if "{" + name + "}" in template]
    base = {name: VALUES[name][0] for name in fields}
    out = [template.format(**base)]
    for name in fields:
        for value in VALUES[name][1:]:
            out.append(template.format(**{**base, name: value}))
    # and every field at its last value at once
    out.append(template.format(**{name: VALUES[name][-1] for name in fields}))
    return out


HAND_WRITTEN = [ua for template in TEMPLATES for ua in variants(template)]
FAST = pytest.mark.skipif(
    useragent.parser_backend() != "re2-prefilter", reason="google-re2 not installed"
)


def test_fixture_files_hold_the_expected_shapes() -> None:
    uas = fixture_uas()
    assert len(uas) > 400
    assert sum("NetType/" in ua for ua in uas) > 300
    assert len(fixture_uas("cases.jsonl")) >= 5  # nested under "sessions"


def test_normaliser_collapses_only_the_listed_values() -> None:
    wifi, four_g = HAND_WRITTEN[0], HAND_WRITTEN[0].replace("NetType/WIFI", "NetType/4G")
    assert wifi != four_g and normalise_user_agent(wifi) == normalise_user_agent(four_g)
    for template in TEMPLATES:
        keys = {normalise_user_agent(ua) for ua in variants(template)}
        assert len(keys) == 1, template
    plain = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.0.0 Safari/537.36"
    assert normalise_user_agent(plain) is plain
    # Values outside the list, or without a space before the token, are left alone.
    for text in (
        "X NetType/Mobile Language/zh_CN",
        "X NetType/4Gx",
        "X Language/klingon",
        "X/NetType/4G",
        "X MMWEBID/1234567",
        "X Process/main",
    ):
        assert normalise_user_agent(text) == text, text


def test_fixture_uas_parse_the_same_raw_and_normalised() -> None:
    uas = fixture_uas()
    changed = 0
    for ua in uas:
        key = normalise_user_agent(ua)
        changed += key != ua
        reference = parse_user_agent_legacy(ua)
        assert parse_user_agent_legacy(key) == reference, ua
        assert parse_user_agent(key) == reference, ua
        assert parse_user_agent(ua) == reference, ua
    assert changed > 150  # the NetType/4G, 5G ... shapes


def test_hand_written_variants_parse_the_same() -> None:
    for template in TEMPLATES:
        group = variants(template)
        reference = parse_user_agent_legacy(group[0])
        assert reference.browser is not None and reference.os_family is not None, template
        for ua in group:
            assert parse_user_agent_legacy(ua) == reference, ua
            assert parse_user_agent(ua) == reference, ua
            assert parse_user_agent(normalise_user_agent(ua)) == reference, ua


def _regex_results(text: str) -> list[tuple[str | None, ...] | None]:
    parsers = [
        *user_agent_parser.USER_AGENT_PARSERS,
        *user_agent_parser.OS_PARSERS,
        *user_agent_parser.DEVICE_PARSERS,
    ]
    results: list[tuple[str | None, ...] | None] = []
    for parser in parsers:
        match = parser.user_agent_re.search(text)
        results.append(None if match is None else match.groups())
    return results


def test_no_builtin_regex_sees_the_normalised_tokens() -> None:
    """Stronger than equal results: every one of ua-parser's regexes matches the raw and
    the normalised string alike, with the same groups (what the parse is built from)."""
    texts = [ua for ua in fixture_uas() + HAND_WRITTEN if normalise_user_agent(ua) != ua]
    assert len(texts) > 250
    for ua in texts:
        assert _regex_results(ua) == _regex_results(normalise_user_agent(ua)), ua


def test_user_agents_properties_do_not_read_the_tokens() -> None:
    # The substrings user_agents and _platform look for in the raw string.
    needles = (
        "Mobile Safari",
        "J2ME",
        "MIDP",
        "iPhone;",
        "Googlebot-Mobile",
        "NokiaBrowser",
        "Mobile",
        "Touch",
        "Windows NT",
        "Silk",
        "Maemo",
        "Linux",
        "X11",
        "HarmonyOS",
        "OpenHarmony",
    )
    for ua in fixture_uas() + HAND_WRITTEN:
        key = normalise_user_agent(ua)
        assert [n in ua for n in needles] == [n in key for n in needles], ua


def _mutated(uas: list[str]) -> list[str]:
    """Fixture UAs with other device models, odd spacing included (device regexes)."""
    models = ("SM-G9980", "Redmi Note 5", "MI 8 ", "  PHB110", "HUAWEI P30 Pro", "KFTT")
    model_at = re.compile(r"Android [\d.]+; ([^;)]*?)(?: Build/[^;)]*)?(?=[;)])")
    out = []
    for ua in uas[::4]:
        found = model_at.search(ua)
        if found:
            out += [ua[: found.start(1)] + model + ua[found.end(1) :] for model in models]
    return out


@FAST
def test_prefilter_gives_the_legacy_parse_field_for_field() -> None:
    backend = useragent._prefilter()
    assert backend is not None
    uas = fixture_uas()
    for ua in [*uas, *HAND_WRITTEN, *_mutated(uas)]:
        fast, slow = backend.parse(ua), user_agents.parse(ua)
        assert (fast.os, fast.browser, fast.device) == (slow.os, slow.browser, slow.device), ua
        assert parse_user_agent(ua) == parse_user_agent_legacy(ua), ua


def test_builtin_regexes_use_only_syntax_re2_reads_like_python() -> None:
    """The prefilter is exact because, on printable ASCII, these constructs match the same
    in RE2 and in Python's re. A new ua-parser regex set must keep to them."""
    escapes = set(r"d.)-(/bs+wS[ \]*$!?|")
    quantifier = re.compile(r"\{\d+(,\d*)?\}")
    parsers = [
        *user_agent_parser.USER_AGENT_PARSERS,
        *user_agent_parser.OS_PARSERS,
        *user_agent_parser.DEVICE_PARSERS,
    ]
    assert len(parsers) > 1000
    for parser in parsers:
        pattern: str = parser.user_agent_re.pattern
        assert pattern.isascii(), pattern
        assert parser.user_agent_re.flags & ~(re.UNICODE | re.IGNORECASE) == 0, pattern
        assert set(re.findall(r"\\(.)", pattern)) <= escapes, pattern
        assert "(?" not in pattern.replace("(?:", ""), pattern  # no lookaround, no flags
        assert "[:" not in pattern.replace("[: ]", ""), pattern  # no POSIX classes
        for braces in re.findall(r"\{[^}]*\}", pattern):
            assert quantifier.fullmatch(braces), pattern


@FAST
def test_other_strings_take_the_legacy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = useragent._prefilter()
    assert backend is not None
    calls: list[str] = []

    def spy(text: str) -> Any:
        calls.append(text)
        return user_agents.parse(text)

    monkeypatch.setattr(backend, "parse", spy)
    odd = (
        "Mozilla/5.0 (Linux; Android 13; 华为 Mate 60) Chrome/120 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android ١٣; V2218A) Chrome/120 Mobile Safari/537.36",
        "Mozilla/5.0 (X11; Linux x86_64)\n Chrome/120",
        "Mozilla/5.0\t(Windows NT 10.0) Chrome/120",
    )
    for ua in odd:
        assert parse_user_agent(ua) == parse_user_agent_legacy(ua)
    assert calls == []
    parse_user_agent(HAND_WRITTEN[0])
    assert calls == [HAND_WRITTEN[0]]


def test_without_re2_the_legacy_path_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(useragent, "_prefilter_state", [None])
    assert useragent.parser_backend() == "legacy"
    for ua in HAND_WRITTEN[:5]:
        assert parse_user_agent(ua) == parse_user_agent_legacy(ua)


def test_cached_resolver_keys_parse_user_agent_on_the_normalised_string() -> None:
    resolve = cached_resolver(parse_user_agent, maxsize=64)
    wifi, five_g = variants(TEMPLATES[0])[0], variants(TEMPLATES[0])[4]
    assert wifi != five_g
    assert resolve(five_g) is resolve(wifi)
    # Other resolvers see the raw string unless asked.
    seen: list[str] = []

    def counting(text: str) -> Any:
        seen.append(text)
        return parse_user_agent(text)

    raw = cached_resolver(counting, maxsize=64)
    raw(wifi)
    raw(five_g)
    assert seen == [wifi, five_g]
    keyed = cached_resolver(counting, maxsize=64, normalise=True)
    seen.clear()
    keyed(wifi)
    keyed(five_g)
    assert seen == [normalise_user_agent(wifi)]


# --- speed -----------------------------------------------------------------------------


def _clear_legacy_cache() -> None:
    cache = getattr(user_agent_parser, "_PARSE_CACHE", None)
    if cache is not None:
        cache.clear()


def cold_times(parse: Callable[[str], Any], uas: list[str], rounds: int = 1) -> list[float]:
    """Seconds per call with nothing cached (ua-parser's own 200-entry cache cleared)."""
    times = []
    for _ in range(rounds):
        for ua in uas:
            _clear_legacy_cache()
            start = time.perf_counter()
            parse(ua)
            times.append(time.perf_counter() - start)
    return times


def _report() -> None:  # pragma: no cover - run by hand
    def micro(times: list[float]) -> str:
        ordered = sorted(times)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return f"median {statistics.median(ordered) * 1e6:7.1f} µs  p99 {p99 * 1e6:7.1f} µs"

    rows = [ua for name in ("labelled.jsonl",) for ua in _all_rows(name)]
    distinct = fixture_uas("labelled.jsonl")
    print(f"labelled.jsonl: {len(rows)} UAs, {len(distinct)} distinct, ", end="")
    print(f"{len({normalise_user_agent(ua) for ua in distinct})} distinct normalised")
    start = time.perf_counter()
    backend = useragent.parser_backend()
    print(f"backend: {backend} (built in {time.perf_counter() - start:.3f} s)")
    fresh = [f"{ua} Probe/{i}" for i, ua in enumerate(distinct)]
    print("cold, legacy  ", micro(cold_times(parse_user_agent_legacy, distinct, 3)))
    print("cold, current ", micro(cold_times(parse_user_agent, distinct, 3)))
    print("never seen, legacy ", micro(cold_times(parse_user_agent_legacy, fresh[:100])))
    print("never seen, current", micro(cold_times(parse_user_agent, fresh[100:200])))
    resolve = cached_resolver(parse_user_agent)
    for ua in rows:
        resolve(ua)
    print("cached hit    ", micro(_times(resolve, rows)))
    print("normaliser    ", micro(_times(normalise_user_agent, rows)))


def _times(call: Callable[[str], Any], uas: list[str]) -> list[float]:
    """Seconds per call, caches as they are."""
    times = []
    for ua in uas:
        start = time.perf_counter()
        call(ua)
        times.append(time.perf_counter() - start)
    return times


def _all_rows(name: str) -> list[str]:
    rows = []
    for line in (FIXTURES / name).read_bytes().splitlines():
        try:
            rows += list(_user_agents_in(json.loads(line)))
        except ValueError:
            continue
    return rows


if __name__ == "__main__":
    _report()
