"""The value rules a session record's fields share, whichever validator applies them.

:mod:`fingerprint.session` (the fast msgspec decoder) and
:mod:`fingerprint._session_reference` (the pydantic models that name a rejected
field) both read times, addresses, lowercase text and system properties through
these functions, so the two cannot disagree on a value.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from socket import inet_aton, inet_ntoa
from typing import Any
from zoneinfo import ZoneInfo

from fingerprint.native import NATIVE

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_NAIVE_TZ: tzinfo = ZoneInfo("Asia/Shanghai")

# Longest text any field takes; longer is a data error (or an attack), not a value.
MAX_TEXT = 65_536
# account_id is a key in every store: short enough to index.
MAX_ACCOUNT_ID = 256

# Epoch numbers at or above this are milliseconds: 1e11 seconds is the year 5138.
_MILLIS_THRESHOLD = 100_000_000_000
# Timestamps outside this range are data errors, not logins.
_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def lowercase(value: Any) -> Any:
    """Text lowercased; anything else unchanged, for the type check that follows."""
    return value.lower() if isinstance(value, str) else value


def str_values(value: Any) -> Any:
    """System property values are strings on Android; SDKs often send numbers and bools."""
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(item, bool):
                out[key] = "1" if item else "0"
            elif isinstance(item, int | float) and not isinstance(item, bool):
                out[key] = str(item)
            else:
                out[key] = item
        return out
    return value


def parse_timestamp(value: Any, naive_tz: tzinfo = DEFAULT_NAIVE_TZ) -> datetime:
    """ISO 8601 (naive times read in ``naive_tz``) or epoch seconds/milliseconds -> aware UTC.

    Raises ``ValueError`` (never ``OverflowError``) for anything that is not a time
    between 1990 and 2100, so one bad line is a reject and never stops a run.
    """
    if _NATIVE_TIME is not None:  # ISO text with its offset, epoch seconds: in C
        read = _NATIVE_TIME(value)
        if read is not None:
            return read
    try:
        when = _to_datetime(value, naive_tz).astimezone(UTC)
    except OverflowError:
        # Year 1 at +14:00, year 9999 at -14:00, a 400-digit epoch: the datetime
        # arithmetic overflows before the range test below could say so.
        raise ValueError(_OUT_OF_RANGE) from None
    if not _EARLIEST <= when < _LATEST:
        raise ValueError(f"{_OUT_OF_RANGE} ({when.isoformat()})")
    return when


_OUT_OF_RANGE = "out of range: not a time between 1990 and 2100"

# The common spellings read in C where the extension is built (fingerprint.native):
# an ISO text with its offset in ~0.1 µs instead of ~0.8, an IPv4 address instead of
# a cache that the latency benchmark's addresses missed 43% of the time (~0.75 µs a
# miss). Each answers as the Python code below does, which answers every other value.
_NATIVE_TIME: Callable[[Any], datetime | None] | None = (
    NATIVE.utc_time if NATIVE is not None else None
)
_NATIVE_V4: Callable[[str], ipaddress.IPv4Address | None] | None = (
    NATIVE.v4_address if NATIVE is not None else None
)


def _to_datetime(value: Any, naive_tz: tzinfo) -> datetime:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a timestamp")
    if isinstance(value, str):
        text = value.strip()
        # "2026-11-18T...": four digits then "-" is no number int() or float() takes,
        # so skip their two raised ValueErrors (~1.7 µs of a ~2.5 µs parse).
        number = None if _looks_iso(text) else _as_number(text)
        return _from_epoch(number) if number is not None else _from_iso(text, naive_tz)
    if isinstance(value, int | float):
        return _from_epoch(value)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=naive_tz)
    raise ValueError(f"expected ISO 8601 text or epoch number, got {type(value).__name__}")


def _looks_iso(text: str) -> bool:
    return len(text) > 4 and text[4] == "-" and text[:4].isdigit()


def _as_number(text: str) -> float | int | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def _from_epoch(number: float | int) -> datetime:
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError("timestamp is not a finite number")
    if abs(number) >= _MILLIS_THRESHOLD:
        number = number / 1000
    if not -1e11 < number < 1e11:
        raise ValueError(_OUT_OF_RANGE)
    return _EPOCH + timedelta(seconds=number)


def _from_iso(text: str, naive_tz: tzinfo) -> datetime:
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 timestamp: {text[:64]!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=naive_tz)


def parse_ip(value: Any) -> IPAddress:
    """IPv4 or IPv6 text; IPv4-mapped IPv6 (``::ffff:1.2.3.4``) becomes IPv4."""
    if not isinstance(value, str):
        raise ValueError(f"expected an IP address string, got {type(value).__name__}")
    if _NATIVE_V4 is not None:  # an address as inet_ntoa writes it: made in C
        address = _NATIVE_V4(value)
        if address is not None:
            return address
    return _parse_ip_text(value)


@lru_cache(maxsize=4_096)
def _parse_ip_text(value: str) -> IPAddress:
    """Cached: real logs repeat addresses, and ``ip_address`` costs about 1.5 µs."""
    text = value.strip()
    packed = dotted_quad(text)
    if packed is not None:  # most addresses, and most cache misses: ~0.8 µs less
        return ipaddress.IPv4Address(packed)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"not an IP address: {value[:64]!r}") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def dotted_quad(text: str) -> bytes | None:
    """The 4 bytes of an IPv4 address written as ``ip_address`` writes one (four
    decimal numbers 0-255, no leading zero), else None: ``inet_aton`` also reads
    "1.2.3", "0x7f.1" or "010.0.0.1" (octal), which reading its bytes back refuses.
    (History packs addresses with it too: those it reads back as the same text.)"""
    if text.count(".") != 3:
        return None
    try:
        packed = inet_aton(text)
    except (OSError, ValueError):  # not an address; a NUL or non-ASCII character
        return None
    return packed if inet_ntoa(packed) == text else None


def v4_block_text(packed: bytes) -> str:
    """The /24 holding an IPv4 address, from its 4 bytes: ``"1.2.3.0/24"``, as
    ``network_text(address, 24)`` writes it."""
    return inet_ntoa(packed[:3] + b"\0") + "/24"


def json_type(value: Any) -> str:
    """How a JSON reader would name this value's type, for messages."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return type(value).__name__
