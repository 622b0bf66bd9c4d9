"""``farm_tools``: farm tooling installed on the device (rules/tooling.yaml).

What each kind of tool proves decides its code and severity (docs/CALIBRATION.md
"Farm tooling"): group control and script automation exist to drive apps without a
person (strong); remote control lets someone else drive the phone (screen-sharing
scams, also IT support); a mock-location app can make the GPS lie; a VPN or proxy
client installed is not a VPN in use (weak: the tunnel itself is ``vpn_proxy``'s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from fingerprint.checks.base import Check, CheckContext, Hit, NotEvaluated, Outcome
from fingerprint.checks.emulator import normalise_path
from fingerprint.rules import RulePattern, RuleSet, compile_rule_regex

CODES = {
    "group_control": "FRM_GROUP_CONTROL",
    "automation": "FRM_AUTOMATION",
    "remote_control": "FRM_REMOTE_CONTROL",
    "mock_location": "FRM_MOCK_LOCATION",
    "vpn_client": "FRM_VPN_CLIENT",
}
_MAX_TOOLS = 5  # named in the evidence per code


@dataclass(frozen=True)
class FarmToolsCheck(Check):
    name: ClassVar[str] = "farm_tools"
    device_scoped: ClassVar[bool] = True
    codes: ClassVar[tuple[str, ...]] = tuple(CODES.values())

    # Folded package id -> (code, product).
    packages: dict[str, tuple[str, str]] | None = None
    # (path regex, code, product), and one alternation of them all so that a
    # device's usual files cost one search each.
    files: tuple[tuple[RulePattern, str, str], ...] = ()
    files_any: RulePattern | None = None

    @classmethod
    def compile(cls, rules: RuleSet, config: dict[str, Any]) -> Check:
        tools = rules.tooling.tools
        patterns = [(p, CODES[t.category], t.product) for t in tools for p in t.files]
        return cls(
            **config,
            packages={
                package.casefold(): (CODES[t.category], t.product)
                for t in tools
                for package in t.packages
            },
            files=tuple((compile_rule_regex(p), code, product) for p, code, product in patterns),
            files_any=(
                compile_rule_regex("|".join(f"(?:{p})" for p, _, _ in patterns))
                if patterns
                else None
            ),
        )

    def evaluate(self, ctx: CheckContext) -> Outcome:
        device = ctx.session.device
        if device is None or (device.installed_packages is None and device.files_present is None):
            return NotEvaluated("the SDK reported no installed packages or files")
        found: dict[str, list[dict[str, str]]] = {}
        for package in device.installed_packages or ():
            known = (self.packages or {}).get(package.casefold())
            if known is not None:
                code, product = known
                found.setdefault(code, []).append({"product": product, "package": package})
        for path, code, product in self._files(device.files_present or ()):
            found.setdefault(code, []).append({"product": product, "file": path})
        return [
            Hit(code, {"tools": _distinct_products(found[code])[:_MAX_TOOLS]})
            for code in CODES.values()
            if code in found
        ]

    def _files(self, paths: list[str] | tuple[str, ...]) -> list[tuple[str, str, str]]:
        if self.files_any is None:
            return []
        hits = []
        for raw in paths:
            path = normalise_path(raw)
            if self.files_any.search(path) is None:  # the usual file
                continue
            for pattern, code, product in self.files:
                if pattern.search(path):
                    hits.append((path[:200], code, product))
                    break
        return hits


def _distinct_products(tools: list[dict[str, str]]) -> list[dict[str, str]]:
    """One entry per product (its package or file seen first)."""
    seen: dict[str, dict[str, str]] = {}
    for tool in tools:
        seen.setdefault(tool["product"], tool)
    return list(seen.values())
