"""``multi_open``: the app runs cloned or inside a multi-open container.

Android uids are ``user_id * 100000 + app_id``. A process uid with another app id
means another app's process hosts ours (a third-party container: critical); the
same app id under a dual-app user (999 MIUI/OnePlus, 128 Huawei/Honor, 95 Samsung)
is the OS's own dual-app feature (medium, not blacklisted by default), and under
any other user (work profiles, Secure Folder, Second Space) the OS's own profile.

The data dir is judged by its platform's own shapes (rules/multi_open.yaml): an
Android shape as Android (our data inside another app's directory is a container),
another platform's sandbox (iOS, HarmonyOS NEXT, macOS) as normal, and a shape no
rule knows as no evidence at all, never as a container. A native library mapped
from another app's install or data dir is a container whichever cloner it is,
unless that app is a provider that shares its libraries with every app (WebView,
Google Play services, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from fingerprint.checks.base import Check, CheckContext, Hit, NotEvaluated, Outcome
from fingerprint.memo import BoundedMemo
from fingerprint.rules import RulePattern, RuleSet, compile_rule_regex
from fingerprint.session import App

PER_USER_RANGE = 100_000
# Data dirs repeat across devices (most apps sit at /data/user/0/<pkg>): what a dir
# looks like is remembered for this many of them, then the memo starts over. Longer
# (client-supplied) dirs than _MAX_CACHED_DIR are examined, not kept.
DATA_DIR_CACHE_SIZE = 4_096
_MAX_CACHED_DIR = 512
# Another app's data dir below ours (VirtualApp-style virtual/data/user/0/<pkg>).
_NESTED_DATA_DIR = re.compile(r"/(?:data/)?(?:user(?:_de)?/\d+|data)/[^/]+")
# A static shared library's package carries its version: <pkg>_<version>.
_LIBRARY_VERSION = re.compile(r"_\d+$")

ANDROID, SANDBOX, UNKNOWN = "android", "sandbox", "unknown"


class _DirShape(NamedTuple):
    """What a data dir shows, whoever's app it is."""

    kind: str  # ANDROID, SANDBOX (another platform's own sandbox) or UNKNOWN
    marker: str | None  # the container marker it contains (longest first)
    user: int | None  # Android user id of an Android dir (0 for /data/data)
    package: str | None  # the package owning an Android dir
    nested: bool  # another app's data dir lies below the owner's
    platform: str | None  # whose sandbox a SANDBOX dir is


@dataclass(frozen=True, slots=True)
class _Tables:
    """Container signatures compiled once: one regex per kind, a dict per package."""

    markers: re.Pattern[str] | None  # data_dir substrings; the match names the product
    libs: re.Pattern[str] | None
    products: dict[str, str]  # folded marker or lib substring -> product
    packages: dict[str, str]  # folded host package -> product
    android_dirs: tuple[RulePattern, ...] = ()
    app_dirs: tuple[RulePattern, ...] = ()
    sandboxes: tuple[tuple[str, RulePattern], ...] = ()  # (platform, shape)
    providers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # pkg -> path_contains
    # data dir -> its shape (fingerprint.memo: thread-safe, cleared when full).
    dirs: BoundedMemo[str, _DirShape] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        dirs = BoundedMemo(DATA_DIR_CACHE_SIZE, self._examine, keep=_cacheable_dir)
        object.__setattr__(self, "dirs", dirs)

    def dir_shape(self, data_dir: str) -> _DirShape:
        return self.dirs[data_dir]

    def _examine(self, data_dir: str) -> _DirShape:
        found = self.markers.search(data_dir.casefold()) if self.markers else None
        marker = found[0] if found else None
        android = _first_match(self.android_dirs, data_dir)
        if android is not None:
            groups = android.groupdict()
            user = groups.get("user")
            rest = groups.get("rest") or ""
            nested = _NESTED_DATA_DIR.search(rest) is not None
            package = android["pkg"]
            return _DirShape(ANDROID, marker, int(user) if user else 0, package, nested, None)
        for platform, shape in self.sandboxes:
            if shape.match(data_dir):
                return _DirShape(SANDBOX, None, None, None, False, platform)
        return _DirShape(UNKNOWN, marker, None, None, False, None)

    def app_owner(self, path: str) -> str | None:
        """The package whose install or data dir holds ``path``, or None."""
        found = _first_match(self.app_dirs, path) or _first_match(self.android_dirs, path)
        return found["pkg"] if found is not None else None

    def is_provider(self, owner: str, path: str) -> bool:
        paths = self.providers.get(_LIBRARY_VERSION.sub("", owner.casefold()))
        if paths is None:
            return False
        return not paths or any(p in path for p in paths)


def _cacheable_dir(data_dir: str) -> bool:
    return len(data_dir) <= _MAX_CACHED_DIR


def _path_regex(pattern: str) -> RulePattern:
    """A path shape from rules/multi_open.yaml, on RE2 like every rules regex; paths
    are case-sensitive on every platform the shapes describe."""
    return compile_rule_regex(pattern, ignore_case=False)


def _first_match(patterns: tuple[RulePattern, ...], text: str) -> Any:
    for pattern in patterns:
        found = pattern.match(text)
        if found is not None:
            return found
    return None


def _substring_regex(needles: list[str]) -> re.Pattern[str] | None:
    if not needles:
        return None
    ordered = sorted(set(needles), key=len, reverse=True)  # longest marker wins
    return re.compile("|".join(re.escape(n) for n in ordered))


@dataclass(frozen=True)
class MultiOpenCheck(Check):
    name: ClassVar[str] = "multi_open"
    device_scoped: ClassVar[bool] = True
    codes: ClassVar[tuple[str, ...]] = (
        "MO_CONTAINER_DATA_DIR",
        "MO_UID_MISMATCH",
        "MO_CONTAINER_LIB",
        "MO_SYSTEM_DUAL_APP",
        "MO_CLONER_INSTALLED",
    )

    tables: _Tables | None = None
    dual_app_users: tuple[tuple[int, str], ...] = ()
    # dual_app_users as a dict (the first vendor named for a user wins), built in compile.
    dual_vendors: dict[int, str] | None = None

    @classmethod
    def compile(cls, rules: RuleSet, config: dict[str, Any]) -> Check:
        spec = rules.multi_open
        products: dict[str, str] = {}
        packages: dict[str, str] = {}
        markers: list[str] = []
        libs: list[str] = []
        for container in spec.containers:
            for marker in container.data_dir_markers:
                markers.append(marker.casefold())
                products.setdefault(marker.casefold(), container.product)
            for lib in container.libs:
                libs.append(lib.casefold())
                products.setdefault(lib.casefold(), container.product)
            for package in container.packages:
                packages.setdefault(package.casefold(), container.product)
        providers: dict[str, tuple[str, ...]] = {}
        for provider in spec.shared_library_providers:
            for package in provider.packages:
                providers[package.casefold()] = tuple(provider.path_contains)
        tables = _Tables(
            _substring_regex(markers),
            _substring_regex(libs),
            products,
            packages,
            android_dirs=tuple(_path_regex(p) for p in spec.android_data_dirs),
            app_dirs=tuple(_path_regex(p) for p in spec.android_app_dirs),
            sandboxes=tuple(
                (box.platform, _path_regex(p))
                for box in spec.platform_sandboxes
                for p in box.patterns
            ),
            providers=providers,
        )
        users = tuple((u.user_id, u.vendor) for u in spec.system_dual_app_users)
        vendors: dict[int, str] = {}
        for user_id, vendor in users:
            vendors.setdefault(user_id, vendor)
        return cls(**config, tables=tables, dual_app_users=users, dual_vendors=vendors)

    def evaluate(self, ctx: CheckContext) -> Outcome:
        app = ctx.session.app
        packages = (ctx.session.device.installed_packages if ctx.session.device else None) or []
        hits: list[Hit] = []
        judged = bool(packages)
        if app is not None:
            if app.data_dir:
                found, shape_known = self._data_dir(app, app.data_dir)
                hits.extend(found)
                judged = judged or shape_known
            if app.uid is not None and app.process_uid is not None:
                hits.extend(self._uids(app))
                judged = True
            if app.loaded_libs:
                hits.extend(self._libs(app))
                judged = True
        if not judged:
            return NotEvaluated(
                "no app block (data_dir of a known shape, uids, loaded_libs) or installed packages"
            )
        if not any(h.code != "MO_SYSTEM_DUAL_APP" for h in hits):
            hits.extend(self._installed(packages))
        # Only two dual-app hits (data dir and uid) can repeat a code.
        return _dedupe_dual(hits) if len(hits) > 1 else hits

    def _data_dir(self, app: App, data_dir: str) -> tuple[list[Hit], bool]:
        """The hits of the data dir, and whether its shape said anything at all."""
        assert self.tables is not None
        shape = self.tables.dir_shape(data_dir)
        if shape.kind == SANDBOX:
            return [], True  # that platform's own sandbox: what every app reports
        if shape.marker is not None:
            return [self._container_dir(data_dir, self.tables.products[shape.marker], shape)], True
        if shape.kind == UNKNOWN:
            return [], False  # no rule knows this shape: no evidence either way
        if app.package and shape.package != app.package:
            # Our data inside another app's directory: how every container works.
            return [self._container_dir(data_dir, self._host_product(shape.package), shape)], True
        if shape.nested:
            return [self._container_dir(data_dir, "unlisted container", shape)], True
        vendor = self._dual_vendor(shape.user) if shape.user else None
        if vendor:
            evidence = {"user_id": shape.user, "vendor": vendor, "data_dir": data_dir[:300]}
            return [Hit("MO_SYSTEM_DUAL_APP", evidence)], True
        return [], True

    def _container_dir(self, data_dir: str, product: str, shape: _DirShape) -> Hit:
        evidence: dict[str, Any] = {"data_dir": data_dir[:300], "product": product}
        if shape.marker is not None:
            evidence["marker"] = shape.marker
        if shape.package is not None:
            evidence["host_package"] = shape.package
        return Hit("MO_CONTAINER_DATA_DIR", evidence)

    def _host_product(self, package: str | None) -> str:
        assert self.tables is not None
        if package is None:
            return "unlisted container"
        return self.tables.packages.get(package.casefold(), f"unlisted container ({package})")

    def _uids(self, app: App) -> list[Hit]:
        if app.uid is None or app.process_uid is None or app.uid == app.process_uid:
            return []
        package_app_id = app.uid % PER_USER_RANGE
        process_app_id = app.process_uid % PER_USER_RANGE
        process_user = app.process_uid // PER_USER_RANGE
        if package_app_id != process_app_id:
            return [
                Hit(
                    "MO_UID_MISMATCH",
                    {
                        "uid": app.uid,
                        "process_uid": app.process_uid,
                        "package_app_id": package_app_id,
                        "process_app_id": process_app_id,
                    },
                )
            ]
        vendor = self._dual_vendor(process_user)
        if vendor:
            return [
                Hit(
                    "MO_SYSTEM_DUAL_APP",
                    {"user_id": process_user, "vendor": vendor, "process_uid": app.process_uid},
                )
            ]
        return []

    def _libs(self, app: App) -> list[Hit]:
        assert self.tables is not None
        tables = self.tables
        own = app.package or self._own_package(app)
        for lib in app.loaded_libs or ():
            found = tables.libs.search(lib.casefold()) if tables.libs is not None else None
            if found:
                return [
                    Hit(
                        "MO_CONTAINER_LIB", {"lib": lib[:300], "product": tables.products[found[0]]}
                    )
                ]
            if own is None or ".so" not in lib:
                continue  # whose app is ours unknown, or no native library (dex, apk, fonts)
            owner = tables.app_owner(lib)
            if owner is None or owner == own or tables.is_provider(owner, lib):
                continue
            evidence = {"lib": lib[:300], "owner": owner, "product": self._host_product(owner)}
            return [Hit("MO_CONTAINER_LIB", evidence)]
        return []

    def _own_package(self, app: App) -> str | None:
        """Our package as the data dir says it, when the app block does not."""
        assert self.tables is not None
        if not app.data_dir:
            return None
        shape = self.tables.dir_shape(app.data_dir)
        return shape.package if shape.kind == ANDROID and not shape.nested else None

    def _installed(self, packages: list[str]) -> list[Hit]:
        assert self.tables is not None
        table = self.tables.packages
        found = []
        for package in packages:
            product = table.get(package.casefold())
            if product is not None:
                found.append({"package": package, "product": product})
        return [Hit("MO_CLONER_INSTALLED", {"cloners": found[:10]})] if found else []

    def _dual_vendor(self, user_id: int) -> str | None:
        if self.dual_vendors is None:  # built without compile()
            return next((vendor for uid, vendor in self.dual_app_users if uid == user_id), None)
        return self.dual_vendors.get(user_id)


def _dedupe_dual(hits: list[Hit]) -> list[Hit]:
    """The data dir and the uid often both show the same dual app: report it once."""
    seen: set[str] = set()
    unique = []
    for hit in hits:
        if hit.code in seen:
            continue
        seen.add(hit.code)
        unique.append(hit)
    return unique
