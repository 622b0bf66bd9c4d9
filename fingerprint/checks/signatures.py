"""Signature tables compiled once: case-insensitive equals / prefix / contains / regex."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from fingerprint.memo import BoundedMemo
from fingerprint.rules import RulePattern, compile_rule_regex

T = TypeVar("T")

# Texts matched (device props, packages, libs) repeat across devices: each matcher
# remembers this many answers, then starts over instead of growing. Texts are
# client-supplied and may be long; longer ones than this are matched, not kept.
MATCH_CACHE_SIZE = 4_096
_MAX_CACHED_TEXT = 256


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
    # Regexes come from rules data: RE2 runs them in time linear in the text.
    _regexes: list[tuple[RulePattern, T]] = field(default_factory=list)
    # One alternation of every non-exact pattern: a text that misses it (the usual
    # case) is done after one regex search instead of a loop per signature.
    _any: RulePattern | None = None
    _alternatives: list[str] = field(default_factory=list)
    # text -> its matches (see fingerprint.memo: thread-safe, cleared when full).
    _memo: BoundedMemo[str, tuple[T, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._memo = BoundedMemo(MATCH_CACHE_SIZE, self._match_all, keep=_cacheable)

    def add(self, match: str, value: str, payload: T) -> None:
        self._memo.clear()  # answers given before this signature are stale
        folded = value.casefold()
        if match == "equals":
            self._equals.setdefault(folded, []).append(payload)
            return
        if match == "prefix":
            self._prefixes.append((folded, payload))
            self._prefix_tuple = tuple(p for p, _ in self._prefixes)
            self._alternatives.append("^" + re.escape(value))
        elif match == "contains":
            self._contains.append((folded, payload))
            self._alternatives.append(re.escape(value))
        elif match == "regex":
            self._regexes.append((compile_rule_regex(value), payload))
            self._alternatives.append(f"(?:{value})")
        else:
            raise ValueError(f"unknown match kind {match!r}")
        self._any = compile_rule_regex("|".join(self._alternatives))

    def match(self, text: str) -> tuple[T, ...]:
        """The payloads of every signature ``text`` matches, in table order."""
        return self._memo[text]

    def _match_all(self, text: str) -> tuple[T, ...]:
        return tuple(self._match(text))

    def _match(self, text: str) -> list[T] | tuple[()]:
        folded = text.casefold()
        exact = self._equals.get(folded)
        if self._any is None or self._any.search(text) is None:
            return exact if exact else ()
        found: list[T] = list(exact) if exact else []
        if self._prefix_tuple and folded.startswith(self._prefix_tuple):
            found.extend(p for prefix, p in self._prefixes if folded.startswith(prefix))
        found.extend(p for needle, p in self._contains if needle in folded)
        found.extend(p for pattern, p in self._regexes if pattern.search(text))
        return found

    def __bool__(self) -> bool:
        return bool(self._equals or self._prefixes or self._contains or self._regexes)


def _cacheable(text: str) -> bool:
    return len(text) <= _MAX_CACHED_TEXT
