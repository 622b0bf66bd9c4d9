"""multi_open judges a data dir by its platform's own shapes, and libraries by owner."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingerprint import Checker
from fingerprint.report import Report
from tests.conftest import make_session

CHECKER = Checker()
IOS_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
)


def check(**changes: Any) -> Report:
    return CHECKER.check(make_session(**changes))


def mo(report: Report) -> list[tuple[str, str]]:
    return [(f.code, f.severity) for f in report.findings if f.check == "multi_open"]


def ios(data_dir: str) -> Report:
    return check(
        user_agent=IOS_UA,
        device={"device_id": "i-1", "platform": "ios", "brand": "Apple", "model": "iPhone15,2"},
        app={"package": "com.tencent.xin", "data_dir": data_dir},
    )


@pytest.mark.parametrize("prefix", ["", "/private"])
def test_the_ios_app_sandbox_is_normal(prefix: str) -> None:
    home = f"{prefix}/var/mobile/Containers/Data/Application/{str(uuid.uuid4()).upper()}"
    for data_dir in (home, f"{home}/Documents"):
        report = ios(data_dir)
        assert mo(report) == [] and not report.blacklisted
        assert "multi_open" not in report.not_evaluated


@pytest.mark.parametrize("level", ["el1", "el2"])
def test_the_harmonyos_next_sandbox_is_normal(level: str) -> None:
    for data_dir in (f"/data/storage/{level}/base", f"/data/storage/{level}/base/haps/entry/files"):
        report = check(
            **{
                "device.platform": "harmonyos",
                "app.data_dir": data_dir,
                "app.uid": 20010034,
                "app.process_uid": 20010034,
            }
        )
        assert mo(report) == [] and not report.blacklisted


def test_an_unknown_platforms_path_is_no_evidence_not_a_container() -> None:
    report = check(
        device={"device_id": "w-1", "platform": "windows"},
        app={"package": "wechat", "data_dir": "C:\\Users\\li\\AppData\\Roaming\\Tencent\\WeChat"},
    )
    assert mo(report) == [] and not report.blacklisted
    assert "multi_open" in report.not_evaluated


@pytest.mark.parametrize(
    ("user", "what"),
    [(10, "work profile"), (11, "MIUI Second Space"), (150, "Samsung Secure Folder")],
)
def test_the_oss_own_profiles_are_not_containers(user: int, what: str) -> None:
    uid = user * 100_000 + 10234
    report = check(
        **{
            "app.data_dir": f"/data/user/{user}/com.tencent.mm",
            "app.uid": uid,
            "app.process_uid": uid,
        }
    )
    assert mo(report) == [] and not report.blacklisted, what


def test_dual_apps_are_medium_and_do_not_blacklist() -> None:
    report = check(**{"app.data_dir": "/data/user/999/com.tencent.mm", "app.process_uid": 99910234})
    assert mo(report) == [("MO_SYSTEM_DUAL_APP", "medium")] and not report.blacklisted


@pytest.mark.parametrize(
    "data_dir",
    [
        "/data/user/0/com.tencent.mm/files",
        "/data/data/com.tencent.mm",
        "/data/user_de/0/com.tencent.mm",
        "/mnt/expand/3f1b2c9e-0f2a-4b7e-9d1c-5a6b7c8d9e0f/user/0/com.tencent.mm",
    ],
)
def test_the_apps_own_android_dirs_are_normal(data_dir: str) -> None:
    assert mo(check(**{"app.data_dir": data_dir})) == []


def test_another_apps_directory_is_a_container_whoever_it_is() -> None:
    report = check(**{"app.data_dir": "/data/user/0/com.example.newcloner/space/0/com.tencent.mm"})
    findings = [f for f in report.findings if f.code == "MO_CONTAINER_DATA_DIR"]
    assert findings and report.blacklisted
    assert findings[0].evidence["host_package"] == "com.example.newcloner"


@pytest.mark.parametrize(
    "lib",
    [
        "/data/app/~~Qm9v==/com.example.newcloner-Zm9v==/lib/arm64/libsandbox.so",
        "/data/app/com.example.newcloner-1/lib/arm/libengine.so",
        "/data/data/com.example.newcloner/app_lib/libhook.so",
        "/data/user/0/com.example.newcloner/files/libhost.so",
        "/data/user/0/com.bly.dkplat/virtual/libnative.so",
    ],
)
def test_a_library_from_another_apps_dirs_is_a_container(lib: str) -> None:
    report = check(**{"app.loaded_libs": [lib]})
    assert ("MO_CONTAINER_LIB", "critical") in mo(report) and report.blacklisted


@pytest.mark.parametrize(
    "lib",
    [
        "/system/lib64/libwebviewchromium_plat_support.so",
        "/apex/com.android.runtime/lib64/bionic/libc.so",
        "/vendor/lib64/libOpenCL.so",
        "/data/app/~~aGVsbG8=/com.google.android.webview-d29ybGQ=/lib/arm64/libwebviewchromium.so",
        "/data/app/~~aGVsbG8=/com.google.android.trichromelibrary_604517533-YWJj==/lib/arm64/libmonochrome_64.so",
        "/data/app/com.android.chrome-2/lib/arm/libchrome.so",
        "/data/app/com.huawei.webview-1/lib/arm64/libwebviewchromium.so",
        "/data/user_de/0/com.google.android.gms/app_chimera/m/00000171/lib/arm64/libcronet.so",
        "/data/user/0/com.tencent.mm/app_tbs/core_share/libmttwebview.so",
        "/data/app/~~eHl6/com.tencent.mm-YWJj/lib/arm64/libwechatcommon.so",
        "/data/app/~~eHl6/com.example.module-YWJj/base.apk",
    ],
)
def test_shared_system_and_own_libraries_are_not_containers(lib: str) -> None:
    report = check(**{"app.loaded_libs": [lib]})
    assert mo(report) == [] and not report.blacklisted, lib


def test_tbs_sharing_is_narrowed_to_its_directory() -> None:
    report = check(
        **{
            "app.package": "com.example.shop",
            "app.data_dir": "/data/user/0/com.example.shop",
            "app.loaded_libs": ["/data/user/0/com.tencent.mm/virtual/libva.so"],
        }
    )
    assert ("MO_CONTAINER_LIB", "critical") in mo(report)


@settings(max_examples=60, deadline=None)
@given(
    st.uuids(), st.sampled_from(["", "/private"]), st.sampled_from(["", "/Library/Caches", "/tmp"])
)
def test_no_ios_sandbox_is_ever_a_container(box: uuid.UUID, prefix: str, below: str) -> None:
    data_dir = f"{prefix}/var/mobile/Containers/Data/Application/{str(box).upper()}{below}"
    assert mo(ios(data_dir)) == []


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2_000), st.integers(10_000, 19_999))
def test_the_same_app_id_under_any_user_is_never_a_container(user: int, app_id: int) -> None:
    uid = user * 100_000 + app_id
    report = check(
        **{
            "app.data_dir": f"/data/user/{user}/com.tencent.mm",
            "app.uid": app_id,
            "app.process_uid": uid,
        }
    )
    assert not report.blacklisted
    assert all(severity not in ("high", "critical") for _, severity in mo(report))
