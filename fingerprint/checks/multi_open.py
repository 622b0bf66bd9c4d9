"""``multi_open``: the app runs cloned or inside a multi-open container.

Android uids are ``user_id * 100000 + app_id``. A process uid with another app id
means another app's process hosts ours (a third-party container: critical); the
same app id under a dual-app user (999 MIUI/OnePlus, 128 Huawei/Honor, 95 Samsung)
is the OS's own dual-app feature (medium, not blacklisted by default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from fingerprint.checks.base import Check, CheckContext, Hit, NotEvaluated, Outcome
from fingerprint.rules import RuleSet
from fingerprint.session import App

PER_USER_RANGE = 100_000
# Data dirs repeat across devices (most apps sit at /data/user/0/<pkg>): what a dir
# looks like is remembered for this many of them, then the memo starts over. Longer
# (client-supplied) dirs than _MAX_CACHED_DIR are examined, not kept.
DATA_DIR_CACHE_SIZE = 4_096
_MAX_CACHED_DIR = 512
# /data/user/<N>/<pkg>, /data/user_de/<N>/<pkg>, /data/data/<pkg>, adopted storage.
_STANDARD_DATA_DIR = re.compile(
    r"^(?:/mnt/expand/[^/]+)?/data/(?:user(?:_de)?/(?P<user>\d+)|data)/(?P<pkg>[^/]+)/?$"
)


class _DirShape(NamedTuple):
    """What a data dir shows, whoever's app it is."""

    marker: str | None  # the container marker it contains (longest first)
    standard: bool  # a standard /data/user/<N>/<pkg> (or /data/data/<pkg>) path
    user: str | None  # <N> of a standard path
    package: str | None  # <pkg> of a standard path


@dataclass(frozen=True, slots=True)
class _Tables:
    """Container signatures compiled once: one regex per kind, a dict per package."""

    markers: re.Pattern[str] | None  # data_dir substrings; the match names the product
    libs: re.Pattern[str] | None
    products: dict[str, str]  # folded marker or lib substring -> product
    packages: dict[str, str]  # folded host package -> product
    # data dir -> its shape. Shared by threads: a race only examines a dir twice, with
    # the same answer (dict get/set are atomic).
    dirs: dict[str, _DirShape] = field(default_factory=dict)

    def dir_shape(self, data_dir: str) -> _DirShape:
        shape = self.dirs.get(data_dir)
        if shape is None:
            shape = self._examine(data_dir)
            if len(data_dir) <= _MAX_CACHED_DIR:
                if len(self.dirs) >= DATA_DIR_CACHE_SIZE:
                    self.dirs.clear()
                self.dirs[data_dir] = shape
        return shape

    def _examine(self, data_dir: str) -> _DirShape:
        found = self.markers.search(data_dir.casefold()) if self.markers else None
        if found:
            return _DirShape(found[0], False, None, None)
        standard = _STANDARD_DATA_DIR.match(data_dir)
        if standard is None:
            return _DirShape(None, False, None, None)
        return _DirShape(None, True, standard["user"], standard["pkg"])


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
        products: dict[str, str] = {}
        packages: dict[str, str] = {}
        markers: list[str] = []
        libs: list[str] = []
        for container in rules.multi_open.containers:
            for marker in container.data_dir_markers:
                markers.append(marker.casefold())
                products.setdefault(marker.casefold(), container.product)
            for lib in container.libs:
                libs.append(lib.casefold())
                products.setdefault(lib.casefold(), container.product)
            for package in container.packages:
                packages.setdefault(package.casefold(), container.product)
        tables = _Tables(_substring_regex(markers), _substring_regex(libs), products, packages)
        users = tuple((u.user_id, u.vendor) for u in rules.multi_open.system_dual_app_users)
        vendors: dict[int, str] = {}
        for user_id, vendor in users:
            vendors.setdefault(user_id, vendor)
        return cls(**config, tables=tables, dual_app_users=users, dual_vendors=vendors)

    def evaluate(self, ctx: CheckContext) -> Outcome:
        app = ctx.session.app
        packages = (ctx.session.device.installed_packages if ctx.session.device else None) or []
        has_app_signals = app is not None and (
            app.data_dir or app.uid is not None or app.process_uid is not None or app.loaded_libs
        )
        if not has_app_signals and not packages:
            return NotEvaluated("no app block (data_dir, uids, loaded_libs) or installed packages")
        hits: list[Hit] = []
        if app is not None:
            if app.data_dir:
                hits.extend(self._data_dir(app, app.data_dir))
            if app.uid is not None and app.process_uid is not None:
                hits.extend(self._uids(app))
            if app.loaded_libs:
                hits.extend(self._libs(app))
        if not any(h.code != "MO_SYSTEM_DUAL_APP" for h in hits):
            hits.extend(self._installed(packages))
        # Only two dual-app hits (data dir and uid) can repeat a code.
        return _dedupe_dual(hits) if len(hits) > 1 else hits

    def _data_dir(self, app: App, data_dir: str) -> list[Hit]:
        assert self.tables is not None
        shape = self.tables.dir_shape(data_dir)
        if shape.marker is not None:
            return [
                Hit(
                    "MO_CONTAINER_DATA_DIR",
                    {
                        "data_dir": data_dir[:300],
                        "product": self.tables.products[shape.marker],
                        "marker": shape.marker,
                    },
                )
            ]
        if not shape.standard or (app.package and shape.package != app.package):
            # Our data inside another app's directory: how every container works.
            return [
                Hit(
                    "MO_CONTAINER_DATA_DIR",
                    {
                        "data_dir": data_dir[:300],
                        "product": "unknown container",
                        "expected_package": app.package,
                    },
                )
            ]
        if shape.user is None:
            return []
        user_id = int(shape.user)
        vendor = self._dual_vendor(user_id)
        if vendor:
            return [
                Hit(
                    "MO_SYSTEM_DUAL_APP",
                    {"user_id": user_id, "vendor": vendor, "data_dir": data_dir[:300]},
                )
            ]
        return []

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
        if self.tables.libs is None:
            return []
        for lib in app.loaded_libs or ():
            found = self.tables.libs.search(lib.casefold())
            if found:
                return [
                    Hit(
                        "MO_CONTAINER_LIB",
                        {"lib": lib[:300], "product": self.tables.products[found[0]]},
                    )
                ]
        return []

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
