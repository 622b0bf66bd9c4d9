"""The device verdict is keyed on the device's content, never on its ids: a login
whose device content was seen before (under any device id, with any battery level)
gets the very report a checker without the memo gives it."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fingerprint.checker import Checker, CheckerConfig, DeviceMemo, DeviceVerdict
from fingerprint.report import Finding
from fingerprint.session import parse_session
from fingerprint.stages.run import session_plan
from tests.conftest import FIXTURES

# Device blocks of every kind the checks tell apart: emulators, cloners, tampered
# and clean phones, from the labelled set and the held-out sets.
_SOURCES = ("labelled.jsonl", "heldout/emulator.jsonl", "heldout/multi_open.jsonl")


def _pool() -> list[dict[str, Any]]:
    records = []
    for name in _SOURCES:
        lines = (FIXTURES / name).read_text(encoding="utf-8").splitlines()
        records.extend(json.loads(line) for line in lines[::25])
    return [r for r in records if isinstance(r.get("device"), dict)]


POOL = _pool()
PINNED = {"level": 1.0, "charging": True, "temperature_c": 0.0}
_clock = itertools.count(1_795_000_000, 3_600)  # every example later than the last
_examples = itertools.count()

# Shared across examples (building a checker costs ~0.3 s); each example uses its
# own accounts and later times, so their histories never meet.
WITH_MEMO = Checker(CheckerConfig(device_memo_size=8, track_accounts=0), clock=None)
WITHOUT = Checker(CheckerConfig(device_memo_size=0, track_accounts=0), clock=None)


def _set(path: str, value: Any) -> Any:
    def change(record: dict[str, Any]) -> None:
        block, field = path.split(".")
        record.setdefault(block, {})[field] = value

    return change


def _add(path: str, value: Any) -> Any:
    def change(record: dict[str, Any]) -> None:
        block, field = path.split(".")
        target = record.setdefault(block, {})
        if isinstance(value, dict):
            target[field] = {**(target.get(field) or {}), **value}
        else:
            target[field] = [*(target.get(field) or []), value]

    return change


# One fact changed in a device's content: each makes some device-scoped check or a
# device feature answer differently, so a key that left its field out would reuse a
# wrong verdict.
CONTENT_CHANGES = (
    None,
    _set("device.rooted", True),
    _set("device.platform", "ANDROID"),  # validated to the platform it was: one key
    _add("device.system_props", {"ro.debuggable": 1}),
    _add("device.hooks", "xposed"),
    _add("device.system_props", {"ro.kernel.qemu": "1"}),
    _add("device.files_present", "/dev/socket/qemud"),
    _add("device.installed_packages", "com.lbe.parallel.intl"),
    _set("app.data_dir", "/data/user/999/com.tencent.mm"),
    _set("device.model", "SM-G9910"),
    _set("device.brand", "Xiaomi"),
    _set("device.sensors", []),
    _set("device.has_telephony", False),
    _set(
        "device.build_fingerprint",
        "generic/sdk_gphone_x86/generic_x86:11/RSR1/1:userdebug/dev-keys",
    ),
)

logins = st.lists(
    st.tuples(
        st.sampled_from(["d-one", "d-two", "d-three", "", None]),  # under which id
        st.one_of(  # and which battery
            st.none(),
            st.just(PINNED),
            st.builds(dict, level=st.floats(0, 1), charging=st.booleans()),
        ),
        st.sampled_from(["a", "b", "c"]),  # by which account
        st.sampled_from(CONTENT_CHANGES),  # with which fact of its content changed
        # Since when booted, how many boots, since when installed (SESSION-LOG v1.1):
        # facts of the login that device_reset and the identity links read, and no
        # device-scoped check or device feature; the key leaves them out.
        st.one_of(
            st.none(),
            st.tuples(st.integers(0, 30 * 86_400), st.integers(0, 40), st.integers(0, 400_000)),
        ),
    ),
    min_size=2,
    max_size=24,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(POOL) - 1), logins)
def test_reports_from_a_remembered_verdict_are_the_reports_of_a_fresh_check(
    base: int,
    plan: list[tuple[str | None, dict[str, Any] | None, str, Any, tuple[int, int, int] | None]],
) -> None:
    """One device's content, logged in under several ids, batteries and boots, some
    logins with one fact of it changed."""
    example = next(_examples)
    for device_id, battery, account, change, boots in plan:
        record = copy.deepcopy(POOL[base])
        if change is not None:
            change(record)
        record["device"]["device_id"] = device_id
        if battery is None:
            record["device"].pop("battery", None)
        else:
            record["device"]["battery"] = battery
        record["account_id"] = f"{account}-{example}"
        record["session_id"] = f"s-{example}-{next(_examples)}"
        record["ts"] = next(_clock)
        if boots is not None:
            booted, count, installed = boots
            record["device"]["boot_time"] = record["ts"] - booted
            record["device"]["boot_count"] = count
            record["device"]["first_install_time"] = record["ts"] - installed
        assert WITH_MEMO.check(record).to_dict() == WITHOUT.check(record).to_dict()


def _key(record: dict[str, Any], *, pinned: bool = False) -> bytes | None:
    return DeviceMemo.key(parse_session(record), battery_is_pinned=pinned)


def test_the_key_ignores_ids_battery_level_and_boots_but_not_content_or_a_pinned_battery() -> None:
    record = copy.deepcopy(POOL[0])
    key = _key(record)
    other = copy.deepcopy(record)
    other["device"]["device_id"] = "someone-else"
    other["device"]["battery"] = {"level": 0.5}
    other["device"]["unknown_field"] = "ignored by the contract"
    other["device"]["boot_time"] = 1_790_000_000
    other["device"]["boot_count"] = 3
    other["device"]["first_install_time"] = 1_780_000_000
    assert _key(other) == key
    assert _key(other, pinned=True) != key
    other["device"]["model"] = "another model"
    assert _key(other) != key


def test_the_key_reads_the_validated_blocks() -> None:
    """What the checks read: a platform in capitals and a numeric system property
    are the validated blocks of their lowercase and text forms."""
    record = copy.deepcopy(POOL[0])
    record["device"]["platform"] = "android"
    record["device"]["system_props"] = {"ro.debuggable": "1"}
    shouted = copy.deepcopy(record)
    shouted["device"]["platform"] = "ANDROID"
    shouted["device"]["system_props"] = {"ro.debuggable": 1}
    assert _key(shouted) == _key(record)
    assert _key({**record, "device": None, "app": None}) is None


def test_remembered_verdicts_share_equal_parts_and_keep_no_device_id() -> None:
    """Two devices of one model and ROM that differ in an app list have two verdicts
    with one copy of their features and identity; neither keeps the id of the login
    that made it, and each hit still reports its own login's id."""
    checker = Checker(CheckerConfig(device_memo_size=8, track_accounts=0), clock=None)
    base = next(r for r in POOL if r["device"].get("platform") == "android")
    ids = []
    apps = (["com.example.one"], ["com.example.two"], ["com.example.one"])
    for index, packages in enumerate(apps):
        record = copy.deepcopy(base)
        record.update(account_id=f"share-{index}", session_id=f"share-{index}", ts=next(_clock))
        record["device"].update(device_id=f"share-device-{index}", installed_packages=packages)
        ids.append(checker.check(record).features["device_id"])
    assert ids == ["share-device-0", "share-device-1", "share-device-2"]
    verdicts = list(checker._engine.device_memo._entries.values())
    assert len(verdicts) == 2  # the third login hit the first one's verdict
    assert all(v.features.device_id is None for v in verdicts)
    assert verdicts[0].features is verdicts[1].features
    assert verdicts[0].identity is verdicts[1].identity


def test_a_verdicts_outcomes_by_check_are_its_outcomes() -> None:
    """The map the check stage reads is the outcomes' own, made when the verdict is:
    one map for equal outcomes, its own for outcomes holding a dict."""
    checker = Checker(CheckerConfig())
    for line in FIXTURES.joinpath("labelled.jsonl").read_text(encoding="utf-8").splitlines()[:50]:
        checker.check(json.loads(line))
    memo = checker._engine.device_memo
    verdicts = list(memo._entries.values())
    assert verdicts
    for verdict in verdicts:
        assert verdict.by_check == dict(verdict.outcomes)
    finding = (Finding("emulator", "EMU_X", "high", "m", "m", {"prop": "x"}),)
    unhashable = DeviceVerdict(
        features=verdict.features, identity=verdict.identity, outcomes=(("emulator", finding),)
    )
    assert unhashable.by_check == {"emulator": finding}
    clean = (("emulator", ()), ("multi_open", ()))
    one, other = (
        DeviceVerdict(features=verdict.features, identity=verdict.identity, outcomes=clean)
        for _ in range(2)
    )
    assert one.by_check is other.by_check == dict(clean)


def test_a_verdicts_plan_is_its_outcomes_plan_one_per_outcomes() -> None:
    """The plan a hit runs is :func:`session_plan` of the verdict's outcomes over the
    engine's session checks; verdicts with equal outcomes hold one plan, and outcomes
    holding a dict (not hashable) still get theirs."""
    checker = Checker(CheckerConfig())
    for line in FIXTURES.joinpath("labelled.jsonl").read_text(encoding="utf-8").splitlines()[:200]:
        checker.check(json.loads(line))
    engine = checker._engine
    verdicts = list(engine.device_memo._entries.values())
    plans: dict[Any, Any] = {}
    for verdict in verdicts:
        assert verdict.plan == session_plan(engine.session_checks, dict(verdict.outcomes))
        try:
            assert plans.setdefault(verdict.outcomes, verdict.plan) is verdict.plan
        except TypeError:  # a finding's evidence is a dict
            continue
    assert len(plans) < len(verdicts)  # some verdicts shared one
    finding = (Finding("emulator", "EMU_X", "high", "m", "m", {"prop": "x"}),)
    assert engine.session_plan((("emulator", finding),)) == session_plan(
        engine.session_checks, {"emulator": finding}
    )
