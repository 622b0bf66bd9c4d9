"""``tamper``: root, hooking frameworks, a debugger, device-modification (改机) tools.

Weak on their own (rooted phones are real phones), so never blacklisting; they
add up in the grade and explain why a device fingerprint cannot be trusted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from fingerprint.checks.base import Check, CheckContext, Hit, NotEvaluated, Outcome
from fingerprint.checks.emulator import normalise_path
from fingerprint.rules import RuleSet, Severity

_ORDER: tuple[Severity, ...] = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class TamperCheck(Check):
    name: ClassVar[str] = "tamper"
    device_scoped: ClassVar[bool] = True
    codes: ClassVar[tuple[str, ...]] = (
        "TAM_ROOTED",
        "TAM_HOOK_FRAMEWORK",
        "TAM_DEBUGGER",
        "TAM_DEVICE_MOD_TOOL",
        "TAM_CAPTURE_TOOL",
        "TAM_HOOK_TOOL",
    )

    hook_frameworks: dict[str, Severity] | None = None
    # Folded package name -> what it is: (code, product) for each table naming it,
    # root apps first. One lookup per installed package finds every kind at once.
    packages: dict[str, tuple[tuple[str, str], ...]] | None = None
    # Hook tooling seen as files: (path regex, product, severity); one alternation
    # first so a device's usual files cost one search each.
    hook_files: tuple[tuple[re.Pattern[str], str, Severity], ...] = ()
    hook_files_any: re.Pattern[str] | None = None
    hook_severity: dict[str, Severity] | None = None

    @classmethod
    def compile(cls, rules: RuleSet, config: dict[str, Any]) -> Check:
        tamper = rules.tamper
        tables = (
            ("TAM_ROOTED", {p.casefold(): "" for p in tamper.root_packages}),
            (
                "TAM_DEVICE_MOD_TOOL",
                {p.casefold(): t.product for t in tamper.device_mod_tools for p in t.packages},
            ),
            (
                "TAM_CAPTURE_TOOL",
                {p.casefold(): t.product for t in tamper.capture_tools for p in t.packages},
            ),
            (
                "TAM_HOOK_TOOL",
                {p.casefold(): t.product for t in tamper.hook_tools for p in t.packages},
            ),
        )
        packages: dict[str, tuple[tuple[str, str], ...]] = {}
        for code, table in tables:
            for package, product in table.items():
                packages[package] = (*packages.get(package, ()), (code, product))
        patterns = [
            (pattern, t.product, t.severity) for t in tamper.hook_tools for pattern in t.files
        ]
        return cls(
            **config,
            hook_frameworks={k.casefold(): v for k, v in tamper.hook_frameworks.items()},
            packages=packages,
            hook_files=tuple(
                (re.compile(p, re.IGNORECASE), prod, sev) for p, prod, sev in patterns
            ),
            hook_files_any=(
                re.compile("|".join(f"(?:{p})" for p, _, _ in patterns), re.IGNORECASE)
                if patterns
                else None
            ),
            hook_severity={t.product: t.severity for t in tamper.hook_tools},
        )

    def evaluate(self, ctx: CheckContext) -> Outcome:
        device = ctx.session.device
        if device is None:
            return NotEvaluated("no device block")
        if (
            device.rooted is None
            and device.hooks is None
            and device.debugger_attached is None
            and device.installed_packages is None
            and device.files_present is None
        ):
            return NotEvaluated("the SDK reported no root, hook, debugger, package or file data")
        root_apps: list[str] = []
        tools: dict[str, list[dict[str, str]]] = {}
        if device.installed_packages:
            table = self.packages or {}
            for package in device.installed_packages:
                folded = package.casefold()
                kinds = table.get(folded)
                if kinds is None:  # the usual package: nothing to note
                    continue
                for code, product in kinds:
                    if code == "TAM_ROOTED":
                        root_apps.append(folded)
                    else:
                        tools.setdefault(code, []).append({"package": folded, "product": product})
        hits: list[Hit] = []
        if device.rooted or root_apps:
            hits.append(
                Hit("TAM_ROOTED", {"rooted": bool(device.rooted), "root_apps": root_apps[:5]})
            )
        if device.hooks:
            hits.append(self._hooks(device.hooks))
        if device.debugger_attached:
            hits.append(Hit("TAM_DEBUGGER", {"debugger_attached": True}))
        for code in ("TAM_DEVICE_MOD_TOOL", "TAM_CAPTURE_TOOL"):
            found = tools.get(code)
            if found:
                hits.append(Hit(code, {"tools": found[:5]}))
        hook_tools = tools.get("TAM_HOOK_TOOL", [])
        if device.files_present and self.hook_files_any is not None:
            hook_tools.extend(self._hook_files(device.files_present))
        if hook_tools:
            hits.append(self._hook_tools(hook_tools))
        return hits

    def _hook_files(self, paths: list[str]) -> list[dict[str, str]]:
        assert self.hook_files_any is not None
        found: list[dict[str, str]] = []
        for raw in paths:
            path = normalise_path(raw)
            if self.hook_files_any.search(path) is None:  # the usual file
                continue
            for pattern, product, _ in self.hook_files:
                if pattern.search(path):
                    found.append({"file": path[:200], "product": product})
                    break
        return found

    def _hook_tools(self, found: list[dict[str, str]]) -> Hit:
        """One finding for every hook tool seen; its severity is the gravest tool's."""
        severities = self.hook_severity or {}
        products = list(dict.fromkeys(item["product"] for item in found))
        severity = max((severities.get(p, "medium") for p in products), key=_ORDER.index)
        return Hit(
            "TAM_HOOK_TOOL",
            {"products": products, "tools": found[:5]},
            severity=severity,
        )

    def _hooks(self, hooks: list[str]) -> Hit:
        known = self.hook_frameworks or {}
        severities = [known[h] for h in hooks if h in known]
        severity: Severity = max(severities, key=_ORDER.index) if severities else "medium"
        return Hit("TAM_HOOK_FRAMEWORK", {"hooks": hooks[:10]}, severity=severity)
