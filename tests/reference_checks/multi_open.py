"""``multi_open``: the app runs cloned or inside a multi-open container.

Android uids are ``user_id * 100000 + app_id``. A process uid with another app id
means another app's process hosts ours (a third-party container: critical); the
same app id under a dual-app user (999 MIUI/OnePlus, 128 Huawei/Honor, 95 Samsung)
is the OS's own dual-app feature (medium, not blacklisted by default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from fingerprint.checks.base import Check, CheckContext, Hit, NotEvaluated, Outcome
from fingerprint.rules import RuleSet
from fingerprint.session import App

PER_USER_RANGE = 100_000
# /data/user/<N>/<pkg>, /data/user_de/<N>/<pkg>, /data/data/<pkg>, adopted storage.
_STANDARD_DATA_DIR = re.compile(
    r"^(?:/mnt/expand/[^/]+)?/data/(?:user(?:_de)?/(?P<user>\d+)|data)/(?P<pkg>[^/]+)/?$"
)


@dataclass(frozen=True, slots=True)
class _Tables:
    """Container signatures compiled once: one regex per kind, a dict per package."""

    markers: re.Pattern[str] | None  # data_dir substrings; the match names the product
    libs: re.Pattern[str] | None
    products: dict[str, str]  # folded marker or lib substring -> product
    packages: dict[str, str]  # folded host package -> product


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
        return cls(**config, tables=tables, dual_app_users=users)

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
            hits.extend(self._data_dir(app))
            hits.extend(self._uids(app))
            hits.extend(self._libs(app))
        if not any(h.code != "MO_SYSTEM_DUAL_APP" for h in hits):
            hits.extend(self._installed(packages))
        return _dedupe_dual(hits)

    def _data_dir(self, app: App) -> list[Hit]:
        if not app.data_dir:
            return []
        assert self.tables is not None
        found = self.tables.markers.search(app.data_dir.casefold()) if self.tables.markers else None
        if found:
            return [
                Hit(
                    "MO_CONTAINER_DATA_DIR",
                    {
                        "data_dir": app.data_dir[:300],
                        "product": self.tables.products[found[0]],
                        "marker": found[0],
                    },
                )
            ]
        standard = _STANDARD_DATA_DIR.match(app.data_dir)
        if standard is None or (app.package and standard["pkg"] != app.package):
            # Our data inside another app's directory: how every container works.
            return [
                Hit(
                    "MO_CONTAINER_DATA_DIR",
                    {
                        "data_dir": app.data_dir[:300],
                        "product": "unknown container",
                        "expected_package": app.package,
                    },
                )
            ]
        user = standard["user"]
        vendor = self._dual_vendor(int(user)) if user else None
        if vendor:
            return [
                Hit(
                    "MO_SYSTEM_DUAL_APP",
                    {"user_id": int(user), "vendor": vendor, "data_dir": app.data_dir[:300]},
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
        found = [
            {"package": p, "product": table[p.casefold()]}
            for p in packages
            if p.casefold() in table
        ]
        return [Hit("MO_CLONER_INSTALLED", {"cloners": found[:10]})] if found else []

    def _dual_vendor(self, user_id: int) -> str | None:
        return next((vendor for uid, vendor in self.dual_app_users if uid == user_id), None)


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
