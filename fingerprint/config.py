"""How a :class:`~fingerprint.checker.Checker` is built: :class:`CheckerConfig`.

Its own module so the command line, Spark and the library read one declaration
(the checker imports it; nothing here imports the checker).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fingerprint.errors import ConfigError
from fingerprint.session import DEFAULT_NAIVE_TZ

IDENTITY_SECRET_ENV = "FINGERPRINT_IDENTITY_SECRET"


@dataclass(frozen=True, slots=True, kw_only=True)
class Option:
    """How a :class:`CheckerConfig` field is set from a command line: the field's
    ``metadata["option"]``. ``fingerprint.options`` makes the argparse options of
    ``check``, ``explain``, ``whois`` and the Spark job from it, with the field's
    default, so flag, help and default are written once, here."""

    flag: str
    help: str  # "{default}" in it is replaced by the default the caller shows
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None  # the flag's text as a value (argparse type)
    switch: bool = False  # a flag without a value: present means True
    # The parsed value (or the default) as the field takes it, when the config is
    # built: a ConfigError here is a configuration error (exit 2), not a usage error.
    to_config: Callable[[Any], Any] | None = None


def _option(**option: Any) -> dict[str, Option]:
    """A field's metadata: its command-line :class:`Option`."""
    return {"option": Option(**option)}


def _database(flag: str, help: str) -> dict[str, Option]:
    return _option(flag=flag, metavar="P", help=help)


def _seconds_option(flag: str, help: str) -> dict[str, Option]:
    return _option(flag=flag, metavar="S", parse=float, help=help)


def _switch(flag: str, help: str) -> dict[str, Option]:
    return _option(flag=flag, switch=True, help=help)


def _library_only(why: str) -> dict[str, str]:
    """A field's metadata: no command line offers it, and ``why``."""
    return {"library_only": why}


def zone_from_text(value: tzinfo | str) -> tzinfo:
    """``--naive-tz``'s zone (a tzinfo passes through); an unknown name is a ConfigError."""
    if isinstance(value, tzinfo):
        return value
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("unknown time zone", value) from None


def read_identity_secret(path: str | None) -> bytes | None:
    """The identity secret: the file's bytes (one trailing newline dropped), else the
    environment variable, else None (the built-in secret). Never a command-line value:
    a secret there shows in ``ps`` and shell history."""
    if path is not None:
        try:
            secret = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"identity secret file unreadable ({exc.strerror})", path) from None
        secret = secret[:-1] if secret.endswith(b"\n") else secret
        if not secret:
            raise ConfigError("identity secret file is empty", path)
        return secret
    value = os.environ.get(IDENTITY_SECRET_ENV)
    return value.encode("utf-8") if value else None


@dataclass(frozen=True)
class CheckerConfig:
    """How to build a :class:`Checker`. Paths are checked when the checker starts.

    A field a user sets on a command line carries its :class:`Option` (flag, help,
    metavar, parser); the others say why they are the library's alone.
    """

    # None: the bundled GeoLite2-City (2018)
    city_db: str | Path | None = field(
        default=None,
        metadata=_database(
            "--city-db", "GeoIP2/GeoLite2-City database (default: bundled GeoLite2-City 2018)"
        ),
    )
    asn_db: str | Path | None = field(
        default=None, metadata=_database("--asn-db", "GeoLite2-ASN-format database")
    )
    anonymous_ip_db: str | Path | None = field(
        default=None,
        metadata=_database(
            "--anonymous-ip-db", "GeoIP2-Anonymous-IP or GeoIP-Anonymous-Plus database"
        ),
    )
    # None: the rules shipped with the package
    rules_dir: str | Path | None = field(
        default=None,
        metadata=_option(flag="--rules", metavar="DIR", help="rules directory (default: bundled)"),
    )
    # How to read ISO times without an offset: a tzinfo or an IANA zone name
    # ("Asia/Shanghai"); a name is resolved (or refused) when the config is built.
    naive_tz: tzinfo | str = field(
        default=DEFAULT_NAIVE_TZ,
        metadata=_option(
            flag="--naive-tz",
            metavar="TZ",
            help="time zone for timestamps without an offset (default {default})",
            to_config=zone_from_text,
        ),
    )
    use_city_db: bool = field(
        default=True,
        metadata=_library_only("tests and benchmarks leave geo out"),
    )
    ua_cache_size: int = field(
        default=16_384,
        metadata=_library_only("memory tuning of a long-running service"),
    )
    # Device verdicts remembered, keyed on the device's content less its id and
    # battery (the key is a 16-byte hash); 0: off. Content repeats far more than ids,
    # but not always soon: the generator's 200,000 lines hold ~16,500 distinct device
    # contents, and 4,096 verdicts served 57% of the lines where 16,384 serve 92%
    # (CPU -12%).
    # ~0.8 kB a verdict: verdicts share their equal parts (stages/verdict.py), so
    # 16,384 hold ~13 MB.
    device_memo_size: int = field(
        default=16_384,
        metadata=_library_only("memory tuning; each caller fixes its own"),
    )
    # account summaries kept; None: unbounded
    track_accounts: int | None = field(
        default=100_000,
        metadata=_library_only(
            "a service's account summaries; the CLI and Spark roll accounts up themselves"
        ),
    )
    # or a Redis URL: redis://127.0.0.1:6379/0
    history: str = field(
        default="memory",
        metadata=_option(
            flag="--history",
            metavar="URL",
            help="where history lives: memory (default) or redis://HOST:PORT/DB, shared with "
            "other checkers",
        ),
    )
    # seconds per Redis call (above 0)
    history_timeout: float = field(
        default=0.05,
        metadata=_seconds_option(
            "--history-timeout",
            "seconds per Redis call before history counts as unavailable (default {default})",
        ),
    )
    # How far ahead of the checker's clock a login may be dated (seconds); later
    # ones are rejected (InvalidSessionError on "ts"), so no login can move history's
    # windows for other accounts and devices. Covers clock drift between servers.
    future_tolerance: float = field(
        default=300.0,
        metadata=_library_only(
            "a service's wall clock; command-line runs replay logs on their own time"
        ),
    )
    # history down: grade conservatively instead of skipping
    fail_closed: bool = field(
        default=False,
        metadata=_switch(
            "--fail-closed",
            "if history cannot be read, grade conservatively instead of skipping it",
        ),
    )
    # RDAP enrichment (ipwhois) for IPs no ASN database covers
    whois: bool = field(
        default=False,
        metadata=_switch(
            "--whois",
            "look up IPs no ASN database covers in the registries (RDAP, cached)",
        ),
    )
    # SQLite cache; None: ~/.cache/fingerprint/
    whois_cache: str | Path | None = field(
        default=None,
        metadata=_option(
            flag="--whois-cache",
            metavar="PATH",
            help="whois SQLite cache (default ~/.cache/fingerprint/whois.sqlite3)",
        ),
    )
    # seconds per lookup
    whois_timeout: float = field(
        default=3.0,
        metadata=_seconds_option(
            "--whois-timeout",
            "seconds per whois lookup (default {default})",
        ),
    )
    # How long check() may wait for a lookup: 0, a service never blocks on a
    # registry (the CLI overrides it, see fingerprint.options.CLI).
    whois_wait: float = field(
        default=0.0,
        metadata=_seconds_option(
            "--whois-wait",
            "how long a session may wait for its lookup (default {default})",
        ),
    )
    # lookups per checker at most
    whois_budget: int | None = field(
        default=None,
        metadata=_option(
            flag="--whois-budget",
            metavar="N",
            parse=int,
            help="at most N registry lookups per run (per worker)",
        ),
    )
    # The secret device identifiers and keys are hashed with (keyed BLAKE2b), so
    # history and reports never hold a raw android_id, DRM id, OAID or IDFV. None: a
    # fixed built-in secret, so reports stay reproducible and replicas agree, but the
    # hashes only pseudonymise; configure one of your own (README "Privacy").
    # The command line takes a file (never the secret itself: it would show in ps).
    identity_secret: str | bytes | None = field(
        default=None,
        repr=False,
        metadata={
            "option": Option(
                flag="--identity-secret-file",
                metavar="PATH",
                help="file holding the secret device identifiers are hashed with (default: "
                f"${IDENTITY_SECRET_ENV}, else a fixed built-in secret; see README Privacy)",
                to_config=read_identity_secret,
            )
        },
    )

    def __post_init__(self) -> None:
        # Checked here, not at the first login: a wrong option fails where it is written.
        object.__setattr__(self, "naive_tz", _time_zone(self.naive_tz))
        _seconds("history_timeout", self.history_timeout, zero=False)
        _seconds("whois_timeout", self.whois_timeout, zero=False)
        _seconds("whois_wait", self.whois_wait, zero=True)
        _count("ua_cache_size", self.ua_cache_size)
        _count("device_memo_size", self.device_memo_size)
        _count("track_accounts", self.track_accounts, optional=True)
        _count("whois_budget", self.whois_budget, optional=True)
        if self.identity_secret is not None and not (
            isinstance(self.identity_secret, str | bytes) and self.identity_secret
        ):
            raise ConfigError("identity_secret must be a non-empty str or bytes, or None")
        if not isinstance(self.history, str):
            raise ConfigError(f"history must be 'memory' or a redis:// URL, not {self.history!r}")

    @property
    def time_zone(self) -> tzinfo:
        """``naive_tz`` as a tzinfo (a zone name given is resolved when built)."""
        assert isinstance(self.naive_tz, tzinfo)
        return self.naive_tz


def _time_zone(value: object) -> tzinfo:
    if isinstance(value, tzinfo):
        return value
    if isinstance(value, str):
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError("naive_tz: unknown time zone", value) from None
    raise ConfigError(
        f"naive_tz must be a tzinfo or a zone name such as 'Asia/Shanghai', not {value!r}"
    )


def _seconds(name: str, value: object, *, zero: bool) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero):  # type: ignore[operator]
        wanted = "0 or more" if zero else "above 0"
        raise ConfigError(f"{name} must be a finite number of seconds, {wanted}; got {value!r}")


def _count(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        also = " or None" if optional else ""
        raise ConfigError(f"{name} must be a whole number, 0 or more{also}; got {value!r}")


__all__ = [
    "IDENTITY_SECRET_ENV",
    "CheckerConfig",
    "ConfigError",
    "Option",
    "read_identity_secret",
    "zone_from_text",
]
