"""How a :class:`~fingerprint.checker.Checker` is built: :class:`CheckerConfig`.

Its own module so the command line, Spark and the library read one declaration
(the checker imports it; nothing here imports the checker).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fingerprint.errors import ConfigError
from fingerprint.session import DEFAULT_NAIVE_TZ


@dataclass(frozen=True)
class CheckerConfig:
    """How to build a :class:`Checker`. Paths are checked when the checker starts."""

    city_db: str | Path | None = None  # None: the bundled GeoLite2-City (2018)
    asn_db: str | Path | None = None
    anonymous_ip_db: str | Path | None = None
    rules_dir: str | Path | None = None  # None: the rules shipped with the package
    # How to read ISO times without an offset: a tzinfo or an IANA zone name
    # ("Asia/Shanghai"); a name is resolved (or refused) when the config is built.
    naive_tz: tzinfo | str = DEFAULT_NAIVE_TZ
    use_city_db: bool = True
    ua_cache_size: int = 16_384
    # Device verdicts remembered (~10 kB each: the validated device block and its
    # ~1.5 kB key); 0: off.
    # A service sees its users' devices again soon: measured p50 ~195 µs with the
    # memo, ~250-300 without. The CLI turns it off: over a 2 M-line log a device
    # rarely returns before 4,096 others (2-7% hits), not worth ~39 MB.
    device_memo_size: int = 4_096
    track_accounts: int | None = 100_000  # account summaries kept; None: unbounded
    history: str = "memory"  # or a Redis URL: redis://127.0.0.1:6379/0
    history_timeout: float = 0.05  # seconds per Redis call (above 0)
    # How far ahead of the checker's clock a login may be dated (seconds); later
    # ones are rejected (InvalidSessionError on "ts"), so no login can move history's
    # windows for other accounts and devices. Covers clock drift between servers.
    future_tolerance: float = 300.0
    fail_closed: bool = False  # history down: grade conservatively instead of skipping
    whois: bool = False  # RDAP enrichment (ipwhois) for IPs no ASN database covers
    whois_cache: str | Path | None = None  # SQLite cache; None: ~/.cache/fingerprint/
    whois_timeout: float = 3.0  # seconds per lookup
    whois_wait: float = 0.0  # how long check() may wait for a lookup (0: never blocks)
    whois_budget: int | None = None  # lookups per checker at most
    # The secret device identifiers and keys are hashed with (keyed BLAKE2b), so
    # history and reports never hold a raw android_id, DRM id, OAID or IDFV. None: a
    # fixed built-in secret, so reports stay reproducible and replicas agree, but the
    # hashes only pseudonymise; configure one of your own (README "Privacy").
    identity_secret: str | bytes | None = field(default=None, repr=False)

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


__all__ = ["CheckerConfig", "ConfigError"]
