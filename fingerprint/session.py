"""Input records of session log v1 (see SESSION-LOG.md), decoded with msgspec.

Lenient where the contract allows it (unknown fields are ignored, every block is
optional except ``account_id``, ``ts`` and ``ip``) and strict about types: a field
of the wrong type makes the whole record invalid, because a check that reads a
wrongly typed field would otherwise guess (``"vpn_active": "yes"`` once graded as a
VPN). Strict means no coercion: text fields take JSON strings only, flags take
``true``/``false`` only, counts take integers only, measures take numbers. The one
documented exception is ``device.system_props``, whose values are Android property
strings that SDK serialisers often send as numbers or booleans.

Two validators, one answer. The frozen, keyword-only msgspec Structs below decode a
record in ~3 µs; the pydantic models in :mod:`fingerprint._session_reference` take
~23 µs and define what is valid. A record the Structs refuse goes to the reference,
which names the field and the reason (every reject path and message is the
reference's), so the Structs never have to word an error. The two accept the same
records with the same values: tests/test_session_reference.py holds them to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, Union, get_args, get_origin

import msgspec
from pydantic import BaseModel

from fingerprint import _session_reference as reference
from fingerprint._session_values import (
    DEFAULT_NAIVE_TZ,
    MAX_ACCOUNT_ID,
    MAX_TEXT,
    IPAddress,
    json_type,
    parse_ip,
    parse_timestamp,
    str_values,
)
from fingerprint.errors import InvalidSessionError
from fingerprint.native import NATIVE

__all__ = [
    "DEFAULT_NAIVE_TZ",
    "App",
    "Auth",
    "Battery",
    "Device",
    "IPAddress",
    "Network",
    "Screen",
    "Session",
    "Sim",
    "battery_pinned",
    "field_kinds",
    "parse_block",
    "parse_ip",
    "parse_session",
    "parse_timestamp",
    "session_from_json",
]

# Three fields hold what the library's own rules make of the raw value: msgspec
# passes it through (``Any``, or text and numbers for system properties) and
# ``_finish`` replaces it in place before the record is handed out. Type checkers
# see the finished type.
if TYPE_CHECKING:
    _Time = datetime
    _Address = IPAddress
    _PropValue = str
else:
    _Time = _Address = Any
    _PropValue = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)] | int | float | bool

Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
Uid = Annotated[int, msgspec.Meta(ge=0, le=2**32)]
# Up to 2**63, one past what msgspec's integer bounds can say: ``_finish_device``
# checks the top.
Bytes = Annotated[int, msgspec.Meta(ge=0)]
_MAX_BYTES = 2**63
EpochSeconds = Annotated[int, msgspec.Meta(ge=0, le=2**40)]


class Battery(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    level: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None  # a share: 0.83 is 83 %
    charging: bool | None = None
    temperature_c: Annotated[float, msgspec.Meta(ge=-100, le=200)] | None = None


def battery_pinned(battery: Battery | None) -> bool:
    """Full, charging and at exactly 0 °C: how emulators report a battery."""
    if battery is None or not battery.charging or battery.temperature_c != 0:
        return False
    return battery.level == 1.0


class Screen(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    width: Annotated[int, msgspec.Meta(ge=0, le=100_000)] | None = None
    height: Annotated[int, msgspec.Meta(ge=0, le=100_000)] | None = None
    density: Annotated[float, msgspec.Meta(ge=0, le=100_000)] | None = None


class Sim(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    state: Text | None = None
    mcc_mnc: Text | None = None
    carrier: Text | None = None

    @property
    def mcc(self) -> str | None:
        code = (self.mcc_mnc or "").strip()
        return code[:3] if len(code) >= 5 and code[:3].isdigit() else None


class Device(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    device_id: Text | None = None
    platform: Text | None = None
    os_version: Text | None = None
    brand: Text | None = None
    manufacturer: Text | None = None
    model: Text | None = None
    hardware: Text | None = None
    board: Text | None = None
    product: Text | None = None
    build_fingerprint: Text | None = None
    cpu_abi: list[Text] | None = None
    sensors: list[Text] | None = None
    battery: Battery | None = None
    screen: Screen | None = None
    has_telephony: bool | None = None
    sim: Sim | None = None
    timezone: Text | None = None
    locale: Text | None = None
    rooted: bool | None = None
    hooks: list[Text] | None = None
    debugger_attached: bool | None = None
    system_props: dict[Text, _PropValue] | None = None
    files_present: list[Text] | None = None
    installed_packages: list[Text] | None = None
    # Identity attributes (SESSION-LOG.md v1.1), raw or already hashed.
    android_id: Text | None = None
    drm_id: Text | None = None
    oaid: Text | None = None
    idfv: Text | None = None
    memory_total: Bytes | None = None
    storage_total: Bytes | None = None
    cpu_cores: Annotated[int, msgspec.Meta(ge=1, le=4_096)] | None = None
    cpu_info: Text | None = None
    kernel_version: Text | None = None
    build_time: EpochSeconds | None = None
    boot_time: EpochSeconds | None = None
    boot_count: Annotated[int, msgspec.Meta(ge=0, le=2**31)] | None = None
    first_install_time: EpochSeconds | None = None


class App(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    package: Text | None = None
    version: Text | None = None
    data_dir: Text | None = None
    uid: Uid | None = None
    process_uid: Uid | None = None
    loaded_libs: list[Text] | None = None


class Network(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    type: Text | None = None
    vpn_active: bool | None = None
    http_proxy: Text | None = None
    interfaces: list[Text] | None = None
    dns: list[Text] | None = None


class Auth(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    method: Text | None = None
    face_verified: bool | None = None
    result: Text | None = None


class Session(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One login session. Build it with :func:`parse_session` to get library errors."""

    session_id: Text | None = None
    account_id: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ACCOUNT_ID)]
    ts: _Time
    ip: _Address
    user_agent: Text | None = None
    device: Device | None = None
    app: App | None = None
    network: Network | None = None
    auth: Auth | None = None


B = TypeVar("B", bound=msgspec.Struct)

_SESSION_JSON = msgspec.json.Decoder(Session)

# Frozen for everyone else: the decoder finishes a record it has just made, before
# anything else holds it.
_set = msgspec.structs.force_setattr


def parse_session(record: Any, *, naive_tz: tzinfo = DEFAULT_NAIVE_TZ) -> Session:
    """Validate one decoded record; raise :class:`InvalidSessionError` with the field path.

    A block already decoded (a :class:`Device` or :class:`App` in place of its JSON
    object, as a device memo passes it back) is taken as it is.
    """
    if isinstance(record, Session):
        return record
    # A dict itself first: the Mapping test is the ABC's, a Python call (~0.2 µs).
    if type(record) is not dict and not isinstance(record, Mapping):
        raise InvalidSessionError("", f"expected a JSON object, got {json_type(record)}")
    fast = _fast_session(record, naive_tz)
    if fast is not None:
        return fast
    # The reference names the field. It accepts only what the fast path could not
    # take (a tuple for a list, a Mapping that is no dict ...): its answer is kept.
    checked = reference.validate_session(_reference_input(record), naive_tz)
    return _from_reference(checked, Session)


def session_from_json(text: bytes, *, naive_tz: tzinfo = DEFAULT_NAIVE_TZ) -> Session | None:
    """The session a JSON line holds, decoded by msgspec straight from its text
    (~20 µs less than decoding the record, then :func:`parse_session`), or None where
    :func:`parse_session` of the decoded record must answer: it names the field of a
    reject, and it reads what msgspec alone would read differently.

    The caller makes sure the text is a line the reader decodes as msgspec does
    (:func:`fingerprint.inputs.read_session`: UTF-8, no over-long number).
    """
    try:
        session = _SESSION_JSON.decode(text)
        _check_wide_props(session.device)
        return _finish_session(session, None, naive_tz)
    except (msgspec.MsgspecError, ValueError, RecursionError):
        return None


def _check_wide_props(device: Device | None) -> None:
    """orjson reads an integer beyond 64 bits as a float (``1.2e+29``), msgspec as
    the integer: a system property holding one is left to the decoded record, whose
    text for it is the float's."""
    # Values as decoded (text, numbers, booleans), before _finish makes them text.
    props: dict[str, Any] | None = device.system_props if device is not None else None
    if props:
        for value in props.values():
            if type(value) is int and not _INT64_MIN <= value < _UINT64_END:
                raise ValueError("integer beyond 64 bits")


_INT64_MIN = -(2**63)
_UINT64_END = 2**64


def parse_block(kind: type[B], raw: Any) -> B:
    """Validate one block (a :class:`Device`, a :class:`Battery` ...) on its own.

    Raises :class:`InvalidSessionError` with the path inside the block, worded as
    :func:`parse_session` words it.
    """
    if kind is Session:
        return parse_session(raw)  # type: ignore[return-value]
    if isinstance(raw, kind):
        return raw
    fast = _fast_block(kind, raw)
    if fast is not None:
        return fast
    checked = reference.validate_block(_REFERENCE_OF[kind], _reference_input(raw))
    return _from_reference(checked, kind)


class PlainRecord(dict[str, Any]):
    """A record known to hold only what msgspec and the reference read alike: objects
    that are dicts, arrays that are lists, text without a lone surrogate.
    :func:`parse_session` then skips looking (:func:`_plain_record` and
    :func:`_has_lone_surrogate`: ~9 µs a record of 52 fields).

    The CSV reader makes its rows' records so (:mod:`fingerprint.inputs`): its text is
    strict UTF-8, which holds no surrogate, and its JSON cells are orjson's, which
    refuses a lone surrogate. (The other thing the look finds, an integer beyond 64
    bits, needs no look: every integer field is bounded, and msgspec holds a wider
    integer to the bound as the reference does, tests/test_csv_input.py.)"""

    __slots__ = ()


def _fast_session(record: Mapping[str, Any], naive_tz: tzinfo) -> Session | None:
    """The record decoded by msgspec, or None where the reference must answer."""
    if (
        type(record) is not PlainRecord
        and not _json_made(record)
        and (not _plain_record(record) or _has_lone_surrogate(record))
    ):
        return None
    try:
        return _finish_session(msgspec.convert(record, Session), record, naive_tz)
    except (msgspec.ValidationError, ValueError, RecursionError):
        return None


def _never(record: Mapping[str, Any]) -> bool:
    return False


# Whether a record is made only of what a JSON decoder makes (exact dicts with text
# keys, lists, text without a lone surrogate, 64-bit integers, floats, booleans,
# None), found in C in ~0.5 µs where the extension is built (fingerprint.native).
# msgspec then reads its containers as the reference does, and a block or list field
# of the wrong kind (what _plain_record looks for) fails msgspec's own validation,
# so the reference still answers for it; the look below is not needed. False here
# means only "look": _plain_record and _has_lone_surrogate decide, as without C.
_json_made: Callable[[Mapping[str, Any]], bool] = (
    NATIVE.plain_json if NATIVE is not None else _never
)


# MessagePack encodes text as UTF-8, so it finds a lone surrogate anywhere in a record
# (~0.5 µs for a whole session).
_UTF8_CHECK = msgspec.msgpack.Encoder(enc_hook=lambda value: None).encode


def _has_lone_surrogate(record: Mapping[str, Any]) -> bool:
    """Whether some text of the record may hold a lone surrogate (``"\\ud800"`` in
    JSON, which only the standard library's decoder reads). The reference refuses such
    text as no valid string, naming its field; msgspec would take it, and the report
    could not be written as JSON. A value the encoder cannot take (an integer beyond
    64 bits) stops it before it has read the texts after it: then the reference
    answers too (such records are rare, and it answers for all of them alike)."""
    try:
        _UTF8_CHECK(record)
    except (UnicodeEncodeError, TypeError, ValueError, OverflowError, RecursionError,
            msgspec.EncodeError):  # fmt: skip
        return True
    return False


def _fast_block(kind: type[B], raw: Any) -> B | None:
    plain = _plain_device(raw) if kind is Device else _plain_block(raw, _LISTS_OF[kind])
    if not plain:
        return None
    try:
        block = msgspec.convert(raw, kind)
        finish = _FINISH.get(kind)
        if finish is not None:
            finish(block, raw)
        return block
    except (msgspec.ValidationError, ValueError, RecursionError):
        return None


def field_kinds() -> dict[str, str]:
    """Dotted field path -> the JSON kind it takes: ``text``, ``integer``, ``number``,
    ``boolean``, ``list`` (of text), ``object`` or ``time``.

    Readers of typeless formats (CSV cells are all text) use it to turn a cell into
    the JSON value the contract asks for, so strict validation applies to CSV too.
    """
    return reference.field_kinds()


def _finish_session(
    session: Session, record: Mapping[str, Any] | None, naive_tz: tzinfo
) -> Session:
    """The rules msgspec does not apply, on a session it has just decoded from
    ``record`` (None: from JSON text, every block new). Raises ``ValueError`` where
    the reference would reject the record."""
    if not session.account_id.strip():
        raise ValueError("blank account id")
    _set(session, "ts", parse_timestamp(session.ts, naive_tz))
    _set(session, "ip", parse_ip(session.ip))
    device = session.device
    if device is not None:
        raw = record["device"] if record is not None else None
        if not isinstance(raw, Device):  # a block passed in decoded is taken as it is
            _finish_device(device, raw)
    network = session.network
    if network is not None and not isinstance(record and record["network"], Network):
        _finish_network(network, None)
    return session


def _finish_device(device: Device, raw: Mapping[str, Any] | None) -> None:
    for size in (device.memory_total, device.storage_total):
        if size is not None and size > _MAX_BYTES:
            raise ValueError("too large")
    if device.platform is not None:
        _set(device, "platform", _lower(device.platform))
    if device.hooks:
        _set(device, "hooks", [_lower(hook) for hook in device.hooks])
    if device.sim is not None:
        _finish_sim(device.sim, None)
    props = device.system_props
    if props and not all(type(value) is str for value in props.values()):
        # From the raw values where there are some, so a number reads exactly as the
        # reference writes it.
        _set(device, "system_props", _text_props(raw["system_props"] if raw else props))


def _finish_sim(sim: Sim, raw: Mapping[str, Any] | None) -> None:
    if sim.state is not None:
        _set(sim, "state", _lower(sim.state))


def _finish_network(network: Network, raw: Mapping[str, Any] | None) -> None:
    if network.type is not None:
        _set(network, "type", _lower(network.type))


_FINISH: dict[type[msgspec.Struct], Callable[[Any, Mapping[str, Any] | None], None]] = {
    Device: _finish_device,
    Sim: _finish_sim,
    Network: _finish_network,
}


def _lower(text: str) -> str:
    lowered = text.lower()
    if len(lowered) > MAX_TEXT:  # measured after lowering, as the reference measures it
        raise ValueError("too long")
    return lowered


def _text_props(raw: Mapping[str, Any]) -> dict[str, str]:
    """System properties with numbers and booleans as text, as the reference has them."""
    props: dict[str, str] = str_values(raw)
    for value in props.values():
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise ValueError("not text")
    return props


def _plain_record(record: Mapping[str, Any]) -> bool:
    """True when each block of the record is a dict (or, at the top, a block already
    decoded) and each list field a list.

    msgspec also reads a tuple or a set as an array and any Mapping as an object,
    where the strict reference wants a list and a dict; a record holding one goes to
    the reference, so the two accept the same records whatever a library caller
    passes (JSON decoders make dicts and lists only). Written out flat: a generic
    walk cost as much as the decode.
    """
    if not isinstance(record, dict):
        return False
    device = record.get("device")
    if device is not None and not isinstance(device, Device) and not _plain_device(device):
        return False
    app = record.get("app")
    if app is not None and not isinstance(app, App) and not _plain_block(app, _APP_LISTS):
        return False
    network = record.get("network")
    if (
        network is not None
        and not isinstance(network, Network)
        and not _plain_block(network, _NETWORK_LISTS)
    ):
        return False
    auth = record.get("auth")
    return auth is None or isinstance(auth, dict | Auth)


def _plain_device(device: Any) -> bool:
    if not _plain_block(device, _DEVICE_LISTS):
        return False
    for name in _DEVICE_BLOCKS:
        block = device.get(name)
        if block is not None and not isinstance(block, dict):
            return False
    return True


def _plain_block(block: Any, lists: tuple[str, ...]) -> bool:
    if not isinstance(block, dict):
        return False
    for name in lists:
        value = block.get(name)
        if value is not None and not isinstance(value, list):
            return False
    return True


def _fields_of(kind: type[msgspec.Struct], *, lists: bool) -> tuple[str, ...]:
    """The names of a Struct's list fields (or of its block fields)."""
    names = []
    for field in msgspec.structs.fields(kind):
        annotation = _without_none(field.type)
        is_block = isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)
        if (get_origin(annotation) is list) if lists else is_block:
            names.append(field.name)
    return tuple(names)


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        if len(options) == 1:
            return options[0]
    return annotation


_DEVICE_LISTS = _fields_of(Device, lists=True)
_DEVICE_BLOCKS = _fields_of(Device, lists=False)
_APP_LISTS = _fields_of(App, lists=True)
_NETWORK_LISTS = _fields_of(Network, lists=True)
_LISTS_OF: dict[type[msgspec.Struct], tuple[str, ...]] = {
    kind: _fields_of(kind, lists=True)
    for kind in (Device, App, Network, Auth, Battery, Screen, Sim)
}

_REFERENCE_OF: dict[type[msgspec.Struct], type[BaseModel]] = {
    Session: reference.Session,
    Device: reference.Device,
    App: reference.App,
    Network: reference.Network,
    Auth: reference.Auth,
    Battery: reference.Battery,
    Screen: reference.Screen,
    Sim: reference.Sim,
}
_STRUCT_OF = {model: struct for struct, model in _REFERENCE_OF.items()}


def _reference_input(raw: Any) -> Any:
    """The record as the reference reads it: decoded blocks as its own models."""
    if not isinstance(raw, dict):
        return raw
    return {key: _as_reference(value) for key, value in raw.items()}


def _as_reference(value: Any) -> Any:
    if isinstance(value, msgspec.Struct):
        return _to_reference(value)
    if isinstance(value, dict):
        return _reference_input(value)
    return value


def _to_reference(struct: msgspec.Struct) -> Any:
    model = _REFERENCE_OF.get(type(struct))
    if model is None:  # not one of ours: the reference rejects it as it is
        return struct
    values = {
        name: _to_reference(value) if isinstance(value, msgspec.Struct) else value
        for name in struct.__struct_fields__
        for value in (getattr(struct, name),)
    }
    return model.model_construct(**values)


def _from_reference(model: BaseModel, kind: type[B]) -> B:
    values = {
        name: _from_reference(value, _STRUCT_OF[type(value)])
        if isinstance(value, BaseModel)
        else value
        for name, value in model
    }
    return kind(**values)
