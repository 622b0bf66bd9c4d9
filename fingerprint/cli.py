"""The command line. It reads files, calls the library and writes reports; nothing else."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import orjson

from fingerprint import __version__
from fingerprint.batch import BatchOptions, BatchSinks, run_batch
from fingerprint.calibrate.command import add_parser as add_calibrate_parser
from fingerprint.checker import Checker
from fingerprint.config import IDENTITY_SECRET_ENV as IDENTITY_SECRET_ENV
from fingerprint.config import CheckerConfig, read_identity_secret
from fingerprint.errors import ConfigError, FingerprintError, RulesError
from fingerprint.explain import explain
from fingerprint.htmlreport import render_html
from fingerprint.inputs import expand_inputs, input_size
from fingerprint.native import NATIVE
from fingerprint.options import (
    CLI,
    WHOIS_OPTIONS,
    add_checker_options,
    add_options,
    config_from_args,
)
from fingerprint.outputs import Output, OutputSet, refuse_overwriting_inputs
from fingerprint.pipeline import check_stream
from fingerprint.rules import load_rules
from fingerprint.runner import RunStats
from fingerprint.sorting import SORT_MODES, OrderOptions, open_plan, read_once
from fingerprint.stopping import (
    exit_status,
    interruption,
    signal_number,
    signals_deferred,
    stop_on_signals,
    stop_requested,
)
from fingerprint.summary import Progress, format_summary, order_line

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2  # a signal: 128 + its number (Ctrl-C 130)


def program() -> int:
    """The ``fingerprint`` command and ``python -m fingerprint.cli``: :func:`main` as the
    process's own program. Once its command has ended (its outputs written or removed,
    its status decided), a stop signal finds nothing left to stop: it is ignored, and
    the process exits with the command's status
    (:func:`fingerprint.stopping.stop_on_signals`)."""
    return main(as_program=True)


def main(argv: Sequence[str] | None = None, *, as_program: bool = False) -> int:
    """Run one command (``argv``: its arguments, default ``sys.argv[1:]``); return
    its exit status. Called in a process of yours, it gives back the stop signals'
    handlers it found; ``as_program``: see :func:`program`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    # SIGTERM and SIGHUP unwind the stack like Ctrl-C.
    with stop_on_signals(then_ignore=as_program) as work:
        try:
            result: int = args.handler(args)
            work.done = True  # right after the command (see stopping.Work)
            return result
        except (KeyboardInterrupt, FingerprintError, BrokenPipeError) as ended:
            work.done = True  # the command has ended on these too: its status is decided
            return _ended_by(ended)


def _ended_by(ended: KeyboardInterrupt | FingerprintError | BrokenPipeError) -> int:
    """Say why a command ended early (one stderr line per problem) and give its status."""
    if isinstance(ended, KeyboardInterrupt):
        print(f"fingerprint: stopped by {_signal_name(ended)}", file=sys.stderr)
        return exit_status(ended)
    if isinstance(ended, RulesError):
        # Every problem in the folder, one line each: file, key, what is wrong.
        for problem in ended.problems:
            line = " ".join(str(problem).split())  # a value may hold a newline
            print(f"fingerprint: configuration error: {line}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(ended, ConfigError):
        print(f"fingerprint: configuration error: {ended}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(ended, FingerprintError):
        print(f"fingerprint: {ended}", file=sys.stderr)
        return EXIT_FAILED
    # `fingerprint check ... | head`: the reader left; not an error of ours.
    _silence_stdout()
    return EXIT_OK


def _version() -> str:
    """The version, and whether the hot loops (history's packing and decoding, the
    stability walk, the session decoder's look at a record) run in C
    (:mod:`fingerprint.native`: built with a compiler; ``FINGERPRINT_NATIVE=0``
    turns it off) or in Python."""
    loops = "C" if NATIVE is not None else "Python"
    return f"fingerprint {__version__} (hot loops in {loops})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fingerprint",
        description="Grade the device and network behind each login session.",
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = commands.add_parser("check", help="check session logs, write one report per line")
    check.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="files (.jsonl, .csv; gzip or not), directories, globs, or - for stdin; "
        "stdin, a pipe or another name is CSV when its first line is a CSV header, "
        "else JSON Lines",
    )
    check.add_argument("-o", "--output", metavar="OUT", help="write reports here (default stdout)")
    check.add_argument("--format", choices=("jsonl", "csv", "table"), default="jsonl")
    check.add_argument(
        "--by",
        choices=("session", "account"),
        default="session",
        help="one report per session (default) or per account",
    )
    check.add_argument("--rejects", metavar="FILE", help="write rejected lines here as JSON Lines")
    check.add_argument(
        "--only-flagged", action="store_true", help="keep only reports with findings"
    )
    check.add_argument("--summary", action="store_true", help="print a summary table on stderr")
    check.add_argument("--summary-json", metavar="FILE", help="write the summary as JSON")
    check.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary line")
    check.add_argument(
        "--progress",
        action="store_true",
        help="show progress on stderr even when it is not a terminal (a line every 10 s)",
    )
    check.add_argument(
        "--html",
        metavar="FILE",
        help="also write a self-contained HTML run report (needs -o and jsonl)",
    )
    check.add_argument(
        "--lang",
        choices=("zh", "en"),
        default="zh",
        help="language of the HTML report (default zh)",
    )
    check.add_argument(
        "--workers",
        type=_positive_int,
        default=os.cpu_count() or 1,
        help="processes, sharded by account (default: CPUs); results are identical to --workers 1",
    )
    check.add_argument(
        "--max-skew",
        type=_duration,
        default=300.0,
        metavar="DURATION",
        help="how far out of time order lines may be and still be reordered "
        "before history checks: seconds, or 90s, 5m, 1h (default 5m)",
    )
    check.add_argument(
        "--sort",
        choices=SORT_MODES,
        default="auto",
        help="auto (default): sort the input by time when it is more out of order than "
        "--max-skew (reports then in time order); always; never: stream it, checking "
        "lines that come too late as they come (with a warning)",
    )
    add_checker_options(check, CLI)
    check.set_defaults(handler=_cmd_check)

    explain_cmd = commands.add_parser("explain", help="diagnose one session in Chinese or English")
    explain_cmd.add_argument(
        "input",
        nargs="?",
        default="-",
        metavar="INPUT",
        help="session log (default stdin); earlier lines build history",
    )
    explain_cmd.add_argument("--session-id", help="the session to explain (default: the last)")
    explain_cmd.add_argument("--lang", choices=("zh", "en"), default="zh")
    explain_cmd.add_argument(
        "--for",
        dest="audience",
        choices=("analyst", "applicant"),
        default="analyst",
        help="analyst (default): every finding with its evidence, points, what was not "
        "evaluated and why; applicant: what happened and what they can do, in plain words",
    )
    explain_cmd.add_argument(
        "--max-skew",
        type=_duration,
        default=300.0,
        metavar="DURATION",
        help="as for check (default 5m)",
    )
    add_checker_options(explain_cmd, CLI)
    explain_cmd.set_defaults(handler=_cmd_explain)

    whois = commands.add_parser("whois", help="what the registries say about IPs (cached)")
    whois.add_argument("ips", nargs="+", metavar="IP")
    add_options(whois, WHOIS_OPTIONS)
    whois.set_defaults(handler=_cmd_whois)

    report = commands.add_parser("report", help="an HTML page from a reports file")
    report.add_argument("reports", metavar="REPORTS.jsonl", help="reports written by check")
    report.add_argument(
        "-o", "--output", metavar="OUT", help="the page (default: REPORTS with .html)"
    )
    report.add_argument("--lang", choices=("zh", "en"), default="zh")
    report.add_argument("--title", help="page title")
    report.add_argument("--rejects", type=int, metavar="N", help="rejected lines, if known")
    add_options(report, ["rules_dir"])
    report.set_defaults(handler=_cmd_report)

    rules = commands.add_parser("rules", help="validate or list the rule catalogue")
    rules_commands = rules.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    validate = rules_commands.add_parser("validate", help="load and validate a rules directory")
    validate.add_argument("directory", nargs="?", help="rules directory (default: bundled)")
    validate.set_defaults(handler=_cmd_rules_validate)
    listing = rules_commands.add_parser("list", help="every reason code with both messages")
    add_options(listing, ["rules_dir"])
    listing.add_argument("--format", choices=("table", "jsonl"), default="table")
    listing.set_defaults(handler=_cmd_rules_list)

    add_calibrate_parser(commands)
    return parser


def checker_config(args: argparse.Namespace) -> CheckerConfig:
    return config_from_args(args, CLI)


# Its name here before the option declarations moved to fingerprint.config.
identity_secret = read_identity_secret


# --- check ----------------------------------------------------------------------


def _cmd_check(args: argparse.Namespace) -> int:
    if args.html and (
        not args.output or args.output == "-" or args.format != "jsonl" or args.by != "session"
    ):
        print("fingerprint: --html needs -o FILE, --format jsonl and --by session", file=sys.stderr)
        return EXIT_USAGE
    paths = expand_inputs(args.inputs)
    options = BatchOptions(
        paths=paths,
        config=checker_config(args),
        fmt=args.format,
        by_account=args.by == "account",
        only_flagged=args.only_flagged,
        max_skew=args.max_skew,
        sort=args.sort,
        # stdin, a named pipe, <(zcat log.gz): read only once, so by one process.
        workers=1 if any(read_once(path) for path in paths) else args.workers,
    )
    named = {
        "-o": args.output,
        "--rejects": args.rejects,
        "--summary-json": args.summary_json,
        "--html": args.html,
    }
    refuse_overwriting_inputs(paths, named)
    checker = Checker(options.config)  # configuration errors surface before any output
    _warn_of_rules(checker)
    files = OutputSet()
    try:
        return _run_check(args, options, checker, files)
    except BaseException:
        with signals_deferred():  # a second Ctrl-C must not cut the cleanup short
            files.abort()
        raise


def _warn_of_rules(checker: Checker) -> None:
    # Printed even with -q, as the run's other warnings: the results are not what
    # they seem (a check reads what no enabled check decides).
    for warning in checker.rules_warnings:
        print(f"fingerprint: warning: {warning}", file=sys.stderr)


def _run_check(
    args: argparse.Namespace, options: BatchOptions, checker: Checker, files: OutputSet
) -> int:
    try:  # every output is checked (and its temporary file made) before the first line
        output = files.open(args.output, "-o")
        rejects = files.open(args.rejects, "--rejects") if args.rejects else None
        summary_json = (
            files.open(args.summary_json, "--summary-json") if args.summary_json else None
        )
        html = files.open(args.html, "--html") if args.html else None
    except ConfigError:
        checker.close()
        raise
    if html is not None and output.replaces is None:
        checker.close()
        raise ConfigError("--html reads the reports back: -o must be a regular file", args.output)
    progress = Progress.for_stream(
        sys.stderr, _total_bytes(options.paths), enabled=not args.quiet, force=args.progress
    )

    def warn(message: str) -> None:
        progress.clear()
        print(f"fingerprint: {message}", file=sys.stderr)

    sinks = BatchSinks(output, rejects, progress, warn=warn, temporaries=files.temporaries)
    started = time.perf_counter()
    try:
        try:
            stats = run_batch(options, sinks, checker)
        except Exception:
            signum = stop_requested()
            if signum is None:
                raise
            raise interruption(signum) from None  # a signal's exception, lost in C code
    except KeyboardInterrupt as interrupt:
        with signals_deferred():
            progress.close()
            files.abort()
        stats = getattr(interrupt, "stats", None) or RunStats(interrupted=True)
        stats.seconds = time.perf_counter() - started
        straight = {o.option for o in (output, rejects) if o is not None and o.written_straight}
        _tell_interrupted(args, stats, interrupt, straight)
        return exit_status(interrupt)
    finally:
        progress.close()
    stats.seconds = time.perf_counter() - started
    output.commit()
    if rejects is not None:
        rejects.commit()
    if html is not None:  # after -o is complete: the page is made from it
        html.write(
            render_html(args.output, args.lang, load_rules(args.rules_dir), rejects=stats.rejects)
        )
        html.commit()
    summary = stats.to_dict()
    if summary_json is not None:
        summary_json.write(
            orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
        )
        summary_json.commit()
    _tell_finished(args, stats, summary)
    return EXIT_FAILED if stats.shrunk_inputs or stats.order.unread_by_owner else EXIT_OK


def _total_bytes(paths: list[str]) -> int | None:
    sizes = [input_size(p) for p in paths]
    return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)


def _tell_finished(args: argparse.Namespace, stats: RunStats, summary: dict[str, object]) -> None:
    if args.summary:
        sys.stderr.write(format_summary(summary))
    elif not args.quiet:
        sys.stderr.write(_closing_line(stats))
    # Warnings are printed even with -q: they say the results are not what they seem.
    if stats.history_degraded:
        print(
            f"fingerprint: warning: the history store was unavailable for "
            f"{stats.history_degraded} of {stats.reports} sessions; they were graded without "
            f"history checks (see not_evaluated; --fail-closed grades them conservatively): "
            f"{_one_line(stats.history_error or '')}",
            file=sys.stderr,
        )
    for path in sorted(stats.shrunk_inputs):
        print(
            f"fingerprint: warning: {path} shrank while it was read (truncated?): "
            "lines it had may be missing from the reports",
            file=sys.stderr,
        )
    if stats.order.unread_by_owner:
        print(
            f"fingerprint: warning: the input changed while the workers read it (it grew "
            f"or was truncated): {stats.order.unread_by_owner} lines one worker read were "
            "never read by the worker of their account and are missing from the reports "
            "(--workers 1 reads the input once)",
            file=sys.stderr,
        )


def _tell_interrupted(
    args: argparse.Namespace, stats: RunStats, interrupt: BaseException, straight: set[str]
) -> None:
    """The closing line, and what the stopped run left in each output: ``straight``,
    the options whose reports or rejects went straight to a device, a named pipe or a
    terminal as they were made (:attr:`Output.written_straight`)."""
    if args.summary:
        sys.stderr.write(format_summary(stats.to_dict()))
    else:
        sys.stderr.write(_closing_line(stats))
    # What went straight stays, incomplete. A file's reports and rejects are in our
    # temporary file, removed; the summary is written only at the end.
    named = (
        ("-o", args.output, "the reports"),
        ("--rejects", args.rejects, "the rejects"),
        ("--summary-json", args.summary_json, "the summary"),
    )
    untouched, partial = [], []
    for option, path, what in named:
        if path in (None, "-"):
            continue
        if option in straight:
            partial.append(f"{what} sent to {option} {path} are incomplete")
        else:
            untouched.append(f"{option} {path}")
    said = [f"nothing was written to {', '.join(untouched)}"] if untouched else []
    if args.output in (None, "-"):
        said.append("the reports on stdout are incomplete")
    said.extend(partial)
    print(f"fingerprint: stopped by {_signal_name(interrupt)}; {'; '.join(said)}", file=sys.stderr)


def _closing_line(stats: RunStats) -> str:
    line = (
        f"fingerprint: {stats.lines} lines, {stats.reports} reports, {stats.rejects} rejects, "
        f"{stats.blank} blank, {stats.seconds:.2f} s"
        f"{' (interrupted)' if stats.interrupted else ''}\n"
    )
    if order := order_line(stats.order.to_dict()):  # out-of-order input is never silent
        line += f"fingerprint:{order.removeprefix(' ')}\n"
    return line


def _signal_name(interrupt: BaseException) -> str:
    number = signal_number(interrupt)
    return "Ctrl-C (SIGINT)" if number == signal.SIGINT else signal.Signals(number).name


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


# --- explain --------------------------------------------------------------------


def _cmd_explain(args: argparse.Namespace) -> int:
    checker = Checker(checker_config(args))
    _warn_of_rules(checker)
    chosen = None
    order = OrderOptions(max_skew=args.max_skew, naive_tz=checker.config.time_zone)
    with open_plan(expand_inputs([args.input]), order) as plan:  # as check orders it
        for outcome in check_stream(checker, plan.items(), max_skew=args.max_skew):
            report = outcome.report
            if report is None:
                continue
            if args.session_id is None or report.session_id == args.session_id:
                chosen = report
                if args.session_id is not None:
                    break
    if chosen is None:
        wanted = f"session {args.session_id!r}" if args.session_id else "any valid session"
        print(f"fingerprint: {wanted} not found in {args.input}", file=sys.stderr)
        return EXIT_FAILED
    sys.stdout.write(explain(chosen, checker.rules, args.lang, audience=args.audience))
    return EXIT_OK


# --- whois ----------------------------------------------------------------------


def _cmd_whois(args: argparse.Namespace) -> int:
    from fingerprint.sources.whois import is_hosting, open_enricher

    network = load_rules(args.rules_dir).network
    enricher = open_enricher(args.whois_cache, timeout=args.whois_timeout)
    status = EXIT_OK
    try:
        for ip in args.ips:
            # One lookup at a time, in the foreground: the answer, or why there is none
            # (not an IP, not public, timeout, unreachable, too large, a refused
            # referral, a failure remembered in the cache).
            resolution = enricher.client.resolve(ip)
            found = resolution.record
            if found is None:
                print(f"{ip}\tno answer: {resolution.reason or resolution.outcome}")
                status = EXIT_FAILED
                continue
            hosting = is_hosting(found, network)
            origin = "cache" if found.from_cache else "registry"
            print(
                f"{ip}	AS{found.asn or '?'} {found.asn_description or ''}	"
                f"{found.network_name or '?'} {found.cidr or ''} {found.country or ''}	"
                f"from {origin}	hosting: {hosting[0] if hosting else 'no'}"
            )
    finally:
        enricher.close(wait=True)
    return status


# --- report ---------------------------------------------------------------------


def _cmd_report(args: argparse.Namespace) -> int:
    source = Path(args.reports)
    if not source.is_file():
        raise ConfigError("reports file not found", args.reports)
    out = args.output or str(source.with_suffix(".html"))
    refuse_overwriting_inputs([str(source)], {"-o": out})
    page = Output(out, option="-o")  # checked before the reports are read
    try:
        rules = load_rules(args.rules_dir)
        page.write(render_html(source, args.lang, rules, rejects=args.rejects, title=args.title))
        page.commit()
    finally:
        with signals_deferred():
            page.abort()
    if not getattr(args, "quiet", False):
        print(f"fingerprint: wrote {out}", file=sys.stderr)
    return EXIT_OK


# --- rules ----------------------------------------------------------------------


def _cmd_rules_validate(args: argparse.Namespace) -> int:
    rules = load_rules(args.directory)
    from fingerprint.checker import build_engine

    engine = build_engine(rules)
    print(
        f"ok: {rules.directory}: {len(rules.codes.codes)} reason codes, "
        f"{len(engine.checks)} checks, {len(rules.emulator.signatures)} emulator signatures, "
        f"{len(rules.multi_open.containers)} containers, "
        f"{len(rules.network.hosting_asns)} hosting ASNs"
    )
    for warning in engine.warnings:  # valid, but a check reads what none decides
        print(f"fingerprint: warning: {warning}", file=sys.stderr)
    return EXIT_OK


def _cmd_rules_list(args: argparse.Namespace) -> int:
    rules = load_rules(args.rules_dir)
    out = sys.stdout
    for code, spec in rules.codes.codes.items():
        if args.format == "jsonl":
            out.write(orjson.dumps({"code": code, **spec.model_dump()}).decode() + "\n")
        else:
            out.write(
                f"{code:<28} {spec.check:<18} {spec.severity:<9} {spec.message}\n"
                f"{'':<57}{spec.message_zh}\n"
            )
    return EXIT_OK


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        # argparse prefixes "argument --workers:"; the default message would name
        # this function instead of what the option wants.
        raise argparse.ArgumentTypeError(f"expected a whole number, 1 or more; got {text!r}")
    return value


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(text: str) -> float:
    """Seconds: ``300``, ``90s``, ``5m``, ``1h``."""
    unit = _UNITS.get(text[-1:].lower())
    number = text[:-1] if unit else text
    try:
        value = float(number) * (unit or 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r}")
    return value


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(program())
