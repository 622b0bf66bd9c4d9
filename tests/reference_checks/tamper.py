"""``tamper``: root, hooking frameworks, a debugger, device-modification (改机) tools.

Weak on their own (rooted phones are real phones), so never blacklisting; they
add up in the grade and explain why a device fingerprint cannot be trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from fingerprint.checks.base import Check, CheckContext, Hit, NotEvaluated, Outcome
from fingerprint.rules import RuleSet, Severity


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
    )

    hook_frameworks: dict[str, Severity] | None = None
    root_packages: frozenset[str] = frozenset()
    mod_tools: dict[str, str] | None = None
    capture_tools: dict[str, str] | None = None

    @classmethod
    def compile(cls, rules: RuleSet, config: dict[str, Any]) -> Check:
        tamper = rules.tamper
        return cls(
            **config,
            hook_frameworks={k.casefold(): v for k, v in tamper.hook_frameworks.items()},
            root_packages=frozenset(p.casefold() for p in tamper.root_packages),
            mod_tools={
                p.casefold(): t.product for t in tamper.device_mod_tools for p in t.packages
            },
            capture_tools={
                p.casefold(): t.product for t in tamper.capture_tools for p in t.packages
            },
        )

    def evaluate(self, ctx: CheckContext) -> Outcome:
        device = ctx.session.device
        if device is None:
            return NotEvaluated("no device block")
        signals = (device.rooted, device.hooks, device.debugger_attached, device.installed_packages)
        if all(s is None for s in signals):
            return NotEvaluated("the SDK reported no root, hook, debugger or package data")
        packages = [p.casefold() for p in device.installed_packages or ()]
        hits: list[Hit] = []
        root_apps = [p for p in packages if p in self.root_packages]
        if device.rooted or root_apps:
            hits.append(
                Hit("TAM_ROOTED", {"rooted": bool(device.rooted), "root_apps": root_apps[:5]})
            )
        hits.extend(self._hooks(device.hooks or []))
        if device.debugger_attached:
            hits.append(Hit("TAM_DEBUGGER", {"debugger_attached": True}))
        for code, table in (
            ("TAM_DEVICE_MOD_TOOL", self.mod_tools),
            ("TAM_CAPTURE_TOOL", self.capture_tools),
        ):
            found = [
                {"package": p, "product": (table or {})[p]} for p in packages if p in (table or {})
            ]
            if found:
                hits.append(Hit(code, {"tools": found[:5]}))
        return hits

    def _hooks(self, hooks: list[str]) -> list[Hit]:
        known = self.hook_frameworks or {}
        severities = [known[h] for h in hooks if h in known]
        if not hooks:
            return []
        order = ("low", "medium", "high", "critical")
        severity: Severity = max(severities, key=order.index) if severities else "medium"
        return [Hit("TAM_HOOK_FRAMEWORK", {"hooks": hooks[:10]}, severity=severity)]
