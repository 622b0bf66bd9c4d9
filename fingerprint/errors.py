"""One error base class; subclasses carry structured attributes (after geoip2.errors)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class FingerprintError(Exception):
    """Base class of every error this library raises on purpose."""


class InvalidSessionError(FingerprintError, ValueError):
    """A session record cannot be checked; ``field`` is the dotted path, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


class ConfigError(FingerprintError):
    """The checker cannot start: a database, rules folder or option is unusable."""

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{message}: {path}" if path else message)


class RulesError(ConfigError):
    """Rules files are invalid; ``file`` and ``key`` point at the first mistake and
    ``problems`` lists every one found (a rules folder is checked as a whole)."""

    def __init__(
        self, file: str, key: str, reason: str, *, problems: Sequence[RulesProblem] = ()
    ) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        self.problems: tuple[RulesProblem, ...] = tuple(problems) or (
            RulesProblem(file=file, key=key, reason=reason),
        )
        FingerprintError.__init__(self, str(self.problems[0]))
        self.path = file

    @classmethod
    def of(cls, problems: Sequence[RulesProblem]) -> RulesError:
        """One error carrying every problem; the first names ``file``/``key``/``reason``."""
        first = problems[0]
        return cls(first.file, first.key, first.reason, problems=problems)


@dataclass(frozen=True, slots=True, kw_only=True)
class RulesProblem:
    """One mistake in a rules file: ``file: key: reason`` (no key for a whole file)."""

    file: str
    key: str
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.file}: {self.key}: {self.reason}" if self.key else f"{self.file}: {self.reason}"
        )
