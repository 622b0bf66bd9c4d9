"""Findings as a report shows them: a check's :class:`~fingerprint.checks.Hit` stamped
with its code's severity and both messages from ``rules/codes.yaml`` (:func:`render`),
and a finding's message said again in words for people (:func:`said_in_words`: the
HTML report and ``explain``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fingerprint.checks.base import Hit
from fingerprint.report import Finding
from fingerprint.words import Lang, Words


def finding_from_hit(
    check: str, hit: Hit, codes: Mapping[str, Any], late_by: float | None
) -> Finding:
    spec = codes[hit.code]
    evidence = (
        hit.evidence
        if late_by is None
        else {**hit.evidence, "late_arrival_seconds": round(late_by)}
    )
    return Finding(
        check=check,
        code=hit.code,
        severity=hit.severity or spec.severity,
        message=render(spec.message, evidence),
        message_zh=render(spec.message_zh, evidence),
        evidence=evidence,
    )


class _Evidence(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def render(template: str, evidence: Mapping[str, Any]) -> str:
    """Fill ``{key}`` from evidence; lists read as "a, b"; unknown keys print "?"."""
    values = _Evidence()
    for key, value in evidence.items():
        if isinstance(value, list | tuple):
            value = ", ".join(_short(v) for v in value)
        values[key] = value
    try:
        # str.format_map, not string.Formatter: the same parser and __missing__, in C
        # (~0.4 µs against ~5 µs a message; two messages per finding).
        return template.format_map(values)
    except (ValueError, IndexError, KeyError, AttributeError):
        return template


def _short(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("product") or value.get("package") or value.get("value") or "")
    return str(value)


def said_in_words(
    code: str, evidence: object, message: str, codes: Mapping[str, Any], words: Words, lang: Lang
) -> str:
    """A finding's message said again from its code's template with ``words``
    (region and product names, durations, where the report's ``message`` carries
    codes and raw values); a code these rules do not know, or evidence that is not
    an object, keeps the report's ``message``."""
    spec = codes.get(code)
    if spec is None or not isinstance(evidence, Mapping):
        return message
    return words.fill(spec.message_zh if lang == "zh" else spec.message, evidence, lang)


__all__ = ["finding_from_hit", "render", "said_in_words"]
