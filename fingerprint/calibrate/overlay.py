"""The fitted grading as a rules/grading.yaml a ``--rules`` directory can hold.

Every key of the base grading is written (the loader wants a whole grading file);
``code_points`` carries each fitted code with its standard error and support in a
comment beside it, which the loader ignores. Written to a directory, an
``overlay.yaml`` beside it says that the other rule files come from the base rules
(see fingerprint/rules.py), so ``fingerprint check --rules DIR`` grades with it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import yaml

from fingerprint.calibrate.fit import CodeFit
from fingerprint.calibrate.run import Calibration
from fingerprint.rules import default_rules_dir

OVERLAY_FILE = "overlay.yaml"
GRADING_FILE = "grading.yaml"


def grading_text(calibration: Calibration, *, sources: tuple[str, str]) -> str:
    fit, grading = calibration.fit, calibration.grading
    scale = fit.options.points_per_logit
    before, after = calibration.before, calibration.after
    lines = [
        "# Written by `fingerprint calibrate` (do not edit by hand: calibrate again).",
        f"# {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}; reports {sources[0]}, "
        f"outcomes {sources[1]}",
        f"# {calibration.train} training {calibration.joined.unit}s ({fit.rows} in the fit, "
        f"{fit.bads} bad; {fit.vetoed} left to the blacklist veto), "
        f"{calibration.held_out} held out (seed {calibration.options.seed}).",
        f"# Points = {scale:g} x log-odds (about {scale * 0.6931:.1f} points double the odds); "
        f"prior sd {fit.options.prior_sd:g} points; a code needs "
        f"{fit.options.min_cases} training cases to be fitted.",
        f"# Intercept (log-odds of a bad outcome with nothing found): {fit.intercept:.3f} "
        f"(se {fit.intercept_se:.3f}).",
        f"# Held out: AUC {before.auc:.3f} -> {after.auc:.3f}, "
        f"KS {before.ks:.3f} -> {after.ks:.3f}.",
    ]
    data = grading.model_dump(mode="json")
    for key, value in data.items():
        if key == "code_points":
            lines += _code_points(value, calibration.fit.codes)
        else:
            lines.append(yaml.safe_dump({key: value}, sort_keys=False, allow_unicode=True).rstrip())
    return "\n".join(lines) + "\n"


def _code_points(points: dict[str, int], fits: list[CodeFit]) -> list[str]:
    by_code = {fit.code: fit for fit in fits}
    lines = ["code_points:  # fitted: estimate, standard error, support (training cases, bad)"]
    for code in sorted(points):
        fit = by_code.get(code)
        lines.append(f"  {code}: {points[code]}{_comment(fit)}")
    kept = [f for f in fits if not f.fitted and f.code not in points and f.cases]
    if kept:
        lines.append("# Seen but kept at their severity's points:")
        lines += [
            f"#   {f.code}: {f.prior} ({f.status}; {f.cases} cases, {f.bads} bad)" for f in kept
        ]
    return lines


def _comment(fit: CodeFit | None) -> str:
    if fit is None or fit.cases == 0:
        return "  # prior, not seen in training"
    if not fit.fitted:
        return f"  # prior kept ({fit.status}): {fit.cases} cases, {fit.bads} bad"
    assert fit.estimate is not None and fit.se is not None
    bound = ", at its bound" if fit.status == "at bound" else ""
    return (
        f"  # {fit.estimate:.1f} se {fit.se:.1f}{bound}; prior {fit.prior}; "
        f"{fit.cases} cases, {fit.bads} bad"
    )


def overlay_text(base_dir: str | Path | None) -> str:
    base = "bundled" if base_dir is None else str(Path(base_dir).resolve())
    if base_dir is not None and Path(base_dir).resolve() == default_rules_dir().resolve():
        base = "bundled"
    return (
        "# This directory overrides only the rule files it holds; the others come from base.\n"
        f"version: 1\nbase: {base}\n"
    )


def write_grading(
    target: str | Path,
    calibration: Calibration,
    *,
    sources: tuple[str, str],
    base_dir: str | Path | None,
) -> list[Path]:
    """A directory gets grading.yaml and overlay.yaml; a file path gets the grading only."""
    path = Path(target)
    text = grading_text(calibration, sources=sources)
    if path.is_dir() or str(target).endswith(("/", "\\")):
        path.mkdir(parents=True, exist_ok=True)
        grading_path, overlay_path = path / GRADING_FILE, path / OVERLAY_FILE
        grading_path.write_text(text, encoding="utf-8")
        if not (path / "codes.yaml").exists():  # a whole rules set needs no overlay
            overlay_path.write_text(overlay_text(base_dir), encoding="utf-8")
            return [grading_path, overlay_path]
        return [grading_path]
    path.write_text(text, encoding="utf-8")
    return [path]
