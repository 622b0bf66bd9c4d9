"""Command-line options made from :class:`~fingerprint.config.CheckerConfig`.

Each user-facing field declares its flag, help, metavar and parser once, as its
:class:`~fingerprint.config.Option`; ``fingerprint check``, ``explain``, ``whois``
and ``python -m fingerprint.spark`` get their options from here, with the field's
default. Where a program needs another default, or leaves an option out, its
:class:`Caller` below says so and why: the only other place a default is written.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from fingerprint.config import CheckerConfig, Option


@dataclass(frozen=True, kw_only=True)
class Override:
    """A caller's default for one option, and why it differs from the library's."""

    value: Any
    why: str


@dataclass(frozen=True, kw_only=True)
class Caller:
    """A program that builds a :class:`CheckerConfig` from its command line."""

    name: str
    # Options whose default differs from CheckerConfig's, with the reason.
    defaults: Mapping[str, Override] = field(default_factory=dict)
    # Options the program does not offer, and why (the setting would not apply).
    left_out: Mapping[str, str] = field(default_factory=dict)
    # Library-only fields the program sets itself.
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def offered(self) -> list[str]:
        """The fields this program has a flag for, in declaration order."""
        return [name for name in OPTIONS if name not in self.left_out]

    def default(self, name: str) -> Any:
        override = self.defaults.get(name)
        return override.value if override is not None else _field_default(FIELDS[name])


_BATCH_WAIT = (
    "a batch run has no user waiting on each login: a short wait gets most registry "
    "answers into the reports; the library keeps 0 so a service never blocks"
)
_SPARK_HISTORY = (
    "Spark keeps history itself, one account at a time per partition, and counts what "
    "other accounts did with windows over every session: there is no store to choose"
)
_SPARK_WHOIS = (
    "registry lookups from every executor, each with a cache of its own, would answer "
    "differently from run to run; on Spark use an ASN database (--asn-db)"
)

#: ``fingerprint check`` and ``fingerprint explain``.
CLI = Caller(
    name="fingerprint check / explain",
    defaults={"whois_wait": Override(value=0.2, why=_BATCH_WAIT)},
    # The CLI rolls accounts up itself (--by account). The device memo stays on: it is
    # keyed on device content, which batch logs repeat (CheckerConfig.device_memo_size).
    fixed={"track_accounts": 0},
)

#: ``python -m fingerprint.spark`` (and :func:`fingerprint.spark.check_sessions`).
SPARK = Caller(
    name="python -m fingerprint.spark",
    left_out={
        "history": _SPARK_HISTORY,
        "history_timeout": _SPARK_HISTORY,
        "fail_closed": _SPARK_HISTORY,
        "whois": _SPARK_WHOIS,
        "whois_cache": _SPARK_WHOIS,
        "whois_timeout": _SPARK_WHOIS,
        "whois_wait": _SPARK_WHOIS,
        "whois_budget": _SPARK_WHOIS,
    },
    fixed={"track_accounts": 0},  # reports only: accounts are rolled up by Spark queries
)

#: ``fingerprint whois`` shares the lookup options (its lookups are in the foreground).
WHOIS_OPTIONS = ("whois_cache", "whois_timeout", "rules_dir")


def _declared() -> tuple[dict[str, Field[Any]], dict[str, Option]]:
    every = {f.name: f for f in fields(CheckerConfig)}
    return every, {
        name: f.metadata["option"] for name, f in every.items() if "option" in f.metadata
    }


FIELDS, OPTIONS = _declared()


def add_checker_options(parser: argparse.ArgumentParser, caller: Caller) -> None:
    """Every option ``caller`` offers, in a group of their own, with its defaults."""
    group = parser.add_argument_group("databases and rules")
    add_options(group, caller.offered(), caller)


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    names: Iterable[str],
    caller: Caller | None = None,
) -> None:
    """The declared options ``names`` (CheckerConfig field names); each parses into
    ``args.<field name>``, defaulting to the caller's default or else the field's."""
    for name in names:
        option = OPTIONS[name]
        default = caller.default(name) if caller else _field_default(FIELDS[name])
        shown = option.help.replace("{default}", _shown(default))
        if option.switch:
            parser.add_argument(option.flag, dest=name, action="store_true", help=shown)
            continue
        valued: dict[str, Any] = {"metavar": option.metavar, "default": default}
        if option.parse is not None:
            valued["type"] = option.parse
        parser.add_argument(option.flag, dest=name, help=shown, **valued)


def config_from_args(args: argparse.Namespace, caller: Caller) -> CheckerConfig:
    """The CheckerConfig of parsed ``args`` (raises ConfigError for an unusable value)."""
    values: dict[str, Any] = dict(caller.fixed)
    for name in caller.offered():
        value = getattr(args, name)
        convert = OPTIONS[name].to_config
        values[name] = convert(value) if convert is not None else value
    return CheckerConfig(**values)


def _field_default(declared: Field[Any]) -> Any:
    assert declared.default is not MISSING, f"{declared.name} has no plain default"
    return declared.default


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)  # 3, not 3.0


__all__ = [
    "CLI",
    "SPARK",
    "WHOIS_OPTIONS",
    "Caller",
    "Override",
    "add_checker_options",
    "add_options",
    "config_from_args",
]
