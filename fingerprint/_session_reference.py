"""The pydantic models of session log v1: the reference for what a record may hold.

:mod:`fingerprint.session` decodes records with msgspec Structs, about 8x faster.
These models stay the definition of a valid record and the source of every reject's
field path and message: the fast decoder runs them only on a record it refuses, so a
reject reads exactly as it always has, and a property test holds the two to the same
answers (tests/test_session_reference.py). The naive benchmark baseline validates
with them too.

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

from collections.abc import Iterator
from datetime import datetime, tzinfo
from functools import lru_cache
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from fingerprint._session_values import (
    DEFAULT_NAIVE_TZ,
    MAX_ACCOUNT_ID,
    MAX_TEXT,
    IPAddress,
    lowercase,
    parse_ip,
    parse_timestamp,
    str_values,
)
from fingerprint.errors import InvalidSessionError

_MODEL_CONFIG = ConfigDict(
    extra="ignore",
    strict=True,  # no coercion: "yes" is not a boolean, "10234" is not a uid, 123 no id
    allow_inf_nan=False,
    str_max_length=MAX_TEXT,
)

Lower = Annotated[str, BeforeValidator(lowercase)]
Uid = Annotated[int, Field(ge=0, le=2**32)]
Bytes = Annotated[int, Field(ge=0, le=2**63)]
EpochSeconds = Annotated[int, Field(ge=0, le=2**40)]


class Battery(BaseModel):
    model_config = _MODEL_CONFIG
    level: Annotated[float, Field(ge=0, le=1)] | None = None  # a share: 0.83 is 83 %
    charging: bool | None = None
    temperature_c: Annotated[float, Field(ge=-100, le=200)] | None = None


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
    system_props: Annotated[dict[str, str], BeforeValidator(str_values)] | None = None
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
    """One login session, as the contract defines it."""

    model_config = _MODEL_CONFIG

    session_id: str | None = None
    account_id: Annotated[str, Field(min_length=1, max_length=MAX_ACCOUNT_ID)]
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


M = TypeVar("M", bound=BaseModel)


def validate_session(record: Any, naive_tz: tzinfo) -> Session:
    """The reference answer for one decoded record; raises :class:`InvalidSessionError`."""
    try:
        return Session.model_validate(record, context={"naive_tz": naive_tz})
    except ValidationError as exc:
        raise to_session_error(exc) from None
    except RecursionError:
        raise InvalidSessionError("", "record is nested too deeply") from None


def validate_block(model: type[M], raw: Any) -> M:
    """One block (a device, a battery ...) on its own; paths are within the block."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise to_session_error(exc) from None
    except RecursionError:
        raise InvalidSessionError("", "record is nested too deeply") from None


def to_session_error(exc: ValidationError) -> InvalidSessionError:
    """pydantic's first error as the library's: dotted path, message without prefix."""
    first = exc.errors(include_url=False, include_input=False)[0]
    path = ".".join(str(part) for part in first["loc"])
    message = first["msg"]
    if first["type"] == "missing":
        message = "required field is missing"
    return InvalidSessionError(path, message.removeprefix("Value error, "))


def field_kinds() -> dict[str, str]:
    """Dotted field path -> the JSON kind it takes (see :func:`fingerprint.session.field_kinds`)."""
    return dict(_field_kinds())


@lru_cache(maxsize=1)
def _field_kinds() -> tuple[tuple[str, str], ...]:
    # Read from the models once (~0.4 ms): every CSV input's header asks, twice.
    return tuple(_kinds_of(Session, ""))


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
