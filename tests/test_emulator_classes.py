"""Issue #16's emulator promises: classes of virtual devices, not a list of instances.

User-agent-only emulator builds, Android-in-Android VM apps, cloud phones, vendor
property namespaces, every file check of the public detectors (with or without the
leading slash), the weak-tell fusion by fact, and hook tooling seen only as files or
packages. Each promise is tested on inputs the rule tables do not list verbatim
where the promise is about a class.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fingerprint import Checker, RulesError
from fingerprint.checks.emulator import normalise_path
from fingerprint.rules import load_rules
from tests.conftest import ROOT, make_session

CONFIDENT = {"high", "critical"}


def _report(checker: Checker, session: dict[str, Any]) -> Any:
    return checker.check(session)


def _codes(report: Any, check: str = "emulator") -> dict[str, str]:
    return {f.code: f.severity for f in report.findings if f.check == check}


def _confident_emulator(report: Any) -> bool:
    return any(sev in CONFIDENT for sev in _codes(report).values())


def _ua(model: str, android: str = "13") -> str:
    return (
        f"Mozilla/5.0 (Linux; Android {android}; {model} Build/TE1A.220922.025; wv) "
        "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36"
    )


def _ua_only(model: str) -> dict[str, Any]:
    session = make_session(user_agent=_ua(model))
    del session["device"], session["app"]
    return session


# --- 1. user-agent-only sessions ---------------------------------------------------


@pytest.mark.parametrize(
    ("model", "code"),
    [
        ("sdk_gphone64_arm64", "EMU_DEVICE_IDENTITY"),
        ("sdk_gphone16k_x86_64", "EMU_DEVICE_IDENTITY"),
        ("Android SDK built for x86", "EMU_DEVICE_IDENTITY"),
        ("Android SDK built for riscv64", "EMU_DEVICE_IDENTITY"),
        ("Subsystem for Android(TM)", "EMU_DEVICE_IDENTITY"),
        ("WayDroid arm64 Device", "EMU_DEVICE_IDENTITY"),
        ("redroid15_arm64_only", "EMU_CLOUD_PHONE"),
        ("vmos", "EMU_DEVICE_IDENTITY"),
    ],
)
def test_ua_only_emulator_builds_are_confident_and_blacklist(
    checker: Checker, model: str, code: str
) -> None:
    report = _report(checker, _ua_only(model))
    assert _codes(report).get(code) == "critical", (model, _codes(report))
    assert report.blacklisted and report.grade == "E"


@pytest.mark.parametrize(
    "model", ["V2218A", "SM-S9180", "Pixel 8", "22081212C", "PHB110", "ELS-AN00", "MI PAD 2"]
)
def test_ua_only_real_phones_are_not_emulators(checker: Checker, model: str) -> None:
    report = _report(checker, _ua_only(model))
    assert not _confident_emulator(report) and not report.blacklisted, _codes(report)


# --- 2, 3, 5. VM apps, cloud phones, every detector file check ---------------------

# Every file check of trustdevice-android's EmulatorCollector, EasyProtector's and
# anti-emulator's file probes, restated (as the SDK reports them: some without "/").
_DETECTOR_FILES = [
    "/dev/socket/genyd",
    "/dev/socket/baseband_genyd",
    "/dev/socket/qemud",
    "/dev/qemu_pipe",
    "/system/bin/nox-prop",
    "/system/bin/ttVM-prop",
    "/system/bin/droid4x-prop",
    "/data/.bluestacks.prop",
    "/system/bin/androVM-prop",
    "/system/bin/microvirt-prop",
    "/system/lib/libdroid4x.so",
    "/system/bin/windroyed",
    "system/lib/libnoxspeedup.so",
    "/system/bin/duosconfig",
    "/system/etc/xxzs_prop.sh",
    "/system/etc/mumu-configs/device-prop-configs/mumu.config",
    "/system/priv-app/ldAppStore",
    "system/bin/ldinit",
    "/system/app/AntStore",
    "vmos.prop",
    "fstab.titan",
    "x8.prop",
    "/sys/qemu_trace",
    "/system/bin/qemu-props",
]


@pytest.mark.parametrize("path", _DETECTOR_FILES)
def test_every_detector_file_check_is_definitive(checker: Checker, path: str) -> None:
    report = _report(checker, make_session(**{"device.files_present": [path]}))
    codes = _codes(report)
    assert codes.get("EMU_FILE") == "critical", (path, codes)
    assert report.blacklisted


def test_the_qemu_malloc_debug_library_stays_weak(checker: Checker) -> None:
    # Shipped on some old real ROMs too (anti-emulator's own warning).
    path = "/system/lib/libc_malloc_debug_qemu.so"
    report = _report(checker, make_session(**{"device.files_present": [path]}))
    assert _codes(report) == {"EMU_WEAK_SIGNATURE": "low"} and not report.blacklisted


@pytest.mark.parametrize(
    "path",
    ["/init.titan.rc", "ueventd.titan.rc", "/vendor/etc/init/hw/init.nox.rc", "/fstab.redroid"],
)
def test_init_files_of_a_virtual_hardware_name_are_that_hardware(
    checker: Checker, path: str
) -> None:
    """init reads /init.<hw>.rc, /ueventd.<hw>.rc, /fstab.<hw>: any of them names the
    hardware, so a file no detector listed is caught by the hardware name."""
    report = _report(checker, make_session(**{"device.files_present": [path]}))
    assert _confident_emulator(report) and report.blacklisted, _codes(report)


@pytest.mark.parametrize(
    "path", ["/init.qcom.rc", "/fstab.qcom", "/vendor/etc/init/hw/init.mt6895.rc", "/dev/mtp_usb"]
)
def test_real_hardware_init_files_are_quiet(checker: Checker, path: str) -> None:
    report = _report(checker, make_session(**{"device.files_present": [path]}))
    assert not _codes(report), _codes(report)


@pytest.mark.parametrize(
    "package", ["com.vmos.pro", "com.vmos.glb", "com.vphonegaga.titan", "com.x8zs.sandbox"]
)
def test_vm_app_packages_are_emulator_and_blacklist(checker: Checker, package: str) -> None:
    packages = ["com.tencent.mm", package]
    report = _report(checker, make_session(**{"device.installed_packages": packages}))
    assert _codes(report).get("EMU_PACKAGE") == "critical" and report.blacklisted


@pytest.mark.parametrize(
    ("changes", "product"),
    [
        ({"device.files_present": ["sys/class/redfinger_camera"]}, "Redfinger"),
        ({"device.system_props": {"ro.kernel.redroid.gpu": "guest"}}, "Redroid"),
        ({"device.system_props": {"ro.boot.redroid_net_ndns": "1"}}, "Redroid"),
        ({"device.hardware": "redroid"}, "Redroid"),
        ({"device.system_props": {"wg.cust.config.phone.model": "x"}}, "wg.cust"),
        ({"device.system_props": {"ro.tenc.cloudgame.region": "gz"}}, "Tencent"),
    ],
)
def test_cloud_phones_have_their_own_code_and_blacklist(
    checker: Checker, changes: dict[str, Any], product: str
) -> None:
    report = _report(checker, make_session(**changes))
    finding = next(f for f in report.findings if f.code == "EMU_CLOUD_PHONE")
    assert finding.check == "emulator" and finding.severity == "critical"
    assert product in finding.evidence["product"]
    assert report.blacklisted


# --- 4. sparse emulators: vendor namespaces and the fusion -------------------------


@pytest.mark.parametrize(
    "key", ["nemud.player_engine", "nemud.device_model", "microvirt.build", "waydroid.host.uid"]
)
def test_vendor_property_namespaces_are_definitive(checker: Checker, key: str) -> None:
    props = {"ro.hardware": "qcom", key: "x"}
    report = _report(checker, make_session(**{"device.system_props": props}))
    assert _codes(report).get("EMU_SYSTEM_PROP") == "critical" and report.blacklisted


def test_a_namespace_lookalike_is_not_the_namespace(checker: Checker) -> None:
    props = {"persist.nemud": "1", "ro.nemud.x": "1", "sys.waydroidish": "1"}
    report = _report(checker, make_session(**{"device.system_props": props}))
    assert not _codes(report)


_TELLS: dict[str, dict[str, Any]] = {
    "no_sensors": {"device.sensors": []},
    "no_telephony": {"device.has_telephony": False},
    "battery": {"device.battery": {"level": 1.0, "charging": True, "temperature_c": 0}},
    "build_identity": {"device.manufacturer": "unknown"},
}
_X86 = {"device.cpu_abi": ["x86_64", "x86", "arm64-v8a"]}


def _with(*names: str, x86: bool = False, brand: str = "vivo") -> dict[str, Any]:
    changes: dict[str, Any] = {"device.brand": brand, "device.manufacturer": brand}
    if x86:
        changes.update(_X86)
    for name in names:
        changes.update(_TELLS[name])
    return make_session(**changes)


@given(st.sampled_from(sorted(_TELLS)), st.sampled_from(["vivo", "HUAWEI", "OPPO", "Xiaomi"]))
@settings(max_examples=30, deadline=None)
def test_x86_on_an_arm_only_maker_plus_any_independent_tell_blacklists(
    tell: str, brand: str
) -> None:
    report = _checker().check(_with(tell, x86=True, brand=brand))
    codes = _codes(report)
    assert codes.get("EMU_WEAK_TELLS_COMBINED") == "high", codes
    assert report.blacklisted and report.grade == "E"


@given(st.sampled_from(sorted(_TELLS)))
@settings(max_examples=10, deadline=None)
def test_x86_on_a_maker_that_ships_x86_needs_three_facts(tell: str) -> None:
    # Google's Chromebooks run Android apps on x86: x86 + one tell is not enough.
    report = _checker().check(_with(tell, x86=True, brand="google"))
    assert "EMU_WEAK_TELLS_COMBINED" not in _codes(report) and not report.blacklisted


@given(st.lists(st.sampled_from(sorted(_TELLS)), min_size=1, max_size=4, unique=True))
@settings(max_examples=40, deadline=None)
def test_without_x86_three_independent_facts_are_needed(tells: list[str]) -> None:
    report = _checker().check(_with(*tells))
    combined = "EMU_WEAK_TELLS_COMBINED" in _codes(report)
    assert combined == (len(tells) >= 3), (tells, _codes(report))
    assert report.blacklisted == combined


def test_x86_alone_never_blacklists() -> None:
    report = _checker().check(_with(x86=True, brand="HUAWEI"))
    assert _codes(report) == {"EMU_X86_ABI": "medium"} and not report.blacklisted


def test_tells_that_observe_the_same_fact_count_once() -> None:
    """A generic brand, model, manufacturer and board are one build identity; with no
    sensors that is two facts, not five tells."""
    session = make_session(
        **{
            "device.brand": "generic",
            "device.manufacturer": "unknown",
            "device.model": "my emulator build",
            "device.system_props": {"ro.product.board": "unknown"},
            "device.sensors": [],
            "user_agent": _ua("V2218A"),
        }
    )
    report = _checker().check(session)
    codes = _codes(report)
    assert "EMU_WEAK_SIGNATURE" in codes and "EMU_NO_SENSORS" in codes
    assert "EMU_WEAK_TELLS_COMBINED" not in codes and not report.blacklisted


_SHARED: dict[str, Checker] = {}


def _checker() -> Checker:
    # Hypothesis re-enters the test body; one checker serves every example.
    if "c" not in _SHARED:
        _SHARED["c"] = Checker()
    return _SHARED["c"]


# --- path normalisation -------------------------------------------------------------

_SEGMENT = st.text(alphabet="abcxyz._-0189", min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..")
)


@given(st.lists(_SEGMENT, min_size=1, max_size=5), st.booleans(), st.integers(1, 3))
def test_normalised_paths_name_the_same_file(parts: list[str], lead: bool, slashes: int) -> None:
    canonical = "/" + "/".join(parts)
    sep = "/" * slashes
    written = ("/" if lead else "") + sep.join(parts) + ("/" if slashes > 1 else "")
    assert normalise_path(written) == canonical
    assert normalise_path(canonical) == canonical  # idempotent


# --- 7. every signature names its source --------------------------------------------


def test_a_signature_without_a_source_is_refused(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    data = yaml.safe_load((rules / "emulator.yaml").read_text(encoding="utf-8"))
    del data["signatures"][0]["source"]
    (rules / "emulator.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    with pytest.raises(RulesError, match=r"signatures\.0\.source"):
        load_rules(rules)


def test_a_signature_code_must_be_an_emulator_code(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    data = yaml.safe_load((rules / "emulator.yaml").read_text(encoding="utf-8"))
    data["signatures"][0]["code"] = "EMU_NOT_A_CODE"
    (rules / "emulator.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    with pytest.raises(RulesError, match="not an emulator reason code"):
        load_rules(rules)


def test_every_rule_entry_names_a_source() -> None:
    rules = load_rules()
    assert all(sig.source.strip() for sig in rules.emulator.signatures)
    assert all(hw.source.strip() for hw in rules.emulator.virtual_hardware)
    assert all(tool.source.strip() for tool in rules.tamper.hook_tools)


# --- 6. hook tooling seen as files or packages --------------------------------------


@pytest.mark.parametrize(
    ("changes", "severity"),
    [
        ({"device.installed_packages": ["com.tencent.mm", "org.lsposed.manager"]}, "medium"),
        ({"device.files_present": ["data/adb/lspd/config"]}, "medium"),
        ({"device.files_present": ["/data/local/tmp/frida-server-16.1.4-android-arm64"]}, "high"),
        ({"device.files_present": ["system/bin/re.frida.server"]}, "high"),
        (
            {
                "device.installed_packages": ["org.lsposed.manager"],
                "device.files_present": ["/data/local/tmp/frida-server"],
            },
            "high",
        ),
    ],
)
def test_hook_tools_seen_as_files_or_packages(
    checker: Checker, changes: dict[str, Any], severity: str
) -> None:
    report = _report(checker, make_session(**changes))
    assert _codes(report, "tamper").get("TAM_HOOK_TOOL") == severity, _codes(report, "tamper")
    assert not report.blacklisted  # tamper never blacklists: rooted phones are real phones


def test_ordinary_files_and_packages_are_not_hook_tools(checker: Checker) -> None:
    changes = {
        "device.files_present": ["/data/local/tmp/notes.txt", "/system/bin/sh"],
        "device.installed_packages": ["com.tencent.mm", "org.lsposed.wallpaper"],
    }
    report = _report(checker, make_session(**changes))
    assert "TAM_HOOK_TOOL" not in _codes(report, "tamper")


def test_a_hook_seen_live_and_on_disk_counts_once(checker: Checker) -> None:
    """Frida in the process and frida-server on disk are one tool: one group's points."""
    changes = {"device.hooks": ["frida"], "device.files_present": ["/data/local/tmp/frida-server"]}
    report = _report(checker, make_session(**changes))
    tamper = _codes(report, "tamper")
    assert tamper == {"TAM_HOOK_FRAMEWORK": "high", "TAM_HOOK_TOOL": "high"}
    taken = report.contributions["TAM_HOOK_FRAMEWORK"] + report.contributions["TAM_HOOK_TOOL"]
    assert taken == 30 and report.score == 70
