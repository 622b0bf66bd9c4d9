"""Command-line options come from CheckerConfig's declaration: the CLI, explain, whois
and the Spark job offer every user-facing field with the library's default, or with
the override their Caller documents, and show the declared help."""

from __future__ import annotations

import argparse
import os
from dataclasses import fields
from pathlib import Path

import pytest

from fingerprint.cli import build_parser as cli_parser
from fingerprint.config import CheckerConfig
from fingerprint.options import CLI, OPTIONS, SPARK, WHOIS_OPTIONS, config_from_args

ROOT = Path(__file__).resolve().parent.parent

if os.environ.get("CI"):
    import pyspark  # noqa: F401 - under CI a missing pyspark fails the run
else:
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install -e '.[spark]')")

from fingerprint.spark import build_parser as spark_parser  # noqa: E402


def _cli(command: str) -> argparse.ArgumentParser:
    """The sub-command's own parser (argparse keeps them in the sub-parsers action)."""
    for action in cli_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen: argparse.ArgumentParser = action.choices[command]
            return chosen
    raise AssertionError("no sub-commands")


# Each program, the arguments it needs besides options, and its Caller.
PROGRAMS = {
    "check": (lambda: _cli("check"), ["in.jsonl"], CLI),
    "explain": (lambda: _cli("explain"), [], CLI),
    "spark": (spark_parser, ["in.jsonl", "out"], SPARK),
}


def test_every_field_is_an_option_or_says_why_it_is_not() -> None:
    for declared in fields(CheckerConfig):
        why = declared.metadata.get("library_only")
        assert ("option" in declared.metadata) != bool(why), declared.name
    flags = [option.flag for option in OPTIONS.values()]
    assert len(set(flags)) == len(flags)


def test_overrides_and_left_out_options_say_why() -> None:
    for caller in (CLI, SPARK):
        for name, override in caller.defaults.items():
            assert name in OPTIONS and override.why, (caller.name, name)
            assert override.value != _library_default(name), "an override must differ"
        assert all(name in OPTIONS and why for name, why in caller.left_out.items())
        assert not set(caller.fixed) & set(OPTIONS), "a fixed field has no flag to set it"


@pytest.mark.parametrize("program", PROGRAMS)
def test_defaults_are_the_library_s_or_the_documented_override(program: str) -> None:
    make, required, caller = PROGRAMS[program]
    args = make().parse_args(required)
    for name in OPTIONS:
        if name in caller.left_out:
            assert not hasattr(args, name), f"{program} offers {name}"
            continue
        wanted = caller.defaults[name].value if name in caller.defaults else _library_default(name)
        assert getattr(args, name) == wanted, (program, name)


def test_whois_wait_never_blocks_a_service_and_the_cli_may_wait() -> None:
    assert CheckerConfig().whois_wait == 0.0
    assert _cli("check").parse_args(["x"]).whois_wait == 0.2
    assert "whois_wait" in SPARK.left_out  # no registry lookups on Spark at all
    assert _cli("whois").parse_args(["1.2.3.4"]).whois_timeout == CheckerConfig().whois_timeout


@pytest.mark.parametrize("program", PROGRAMS)
def test_a_run_without_options_builds_the_library_config(
    program: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FINGERPRINT_IDENTITY_SECRET", raising=False)
    make, required, caller = PROGRAMS[program]
    config = config_from_args(make().parse_args(required), caller)
    overrides = {name: o.value for name, o in caller.defaults.items()}
    assert config == CheckerConfig(**caller.fixed, **overrides)


@pytest.mark.parametrize("program", PROGRAMS)
def test_each_flag_sets_its_field(program: str, tmp_path: Path) -> None:
    make, required, caller = PROGRAMS[program]
    secret = tmp_path / "secret"
    secret.write_bytes(b"s3cret\n")
    given = {
        "city_db": ("c.mmdb", "c.mmdb"),
        "asn_db": ("a.mmdb", "a.mmdb"),
        "anonymous_ip_db": ("x.mmdb", "x.mmdb"),
        "rules_dir": ("r/", "r/"),
        "naive_tz": ("UTC", "UTC"),
        "history": ("redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0"),
        "history_timeout": ("0.5", 0.5),
        "fail_closed": (None, True),
        "whois": (None, True),
        "whois_cache": ("w.sqlite3", "w.sqlite3"),
        "whois_timeout": ("1.5", 1.5),
        "whois_wait": ("0.75", 0.75),
        "whois_budget": ("7", 7),
        "identity_secret": (str(secret), b"s3cret"),
    }
    assert set(given) == set(OPTIONS), "a new option needs a case here"
    parser = make()
    for name in caller.offered():
        text, wanted = given[name]
        flag = OPTIONS[name].flag
        args = parser.parse_args([*required, flag] if text is None else [*required, flag, text])
        value = getattr(config_from_args(args, caller), name)
        assert (str(value) if name == "naive_tz" else value) == wanted, (program, name)


@pytest.mark.parametrize("program", [*PROGRAMS, "whois"])
def test_help_is_the_declared_help(program: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # no wrapping: each help on one line
    if program == "whois":
        parser, names, caller = _cli("whois"), list(WHOIS_OPTIONS), None
    else:
        make, _, caller = PROGRAMS[program]
        parser, names = make(), caller.offered()
    shown = " ".join(parser.format_help().split())
    for name in names:
        option = OPTIONS[name]
        default = caller.default(name) if caller else _library_default(name)
        text = option.help.replace("{default}", _shown(default))
        invocation = option.flag if option.switch else f"{option.flag} {option.metavar}"
        assert f"{invocation} {text}" in shown, (program, name)


def test_the_docs_name_every_flag() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    spark_doc = (ROOT / "docs" / "SPARK.md").read_text(encoding="utf-8")
    for caller, text in ((CLI, readme), (SPARK, spark_doc)):
        for name in caller.offered():
            assert OPTIONS[name].flag in text, (caller.name, OPTIONS[name].flag)
    for name, override in CLI.defaults.items():
        assert f"{OPTIONS[name].flag}` (CLI {override.value:g} s" in readme


def _library_default(name: str) -> object:
    return CheckerConfig.__dataclass_fields__[name].default


def _shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
