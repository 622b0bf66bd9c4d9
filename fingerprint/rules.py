"""Loads and validates ``rules/``: strict models, errors that name the file and key.

Be lenient with session input, strict with our own data: an unknown key, a wrong
type or a regex that does not compile stops the checker at start-up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fingerprint.errors import RulesError

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")
CONFIDENT: frozenset[str] = frozenset({"high", "critical"})

_STRICT = ConfigDict(extra="forbid", frozen=True)
# libyaml's loader parses the rule files ten times faster than the pure-Python one.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CODE_PATTERN = r"^[A-Z]{2,4}_[A-Z0-9_]+$"


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regex {value!r}: {exc}") from None
    return value


class _Strict(BaseModel):
    model_config = _STRICT


# --- codes.yaml ---------------------------------------------------------------


class CodeSpec(_Strict):
    check: str
    severity: Severity
    message: str = Field(min_length=1)
    message_zh: str = Field(min_length=1)
    advice: str = ""
    advice_zh: str = ""


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
    severity_points: dict[Severity, int]
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
        if "pkg" not in re.compile(_check_regex(value)).groupindex:
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


_FILES: dict[str, type[BaseModel]] = {
    "codes": CodesFile,
    "grading": GradingFile,
    "checks": ChecksFile,
    "emulator": EmulatorFile,
    "multi_open": MultiOpenFile,
    "network": NetworkFile,
    "devices": DevicesFile,
    "tamper": TamperFile,
}

M = TypeVar("M", bound=BaseModel)


def default_rules_dir() -> Path:
    """The rules shipped with the package (the repo's top-level ``rules/``)."""
    return Path(str(resources.files("fingerprint._rules")))


def load_rules(directory: str | Path | None = None) -> RuleSet:
    """Load and validate every rules file; raise :class:`RulesError` naming file and key."""
    folder = Path(directory) if directory is not None else default_rules_dir()
    if not folder.is_dir():
        raise RulesError(str(folder), "", "rules directory not found")
    paths = rule_paths(folder)
    loaded = {name: _load_file(paths[name], model) for name, model in _FILES.items()}
    rules = RuleSet(directory=str(folder), **loaded)  # type: ignore[arg-type]
    _cross_check(rules)
    return rules


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
    spec = _load_file(marker, OverlayFile)
    base = default_rules_dir() if spec.base == "bundled" else folder / spec.base
    if not base.is_dir():
        raise RulesError(str(marker), "base", f"rules directory not found: {base}")
    inherited = rule_paths(base, depth + 1)
    return {name: path if path.is_file() else inherited[name] for name, path in own.items()}


def _load_file(path: Path, model: type[M]) -> M:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError(str(path), "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(str(path), "", f"cannot read ({exc})") from None
    try:
        data = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise RulesError(str(path), "", f"invalid YAML ({exc})") from None
    if not isinstance(data, Mapping):
        raise RulesError(str(path), "", "expected a mapping at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        key = ".".join(str(part) for part in first["loc"])
        raise RulesError(str(path), key, first["msg"]) from None


def _cross_check(rules: RuleSet) -> None:
    """References between files: every code named anywhere must exist."""
    known = rules.codes.codes
    grading_file = str(Path(rules.directory) / "grading.yaml")
    for code in rules.grading.code_points:
        if code not in known:
            raise RulesError(grading_file, f"code_points.{code}", "unknown reason code")
    for code in rules.grading.blacklist_codes:
        if code not in known:
            raise RulesError(grading_file, f"blacklist_codes.{code}", "unknown reason code")
    for name, members in rules.grading.groups.items():
        for code in members:
            if code not in known:
                raise RulesError(grading_file, f"groups.{name}.{code}", "unknown reason code")
    component = rules.grading.device_component
    for code in component.pending_codes:
        if code not in known:
            where = f"device_component.pending_codes.{code}"
            raise RulesError(grading_file, where, "unknown reason code")
    checks = {spec.check for spec in known.values()}
    for check in component.evidence_weights:
        if check not in checks:
            where = f"device_component.evidence_weights.{check}"
            raise RulesError(grading_file, where, "unknown check")
    emulator_file = str(Path(rules.directory) / "emulator.yaml")
    named: list[tuple[str, str | None]] = [
        (f"signatures.{i}.code", s.code) for i, s in enumerate(rules.emulator.signatures)
    ]
    named += [
        (f"virtual_hardware.{i}.code", v.code)
        for i, v in enumerate(rules.emulator.virtual_hardware)
    ]
    for where, named_code in named:
        if named_code is not None and (
            named_code not in known or known[named_code].check != "emulator"
        ):
            raise RulesError(emulator_file, where, f"{named_code} is not an emulator reason code")
    grading = rules.grading
    for code, spec in known.items():
        if spec.severity not in CONFIDENT:
            continue
        points = grading.code_points.get(code, grading.severity_points[spec.severity])
        if points <= grading.weak_cap:
            raise RulesError(
                grading_file,
                "weak_cap",
                f"must stay below every confident finding's points ({code} takes {points})",
            )
