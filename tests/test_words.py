"""rules/words.yaml names everything a person reads, and codes.yaml's wording reads
like a person wrote it. These hold for checks and codes added later too: a new check
without a name, a new not-evaluated reason without words or a message that leaks a
code, a Python list or a raw share fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from fingerprint.checks import CHECK_CLASSES
from fingerprint.grading import TOO_FEW_SIGNALS
from fingerprint.rules import default_rules_dir, load_rules
from fingerprint.words import LANGS, Lang, load_words

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fingerprint"
CJK = re.compile(r"[\u3400-\u9fff]")

# What no sentence a person reads may contain (shared with tests/test_explain.py).
MACHINE_TEXT: dict[str, re.Pattern[str]] = {
    "a reason code": re.compile(r"\b[A-Z]{2,}_[A-Z0-9_]+\b"),
    "a Python constant": re.compile(r"\b(True|False|None)\b"),
    "a Python list": re.compile(r"[\[\]]"),
    "a raw fraction": re.compile(r"\d\.\d{4,}"),
    "a microsecond timestamp": re.compile(r"\d{2}:\d{2}:\d{2}\.\d+"),
    "a region code": re.compile(r"\bCN-[A-Z]{2}\b"),
    "a template field": re.compile(r"[{}]"),
    "a catalogue note": re.compile(r"some lists|all variants|and forks|\bmisc\b|also in \w+\.yaml"),
}


def machine_text(text: str) -> list[str]:
    """What in ``text`` a person should not have to read: [(kind, what)]."""
    return [f"{kind}: {m.group(0)!r}" for kind, p in MACHINE_TEXT.items() for m in p.finditer(text)]


WORDS = load_words()
RULES = load_rules()


def _named_checks() -> set[str]:
    return set(WORDS.spec.checks)


def test_every_check_the_engine_runs_is_named_in_both_languages() -> None:
    engine = {cls.name for cls in CHECK_CLASSES}
    catalogue = {spec.check for spec in RULES.codes.codes.values()}
    reported = {"whois"}  # the checker's own not-evaluated entry for registry lookups
    unnamed = sorted((engine | catalogue | reported) - _named_checks())
    assert not unnamed, f"name these checks in rules/words.yaml (checks:): {unnamed}"
    for name in engine | catalogue:
        for lang in LANGS:
            assert WORDS.check(name, lang) and WORDS.check_about(name, lang)
        assert CJK.search(WORDS.check(name, "zh")) or name in ("vpn_proxy",)


def test_every_pending_reason_is_said_with_advice() -> None:
    reasons = {TOO_FEW_SIGNALS, *RULES.grading.device_component.pending_codes.values()}
    missing = sorted(reasons - set(WORDS.spec.pending))
    assert not missing, f"say these pending reasons in rules/words.yaml (pending:): {missing}"


def _literal_reasons() -> list[tuple[str, str]]:
    """Every reason written in the package's source for a check not evaluated:
    ``NotEvaluated("...")`` and ``...not_evaluated[name] = "..."``, with an f-string's
    fields filled with 1 (the patterns read numbers and words alike)."""
    found: list[tuple[str, str]] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            texts: list[ast.expr] = []
            if isinstance(node, ast.Call) and _called(node) == "NotEvaluated" and node.args:
                texts.append(node.args[0])
            if isinstance(node, ast.Assign) and any(_is_not_evaluated(t) for t in node.targets):
                texts.append(node.value)
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value.startswith(("whois: ", "history store unavailable"))
            ):
                texts.append(node)
            found += [(f"{path.name}:{node.lineno}", t) for t in map(_sample, texts) if t]
    return found


def _called(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def _is_not_evaluated(target: ast.expr) -> bool:
    return isinstance(target, ast.Subscript) and "not_evaluated" in ast.unparse(target.value)


def _sample(node: ast.expr) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            part.value if isinstance(part, ast.Constant) else "1" for part in node.values
        )
    return ""


def test_the_reason_scan_finds_the_reasons() -> None:
    reasons = {text for _, text in _literal_reasons()}
    assert "no device block" in reasons  # a plain literal
    assert any(text.startswith("not yet meaningful: 1 earlier logins") for text in reasons)
    assert any(text.startswith("whois: ") for text in reasons)


def test_every_not_evaluated_reason_has_its_own_words() -> None:
    unsaid = [
        f"{where}: {text!r}" for where, text in _literal_reasons() if not WORDS.knows_reason(text)
    ]
    assert not unsaid, f"say these in rules/words.yaml (not_evaluated:): {unsaid}"


@pytest.mark.parametrize("lang", LANGS)
def test_reasons_and_pending_words_read_like_a_person(lang: Lang) -> None:
    texts = [WORDS.not_evaluated(text, lang) for _, text in _literal_reasons()]
    texts += [WORDS.pending(r, lang) for r in WORDS.spec.pending]
    texts += [WORDS.pending_advice(r, lang) for r in WORDS.spec.pending]
    for text in texts:
        assert text and not machine_text(text), (text, machine_text(text))
        # English may name the Chinese term in brackets: 人脸核身 is what the app calls it.
        outside_brackets = re.sub(r"\([^)]*\)", "", text)
        assert (CJK.search(outside_brackets) is not None) == (lang == "zh"), text


# --- codes.yaml's wording -----------------------------------------------------------

# The catalogue's longest product label, notes and all: what a message names.
NOTED_PRODUCT = "NetEase MuMu (网易MuMu模拟器) / nemu VM (some lists file it under MEmu)"


def _evidence_for(fields: list[str]) -> dict[str, Any]:
    """Evidence as checks send it, by what a field's name says it holds."""
    samples: dict[str, Any] = {}
    for name in fields:
        if name.endswith("share"):
            samples[name] = 1 / 3
        elif name.endswith(("_hours", "_days")) or name in ("hours", "days"):
            samples[name] = 168 if "hours" in name else 30.0
        elif "country" in name:
            samples[name] = "JP"
        elif name in ("provinces",):
            samples[name] = ["CN-BJ", "CN-GD", "CN-SC"]
        elif name in ("from", "to") or "province" in name:
            samples[name] = "CN-AH"
        elif name in ("product", "vendor"):
            samples[name] = NOTED_PRODUCT
        elif name == "products":
            samples[name] = [NOTED_PRODUCT, "Frida server / gadget"]
        elif name.endswith("s"):  # a count (devices, accounts) or a list of names
            samples[name] = 3
        else:
            samples[name] = 12.345678
    return samples


@pytest.mark.parametrize("code", sorted(RULES.codes.codes))
def test_every_code_reads_like_a_person_wrote_it(code: str) -> None:
    spec = RULES.codes.codes[code]
    for lang, message, advice in (
        ("en", spec.message, spec.advice),
        ("zh", spec.message_zh, spec.advice_zh),
    ):
        fields = re.findall(r"\{(\w+)\}", message)
        said = WORDS.fill(message, _evidence_for(fields), lang)  # type: ignore[arg-type]
        assert advice, f"{code}: no {lang} advice (what the user could change)"
        for text in (said, advice):
            assert not machine_text(text), (code, lang, text, machine_text(text))
        assert CJK.search(spec.message_zh) and CJK.search(spec.advice_zh), code
        # 168 hours reads as 7 days, 30.0 days as 30 days.
        assert not re.search(r"\b168\b|\d\.0\b| h\b", said), f"{code}: a raw duration: {said}"


def test_products_read_without_catalogue_notes() -> None:
    labels = set()
    for path in sorted(default_rules_dir().glob("*.yaml")):
        labels |= set(_products(yaml.safe_load(path.read_text(encoding="utf-8"))))
    assert NOTED_PRODUCT in labels
    for label in labels:
        for lang in LANGS:
            name = WORDS.product(label, lang)  # type: ignore[arg-type]
            assert name and not machine_text(name) and "(" not in name, (label, name)


def _products(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [v for k, v in node.items() if k in ("product", "vendor") and isinstance(v, str)]
        return own + [p for value in node.values() for p in _products(value)]
    if isinstance(node, list):
        return [p for item in node for p in _products(item)]
    return []


@pytest.mark.parametrize(
    ("key", "value", "zh", "en"),
    [
        ("window_hours", 168, "7 天", "7 days"),
        ("window_hours", 24, "24 小时", "24 hours"),
        ("hours", 0.31, "19 分钟", "19 minutes"),
        ("window_days", 30.0, "30 天", "30 days"),
        ("night_share", 0.3333, "33%", "33%"),
        ("ip_country", "JP", "日本", "Japan"),
        ("ip_province", "CN-TW", "中国台湾", "Taiwan"),
        ("ip_province", "JP-13", "日本", "Japan"),
        ("provinces", ["CN-BJ", "CN-SH"], "北京市、上海市", "Beijing, Shanghai"),
        ("vpn_active", True, "是", "yes"),
        ("to_at", "2026-11-17T01:18:36.056378Z", "2026-11-17 01:18 UTC", "2026-11-17 01:18 UTC"),
    ],
)
def test_values_in_words(key: str, value: object, zh: str, en: str) -> None:
    assert WORDS.value(key, value, "zh") == zh
    assert WORDS.value(key, value, "en") == en


def test_a_country_not_in_the_table_is_named_not_coded() -> None:
    said = WORDS.region("IS", "en")
    assert said != "IS" and "IS" not in said.split()
