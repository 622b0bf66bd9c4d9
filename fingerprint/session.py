"""Input models for session log v1 (see SESSION-LOG.md).

Lenient where the contract allows it (unknown fields are ignored, every block is
optional except ``account_id``, ``ts`` and ``ip``) and strict about types: a field
of the wrong type makes the whole record invalid, because a check that reads a
wrongly typed field would otherwise guess (``"vpn_active": "yes"`` once graded as a
VPN). Strict means no coercion: text fields take JSON strings only, flags take
``true``/``false`` only, counts take integers only, measures take numbers. The one
documented exception is ``device.system_props``, whose values are Android property
strings that SDK serialisers often send as numbers or booleans.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from fingerprint.errors import InvalidSessionError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_NAIVE_TZ: tzinfo = ZoneInfo("Asia/Shanghai")

# Epoch numbers at or above this are milliseconds: 1e11 seconds is the year 5138.
_MILLIS_THRESHOLD = 100_000_000_000
# Timestamps outside this range are data errors, not logins.
_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _lowercase(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _str_values(value: Any) -> Any:
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


_MODEL_CONFIG = ConfigDict(
    extra="ignore",
    strict=True,  # no coercion: "yes" is not a boolean, "10234" is not a uid, 123 no id
    allow_inf_nan=False,
    str_max_length=65_536,
)

Lower = Annotated[str, BeforeValidator(_lowercase)]
Uid = Annotated[int, Field(ge=0, le=2**32)]
Bytes = Annotated[int, Field(ge=0, le=2**63)]
EpochSeconds = Annotated[int, Field(ge=0, le=2**40)]


class Battery(BaseModel):
    model_config = _MODEL_CONFIG
    level: Annotated[float, Field(ge=0, le=1)] | None = None  # a share: 0.83 is 83 %
    charging: bool | None = None
    temperature_c: Annotated[float, Field(ge=-100, le=200)] | None = None


def battery_pinned(battery: Battery | None) -> bool:
    """Full, charging and at exactly 0 °C: how emulators report a battery."""
    if battery is None or not battery.charging or battery.temperature_c != 0:
        return False
    return battery.level == 1.0


class Screen(BaseModel):
    model_config = _MODEL_CONFIG
    width: Annotated[int, Field(ge=0, le=100_000)] | None = None
    height: Annotated[int, Field(ge=0, le=100_000)] | None = None
    density: Annotated[float, Field(ge=0, le=100_000)] | None = None


class Sim(BaseModel):
    model_config = _MODEL_CONFIG
    state: Lower | None = None
    mcc_mnc: str | None = None
    carrier: str | None = None

    @property
    def mcc(self) -> str | None:
        code = (self.mcc_mnc or "").strip()
        return code[:3] if len(code) >= 5 and code[:3].isdigit() else None


class Device(BaseModel):
    model_config = _MODEL_CONFIG
    device_id: str | None = None
    platform: Lower | None = None
    os_version: str | None = None
    brand: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    hardware: str | None = None
    board: str | None = None
    product: str | None = None
    build_fingerprint: str | None = None
    cpu_abi: list[str] | None = None
    sensors: list[str] | None = None
    battery: Battery | None = None
    screen: Screen | None = None
    has_telephony: bool | None = None
    sim: Sim | None = None
    timezone: str | None = None
    locale: str | None = None
    rooted: bool | None = None
    hooks: list[Lower] | None = None
    debugger_attached: bool | None = None
    system_props: Annotated[dict[str, str], BeforeValidator(_str_values)] | None = None
    files_present: list[str] | None = None
    installed_packages: list[str] | None = None
    # Identity attributes (SESSION-LOG.md v1.1), raw or already hashed.
    android_id: str | None = None
    drm_id: str | None = None
    oaid: str | None = None
    idfv: str | None = None
    memory_total: Bytes | None = None
    storage_total: Bytes | None = None
    cpu_cores: Annotated[int, Field(ge=1, le=4_096)] | None = None
    cpu_info: str | None = None
    kernel_version: str | None = None
    build_time: EpochSeconds | None = None
    boot_time: EpochSeconds | None = None
    boot_count: Annotated[int, Field(ge=0, le=2**31)] | None = None
    first_install_time: EpochSeconds | None = None


class App(BaseModel):
    model_config = _MODEL_CONFIG
    package: str | None = None
    version: str | None = None
    data_dir: str | None = None
    uid: Uid | None = None
    process_uid: Uid | None = None
    loaded_libs: list[str] | None = None


class Network(BaseModel):
    model_config = _MODEL_CONFIG
    type: Lower | None = None
    vpn_active: bool | None = None
    http_proxy: str | None = None
    interfaces: list[str] | None = None
    dns: list[str] | None = None


class Auth(BaseModel):
    model_config = _MODEL_CONFIG
    method: str | None = None
    face_verified: bool | None = None
    result: str | None = None


class Session(BaseModel):
    """One login session. Build it with :func:`parse_session` to get library errors."""

    model_config = _MODEL_CONFIG

    session_id: str | None = None
    account_id: Annotated[str, Field(min_length=1, max_length=256)]
    ts: datetime
    ip: IPAddress
    user_agent: str | None = None
    device: Device | None = None
    app: App | None = None
    network: Network | None = None
    auth: Auth | None = None

    @field_validator("account_id", mode="before")
    @classmethod
    def _account_id_text(cls, value: Any) -> Any:
        # A string, as SESSION-LOG.md shows: 123 and "123" would otherwise be one account
        # here and two in any system that compares the raw JSON.
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("ts", mode="before")
    @classmethod
    def _parse_ts(cls, value: Any, info: ValidationInfo) -> datetime:
        context = info.context or {}
        return parse_timestamp(value, context.get("naive_tz", DEFAULT_NAIVE_TZ))

    @field_validator("ip", mode="before")
    @classmethod
    def _parse_ip(cls, value: Any) -> IPAddress:
        return parse_ip(value)


def parse_timestamp(value: Any, naive_tz: tzinfo = DEFAULT_NAIVE_TZ) -> datetime:
    """ISO 8601 (naive times read in ``naive_tz``) or epoch seconds/milliseconds -> aware UTC.

    Raises ``ValueError`` (never ``OverflowError``) for anything that is not a time
    between 1990 and 2100, so one bad line is a reject and never stops a run.
    """
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
    return _parse_ip_text(value)


@lru_cache(maxsize=4_096)
def _parse_ip_text(value: str) -> IPAddress:
    """Cached: real logs repeat addresses, and ``ip_address`` costs about 1.5 µs."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError(f"not an IP address: {value[:64]!r}") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_session(record: Any, *, naive_tz: tzinfo = DEFAULT_NAIVE_TZ) -> Session:
    """Validate one decoded record; raise :class:`InvalidSessionError` with the field path."""
    if isinstance(record, Session):
        return record
    if not isinstance(record, Mapping):
        raise InvalidSessionError("", f"expected a JSON object, got {_json_type(record)}")
    try:
        return Session.model_validate(record, context={"naive_tz": naive_tz})
    except ValidationError as exc:
        raise _to_session_error(exc) from None
    except RecursionError:
        raise InvalidSessionError("", "record is nested too deeply") from None


def _to_session_error(exc: ValidationError) -> InvalidSessionError:
    first = exc.errors(include_url=False, include_input=False)[0]
    path = ".".join(str(part) for part in first["loc"])
    message = first["msg"]
    if first["type"] == "missing":
        message = "required field is missing"
    return InvalidSessionError(path, message.removeprefix("Value error, "))


def _json_type(value: Any) -> str:
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


def field_kinds() -> dict[str, str]:
    """Dotted field path -> the JSON kind it takes: ``text``, ``integer``, ``number``,
    ``boolean``, ``list`` (of text), ``object`` or ``time``.

    Readers of typeless formats (CSV cells are all text) use it to turn a cell into
    the JSON value the contract asks for, so strict validation applies to CSV too.
    """
    return dict(_kinds_of(Session, ""))


def _kinds_of(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str]]:
    for name, info in model.model_fields.items():
        path = prefix + name
        kind = _kind(info.annotation)
        if isinstance(kind, type):
            yield from _kinds_of(kind, path + ".")
        else:
            yield path, kind


def _kind(annotation: Any) -> str | type[BaseModel]:
    """The JSON kind of a field's annotation, ``Optional`` and ``Annotated`` removed."""
    if name := _SPECIAL_KINDS.get(annotation):
        return name
    options = [a for a in get_args(annotation) if a is not type(None)]
    origin = get_origin(annotation)
    if origin in (Union, UnionType) and len(options) == 1:
        return _kind(options[0])
    if origin is Annotated:
        return _kind(options[0])
    if origin is list:
        return "list"
    if origin is dict:
        return "object"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return "text"


_SPECIAL_KINDS: dict[Any, str] = {
    str: "text",
    bool: "boolean",
    int: "integer",
    float: "number",
    datetime: "time",
    IPAddress: "text",
}
