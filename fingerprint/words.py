"""The words people read: check names, why a check was not evaluated, what a pending
device component waits for, region and product names, and evidence values in words.

Reports keep their stable codes and raw evidence (the contract); ``explain`` and the
HTML report say them through :class:`Words`, loaded from ``rules/words.yaml``. One
table for every check, so a new check without a name in both languages fails a test
instead of reaching a reader as ``device_reset``.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from fingerprint.features.provinces import CN_PROVINCES_ZH
from fingerprint.rules import default_rules_dir

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
WORDS_FILE = "words.yaml"

_Text = Annotated[str, Field(min_length=1, max_length=300)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Pair(_Strict):
    en: _Text
    zh: _Text

    def say(self, lang: Lang) -> str:
        return self.zh if lang == "zh" else self.en


class CheckWords(Pair):
    about_en: _Text
    about_zh: _Text

    def about(self, lang: Lang) -> str:
        return self.about_zh if lang == "zh" else self.about_en


class ReasonWords(Pair):
    match: str

    @field_validator("match")
    @classmethod
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value


class PendingWords(Pair):
    advice: _Text
    advice_zh: _Text
    check: str | None = None  # the check whose finding this pending reason is

    def advise(self, lang: Lang) -> str:
        return self.advice_zh if lang == "zh" else self.advice


class WordsFile(_Strict):
    version: Literal[1]
    checks: dict[str, CheckWords]
    not_evaluated: list[ReasonWords]
    not_evaluated_fallback: Pair
    pending: dict[str, PendingWords]
    evidence: dict[str, Pair] = {}
    hidden_evidence: list[str] = []
    provinces_en: dict[str, _Text] = {}
    countries: dict[str, Pair] = {}
    platforms: dict[str, Pair] = {}
    products: dict[str, Pair] = {}


# A template field holding hours or days, with the unit written after it: the value
# is said as a duration with its own unit ("7 天", not "168 小时").
_UNIT_AFTER_FIELD = re.compile(r"\{(\w+)\}\s?(?:hours?\b|h\b|days?\b|小时|天)")
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_REGION_CODE = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
_CJK = re.compile(r"[\u3400-\u9fff]")
_EMPTY_BRACKETS = re.compile(r"\s?[((]\s*[))]")
_CJK_GAP = re.compile(r"(?<=[\u3400-\u9fff]) (?=[\u3400-\u9fff])")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_MAX_ITEMS = 8


class Words:
    """Everything ``explain`` and the HTML report say, in ``zh`` or ``en``."""

    def __init__(self, spec: WordsFile) -> None:
        self.spec = spec
        self._reasons = [(re.compile(r.match), r) for r in spec.not_evaluated]

    # --- names ---------------------------------------------------------------------

    def check(self, name: str, lang: Lang) -> str:
        """What a person calls the check ``name``."""
        words = self.spec.checks.get(name)
        return words.say(lang) if words else name.replace("_", " ")

    def check_about(self, name: str, lang: Lang) -> str:
        """What the check ``name`` looks at, in a few words."""
        words = self.spec.checks.get(name)
        return words.about(lang) if words else self.check(name, lang)

    def not_evaluated(self, reason: str, lang: Lang) -> str:
        """The reason a check gave for not being evaluated, in words."""
        for pattern, words in self._reasons:
            found = pattern.search(reason)
            if found:
                return self.fill(words.say(lang), found.groupdict(), lang)
        return self.spec.not_evaluated_fallback.say(lang)

    def knows_reason(self, reason: str) -> bool:
        """Whether ``reason`` has its own words (not the fallback)."""
        return any(pattern.search(reason) for pattern, _ in self._reasons)

    def pending(self, reason: str, lang: Lang) -> str:
        words = self.spec.pending.get(reason)
        return words.say(lang) if words else reason.replace("_", " ")

    def pending_check(self, reason: str) -> str | None:
        """The check whose finding the pending ``reason`` stands for, if any."""
        words = self.spec.pending.get(reason)
        return words.check if words else None

    def pending_advice(self, reason: str, lang: Lang) -> str:
        words = self.spec.pending.get(reason)
        return words.advise(lang) if words else ""

    def shows(self, key: str) -> bool:
        """Whether the evidence ``key`` is for readers (not a catalogue detail)."""
        return key not in self.spec.hidden_evidence

    def evidence_label(self, key: str, lang: Lang) -> str:
        words = self.spec.evidence.get(key)
        return words.say(lang) if words else key.replace("_", " ")

    def region(self, code: str, lang: Lang) -> str:
        """``CN-BJ`` -> 北京市 / Beijing, ``JP`` -> 日本 / Japan; a subdivision abroad
        (``JP-13``) reads as its country."""
        code = code.strip().upper()
        if code in CN_PROVINCES_ZH:
            return CN_PROVINCES_ZH[code] if lang == "zh" else self.spec.provinces_en.get(code, code)
        country, _, part = code.partition("-")
        if country == "CN" and part in self.spec.countries:
            country = part  # CN-TW, CN-HK, CN-MO: the old ISO 3166-2:CN entries
        words = self.spec.countries.get(country)
        if words:
            return words.say(lang)
        english = _iso_country_names().get(country)
        if english:
            return english
        return "另一国家或地区" if lang == "zh" else "another country or region"

    def platform(self, name: str, lang: Lang) -> str:
        words = self.spec.platforms.get(name.lower())
        return words.say(lang) if words else name

    def product(self, label: str, lang: Lang) -> str:
        """A catalogue product label without its notes for analysts."""
        words = self.spec.products.get(label)
        if words:
            return words.say(lang)
        head = re.split(r" \(| - ", label, maxsplit=1)[0].strip()
        if lang == "zh" and not _CJK.search(head):
            alias = re.search(r"\(([^,)]*)", label)
            if alias and _CJK.search(alias.group(1)):
                return alias.group(1).strip()
        return head or label

    # --- values --------------------------------------------------------------------

    def value(self, key: str, value: Any, lang: Lang) -> str:
        """One evidence value as a person reads it: names for regions and products,
        durations with their unit, shares as percentages, times to the minute."""
        if value is None:
            return "无" if lang == "zh" else "none"
        if isinstance(value, bool):
            return ("是" if value else "否") if lang == "zh" else ("yes" if value else "no")
        if isinstance(value, list | tuple):
            return self._items(key, value, lang)
        if isinstance(value, Mapping):
            return self._mapping(value, lang)
        if isinstance(value, int | float):
            return self._number(key, value, lang)
        return self._text(key, str(value), lang)

    def fill(self, template: str, evidence: Mapping[str, Any], lang: Lang) -> str:
        """``template`` (a codes.yaml message) filled with ``evidence`` in words; a key
        the evidence lacks leaves nothing behind (and no empty brackets)."""
        template = _UNIT_AFTER_FIELD.sub(
            lambda m: "{" + m.group(1) + "}" if _is_duration(m.group(1)) else m.group(0),
            template,
        )
        values = _Blank({key: self.value(key, value, lang) for key, value in evidence.items()})
        try:
            text = template.format_map(values)
        except (ValueError, IndexError, KeyError, AttributeError):
            text = template
        text = _EMPTY_BRACKETS.sub("", text)
        # Chinese puts no space between two Chinese words ("位于 {ip_country}" filled
        # with 日本); the space stays next to Latin letters and digits.
        return _CJK_GAP.sub("", text) if lang == "zh" else text

    def _items(self, key: str, items: list[Any] | tuple[Any, ...], lang: Lang) -> str:
        said = list(dict.fromkeys(self.value(key, item, lang) for item in items))
        said = [s for s in said if s]
        more = len(said) - _MAX_ITEMS
        shown = ("、" if lang == "zh" else ", ").join(said[:_MAX_ITEMS])
        if more > 0:
            shown += f" 等 {len(said)} 项" if lang == "zh" else f" and {more} more"
        return shown or ("无" if lang == "zh" else "none")

    def _mapping(self, value: Mapping[str, Any], lang: Lang) -> str:
        if "from" in value and "to" in value:
            return (
                f"{self.value('from', value['from'], lang)} → {self.value('to', value['to'], lang)}"
            )
        field, name = value.get("field"), value.get("key")
        if (field or name) and value.get("value") is not None:  # a signature match
            said = self.value("value", value["value"], lang)
            named = f"{name}={said}" if name and field else said
            return f"{self.evidence_label(str(field or name), lang)} {named}"
        for key in ("product", "package", "value"):
            if value.get(key):
                return self.value(key, value[key], lang)
        return ", ".join(
            f"{self.evidence_label(k, lang)} {self.value(k, v, lang)}" for k, v in value.items()
        )

    def _number(self, key: str, value: float, lang: Lang) -> str:
        if key.endswith("share") or key == "share":
            return f"{round(value * 100)}%"
        if key.endswith("days") and value == int(value):  # whole days stay days
            days = int(value)
            unit = "天" if lang == "zh" else ("day" if days == 1 else "days")
            return f"{days} {unit}"
        if _is_duration(key):
            scale = 24.0 if key.endswith("days") else 1 / 3600 if key.endswith("seconds") else 1.0
            return duration(value * scale, lang)
        if isinstance(value, int):
            return str(value)
        return f"{value:.2f}".rstrip("0").rstrip(".")

    def _text(self, key: str, value: str, lang: Lang) -> str:
        # What the value is decides first (a province code, a time), then what the
        # key says it is: input text may sit under any key.
        code = value.strip().upper()
        if code in CN_PROVINCES_ZH or (_is_region_key(key) and _REGION_CODE.match(code)):
            return self.region(value, lang)
        if _ISO_TIME.match(value):
            return moment(value)
        if _is_duration(key) and _NUMBER.match(value):
            return self._number(key, float(value), lang)
        if key in ("product", "products", "vendor"):
            return self.product(value, lang)
        if key == "reason":
            return self.not_evaluated(value, lang)
        if key.endswith("platform"):
            return self.platform(value, lang)
        return value


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def _is_duration(key: str) -> bool:
    return key in ("hours", "days") or key.endswith(("_hours", "_days", "_seconds"))


def _is_region_key(key: str) -> bool:
    return "country" in key or "province" in key or key in ("from", "to", "region")


def duration(hours: float, lang: Lang) -> str:
    """``hours`` in the largest unit that says it exactly enough: 168 -> 7 天 / 7 days,
    24 -> 24 小时, 0.31 -> 19 分钟 / 19 minutes, 1.5 -> 1.5 小时 / 1.5 hours."""
    amount: float | int
    if hours >= 48 and abs(hours / 24 - round(hours / 24)) < 0.05:
        amount, zh, en = round(hours / 24), "天", "day"
    elif hours < 1:
        amount, zh, en = max(1, round(hours * 60)), "分钟", "minute"
    else:
        amount, zh, en = _tidy(round(hours, 1)), "小时", "hour"
    if lang == "zh":
        return f"{amount} {zh}"
    return f"{amount} {en}" + ("" if amount == 1 else "s")


def _tidy(value: float) -> float | int:
    return int(value) if value == int(value) else value


def moment(value: str | datetime) -> str:
    """A time to the minute, in UTC (reports keep the exact time)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M") + (" UTC" if value.tzinfo is not None else "")


@lru_cache(maxsize=1)
def _iso_country_names() -> dict[str, str]:
    """English country names from the time-zone database's ISO 3166 table, read where
    the system or the tzdata package installed it; empty when neither did."""
    for folder in [*zoneinfo.TZPATH, _tzdata_folder()]:
        path = Path(folder) / "iso3166.tab" if folder else None
        if path is not None and path.is_file():
            rows = (line.split("\t") for line in path.read_text(encoding="utf-8").splitlines())
            return {row[0]: row[1].strip() for row in rows if len(row) == 2 and row[0][:1] != "#"}
    return {}


def _tzdata_folder() -> str:
    try:
        import tzdata  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return ""
    return str(Path(tzdata.__file__).parent / "zoneinfo")


def load_words(directory: str | Path | None = None) -> Words:
    """The words of the rules ``directory`` when it has its own ``words.yaml``, else
    the bundled ones (a rules overlay need not copy them)."""
    own = Path(directory) / WORDS_FILE if directory is not None else None
    path = own if own is not None and own.is_file() else default_rules_dir() / WORDS_FILE
    return _load(str(path))


@lru_cache(maxsize=8)
def _load(path: str) -> Words:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return Words(WordsFile.model_validate(data))
