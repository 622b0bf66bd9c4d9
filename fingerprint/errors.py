"""One error base class; subclasses carry structured attributes (after geoip2.errors)."""

from __future__ import annotations


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
    """A rules file is invalid; ``file`` and ``key`` point at the mistake."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        FingerprintError.__init__(self, f"{file}: {key}: {reason}")
        self.path = file
