"""Signature tables compiled once: case-insensitive equals / prefix / contains / regex."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class SignatureMatcher(Generic[T]):
    """Matches one text against many patterns; returns the payloads of every match.

    Exact values are a dict lookup and prefixes one ``str.startswith`` over a tuple,
    so the common case (no match) costs a few hundred nanoseconds per text.
    """

    _equals: dict[str, list[T]] = field(default_factory=dict)
    _prefixes: list[tuple[str, T]] = field(default_factory=list)
    _prefix_tuple: tuple[str, ...] = ()
    _contains: list[tuple[str, T]] = field(default_factory=list)
    _regexes: list[tuple[re.Pattern[str], T]] = field(default_factory=list)

    def add(self, match: str, value: str, payload: T) -> None:
        folded = value.casefold()
        if match == "equals":
            self._equals.setdefault(folded, []).append(payload)
        elif match == "prefix":
            self._prefixes.append((folded, payload))
            self._prefix_tuple = tuple(p for p, _ in self._prefixes)
        elif match == "contains":
            self._contains.append((folded, payload))
        elif match == "regex":
            self._regexes.append((re.compile(value, re.IGNORECASE), payload))
        else:
            raise ValueError(f"unknown match kind {match!r}")

    def match(self, text: str) -> list[T]:
        folded = text.casefold()
        found: list[T] = list(self._equals.get(folded, ()))
        if self._prefix_tuple and folded.startswith(self._prefix_tuple):
            found.extend(p for prefix, p in self._prefixes if folded.startswith(prefix))
        found.extend(p for needle, p in self._contains if needle in folded)
        found.extend(p for pattern, p in self._regexes if pattern.search(text))
        return found

    def match_any(self, texts: Iterable[str]) -> list[tuple[str, T]]:
        return [(text, payload) for text in texts for payload in self.match(text)]

    def __bool__(self) -> bool:
        return bool(self._equals or self._prefixes or self._contains or self._regexes)
