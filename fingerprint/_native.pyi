"""Types of the C extension built from ``fingerprint/_native.c`` (optional; see
:mod:`fingerprint.native`)."""

from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo
from ipaddress import IPv4Address
from typing import Any

SOURCE_DIGEST: str

def bind_event(login_event: type[tuple[Any, ...]], /) -> None: ...
def bind_stability(namespace: dict[str, Any], stability: type[tuple[Any, ...]], /) -> None: ...
def unpack_window(
    account_id: str, records: bytes, symbols: tuple[Any, ...], start: int, stop: int, /
) -> tuple[Any, ...]: ...
def plain_json(record: object, /) -> bool: ...
def pack_login(
    event: tuple[Any, ...],
    symbols: list[Any],
    places: dict[tuple[Any, ...], tuple[Any, ...]],
    share_place: Callable[[tuple[Any, ...]], tuple[Any, ...]],
    /,
) -> bytes | None: ...
def append_login(
    window_type: type[tuple[Any, ...]],
    window: tuple[bytes, tuple[Any, ...]],
    event: tuple[Any, ...],
    max_events: int,
    account_seconds: float,
    places: dict[tuple[Any, ...], tuple[Any, ...]],
    share_place: Callable[[tuple[Any, ...]], tuple[Any, ...]],
    /,
) -> tuple[tuple[bytes, tuple[Any, ...]], int, str | None] | None: ...
def packed_stability(
    records: bytes,
    symbols: tuple[Any, ...],
    start: int,
    position: int,
    current: tuple[Any, ...],
    windows_seconds: Sequence[float],
    local_tz: tzinfo,
    unusual_hour_share: float,
    /,
) -> list[Any] | None: ...
def entropy_sum(counts: tuple[int, ...], /) -> float: ...
def stability_windows(
    history: Sequence[Any],
    current: tuple[Any, ...],
    windows_seconds: Sequence[float],
    local_tz: tzinfo,
    unusual_hour_share: float,
    /,
) -> list[Any] | None: ...
def utc_text(value: object, /) -> str | None: ...
def utc_time(value: object, /) -> datetime | None: ...
def v4_address(text: str, /) -> IPv4Address | None: ...
def v4_texts(address: object, /) -> tuple[str, str] | None: ...
def fields_dict(names: tuple[str, ...], values: tuple[Any, ...], /) -> dict[str, Any] | None: ...
def record_on(
    table: dict[str, Any],
    pop_key: str,
    key: str,
    account: str,
    ts: float,
    low: float,
    cap: int,
    /,
) -> tuple[tuple[float, str], ...] | None: ...
