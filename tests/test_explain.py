"""`explain`: a diagnosis per family, in both languages, with advice."""

from __future__ import annotations

from typing import Any

import pytest

from fingerprint import Checker
from fingerprint.explain import explain
from tests.conftest import make_session

T0 = 1_795_133_730


def _hopper() -> list[dict[str, Any]]:
    ips = ["202.106.0.20", "202.96.128.86", "61.139.2.69", "114.114.114.114"]
    return [make_session(session_id=f"h{n}", ts=T0 + n * 1800, ip=ip) for n, ip in enumerate(ips)]


FAMILIES: dict[str, tuple[list[dict[str, Any]], str, bool]] = {
    "emulator": (
        [make_session(**{"device.files_present": ["/dev/socket/qemud"]})],
        "EMU_FILE",
        True,
    ),
    "multi_open": (
        [
            make_session(
                **{"app.data_dir": "/data/user/0/io.virtualapp/virtual/data/user/0/com.tencent.mm"}
            )
        ],
        "MO_CONTAINER_DATA_DIR",
        True,
    ),
    "vpn_proxy": (
        [make_session(**{"network.vpn_active": True, "network.interfaces": ["tun0"]})],
        "VPN_OS_FLAG",
        False,
    ),
    "ip_hopping": (_hopper(), "GEO_PROVINCE_HOPPING", False),
    "tamper": (
        [make_session(**{"device.rooted": True, "device.hooks": ["frida"]})],
        "TAM_HOOK_FRAMEWORK",
        False,
    ),
    "face_verification": (
        [make_session(**{"auth.face_verified": False})],
        "AUTH_NO_FACE_VERIFICATION",
        False,
    ),
}
ADVICE = {
    "emulator": ("real phone", "真实手机"),
    "multi_open": ("cloner", "多开"),
    "vpn_proxy": ("VPN", "VPN"),
    "ip_hopping": ("provinces", "跨省"),
    "tamper": ("Frida", "Frida"),
    "face_verification": ("face verification", "人脸核身"),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_explain_each_family(family: str, lang: str) -> None:
    sessions, code, blacklisted = FAMILIES[family]
    checker = Checker()
    report = None
    for session in sessions:
        report = checker.check(session)
    assert report is not None
    assert code in report.contributions
    text = explain(report, checker.rules, lang)  # type: ignore[arg-type]
    assert code in text
    assert f"{report.score}/100" in text
    finding = next(f for f in report.findings if f.code == code)
    assert (finding.message_zh if lang == "zh" else finding.message) in text
    assert ADVICE[family][0 if lang == "en" else 1] in text
    final_word = "final" if lang == "en" else "最终"
    assert (final_word in text) == blacklisted


def test_clean_session_says_nothing_lowered_it() -> None:
    checker = Checker()
    report = checker.check(make_session())
    assert "Nothing lowered" in explain(report, checker.rules, "en")
    assert "没有降低" in explain(report, checker.rules, "zh")
