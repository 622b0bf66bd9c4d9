"""Loads and validates ``rules/``: strict models, errors that name the file and key.

Be lenient with session input, strict with our own data: what validates, runs. An
unknown or duplicate key, a wrong type, a threshold outside its check's declared
range, a regex RE2 cannot run in linear time or a message that is more than plain
``{evidence_key}`` fields stops the checker at start-up, and every such mistake in
the folder is reported at once (:attr:`RulesError.problems`), each with file and key.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, TypeVar

import re2  # type: ignore[import-untyped]  # google-re2 ships no type hints
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fingerprint.errors import RulesError, RulesProblem
from fingerprint.memo import BoundedMemo

if TYPE_CHECKING:
    from fingerprint.checks.base import Check

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")
CONFIDENT: frozenset[str] = frozenset({"high", "critical"})

# strict: "3" is not a number and 3.0 not a count; NaN and infinities are no values.
_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
# libyaml's loader parses the rule files ten times faster than the pure-Python one.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CODE_PATTERN = r"^[A-Z]{2,4}_[A-Z0-9_]+$"


# --- regexes: RE2, linear in the text ---------------------------------------------


class RulePattern(Protocol):
    """A compiled rules regex (RE2): ``search`` returns a match object or None."""

    def search(self, text: str) -> Any: ...

    def match(self, text: str) -> Any: ...


def _re2_options(ignore_case: bool) -> Any:
    options = re2.Options()
    options.case_sensitive = not ignore_case
    options.log_errors = False  # a refused pattern is our error to report, not stderr's
    return options


def compile_rule_regex(pattern: str, *, ignore_case: bool = True) -> RulePattern:
    """Compile a regex from rules data with RE2, which matches in time linear in the
    text whatever the pattern (no backtracking: ``(a+)+$`` cannot hang a check).
    Raises ValueError for what RE2 does not take (backreferences, lookaround)."""
    try:
        compiled: RulePattern = re2.compile(pattern, _re2_options(ignore_case))
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise ValueError(
            f"invalid regex {pattern[:80]!r}: RE2, which matches in linear time, "
            f"does not take it ({detail})"
        ) from None
    return compiled


def _check_regex(value: str) -> str:
    compile_rule_regex(value)
    return value


# --- message templates ------------------------------------------------------------


def template_fields(template: str) -> list[str]:
    """The ``{name}`` fields of a message; ValueError for anything else (a format spec,
    a conversion, an attribute or index, a positional field, unbalanced braces): a
    message is filled from client-supplied evidence and must stay a short line."""
    fields = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"not a message template ({exc})") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion:
            raise ValueError(f"field {{{name}}} may not carry a format spec or conversion")
        if not name.isidentifier():
            raise ValueError(f"field {{{name}}} must be a plain evidence key")
        fields.append(name)
    return fields


def _check_template(value: str) -> str:
    template_fields(value)
    return value


class _Strict(BaseModel):
    model_config = _STRICT


# --- codes.yaml ---------------------------------------------------------------


class CodeSpec(_Strict):
    check: str
    severity: Severity
    message: str = Field(min_length=1, max_length=500)
    message_zh: str = Field(min_length=1, max_length=500)
    advice: str = ""
    advice_zh: str = ""

    _templates = field_validator("message", "message_zh")(_check_template)


class CodesFile(_Strict):
    version: Literal[1]
    codes: dict[Annotated[str, Field(pattern=_CODE_PATTERN)], CodeSpec]


# --- grading.yaml -------------------------------------------------------------


class Band(_Strict):
    grade: str = Field(pattern=r"^[A-Z]$")
    min_score: int = Field(ge=0, le=100)


class DeviceComponentSpec(_Strict):
    weight: float = Field(gt=0, le=1)
    top_reasons: int = Field(ge=0, le=20)
    # Check name -> how much of the device evidence it carries; ``coverage`` is the
    # evaluated share of these weights. A check not listed carries none.
    evidence_weights: dict[str, Annotated[float, Field(ge=0)]] = {}
    # Below this coverage the component is ``pending`` (too few signals), not ``ok``.
    min_coverage: float = Field(default=0.0, ge=0, le=1)
    # Finding code -> what the decision waits for while the code is present.
    pending_codes: dict[str, Annotated[str, Field(pattern=r"^[a-z_]+$")]] = {}


class GradingFile(_Strict):
    version: Literal[1]
    severity_points: dict[Severity, Annotated[int, Field(ge=0, le=100)]]
    code_points: dict[str, Annotated[int, Field(ge=0, le=100)]] = {}
    weak_cap: int = Field(ge=0, le=100)
    # Codes that observe one underlying fact (e.g. the OS's VPN flag and the tunnel
    # interface of the same VPN): a group takes its largest member's points, once.
    groups: dict[str, list[str]] = {}
    bands: list[Band]
    blacklist_codes: list[str]
    blacklist_grade: str = Field(pattern=r"^[A-Z]$")
    device_component: DeviceComponentSpec

    @model_validator(mode="after")
    def _coherent(self) -> GradingFile:
        missing = [s for s in SEVERITIES if s not in self.severity_points]
        if missing:
            raise ValueError(f"severity_points lacks {missing}")
        cutoffs = [band.min_score for band in self.bands]
        if cutoffs != sorted(cutoffs, reverse=True) or not cutoffs or cutoffs[-1] != 0:
            raise ValueError("bands must be ordered from the highest min_score down to 0")
        seen: dict[str, str] = {}
        for name, codes in self.groups.items():
            for code in codes:
                if code in seen:
                    raise ValueError(f"{code} is in groups {seen[code]} and {name}: one fact each")
                seen[code] = name
        return self


# --- checks.yaml --------------------------------------------------------------


class ChecksFile(_Strict):
    version: Literal[1]
    disabled: list[str] = []
    checks: dict[str, dict[str, Any]] = {}


# --- emulator.yaml ------------------------------------------------------------

SignatureField = Literal[
    "system_prop",
    "build_fingerprint",
    "hardware",
    "board",
    "model",
    "brand",
    "manufacturer",
    "product",
    "file",
    "package",
    "lib",
]


class EmulatorSignature(_Strict):
    product: str
    field: SignatureField
    key: str | None = None
    # "prefix": every property whose name starts with ``key`` (a vendor's namespace,
    # e.g. MuMu's ``nemud.``), not only the names a detector happened to list.
    key_match: Literal["equals", "prefix"] = "equals"
    match: Literal["equals", "prefix", "contains", "regex"] = "equals"
    value: str
    strength: Literal["definitive", "weak"]
    # The public material the fact was read from (required: docs/SOURCES.md).
    source: str = Field(min_length=3)
    # A definitive finding's code when it is not the field's own (EMU_CLOUD_PHONE).
    code: str | None = Field(default=None, pattern=r"^EMU_[A-Z0-9_]+$")

    @model_validator(mode="after")
    def _key_only_for_props(self) -> EmulatorSignature:
        if (self.field == "system_prop") != (self.key is not None):
            raise ValueError("'key' is required for field system_prop and forbidden otherwise")
        if self.key_match != "equals" and self.field != "system_prop":
            raise ValueError("'key_match' applies to field system_prop only")
        if self.code is not None and self.strength != "definitive":
            raise ValueError("'code' names a definitive finding's code")
        if self.match == "regex":
            _check_regex(self.value)
        return self


class VirtualHardware(_Strict):
    """A hardware name only virtual devices boot with. Android's init reads
    ``/init.<ro.hardware>.rc``, ``/ueventd.<ro.hardware>.rc`` and ``/fstab.<ro.hardware>``,
    so each of those files, ``ro.hardware``, ``ro.boot.hardware`` and the board
    platform are one fact: the hardware is this name."""

    name: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    product: str
    source: str = Field(min_length=3)
    code: str | None = Field(default=None, pattern=r"^EMU_[A-Z0-9_]+$")


class RealX86Device(_Strict):
    brand: str
    model: str
    note: str | None = None

    _model_regex = field_validator("model")(_check_regex)


class EmulatorFile(_Strict):
    version: Literal[1]
    signatures: list[EmulatorSignature]
    virtual_hardware: list[VirtualHardware] = []
    real_x86_devices: list[RealX86Device] = []
    # Makers that shipped x86 Android hardware at all (lowercase brands). An x86 CPU
    # under any other maker's name cannot be that maker's phone.
    x86_makers: list[str] = []


# --- multi_open.yaml ----------------------------------------------------------


class Container(_Strict):
    product: str
    packages: list[str] = []
    data_dir_markers: list[str] = []
    libs: list[str] = []
    source: str | None = None
    note: str | None = None


class DualAppUser(_Strict):
    user_id: int = Field(ge=1, le=100_000)
    vendor: str


class PlatformSandbox(_Strict):
    """Another platform's own app sandbox: what its SDK reports for every app."""

    platform: str
    what: str
    patterns: list[str]
    source: str

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, values: list[str]) -> list[str]:
        return [_check_regex(v) for v in values]


class LibraryProvider(_Strict):
    """Apps whose native libraries normal apps map (WebView, Play services ...)."""

    why: str
    packages: list[str]
    path_contains: list[str] = []
    source: str


def _owner_patterns(values: list[str]) -> list[str]:
    """Android path regexes must name the owning package (group ``pkg``)."""
    for value in values:
        if "pkg" not in re2.compile(_check_regex(value)).groupindex:
            raise ValueError(f"{value!r} has no (?P<pkg>...) group")
    return values


class MultiOpenFile(_Strict):
    version: Literal[1]
    containers: list[Container]
    system_dual_app_users: list[DualAppUser]
    work_profile_users: list[int] = []
    android_data_dirs: list[str]
    android_app_dirs: list[str]
    platform_sandboxes: list[PlatformSandbox]
    shared_library_providers: list[LibraryProvider] = []

    @field_validator("android_data_dirs", "android_app_dirs")
    @classmethod
    def _name_the_owner(cls, values: list[str]) -> list[str]:
        return _owner_patterns(values)


# --- network.yaml -------------------------------------------------------------


def _check_regexes(values: list[str]) -> list[str]:
    return [_check_regex(v) for v in values]


class TunnelInterfaces(_Strict):
    strong: list[str]
    weak: list[str] = []
    benign_virtual: list[str] = []
    ios_utun_normal: int = Field(ge=0, le=64)

    _regexes = field_validator("strong", "weak", "benign_virtual")(_check_regexes)


class HostingAsn(_Strict):
    asn: int = Field(ge=1, lt=2**32)
    org: str
    kind: Literal["cloud", "hosting", "vpn", "cdn"]
    note: str | None = None


class RelayService(_Strict):
    """A privacy relay built into an operating system (iCloud Private Relay): its
    operator publishes the egress addresses, and a login through one is not a
    consumer VPN. Recognised by its egress networks, an ASN that serves only the
    relay, or the provider name an Anonymous Plus database gives it."""

    name: str
    source: str  # where the operator publishes what we summarise here
    asns: list[Annotated[int, Field(ge=1, lt=2**32)]] = []
    networks: list[str] = []  # CIDR
    provider_names: list[str] = []  # matched case-insensitively
    note: str | None = None

    @field_validator("networks")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_network(value, strict=True)
            except ValueError as exc:
                raise ValueError(f"{value!r} is not a network: {exc}") from None
        return values


class CarrierAsn(_Strict):
    """A mobile carrier's ASN: its cellular subscribers share addresses (CGNAT)."""

    asn: int = Field(ge=1, lt=2**32)
    carrier: str = Field(min_length=1)
    org: str
    note: str | None = None


class HomeCountry(_Strict):
    """Where the product's users live: a device that says so with an IP elsewhere
    is the VPN_TZ_MISMATCH signal."""

    iso_code: str = Field(pattern=r"^[A-Z]{2}$")
    time_zones: list[str]
    mcc: list[str]
    locales: list[str]
    locale_suffix: str  # a locale ending in this (e.g. "-cn") is home too

    @property
    def folded_time_zones(self) -> frozenset[str]:
        return frozenset(tz.casefold() for tz in self.time_zones)

    @property
    def folded_locales(self) -> frozenset[str]:
        return frozenset(loc.casefold() for loc in self.locales)


class NetworkFile(_Strict):
    version: Literal[1]
    home_country: HomeCountry
    tunnel_interfaces: TunnelInterfaces
    hosting_asns: list[HostingAsn]
    hosting_name_patterns: list[str] = []
    relays: list[RelayService] = []
    carrier_asns: list[CarrierAsn] = []

    _regexes = field_validator("hosting_name_patterns")(_check_regexes)


# --- devices.yaml -------------------------------------------------------------


class ModelBrandPattern(_Strict):
    pattern: str
    brand: str
    note: str | None = None

    _regex = field_validator("pattern")(_check_regex)


class DevicesFile(_Strict):
    version: Literal[1]
    brand_aliases: dict[str, list[str]]
    model_brand_patterns: list[ModelBrandPattern] = []
    mainstream_brands: list[str]


# --- tamper.yaml --------------------------------------------------------------


class TamperTool(_Strict):
    product: str
    packages: list[str] = []
    note: str | None = None


class HookTool(_Strict):
    """Hooking tooling seen only as an installed package or a file on disk."""

    product: str
    severity: Severity
    packages: list[str] = []
    # Regexes (re.search, case-insensitive) over normalised absolute paths.
    files: list[str] = []
    source: str = Field(min_length=3)

    _files = field_validator("files")(_check_regexes)


class TamperFile(_Strict):
    version: Literal[1]
    hook_frameworks: dict[str, Severity]
    root_packages: list[str] = []
    device_mod_tools: list[TamperTool] = []
    capture_tools: list[TamperTool] = []
    hook_tools: list[HookTool] = []


# --- tooling.yaml -------------------------------------------------------------

ToolCategory = Literal[
    "group_control", "automation", "remote_control", "mock_location", "vpn_client"
]


class FarmTool(_Strict):
    """Farm tooling seen as an installed package or a file (issue 21)."""

    product: str = Field(min_length=1)
    category: ToolCategory
    packages: list[str] = []
    # Regexes (RE2, case-insensitive) over normalised absolute paths.
    files: list[str] = []
    source: str = Field(min_length=3)

    _files = field_validator("files")(_check_regexes)


class ToolingFile(_Strict):
    version: Literal[1]
    tools: list[FarmTool]


# --- the whole set ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Every rules file, validated. Immutable: a reload builds a new one."""

    directory: str
    codes: CodesFile
    grading: GradingFile
    checks: ChecksFile
    emulator: EmulatorFile
    multi_open: MultiOpenFile
    network: NetworkFile
    devices: DevicesFile
    tamper: TamperFile
    tooling: ToolingFile


_FILES: dict[str, type[BaseModel]] = {
    "codes": CodesFile,
    "grading": GradingFile,
    "checks": ChecksFile,
    "emulator": EmulatorFile,
    "multi_open": MultiOpenFile,
    "network": NetworkFile,
    "devices": DevicesFile,
    "tamper": TamperFile,
    "tooling": ToolingFile,
}

M = TypeVar("M", bound=BaseModel)


# --- check thresholds -------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Threshold:
    """What one threshold of a check accepts in ``checks.yaml``.

    Checks declare theirs as class data (``Check.thresholds``); the loader refuses a
    value of the wrong type or outside the range before any check is built, so a
    threshold that validates is one the check can run with.
    """

    kind: Literal["count", "number"]  # count: a whole number; number: any finite one
    minimum: float
    maximum: float
    exclusive_minimum: bool = False  # e.g. a window of 0 hours is no window
    unit: str = ""
    many: bool = False  # a non-empty list of such values

    def describe(self) -> str:
        what = "a whole number" if self.kind == "count" else "a number"
        low = f"above {self.minimum:g}" if self.exclusive_minimum else f"from {self.minimum:g}"
        unit = f" {self.unit}" if self.unit else ""
        return f"{what} {low} to {self.maximum:g}{unit}"

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is refused, or None when the check can run with it."""
        if not self.many:
            return self._problem(value)
        if not isinstance(value, list) or not value:
            return f"must be a non-empty list, each {self.describe()}; got {_shown(value)}"
        for item in value:
            problem = self._problem(item)
            if problem is not None:
                return problem
        return None

    def _problem(self, value: Any) -> str | None:
        wanted = f"must be {self.describe()}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{wanted}; got {type(value).__name__} {_shown(value)}"
        if self.kind == "count" and not isinstance(value, int):
            return f"{wanted}; got {_shown(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{wanted}; got {_shown(value)}"
        above = value > self.minimum if self.exclusive_minimum else value >= self.minimum
        if not above or value > self.maximum:
            return f"{wanted}; got {_shown(value)}"
        return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- loading ----------------------------------------------------------------------


def default_rules_dir() -> Path:
    """The rules shipped with the package (the repo's top-level ``rules/``)."""
    return Path(str(resources.files("fingerprint._rules")))


def load_rules(directory: str | Path | None = None) -> RuleSet:
    """Load and validate every rules file, the check thresholds and the references
    between files; raise one :class:`RulesError` listing every problem found.

    A set whose files read exactly as a set loaded before in this process is that
    set again (it is immutable): parsing and validating take 30-70 ms, and a process
    may build many checkers (a service's workers, a test suite) on the same rules.
    Files are read every time, so an edited file is always loaded anew."""
    folder = Path(directory) if directory is not None else default_rules_dir()
    if not folder.is_dir():
        raise RulesError(str(folder), "", "rules directory not found")
    paths = rule_paths(folder)
    unread: dict[str, list[RulesProblem]] = {name: [] for name in _FILES}
    texts = {name: _read_rules_file(paths[name], unread[name]) for name in _FILES}
    key = (str(folder), tuple((str(paths[name]), texts[name]) for name in _FILES))
    if (known := _LOADED.get(key)) is not None:
        return known
    problems: list[RulesProblem] = []
    loaded: dict[str, BaseModel] = {}
    for name, model in _FILES.items():
        text = texts[name]
        problems.extend(unread[name])  # in file order, as each file is read and parsed
        parsed = None if text is None else _parse_file(paths[name], text, model, problems)
        if parsed is not None:
            loaded[name] = parsed
    # The checks between files run on whichever files loaded, so that one run
    # reports every problem there is. Problems name the file each part was read
    # from (an overlay's own file or its base's).
    codes, checks, grading = loaded.get("codes"), loaded.get("checks"), loaded.get("grading")
    if isinstance(codes, CodesFile) and isinstance(grading, GradingFile):
        emulator = loaded.get("emulator")
        problems.extend(
            _cross_check(
                paths["grading"],
                codes,
                grading,
                paths["emulator"],
                emulator if isinstance(emulator, EmulatorFile) else None,
            )
        )
    problems.extend(_check_catalogue(paths["checks"], paths["codes"], codes, checks))
    if problems:
        raise RulesError.of(problems)
    return _LOADED.put(key, RuleSet(directory=str(folder), **loaded))  # type: ignore[arg-type]


# Rule sets loaded, by their folder and every file's path and text: a few at most in
# a process (the bundled set, a directory or two given to it).
_LOADED: BoundedMemo[tuple[str, tuple[tuple[str, str | None], ...]], RuleSet] = BoundedMemo(8)


# --- overlays -------------------------------------------------------------------

OVERLAY_FILE = "overlay.yaml"
_MAX_OVERLAY_DEPTH = 8


class OverlayFile(_Strict):
    """``overlay.yaml``: this directory holds only some rule files; the rest come from
    ``base`` ("bundled", or a rules directory, relative to this one)."""

    version: Literal[1]
    base: str = Field(min_length=1)


def rule_paths(folder: Path, depth: int = 0) -> dict[str, Path]:
    """Where each rules file is read from. Without ``overlay.yaml`` every file must be
    in ``folder``; with it, a file the folder lacks comes from the base (an explicit
    choice, so a forgotten file in a full rules set still fails)."""
    own = {name: folder / f"{name}.yaml" for name in _FILES}
    marker = folder / OVERLAY_FILE
    if not marker.is_file():
        return own
    if depth >= _MAX_OVERLAY_DEPTH:
        raise RulesError(str(marker), "base", "overlays nest too deep (a cycle?)")
    spec = _load_one(marker, OverlayFile)
    base = default_rules_dir() if spec.base == "bundled" else folder / spec.base
    if not base.is_dir():
        raise RulesError(str(marker), "base", f"rules directory not found: {base}")
    inherited = rule_paths(base, depth + 1)
    return {name: path if path.is_file() else inherited[name] for name, path in own.items()}


def _load_one(path: Path, model: type[M]) -> M:
    """One file on its own: its problems raised at once."""
    problems: list[RulesProblem] = []
    parsed = _load_file(path, model, problems)
    if parsed is None or problems:
        raise RulesError.of(problems or [RulesProblem(file=str(path), key="", reason="unusable")])
    return parsed


def _load_file(path: Path, model: type[M], problems: list[RulesProblem]) -> M | None:
    text = _read_rules_file(path, problems)
    return None if text is None else _parse_file(path, text, model, problems)


def _read_rules_file(path: Path, problems: list[RulesProblem]) -> str | None:
    """The file's text, or None with the reason it cannot be read in ``problems``."""
    file = str(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(RulesProblem(file=file, key="", reason="file not found"))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = (
            f"cannot read ({exc.strerror or exc})"
            if isinstance(exc, OSError)
            else ("not UTF-8 text")
        )
        problems.append(RulesProblem(file=file, key="", reason=reason))
        return None


def _parse_file(path: Path, text: str, model: type[M], problems: list[RulesProblem]) -> M | None:
    file = str(path)
    try:
        data, duplicates = _parse_yaml(text)
    except yaml.YAMLError as exc:
        problems.append(RulesProblem(file=file, key="", reason=_yaml_reason(exc)))
        return None
    problems.extend(RulesProblem(file=file, key=k, reason=r) for k, r in duplicates)
    if not isinstance(data, Mapping):
        problems.append(RulesProblem(file=file, key="", reason="expected a mapping at the top"))
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems.extend(_validation_problems(file, exc))
        return None


def _parse_yaml(text: str) -> tuple[Any, list[tuple[str, str]]]:
    """The document, and its duplicate keys as (key path, reason): YAML keeps the last
    of two equal keys silently, so a rule written twice would lose one unseen."""
    loader = _YAML_LOADER(text)
    try:
        node = loader.get_single_node()
        duplicates = list(_duplicates(node, ()))
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return data, duplicates


def _duplicates(node: Any, path: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            if key in seen and key != "<<":
                where = ".".join((*path, key))
                yield where, f"duplicate key (line {line}; first on line {seen[key]})"
            seen.setdefault(key, line)
            yield from _duplicates(value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicates(item, (*path, str(index)))


def _yaml_reason(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "unreadable"
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"invalid YAML: {problem}{where}"


def _validation_problems(file: str, exc: ValidationError) -> list[RulesProblem]:
    """pydantic's errors as one line each; an unknown key that is a near miss of a
    missing one is reported as the misspelling it is, not as the key missing."""
    errors = exc.errors(include_url=False)
    missing = {tuple(e["loc"]) for e in errors if e["type"] == "missing"}
    explained: set[tuple[Any, ...]] = set()
    found = []
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            siblings = [str(m[-1]) for m in missing if m[:-1] == loc[:-1]]
            close = difflib.get_close_matches(str(loc[-1]), siblings, n=1)
            reason = f"unknown key (did you mean {close[0]}?)" if close else "unknown key"
            if close:
                explained.add((*loc[:-1], close[0]))
        elif error["type"] == "missing":
            reason = "required key missing"
        else:
            reason = str(error["msg"]).removeprefix("Value error, ")
            value = error.get("input")
            if not isinstance(value, dict | list):  # a whole block would not fit a line
                reason = f"{reason}; got {_shown(value)}"
        found.append((loc, reason))
    return [
        RulesProblem(file=file, key=".".join(str(part) for part in loc), reason=reason)
        for loc, reason in found
        if loc not in explained
    ]


def _cross_check(
    grading_path: Path,
    codes: CodesFile,
    grading: GradingFile,
    emulator_path: Path,
    emulator: EmulatorFile | None,
) -> list[RulesProblem]:
    """References between files: every code named anywhere must exist."""
    problems = []
    known = codes.codes
    grading_file = str(grading_path)

    def problem(key: str, reason: str) -> None:
        problems.append(RulesProblem(file=grading_file, key=key, reason=reason))

    for code in grading.code_points:
        if code not in known:
            problem(f"code_points.{code}", "unknown reason code")
    for code in grading.blacklist_codes:
        if code not in known:
            problem(f"blacklist_codes.{code}", "unknown reason code")
    for name, members in grading.groups.items():
        for code in members:
            if code not in known:
                problem(f"groups.{name}.{code}", "unknown reason code")
    component = grading.device_component
    for code in component.pending_codes:
        if code not in known:
            problem(f"device_component.pending_codes.{code}", "unknown reason code")
    checks = {spec.check for spec in known.values()}
    for check in component.evidence_weights:
        if check not in checks:
            problem(f"device_component.evidence_weights.{check}", "unknown check")
    if emulator is not None:
        emulator_file = str(emulator_path)
        named: list[tuple[str, str | None]] = [
            (f"signatures.{i}.code", s.code) for i, s in enumerate(emulator.signatures)
        ]
        named += [
            (f"virtual_hardware.{i}.code", v.code) for i, v in enumerate(emulator.virtual_hardware)
        ]
        for where, named_code in named:
            if named_code is not None and (
                named_code not in known or known[named_code].check != "emulator"
            ):
                problems.append(
                    RulesProblem(
                        file=emulator_file,
                        key=where,
                        reason=f"{named_code} is not an emulator reason code",
                    )
                )
    for code, spec in known.items():
        if spec.severity not in CONFIDENT:
            continue
        points = grading.code_points.get(code, grading.severity_points[spec.severity])
        if points <= grading.weak_cap:
            problem(
                "weak_cap",
                f"must stay below every confident finding's points ({code} takes {points})",
            )
            break
    return problems


def _check_catalogue(
    checks_path: Path, codes_path: Path, codes: BaseModel | None, checks: BaseModel | None
) -> list[RulesProblem]:
    """What the checks need of the rules: known check names, thresholds each check
    declares (type and range), the codes each check emits, and messages that name
    only evidence keys the check fills."""
    # Imported here: the checks import this module for their rule types.
    from fingerprint.checks import CHECKS_BY_NAME

    problems = []
    if isinstance(checks, ChecksFile):
        problems.extend(_check_thresholds(str(checks_path), checks, CHECKS_BY_NAME))
    if isinstance(codes, CodesFile):
        problems.extend(_check_codes(str(codes_path), codes, CHECKS_BY_NAME))
    return problems


def _check_thresholds(
    checks_file: str, checks: ChecksFile, catalogue: Mapping[str, type[Check]]
) -> list[RulesProblem]:
    problems = []
    for index, name in enumerate(checks.disabled):
        if name not in catalogue:
            unknown = _unknown("check", name, catalogue)
            problems.append(RulesProblem(file=checks_file, key=f"disabled.{index}", reason=unknown))
    for name, config in checks.checks.items():
        cls = catalogue.get(name)
        if cls is None:
            unknown = _unknown("check", name, catalogue)
            problems.append(RulesProblem(file=checks_file, key=f"checks.{name}", reason=unknown))
            continue
        for key, value in config.items():
            declared = cls.thresholds.get(key)
            reason: str | None
            if declared is not None:
                reason = declared.problem(value)
            elif cls.thresholds:
                reason = _unknown("threshold", key, cls.thresholds)
            else:
                reason = f"unknown threshold ({name} takes none)"
            if reason is not None:
                problems.append(
                    RulesProblem(file=checks_file, key=f"checks.{name}.{key}", reason=reason)
                )
    return problems


def _check_codes(
    codes_file: str, codes: CodesFile, catalogue: Mapping[str, type[Check]]
) -> list[RulesProblem]:
    from fingerprint.checks.evidence import evidence_keys

    problems = []
    for cls in catalogue.values():
        for code in cls.codes:
            spec = codes.codes.get(code)
            if spec is None:
                reason = f"missing (check {cls.name} emits it)"
                problems.append(RulesProblem(file=codes_file, key=f"codes.{code}", reason=reason))
            elif spec.check != cls.name:
                reason = f"must be {cls.name!r}"
                problems.append(
                    RulesProblem(file=codes_file, key=f"codes.{code}.check", reason=reason)
                )
    for code, spec in codes.codes.items():
        fills = evidence_keys(code)
        for field in ("message", "message_zh"):
            for name in template_fields(getattr(spec, field)):
                if name not in fills:
                    offered = ", ".join(sorted(fills)) or "none"
                    reason = f"{{{name}}} is not evidence of {code} (it has: {offered})"
                    key = f"codes.{code}.{field}"
                    problems.append(RulesProblem(file=codes_file, key=key, reason=reason))
    return problems


def _unknown(what: str, name: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return f"unknown {what} (did you mean {close[0]}?)"
    return f"unknown {what} (known: {', '.join(sorted(known))})"
