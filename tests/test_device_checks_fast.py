"""The device-scoped checks' memos never change an answer.

Emulator, multi-open and tamper remember per-text and per-data-dir answers and
precompute their tables at compile time. A check whose memos are warm (it has
seen the generated sessions and every hypothesis example before) must answer
exactly as a freshly compiled one, with empty memos, answers: compared by
``repr``, so evidence order and every value count, on the generated fixture
sessions and on sessions that mix tells from the rule files at random. (When the
memos and shortcuts were written, the same tests compared them with the plain
versions they replaced: identical on every example.)

The reference is compiled once per check and every memo it holds is emptied before
each answer (compiling afresh each time cost ~50 ms an example, most of the
module's time); a test holds that emptying them leaves a check as compiled.
"""

from __future__ import annotations

import copy
import gc
import json
from collections.abc import Callable, Iterator
from types import BuiltinFunctionType, FunctionType, ModuleType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fingerprint import Checker, CheckerConfig
from fingerprint.checks import multi_open as production_multi_open
from fingerprint.checks.base import Check, CheckContext
from fingerprint.checks.consistency import ConsistencyCheck
from fingerprint.checks.emulator import EmulatorCheck
from fingerprint.checks.multi_open import MultiOpenCheck
from fingerprint.checks.tamper import TamperCheck
from fingerprint.memo import BoundedMemo
from fingerprint.rules import load_rules
from tests.conftest import BASE_SESSION, FIXTURES

RULES = load_rules()
CHECKER = Checker(CheckerConfig(device_memo_size=0))

FACTORIES: list[Callable[[], Check]] = [
    lambda: EmulatorCheck.compile(RULES, {}),
    lambda: EmulatorCheck.compile(RULES, {"weak_tells_for_high": 1}),
    lambda: MultiOpenCheck.compile(RULES, {}),
    lambda: TamperCheck.compile(RULES, {}),
    lambda: ConsistencyCheck.compile(RULES, {}),
]
WARM = [factory() for factory in FACTORIES]  # shared by every example: memos fill up


def _reachable(check: Check) -> Iterator[Any]:
    """Every object the check holds, directly or not (code, classes and modules,
    which are shared by every check, are not followed)."""
    seen: set[int] = set()
    todo: list[Any] = [check]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(
            obj, type | ModuleType | FunctionType | BuiltinFunctionType | str | bytes
        ):
            continue
        seen.add(id(obj))
        yield obj
        todo.extend(gc.get_referents(obj))


def _memos(check: Check) -> list[BoundedMemo[Any, Any]]:
    return [obj for obj in _reachable(check) if isinstance(obj, BoundedMemo)]


def _sizes(check: Check) -> list[tuple[str, int]]:
    """The size of every container the check holds: what a memo's filling changes."""
    sized = (obj for obj in _reachable(check) if isinstance(obj, dict | list | set))
    return sorted((type(obj).__qualname__, len(obj)) for obj in sized)


class _Reference:
    """A check compiled once that answers as if freshly compiled: every memo it holds
    is emptied before each answer."""

    def __init__(self, factory: Callable[[], Check]) -> None:
        self.check = factory()
        self.memos = _memos(self.check)

    def evaluate(self, ctx: CheckContext) -> str:
        for memo in self.memos:
            memo.clear()
        return repr(self.check.evaluate(ctx))


REFERENCE = [_Reference(factory) for factory in FACTORIES]


def _context(record: dict[str, Any]) -> CheckContext:
    session = CHECKER.parse(record)
    return CheckContext(
        session=session, features=CHECKER._enricher.extractor.extract(session), history=None
    )


def _assert_same(record: dict[str, Any]) -> None:
    ctx = _context(record)
    for reference, warm in zip(REFERENCE, WARM, strict=True):
        fresh = reference.evaluate(ctx)
        for _ in range(2):  # the second round answers from the memos
            assert repr(warm.evaluate(ctx)) == fresh, warm.name


def _generated() -> list[dict[str, Any]]:
    """The generator's sessions as committed (fixtures/generate.py wrote both files):
    all of sample.jsonl and the labelled set's emulators and multi-opens. (Generating
    them here spent ~7 s probing the IP database for the generator's address pools.)"""
    records = []
    for name in ("sample.jsonl", "labelled.jsonl"):
        for line in (FIXTURES / name).read_bytes().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # sample.jsonl's bad lines
            label = record.pop("_label", None) if isinstance(record, dict) else None
            if label and (name == "sample.jsonl" or label["emulator"] or label["multi_open"]):
                records.append(record)
    return records


def test_generated_sessions_answer_as_with_empty_memos() -> None:
    for record in _generated():
        _assert_same(record)


def test_emptying_its_memos_leaves_a_check_as_compiled() -> None:
    """What makes the reference fresh: after answering (which fills its memos),
    emptying every BoundedMemo leaves each container the size it had when compiled,
    so no other memo, of another kind, went unnoticed."""
    contexts = [_context(record) for record in _generated()]
    filled = 0
    for factory in FACTORIES:
        reference = _Reference(factory)
        compiled = _sizes(reference.check)
        for ctx in contexts:
            reference.check.evaluate(ctx)
        filled += sum(len(memo) for memo in reference.memos)
        for memo in reference.memos:
            memo.clear()
        assert _sizes(reference.check) == compiled, reference.check.name
    assert filled > 0  # the sessions did fill memos: the test saw them emptied


# --- sessions mixing tells from the rule files --------------------------------------

_SIGNATURES = RULES.emulator.signatures
_FIELD_VALUES: dict[str, list[str]] = {}
for _sig in _SIGNATURES:
    if _sig.match != "regex":
        _FIELD_VALUES.setdefault(_sig.field, []).append(_sig.value)
_PROP_KEYS = sorted({s.key for s in _SIGNATURES if s.key} | {"ro.hardware", "ro.product.board"})
_CONTAINERS = RULES.multi_open.containers
_MARKERS = [m for c in _CONTAINERS for m in c.data_dir_markers]
_CONTAINER_LIBS = [lib for c in _CONTAINERS for lib in c.libs]
_TAMPER = RULES.tamper
_PACKAGES = (
    [p for c in _CONTAINERS for p in c.packages]
    + list(_TAMPER.root_packages)
    + [p for t in _TAMPER.device_mod_tools for p in t.packages]
    + [p for t in _TAMPER.capture_tools for p in t.packages]
    + _FIELD_VALUES.get("package", [])
    + ["com.tencent.mm", "com.eg.android.AlipayGphone"]
)
_TOOL_PACKAGES = [
    p for t in (*_TAMPER.device_mod_tools, *_TAMPER.capture_tools) for p in t.packages
]
_USER_AGENTS = [
    BASE_SESSION["user_agent"],
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
    "Dalvik/2.1.0 (Linux; U; Android 9; sdk_gphone_x86 Build/PSR1.180720.075)",
    "Mozilla/5.0 (Linux; Android 12; SM-T970) AppleWebKit/537.36 Chrome/119.0 Safari/537.36",
]


def _sample(values: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(values), st.text(max_size=12))


def _cased(values: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(values).flatmap(
        lambda v: st.sampled_from([v, v.upper(), v.capitalize(), f"x{v}", f"{v}/x"])
    )


def _field(name: str) -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), _cased(_FIELD_VALUES.get(name, ["x"])), st.text(max_size=8))


_props = st.dictionaries(
    st.one_of(_cased(_PROP_KEYS), st.just(""), st.text(max_size=6)),
    st.one_of(st.sampled_from(["1", "0", "goldfish", "ranchu", "vbox86"]), st.text(max_size=6)),
    max_size=6,
)
_device = st.fixed_dictionaries(
    {},
    optional={
        "platform": st.sampled_from(["android", "harmonyos", "ios", "web", "windows", "linux"]),
        "brand": st.one_of(st.none(), st.sampled_from(["vivo", "HUAWEI", "Google", "Samsung"])),
        "manufacturer": _field("manufacturer"),
        "model": _field("model"),
        "hardware": _field("hardware"),
        "board": _field("board"),
        "product": _field("product"),
        "build_fingerprint": st.one_of(
            _field("build_fingerprint"),
            st.sampled_from(["google/sdk_gphone_x86/generic_x86:11/x", "HUAWEI/a/b:1/c", " /x"]),
        ),
        "cpu_abi": st.one_of(st.none(), st.lists(st.sampled_from(["x86", "X86_64", "arm64-v8a"]))),
        "sensors": st.one_of(
            st.none(), st.lists(st.sampled_from(["Accelerometer", "gyroscope", "light", "GPS"]))
        ),
        "battery": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {
                    "level": st.sampled_from([1.0, 0.5, 0.0]),
                    "charging": st.booleans(),
                    "temperature_c": st.sampled_from([0.0, 31.2]),
                }
            ),
        ),
        "has_telephony": st.one_of(st.none(), st.booleans()),
        "rooted": st.one_of(st.none(), st.booleans()),
        "hooks": st.one_of(
            st.none(), st.lists(_sample([*_TAMPER.hook_frameworks, "Frida", "other"]), max_size=4)
        ),
        "debugger_attached": st.one_of(st.none(), st.booleans()),
        "system_props": st.one_of(st.none(), _props),
        "files_present": st.one_of(st.none(), st.lists(_sample(_FIELD_VALUES["file"]), max_size=4)),
        "installed_packages": st.one_of(
            st.none(),
            st.lists(st.one_of(_cased(_TOOL_PACKAGES), _cased(_PACKAGES), st.text(max_size=8))),
        ),
    },
)
_uids = st.one_of(st.none(), st.sampled_from([10234, 99910234, 12810234, 9510234, 10500, 1010234]))
_app = st.fixed_dictionaries(
    {},
    optional={
        "package": st.one_of(st.none(), st.sampled_from(["com.tencent.mm", "com.other"])),
        "data_dir": st.one_of(
            st.none(),
            st.sampled_from(
                [
                    "/data/user/0/com.tencent.mm",
                    "/data/user/999/com.tencent.mm",
                    "/data/user_de/128/com.tencent.mm/",
                    "/data/data/com.tencent.mm",
                    "/mnt/expand/abc/data/user/0/com.tencent.mm",
                    "/data/user/0/com.other",
                    "/data/user/0/x/virtual/data/user/0/com.tencent.mm",
                ]
            ),
            _cased(_MARKERS).map(lambda m: f"/data/user/0/{m}/com.tencent.mm"),
            st.text(max_size=16).map(lambda t: f"/data/user/{t}"),
            st.text(max_size=16),
        ),
        "uid": _uids,
        "process_uid": _uids,
        "loaded_libs": st.one_of(
            st.none(), st.lists(_sample(_CONTAINER_LIBS + _FIELD_VALUES["lib"]), max_size=4)
        ),
    },
)


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(st.none(), _device),
    st.one_of(st.none(), _app),
    st.one_of(st.none(), st.sampled_from(_USER_AGENTS)),
)
def test_mixed_tells_answer_as_with_empty_memos(
    device: dict[str, Any] | None, app: dict[str, Any] | None, user_agent: str | None
) -> None:
    record = copy.deepcopy(BASE_SESSION)
    record["device"], record["app"], record["user_agent"] = device, app, user_agent
    _assert_same(record)


def test_data_dir_memo_is_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(production_multi_open, "DATA_DIR_CACHE_SIZE", 8)
    check = MultiOpenCheck.compile(RULES, {})
    assert isinstance(check, MultiOpenCheck) and check.tables is not None
    long_dir = "/data/user/0/" + "x" * 10_000
    for data_dir in [f"/data/user/{i}/com.tencent.mm" for i in range(100)] + [long_dir]:
        record = copy.deepcopy(BASE_SESSION)
        record["app"]["data_dir"] = data_dir
        ctx = _context(record)
        fresh = MultiOpenCheck.compile(RULES, {})
        assert repr(check.evaluate(ctx)) == repr(fresh.evaluate(ctx))
        assert len(check.tables.dirs) <= 8
    assert long_dir not in check.tables.dirs  # long dirs are examined, not kept
