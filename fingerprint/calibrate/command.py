"""``fingerprint calibrate``: the subcommand's options and handler (cli.py only hooks it in).

Bad input ends the run with one line on stderr and exit status 2; numpy and scipy are
imported only for a fit, so ``--psi`` works without the ``calibrate`` extra.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from fingerprint.rules import load_rules

EXIT_OK, EXIT_USAGE = 0, 2
MISSING_EXTRA = (
    # Not 'fingerprint[calibrate]': "fingerprint" on the package index is another project.
    "fingerprint calibrate needs numpy and scipy for a fit: pip install 'numpy>=1.24' 'scipy>=1.10'"
)


def add_parser(commands: Any) -> None:
    """Register ``calibrate`` on the CLI's subparsers."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "calibrate",
        help="fit the per-code points to outcomes; AUC, KS, deciles, PSI",
        description="Fit each reason code's points to a lender's outcomes and measure the "
        "score (AUC, KS, deciles, bad rate per grade) on held-out accounts; "
        "or, with --psi, compare two runs' score distributions.",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="REPORTS OUTCOMES",
        help="reports from check (per session or --by account) and a CSV/JSONL of "
        "account_id,label[,session_id,observed_at]",
    )
    parser.add_argument("--psi", nargs=2, metavar=("OLD", "NEW"), help="PSI of two reports files")
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="write the fitted grading: DIR/ (with overlay.yaml) or a grading.yaml path",
    )
    parser.add_argument("--html", metavar="FILE", help="also write an HTML page (ROC, KS)")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument("--seed", type=int, default=0, help="seed of the account split")
    parser.add_argument(
        "--holdout", type=float, default=0.3, help="share of accounts held out (default 0.3)"
    )
    parser.add_argument(
        "--min-cases", type=int, default=30, help="training cases a code needs to be fitted"
    )
    parser.add_argument(
        "--prior-sd",
        type=float,
        default=25.0,
        metavar="POINTS",
        help="spread of the pull towards today's points (default 25)",
    )
    parser.add_argument(
        "--ignore-unknown",
        action="store_true",
        help="fit without outcomes whose account or session the reports lack",
    )
    parser.add_argument("--rules", metavar="DIR", help="rules to start from (default: bundled)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `fingerprint check` starts without any of it.
    from fingerprint.calibrate.data import CalibrationInputError

    try:
        if args.psi:
            if args.paths:
                raise CalibrationInputError("--psi takes OLD NEW and no other files")
            return _psi(args)
        if len(args.paths) != 2:
            raise CalibrationInputError("give REPORTS and OUTCOMES (or --psi OLD NEW)")
        return _calibrate(args)
    except CalibrationInputError as exc:
        print(f"fingerprint calibrate: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _psi(args: argparse.Namespace) -> int:
    from fingerprint.calibrate.data import CalibrationInputError, read_scores
    from fingerprint.calibrate.metrics import psi

    old_kind, old = read_scores(args.psi[0])
    new_kind, new = read_scores(args.psi[1])
    if old_kind != new_kind:
        raise CalibrationInputError(f"cannot compare {old_kind} reports with {new_kind} reports")
    result = psi(old, new)
    from fingerprint.calibrate.render import psi_html, psi_table

    sys.stdout.write(psi_table(result))
    _write_json(args.json, {"psi": result.to_dict(), "old": args.psi[0], "new": args.psi[1]})
    if args.html:
        title = f"PSI {Path(args.psi[0]).name} -> {Path(args.psi[1]).name}"
        Path(args.html).write_text(psi_html(result, title=title), encoding="utf-8")
    return EXIT_OK


def _calibrate(args: argparse.Namespace) -> int:
    from fingerprint.calibrate.data import CalibrationInputError

    try:
        from fingerprint.calibrate.fit import FitOptions
        from fingerprint.calibrate.overlay import write_grading
        from fingerprint.calibrate.render import calibration_html, calibration_table
        from fingerprint.calibrate.run import CalibrateOptions, calibrate_files
    except ImportError as exc:
        raise CalibrationInputError(f"{MISSING_EXTRA} ({exc})") from None
    if args.min_cases < 1 or not args.prior_sd > 0:
        raise CalibrationInputError("--min-cases must be >= 1 and --prior-sd > 0")
    rules = load_rules(args.rules)
    options = CalibrateOptions(
        holdout=args.holdout,
        seed=args.seed,
        ignore_unknown=args.ignore_unknown,
        fit=FitOptions(min_cases=args.min_cases, prior_sd=args.prior_sd),
    )
    reports, outcomes = args.paths
    calibration = calibrate_files(reports, outcomes, rules, options)
    sys.stdout.write(calibration_table(calibration))
    if args.output:
        written = write_grading(
            args.output, calibration, sources=(reports, outcomes), base_dir=args.rules
        )
        print(f"fingerprint calibrate: wrote {', '.join(map(str, written))}", file=sys.stderr)
    _write_json(args.json, calibration.to_dict())
    if args.html:
        html = calibration_html(calibration, title=f"Calibration of {Path(reports).name}")
        Path(args.html).write_text(html, encoding="utf-8")
    return EXIT_OK


def _write_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        Path(path).write_bytes(
            orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
        )
