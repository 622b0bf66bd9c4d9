"""The checks' per-value caches and precomputed tables answer as the plain code does,
and stay bounded however many distinct values arrive."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fingerprint import Checker, grading
from fingerprint.checks import ip_hopping, signatures, vpn_proxy
from fingerprint.checks.base import Hit
from fingerprint.checks.ip_hopping import IpHoppingCheck
from fingerprint.checks.signatures import SignatureMatcher
from fingerprint.checks.vpn_proxy import VpnProxyCheck, device_says_home
from fingerprint.grading import Grader
from fingerprint.history import LoginEvent
from fingerprint.report import Finding, Report
from fingerprint.rollup import AccountSummary
from fingerprint.rules import SEVERITIES, HomeCountry, Severity, load_rules
from fingerprint.session import Device, parse_block
from tests.conftest import make_session

RULES = load_rules()

# Names the rules care about, near misses, and the odd attacker-supplied one.
_INTERFACES = [
    "lo", "lo0", "wlan0", "rmnet_data0", "dummy0", "sit0", "ip6tnl0", "tunl0", "ccmni0",
    "en0", "awdl0", "llw0", "pdp_ip0", "ipsec0", "eth0", "radio0", "tun0", "tun12", "tap3",
    "ppp0", "wg0", "utun0", "utun3", "utun4", "utun17", "utunx", "nordlynx", "tailscale0",
    "clash-meta", "sing-box", "v4-rmnet", "clat4", "ztabc123", "TUN0", "Wintun", "",
]  # fmt: skip
interface_names = st.one_of(st.sampled_from(_INTERFACES), st.text(max_size=12))


def _vpn() -> VpnProxyCheck:
    check = VpnProxyCheck.compile(RULES, {})
    assert isinstance(check, VpnProxyCheck)
    return check


def _uncached(check: VpnProxyCheck, names: list[str]) -> tuple[list[str], list[str]]:
    return (
        [n for n in names if check._is_tunnel(n)],
        [n for n in names if check._extra_utun(n)],
    )


def _session_network(names: list[str]) -> Any:
    class _Network:
        vpn_active = False
        http_proxy = None
        interfaces = names

    class _Session:
        network = _Network()

    class _Ctx:
        session = _Session()

    return _Ctx()


@settings(max_examples=200)
@given(st.lists(interface_names, max_size=14))
def test_interface_cache_answers_as_the_regexes_do(names: list[str]) -> None:
    check = _vpn()
    for _ in range(2):  # the first pass fills the cache, the second reads it
        hits = check._device_view(_session_network(names))
        strong, extra = _uncached(check, names)
        by_code = {h.code: h.evidence["interfaces"] for h in hits}
        assert by_code.get("VPN_TUNNEL_INTERFACE", []) == strong[:10]
        assert by_code.get("VPN_EXTRA_UTUN", []) == (extra[:10] if not strong else [])


def test_interface_cache_is_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(vpn_proxy, "INTERFACE_CACHE_SIZE", 16)
    check = _vpn()
    names = [f"utun{i}" for i in range(100)] + [f"tun{i}" for i in range(100)]
    for start in range(0, len(names), 7):
        check._device_view(_session_network(names[start : start + 7]))
        assert len(check._interface_kinds) <= 16
        assert len(check._interface_lists) <= 16
    # Still right after the cache started over.
    hits = check._device_view(_session_network(["tun5", "utun9", "wlan0"]))
    assert [h.code for h in hits] == ["VPN_TUNNEL_INTERFACE"]
    assert hits[0].evidence["interfaces"] == ["tun5"]
    long_name = "tun" + "0" * 1_000
    check._device_view(_session_network([long_name]))
    assert long_name not in check._interface_kinds  # classified, not kept
    assert (long_name,) not in check._interface_lists
    many = [f"wlan{i}" for i in range(40)]
    check._device_view(_session_network(many))
    assert tuple(many) not in check._interface_lists  # a list longer than any phone's


def test_a_findings_interfaces_are_its_own() -> None:
    """The evidence takes a copy of the list memo's tunnels: a caller changing one
    report's evidence changes no later report."""
    check = _vpn()
    first = check._device_view(_session_network(["tun0", "wlan0"]))
    first[0].evidence["interfaces"].append("changed")
    again = check._device_view(_session_network(["tun0", "wlan0"]))
    assert again[0].evidence["interfaces"] == ["tun0"]


def _says_home_reference(device: Device, home: HomeCountry) -> dict[str, str] | None:
    """The original implementation, over the model's own properties."""
    tz = (device.timezone or "").strip()
    if tz.casefold() not in home.folded_time_zones:
        return None
    mcc = device.sim.mcc if device.sim else None
    locale = (device.locale or "").replace("_", "-").casefold()
    locale_home = (
        locale in home.folded_locales or locale.endswith(home.locale_suffix) if locale else None
    )
    mcc_home = mcc in home.mcc if mcc else None
    present = [v for v in (mcc_home, locale_home) if v is not None]
    if not present or not all(present):
        return None
    evidence = {"device_tz": tz}
    if mcc:
        evidence["sim_mcc"] = mcc
    if locale:
        evidence["locale"] = device.locale or ""
    return evidence


@settings(max_examples=300)
@given(
    st.one_of(st.none(), st.sampled_from(["Asia/Shanghai", " asia/shanghai ", "Asia/Tokyo", ""])),
    st.one_of(st.none(), st.sampled_from(["46000", "46011", "44010", "310260", "4", ""])),
    st.one_of(st.none(), st.sampled_from(["zh-CN", "zh_cn", "ZH-cn", "en-US", "ja-JP", "zh", ""])),
)
def test_folded_home_answers_as_the_rules_do(
    timezone: str | None, mcc_mnc: str | None, locale: str | None
) -> None:
    home = RULES.network.home_country
    sim = {"mcc_mnc": mcc_mnc} if mcc_mnc is not None else None
    device = parse_block(Device, {"timezone": timezone, "locale": locale, "sim": sim})
    expected = _says_home_reference(device, home)
    assert device_says_home(device, home) == expected
    assert vpn_proxy._says_home(device, _vpn()._home) == expected  # type: ignore[arg-type]


# --- the grader's memo ------------------------------------------------------------

CODES = list(RULES.codes.codes)


def _finding(code: str, severity: Severity | None = None) -> Finding:
    spec = RULES.codes.codes[code]
    return Finding(spec.check, code, severity or spec.severity, "m", "m", {"x": 1})


findings_lists = st.lists(
    st.builds(_finding, st.sampled_from(CODES), st.one_of(st.none(), st.sampled_from(SEVERITIES))),
    max_size=12,
)


@settings(max_examples=300)
@given(st.lists(findings_lists, min_size=1, max_size=6))
def test_grade_memo_answers_as_grading_afresh(batches: list[list[Finding]]) -> None:
    grader = Grader(RULES.grading)
    for findings in batches + batches:  # the second round reads the memo
        assert grader.grade(findings) == Grader(RULES.grading)._grade(findings)


def test_grade_memo_hands_each_caller_its_own_contributions() -> None:
    grader = Grader(RULES.grading)
    findings = [_finding("VPN_OS_FLAG"), _finding("BRD_OFF_BRAND")]
    first = grader.grade(findings)
    first.contributions.clear()
    assert (
        grader.grade(findings).contributions == Grader(RULES.grading)._grade(findings).contributions
    )


def test_grade_memo_is_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(grading, "GRADE_CACHE_SIZE", 8)
    grader = Grader(RULES.grading)
    for code in CODES:
        for severity in SEVERITIES:
            graded = grader.grade([_finding(code, severity)])
            assert graded == Grader(RULES.grading)._grade([_finding(code, severity)])
            assert len(grader._memo) <= 8


# --- the account roll-up's counting -----------------------------------------------


def _report(findings: list[Finding], minute: int) -> Report:
    graded = Grader(RULES.grading).grade(findings)
    return Report(
        session_id=f"s-{minute}",
        account_id="u-1",
        ts=datetime(2026, 11, 20, tzinfo=UTC) + timedelta(minutes=minute),
        grade=graded.grade,
        score=graded.score,
        blacklisted=graded.blacklisted,
        findings=tuple(findings),
        contributions=graded.contributions,
        not_evaluated={},
        features={"ip_province": "CN-GD"},
        device_component=graded.device_component,
    )


@settings(max_examples=200)
@given(st.lists(findings_lists, max_size=8))
def test_rollup_counts_as_counter_update_does(batches: list[list[Finding]]) -> None:
    summary = AccountSummary("u-1")
    checks: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    for minute, findings in enumerate(batches):
        summary.add(_report(findings, minute), "d-1", {g: i for i, g in enumerate("ABCDE")})
        checks.update({f.check for f in findings})
        codes.update(f.code for f in findings)
    assert summary.checks == checks
    assert list(summary.codes.items()) == list(codes.items())  # most_common breaks ties so
    assert summary.to_dict()["codes"] == dict(codes.most_common())


# --- ip_hopping's switch count before building anything ---------------------------


def _hopping_reference(check: IpHoppingCheck, path: list[LoginEvent]) -> Hit | None:
    """The plain implementation: every switch and province listed, then compared."""
    switches = [(a, b) for a, b in pairwise(path) if a.province != b.province]
    provinces = list(dict.fromkeys(e.province for e in path if e.province))
    if len(switches) < check.max_switches and len(provinces) < check.max_provinces:
        return None
    return Hit(
        "GEO_PROVINCE_HOPPING",
        {
            "switches": len(switches),
            "provinces": provinces,
            "window_hours": check.window_hours,
            "moves": [
                {"from": a.province, "to": b.province, "at": ip_hopping._iso(b.ts)}
                for a, b in switches[-10:]
            ],
        },
    )


def _event(ts: float, province: str | None) -> LoginEvent:
    return LoginEvent(ts, 0, "u-1", None, "1.2.3.4", province, None, None, None, False)


@settings(max_examples=400)
@given(
    st.lists(st.sampled_from(["CN-GD", "CN-BJ", "CN-SH", "CN-ZJ", "CN-SC", ""]), min_size=1),
    st.integers(1, 5),
    st.integers(1, 6),
)
def test_hopping_shortcut_answers_as_the_plain_walk(
    provinces: list[str], max_switches: int, max_provinces: int
) -> None:
    check = IpHoppingCheck(max_switches=max_switches, max_provinces=max_provinces)
    path = [_event(1.8e9 + 60 * i, p) for i, p in enumerate(provinces)]
    assert check._hopping(path) == _hopping_reference(check, path)


# --- the signature matcher's memo -------------------------------------------------

_SIGNATURE_TEXTS = ["goldfish", "Goldfish_x86", "ranchu", "vbox86", "qemu", "sdk_gphone", "", "x"]
signature_texts = st.one_of(st.sampled_from(_SIGNATURE_TEXTS), st.text(max_size=20))


def _matcher() -> SignatureMatcher[str]:
    matcher: SignatureMatcher[str] = SignatureMatcher()
    matcher.add("equals", "ranchu", "equals:ranchu")
    matcher.add("prefix", "Goldfish", "prefix:goldfish")
    matcher.add("contains", "vbox", "contains:vbox")
    matcher.add("regex", r"^sdk_g?phone", "regex:sdk")
    matcher.add("equals", "goldfish", "equals:goldfish")
    return matcher


@settings(max_examples=200)
@given(st.lists(signature_texts, max_size=20))
def test_signature_memo_answers_as_matching_afresh(texts: list[str]) -> None:
    matcher = _matcher()
    for text in texts + texts:  # the second round reads the memo
        assert matcher.match(text) == tuple(_matcher()._match(text))


def test_signature_memo_is_bounded_and_forgets_on_add(monkeypatch: Any) -> None:
    monkeypatch.setattr(signatures, "MATCH_CACHE_SIZE", 8)
    matcher = _matcher()
    for i in range(100):
        assert matcher.match(f"vbox{i}") == ("contains:vbox",)
        assert len(matcher._memo) <= 8
    assert matcher.match("x" * 10_000) == ()
    assert "x" * 10_000 not in matcher._memo  # long texts are matched, not kept
    assert matcher.match("nox") == ()
    matcher.add("contains", "nox", "contains:nox")
    assert matcher.match("nox") == ("contains:nox",)


def test_emulator_findings_are_the_same_from_a_warm_memo() -> None:
    checker = Checker()
    tells = {
        "device.model": "sdk_gphone_x86",
        "device.hardware": "ranchu",
        "device.system_props": {"ro.kernel.qemu": "1", "ro.hardware": "goldfish"},
        "device.cpu_abi": ["x86"],
    }
    # A new device id each time: the device memo misses, the matchers' memo answers.
    reports = [
        checker.check(make_session(**tells, **{"device.device_id": f"d-{i}"})) for i in range(3)
    ]
    emulator = [[f for f in r.to_dict()["findings"] if f["check"] == "emulator"] for r in reports]
    assert emulator[0]
    assert emulator[1] == emulator[0] and emulator[2] == emulator[0]
