"""Terminal tables and a self-contained HTML page (inline SVG, no network) for a
calibration and for a PSI comparison."""

from __future__ import annotations

import html
from collections.abc import Sequence

from fingerprint.calibrate.fit import CodeFit
from fingerprint.calibrate.metrics import CurvePoint, PsiResult, ScoreMetrics
from fingerprint.calibrate.run import Calibration

# --- terminal ---------------------------------------------------------------------


def calibration_table(calibration: Calibration) -> str:
    fit, before, after = calibration.fit, calibration.before, calibration.after
    joined = calibration.joined
    out = [
        f"cases: {len(joined.cases)} {joined.unit}s labelled "
        f"({joined.unlabelled} report rows without an outcome"
        + (f", {joined.duplicates} duplicate outcomes" if joined.duplicates else "")
        + (
            f", {joined.sessions_after_outcome} sessions after their outcome left out"
            if joined.sessions_after_outcome
            else ""
        )
        + ")",
        _labels_line(joined.labels),
        f"split by account (seed {calibration.options.seed}): {calibration.train} training, "
        f"{calibration.held_out} held out ({calibration.held_out_accounts} accounts)",
        f"fit: {fit.rows} cases ({fit.bads} bad), {fit.vetoed} vetoed left out; "
        f"intercept {fit.intercept:.3f} (se {fit.intercept_se:.3f}); "
        f"{'converged' if fit.converged else 'NOT converged: ' + fit.message}",
        "",
        _codes_table(fit.codes),
        "",
        "held-out metrics        prior    fitted",
        f"  AUC                  {before.auc:6.3f}    {after.auc:6.3f}",
        f"  KS                   {before.ks:6.3f}    {after.ks:6.3f}",
        f"  KS peaks at score    {before.ks_score:6d}    {after.ks_score:6d}",
        "",
        "bad rate per grade (held out)",
        _grades_table(before, after),
        "",
        "deciles, fitted (1 = riskiest; ties stay together)",
        _deciles_table(after),
    ]
    return "\n".join(out) + "\n"


def _labels_line(labels: dict[tuple[bool, str], int]) -> str:
    """How the outcome labels were read: bad = defaulted 362, fraud 3; good = repaid 2638."""
    sides = []
    for bad, name in ((True, "bad"), (False, "good")):
        seen = sorted((label, n) for (is_bad, label), n in labels.items() if is_bad == bad)
        sides.append(f"{name} = " + (", ".join(f"{label} {n}" for label, n in seen) or "none"))
    return "labels read as " + "; ".join(sides)


def _codes_table(fits: Sequence[CodeFit]) -> str:
    rows = ["code                          prior  fitted   estimate     se  cases   bad  status"]
    for fit in fits:
        if not fit.cases:
            continue
        estimate = f"{fit.estimate:8.1f}" if fit.estimate is not None else "       -"
        se = f"{fit.se:6.1f}" if fit.se is not None else "     -"
        rows.append(
            f"{fit.code:<29} {fit.prior:5d}  {fit.points:6d}  {estimate}  {se}  "
            f"{fit.cases:5d} {fit.bads:5d}  {fit.status}"
        )
    return "\n".join(rows)


def _grades_table(before: ScoreMetrics, after: ScoreMetrics) -> str:
    prior = {g.grade: g for g in before.grades}
    fitted = {g.grade: g for g in after.grades}
    rows = ["  grade   prior: rows   bad rate   fitted: rows   bad rate"]
    for grade in sorted(prior.keys() | fitted.keys()):
        a, b = prior.get(grade), fitted.get(grade)
        rows.append(
            f"  {grade:<5} {a.rows if a else 0:13d}   {_rate(a.bad_rate if a else None)}"
            f" {b.rows if b else 0:14d}   {_rate(b.bad_rate if b else None)}"
        )
    return "\n".join(rows)


def _deciles_table(metrics: ScoreMetrics) -> str:
    rows = ["  decile  scores     rows   bads  bad rate  cum. bads   lift  cum. lift"]
    for d in metrics.deciles:
        rows.append(
            f"  {d.decile:6d}  {d.low:3d}-{d.high:<3d}  {d.rows:6d} {d.bads:6d}   "
            f"{_rate(d.bad_rate)}     {_rate(d.cumulative_bad_share)}  "
            f"{d.lift:5.2f}      {d.cumulative_lift:5.2f}"
        )
    return "\n".join(rows)


def _rate(value: float | None) -> str:
    return "     -" if value is None else f"{100 * value:5.1f}%"


def psi_table(result: PsiResult) -> str:
    rows = [
        f"PSI {result.psi:.4f}: {result.reading}",
        f"old {result.old_rows} rows, new {result.new_rows} rows",
        "  scores        old share  new share     term",
    ]
    for b in result.bins:
        span = f"{b.low}-{b.high}" if b.high != b.low else str(b.low)
        rows.append(f"  {span:<12} {_rate(b.expected)}     {_rate(b.actual)}    {b.term:7.4f}")
    return "\n".join(rows) + "\n"


# --- HTML -------------------------------------------------------------------------

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:70em}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.charts{display:flex;gap:2em;flex-wrap:wrap}
figure{margin:0;max-width:22em}figcaption{font-size:.9em;color:#555}
svg text{font-size:11px;fill:#444}
"""
_W, _H, _PAD = 320, 320, 36
_COLOURS = {"prior": "#999999", "fitted": "#1f77b4", "bads": "#d62728", "goods": "#2ca02c"}


def calibration_html(calibration: Calibration, *, title: str) -> str:
    before, after = calibration.before, calibration.after
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p>{calibration.train} training and {calibration.held_out} held-out "
        f"{calibration.joined.unit}s ({calibration.held_out_accounts} held-out accounts, "
        f"seed {calibration.options.seed}). Metrics are on the held-out accounts only.</p>",
        "<table><tr><th>held out</th><th>prior</th><th>fitted</th></tr>",
        f"<tr><td>AUC</td><td>{before.auc:.3f}</td><td>{after.auc:.3f}</td></tr>",
        f"<tr><td>KS</td><td>{before.ks:.3f}</td><td>{after.ks:.3f}</td></tr>",
        f"<tr><td>KS peaks at score</td><td>{before.ks_score}</td><td>{after.ks_score}</td></tr>",
        "</table>",
        '<div class="charts">',
        _figure(
            _roc_svg({"prior": before.curve, "fitted": after.curve}),
            "ROC: share of bads flagged against share of goods flagged, from the lowest score up",
        ),
        _figure(_ks_svg(before.curve, "prior"), f"KS, prior points: {before.ks:.3f}"),
        _figure(_ks_svg(after.curve, "fitted"), f"KS, fitted points: {after.ks:.3f}"),
        "</div>",
        "<h2>Points per code</h2>",
        _codes_html(calibration.fit.codes),
        "<h2>Bad rate per grade</h2>",
        _grades_html(before, after),
        "<h2>Deciles (fitted; 1 = riskiest, ties stay together)</h2>",
        _deciles_html(after),
    ]
    return _page(title, body)


def psi_html(result: PsiResult, *, title: str) -> str:
    rows = "".join(
        f"<tr><td>{b.low}-{b.high}</td><td>{100 * b.expected:.1f}%</td>"
        f"<td>{100 * b.actual:.1f}%</td><td>{b.term:.4f}</td></tr>"
        for b in result.bins
    )
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p><b>PSI {result.psi:.4f}</b>: {_e(result.reading)}. Old {result.old_rows} rows, "
        f"new {result.new_rows} rows.</p>",
        "<table><tr><th>scores</th><th>old</th><th>new</th><th>term</th></tr>",
        rows,
        "</table>",
    ]
    return _page(title, body)


def _page(title: str, body: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{_e(caption)}</figcaption></figure>"


def _at(x: float, y: float) -> tuple[float, float]:
    """Chart coordinates (0..1 both ways, y up) to SVG pixels."""
    return _PAD + x * (_W - 2 * _PAD), _H - _PAD - y * (_H - 2 * _PAD)


def _xy(x: float, y: float) -> str:
    px, py = _at(x, y)
    return f"{px:.1f},{py:.1f}"


def _frame(x_label: str, y_label: str, x_ticks: Sequence[str] = ("0", "0.5", "1")) -> list[str]:
    return [*_frame_box(x_label, y_label), *_ticks(x_ticks)]


def _ticks(x_ticks: Sequence[str]) -> list[str]:
    """Tick labels spread evenly along x; 0, 0.5 and 1 up the y axis."""
    out = []
    for k, label in enumerate(x_ticks):
        x, y = _at(k / (len(x_ticks) - 1), 0.0)
        out.append(f'<text x="{x:.1f}" y="{y + 13:.1f}" text-anchor="middle">{label}</text>')
    for value, label in ((0.0, "0"), (0.5, "0.5"), (1.0, "1")):
        x, y = _at(0.0, value)
        out.append(f'<text x="{x - 4:.1f}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    return out


def _frame_box(x_label: str, y_label: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" role="img">',
        f'<rect x="{_PAD}" y="{_PAD}" width="{_W - 2 * _PAD}" height="{_H - 2 * _PAD}" '
        'fill="none" stroke="#bbb"/>',
        f'<text x="{_W / 2}" y="{_H - 8}" text-anchor="middle">{_e(x_label)}</text>',
        f'<text x="10" y="{_H / 2}" transform="rotate(-90 10 {_H / 2})" '
        f'text-anchor="middle">{_e(y_label)}</text>',
    ]


def _polyline(points: Sequence[tuple[float, float]], colour: str, label: str) -> str:
    path = " ".join(_xy(x, y) for x, y in points)
    return (
        f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}">'
        f"<title>{_e(label)}</title></polyline>"
    )


def _legend(entries: Sequence[tuple[str, str]]) -> list[str]:
    return [
        f'<text x="{_PAD + 8}" y="{_PAD + 16 + 14 * k}" style="fill:{colour}">{_e(label)}</text>'
        for k, (label, colour) in enumerate(entries)
    ]


def _roc_svg(curves: dict[str, list[CurvePoint]]) -> str:
    parts = _frame("share of goods flagged", "share of bads flagged")
    parts.append(_polyline([(0, 0), (1, 1)], "#dddddd", "chance"))
    for name, points in curves.items():
        xy = [(0.0, 0.0)] + [(p.good_share, p.bad_share) for p in points]
        parts.append(_polyline(xy, _COLOURS[name], name))
    parts += _legend([(name, _COLOURS[name]) for name in curves])
    return "".join(parts) + "</svg>"


def _ks_svg(points: list[CurvePoint], name: str) -> str:
    """Cumulative shares of bads and goods against the score (0..100), the gap marked."""
    parts = _frame(
        f"score ({name} points)", "cumulative share flagged", ("0", "25", "50", "75", "100")
    )
    bads = [(0.0, 0.0)] + [(p.score / 100, p.bad_share) for p in points]
    goods = [(0.0, 0.0)] + [(p.score / 100, p.good_share) for p in points]
    parts.append(_polyline(_steps(bads), _COLOURS["bads"], "bads"))
    parts.append(_polyline(_steps(goods), _COLOURS["goods"], "goods"))
    peak = max(points, key=lambda p: p.bad_share - p.good_share)
    x1, y1 = _at(peak.score / 100, peak.good_share)
    x2, y2 = _at(peak.score / 100, peak.bad_share)
    parts.append(
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
        'stroke="#000" stroke-dasharray="4 3"><title>KS</title></line>'
    )
    parts += _legend([("bads", _COLOURS["bads"]), ("goods", _COLOURS["goods"])])
    return "".join(parts) + "</svg>"


def _steps(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for x, y in points:
        if out:
            out.append((x, out[-1][1]))
        out.append((x, y))
    out.append((1.0, out[-1][1]))
    return out


def _codes_html(fits: Sequence[CodeFit]) -> str:
    rows = "".join(
        f"<tr><td>{_e(f.code)}</td><td>{f.prior}</td><td>{f.points}</td>"
        f"<td>{'' if f.estimate is None else f'{f.estimate:.1f}'}</td>"
        f"<td>{'' if f.se is None else f'{f.se:.1f}'}</td><td>{f.cases}</td><td>{f.bads}</td>"
        f"<td>{_e(f.status)}</td></tr>"
        for f in fits
        if f.cases
    )
    return (
        "<table><tr><th>code</th><th>prior</th><th>fitted</th><th>estimate</th><th>se</th>"
        f"<th>cases</th><th>bad</th><th>status</th></tr>{rows}</table>"
    )


def _grades_html(before: ScoreMetrics, after: ScoreMetrics) -> str:
    prior = {g.grade: g for g in before.grades}
    fitted = {g.grade: g for g in after.grades}
    rows = []
    for grade in sorted(prior.keys() | fitted.keys()):
        a, b = prior.get(grade), fitted.get(grade)
        rows.append(
            f"<tr><td>{_e(grade)}</td><td>{a.rows if a else 0}</td>"
            f"<td>{_pct(a.bad_rate if a else None)}</td><td>{b.rows if b else 0}</td>"
            f"<td>{_pct(b.bad_rate if b else None)}</td></tr>"
        )
    return (
        "<table><tr><th>grade</th><th>prior rows</th><th>bad rate</th><th>fitted rows</th>"
        f"<th>bad rate</th></tr>{''.join(rows)}</table>"
    )


def _deciles_html(metrics: ScoreMetrics) -> str:
    rows = "".join(
        f"<tr><td>{d.decile}</td><td>{d.low}-{d.high}</td><td>{d.rows}</td><td>{d.bads}</td>"
        f"<td>{_pct(d.bad_rate)}</td><td>{_pct(d.cumulative_bad_share)}</td>"
        f"<td>{d.lift:.2f}</td><td>{d.cumulative_lift:.2f}</td></tr>"
        for d in metrics.deciles
    )
    return (
        "<table><tr><th>decile</th><th>scores</th><th>rows</th><th>bads</th><th>bad rate</th>"
        f"<th>cum. bads</th><th>lift</th><th>cum. lift</th></tr>{rows}</table>"
    )


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)
