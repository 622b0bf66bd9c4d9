"""farm_tools: group control, automation, remote control, mock location and VPN client
apps seen as installed packages or files (rules/tooling.yaml)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fingerprint import Checker
from fingerprint.checks.base import CheckContext
from fingerprint.checks.farm_tools import CODES, FarmToolsCheck
from fingerprint.errors import InvalidSessionError
from fingerprint.rules import load_rules
from fingerprint.session import parse_session
from tests.conftest import make_session

ROOT = Path(__file__).resolve().parent.parent
RULES = load_rules()
CHECK = FarmToolsCheck.compile(RULES, {})

# What ordinary phones in China carry: none of it is farm tooling. Personal
# automation, desktop remote access to a PC, meeting apps with screen sharing and
# enterprise VPNs are deliberately not listed in rules/tooling.yaml.
EVERYDAY_APPS = [
    "com.tencent.mm", "com.eg.android.AlipayGphone", "com.taobao.taobao",
    "com.jingdong.app.mall", "com.xunmeng.pinduoduo", "com.sankuai.meituan",
    "com.ss.android.ugc.aweme", "com.smile.gifmaker", "com.tencent.mobileqq",
    "com.sina.weibo", "com.baidu.searchbox", "com.autonavi.minimap", "com.sdu.didi.psnger",
    "tv.danmaku.bili", "com.xingin.xhs", "com.netease.cloudmusic", "com.tencent.qqmusic",
    "cn.wps.moffice_eng", "com.alibaba.android.rimet", "com.ss.android.lark",
    "com.tencent.wemeet.app", "com.unionpay", "com.icbc", "com.chinamworld.main",
    "com.greenpoint.android.mc10086.activity", "com.tencent.qqlive", "com.youku.phone",
    "com.UCMobile", "com.tencent.mtt", "com.huawei.appmarket", "com.miui.securitycenter",
    "com.google.android.gms", "net.dinglisch.android.taskerm", "com.arlosoft.macrodroid",
    "com.microsoft.rdc.androidx", "com.cisco.anyconnect.vpn.android.avf",
    "com.fortinet.forticlient_vpn", "com.google.android.apps.chromeremotedesktop",
]  # fmt: skip


def _evaluate(**device: Any) -> Any:
    session = parse_session(make_session(**{f"device.{k}": v for k, v in device.items()}))
    return CHECK.evaluate(CheckContext(session=session, features=None, history=None))  # type: ignore[arg-type]


def _codes(outcome: Any) -> set[str]:
    return {hit.code for hit in outcome}


@pytest.mark.parametrize(
    ("packages", "code"),
    [
        (["com.sigma_rt.totalcontrol"], "FRM_GROUP_CONTROL"),
        (["org.autojs.autojs6", "com.touchsprite.android"], "FRM_AUTOMATION"),
        (["youqu.android.todesk"], "FRM_REMOTE_CONTROL"),
        (["com.oray.sunlogin"], "FRM_REMOTE_CONTROL"),
        (["com.txy.anywhere"], "FRM_MOCK_LOCATION"),
        (["com.github.metacubex.clash.meta"], "FRM_VPN_CLIENT"),
    ],
)
def test_each_kind_of_tool_has_its_code(packages: list[str], code: str) -> None:
    outcome = _evaluate(installed_packages=["com.tencent.mm", *packages])
    assert _codes(outcome) == {code}
    (hit,) = outcome
    assert [t["package"] for t in hit.evidence["tools"]] == packages


def test_package_ids_compare_case_insensitively() -> None:
    assert _codes(_evaluate(installed_packages=["Com.Cyjh.MobileAnjian"])) == {"FRM_AUTOMATION"}


def test_files_left_by_group_control_and_mirroring_are_found() -> None:
    outcome = _evaluate(
        files_present=["data/local/tmp/minicap.so", "/data/local/tmp/scrcpy-server.jar"]
    )
    assert _codes(outcome) == {"FRM_GROUP_CONTROL", "FRM_REMOTE_CONTROL"}


def test_everyday_apps_are_not_tooling() -> None:
    assert _evaluate(installed_packages=EVERYDAY_APPS, files_present=["/data/local/tmp/"]) == []


def test_without_packages_or_files_the_check_is_not_evaluated() -> None:
    session = make_session()
    for field in ("installed_packages", "files_present"):
        session["device"].pop(field, None)
    report = Checker().check(session)
    assert "farm_tools" in report.not_evaluated


def test_severity_follows_what_the_tool_proves() -> None:
    codes = RULES.codes.codes
    assert codes["FRM_GROUP_CONTROL"].severity == codes["FRM_AUTOMATION"].severity == "high"
    assert codes["FRM_REMOTE_CONTROL"].severity == codes["FRM_MOCK_LOCATION"].severity == "medium"
    assert codes["FRM_VPN_CLIENT"].severity == "low"
    assert not set(CODES.values()) & set(RULES.grading.blacklist_codes)


def test_an_installed_vpn_app_in_use_counts_as_one_vpn() -> None:
    session = make_session(
        **{"device.installed_packages": ["com.v2ray.ang"], "network.vpn_active": True}
    )
    report = Checker().check(session)
    assert report.contributions["FRM_VPN_CLIENT"] == 0  # the tunnel's points already count
    assert report.contributions["VPN_OS_FLAG"] > 0


def test_a_message_names_the_tools_in_words() -> None:
    session = make_session(**{"device.installed_packages": ["org.autojs.autojs"]})
    finding = next(f for f in Checker().check(session).findings if f.check == "farm_tools")
    assert "Auto.js" in finding.message and "Auto.js" in finding.message_zh
    assert "[" not in finding.message and "{" not in finding.message


def test_every_tool_names_a_package_or_file_and_no_other_table_claims_it() -> None:
    others = {p.casefold() for t in RULES.tamper.device_mod_tools for p in t.packages}
    others |= {p.casefold() for t in RULES.tamper.hook_tools for p in t.packages}
    others |= {p.casefold() for p in RULES.tamper.root_packages}
    others |= {p.casefold() for c in RULES.multi_open.containers for p in c.packages}
    for tool in RULES.tooling.tools:
        assert tool.packages or tool.files, tool.product
        assert not {p.casefold() for p in tool.packages} & others, tool.product


def _fixture_sessions() -> list[Any]:
    paths = [ROOT / "fixtures" / "labelled.jsonl", ROOT / "fixtures" / "sample.jsonl"]
    paths += sorted((ROOT / "fixtures" / "heldout").glob("*.jsonl"))
    sessions = []
    for path in paths:
        for line in path.read_bytes().splitlines():
            try:
                sessions.append(parse_session(json.loads(line)))
            except (ValueError, InvalidSessionError):
                continue  # the sets' deliberate rejects
    return sessions


def test_no_labelled_or_held_out_session_carries_farm_tooling() -> None:
    flagged = []
    for session in _fixture_sessions():
        outcome = CHECK.evaluate(CheckContext(session=session, features=None, history=None))  # type: ignore[arg-type]
        if isinstance(outcome, list) and outcome:
            flagged.append((session.session_id, _codes(outcome)))
    assert not flagged, flagged[:10]
