"""The HTML run report: counts, escaping, bounded memory, languages, and a real browser."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from fingerprint.cli import main
from fingerprint.htmlreport import (
    COUNTER_LIMIT,
    MOVES_LIMIT,
    BoundedCounter,
    HyperLogLog,
    RunReportBuilder,
    write_html,
)
from fingerprint.rules import RuleSet, load_rules

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "fixtures" / "sample.jsonl"
ARTIFACTS = ROOT / "artifacts"
DOCS_SCREENSHOT = ROOT / "docs" / "report-screenshot.png"


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules()


def finding(code: str, check: str, severity: str = "high") -> dict[str, Any]:
    return {
        "check": check,
        "code": code,
        "severity": severity,
        "message": f"{code} message",
        "message_zh": f"{code} 说明",
        "evidence": {},
    }


def report(
    account: str,
    n: int,
    grade: str = "A",
    score: int = 100,
    findings: list[dict[str, Any]] | None = None,
    province: str | None = "CN-BJ",
    province_zh: str | None = "北京市",
    blacklisted: bool = False,
    device: str = "d-1",
) -> dict[str, Any]:
    found = findings or []
    return {
        "session_id": f"s-{n}",
        "account_id": account,
        "ts": f"2026-11-20T{n // 60 % 24:02d}:{n % 60:02d}:00Z",
        "grade": grade,
        "score": score,
        "blacklisted": blacklisted,
        "findings": found,
        "contributions": {f["code"]: 10 for f in found},
        "not_evaluated": [],
        "features": {
            "ip_province": province,
            "ip_province_zh": province_zh,
            "ip_country": "CN",
            "device_id": device,
            "model": "V2218A",
        },
    }


EMU = finding("EMU_SYSTEM_PROP", "emulator", "critical")
HOP = finding("GEO_PROVINCE_HOPPING", "ip_hopping")
TRAVEL = finding("GEO_IMPOSSIBLE_TRAVEL", "ip_hopping")
ROOTED = finding("TAM_ROOTED", "tamper", "medium")


def small_set() -> list[dict[str, Any]]:
    return [
        report("u-1", 1),
        report("u-1", 2, province="CN-SH", province_zh="上海市"),  # move BJ -> SH
        report(
            "u-1",
            3,
            "C",
            60,
            [HOP, TRAVEL],
            province="CN-GD",
            province_zh="广东省",
        ),  # move SH -> GD
        report("u-2", 4, "B", 88, [ROOTED]),
        report("u-2", 5, "B", 80, [ROOTED]),
        report("u-3", 6, "E", 0, [EMU, ROOTED], blacklisted=True, device="d-emu"),
        report("u-3", 7, "A", 100),
        report("u-4", 8, "A", 100, province=None, province_zh=None),
    ]


def build(rules: RuleSet, reports: list[dict[str, Any]], **kw: Any) -> RunReportBuilder:
    builder = RunReportBuilder(rules, **kw)
    for item in reports:
        builder.add(item)
    return builder


def test_counts_on_a_small_set(rules: RuleSet) -> None:
    builder = build(rules, small_set())
    builder.add_reject(2)
    builder.add_reject()
    assert builder.sessions == 8
    assert builder.rejects == 3
    assert builder.flagged == 4
    assert builder.blacklisted_sessions == 1
    assert builder.grades.counts == {"A": 4, "B": 2, "C": 1, "E": 1}
    per_grade, accounts, blacklisted_accounts, estimated = builder.accounts_per_grade()
    # worst grade per account: u-1 C, u-2 B, u-3 E, u-4 A
    assert per_grade == {"A": 1, "B": 1, "C": 1, "E": 1}
    assert (accounts, blacklisted_accounts, estimated) == (4, 1, False)
    assert builder.check_sessions.counts == {"ip_hopping": 1, "tamper": 3, "emulator": 1}
    assert builder.check_findings.counts == {"ip_hopping": 2, "tamper": 3, "emulator": 1}
    assert builder.codes.most_common(1) == [("TAM_ROOTED", 3)]
    assert builder.hops.counts == {"CN-GD": 2}
    assert builder.hops_travel.counts == {"CN-GD": 1}
    assert builder.moves.counts == {("CN-BJ", "CN-SH"): 1, ("CN-SH", "CN-GD"): 1}

    risky = builder.risky_accounts()
    # u-3 is blacklisted: listed in its own section, not again among the risky ones.
    assert [a.account_id for a in risky] == ["u-1", "u-2"]
    assert risky[0].worst_score == 60 and risky[0].findings == 2
    assert risky[1].worst_score == 80 and risky[1].findings == 2

    page = builder.render()
    assert "<svg id='chart-grades'" in page
    assert "<svg id='chart-provinces'" in page
    assert "<svg id='chart-moves'" in page
    assert "北京市 → 上海市" in page
    assert "广东省" in page
    assert "EMU_SYSTEM_PROP" in page and "d-emu" in page
    assert re.search(r"id='kpi-rejects'.*?<div class='v'>3</div>", page)
    assert re.search(r"id='kpi-accounts'.*?<div class='v'>4</div>", page)
    assert re.search(r"id='kpi-blacklisted'.*?<div class='v'>1</div>", page)


def test_risk_order_is_grade_then_score_then_findings(rules: RuleSet) -> None:
    builder = build(
        rules,
        [
            report("few", 1, "C", 60, [ROOTED]),
            report("many", 2, "C", 60, [ROOTED, HOP]),
            report("lower", 3, "C", 55, [ROOTED]),
            report("worse", 4, "D", 45, [ROOTED]),
        ],
    )
    assert [a.account_id for a in builder.risky_accounts()] == ["worse", "lower", "many", "few"]


def test_data_strings_are_escaped(rules: RuleSet) -> None:
    evil = "<script>alert(1)</script>"
    attr = "x' onmouseover='alert(1)"
    item = report(
        evil,
        1,
        "E",
        0,
        [{**EMU, "code": "EMU_<b>X</b>", "message": evil, "message_zh": evil}],
        province=evil,
        province_zh=evil,
        blacklisted=True,
        device=attr,
    )
    item["session_id"] = evil
    item["features"]["model"] = evil
    for lang in ("zh", "en"):
        page = build(rules, [item, report(evil, 2, province="<i>p</i>")], lang=lang).render(
            title=evil
        )
        assert "<script>alert" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<b>X</b>" not in page and "<i>p</i>" not in page
        assert "onmouseover='alert" not in page
        # our own one script block, nothing else
        assert page.count("<script>") == 1


def test_languages(rules: RuleSet) -> None:
    zh = build(rules, small_set(), lang="zh").render()
    en = build(rules, small_set(), lang="en").render()
    assert "<html lang='zh-CN'>" in zh
    for label in (
        "会话数",
        "账户数",
        "拒收行数",
        "拉黑会话",
        "风险最高的账户",
        "跨省跳变最多的省份",
    ):
        assert label in zh
    assert "Accounts most at risk" not in zh
    assert "<html lang='en'>" in en
    for label in (
        "Sessions",
        "Accounts",
        "Rejected lines",
        "Blacklisted accounts and why",
        "Accounts most at risk",
        "Busiest province-to-province moves",
    ):
        assert label in en
    assert "风险最高的账户" not in en
    # provinces by name, never by code, in either language
    assert "北京市 → 上海市" in zh
    assert "Beijing → Shanghai" in en
    for page in (zh, en):
        assert not re.search(r"\bCN-[A-Z]{2}\b", page)
    # every check by its name: 跨省切换 in Chinese, not ip_hopping
    assert "跨省切换" in zh and "Root 与 Hook 工具" in zh and ">ip_hopping<" not in zh
    # reason codes carry both messages in both languages
    spec = rules.codes.codes["TAM_ROOTED"]
    for page in (zh, en):
        assert spec.message in page and spec.message_zh in page
    with pytest.raises(ValueError):
        RunReportBuilder(rules, lang="fr")


def test_empty_run_renders(rules: RuleSet) -> None:
    page = RunReportBuilder(rules, lang="en").render()
    assert "chart-grades" in page and "chart-provinces" in page and "chart-moves" in page
    assert "no data" in page


def synthetic(n: int, accounts: int) -> dict[str, Any]:
    provinces = ["CN-BJ", "CN-SH", "CN-GD", "CN-ZJ", "CN-SC", "CN-HB", "CN-HA"]
    if n % 7 == 0:
        found, grade, score = [HOP], "C", 60
    elif n % 11 == 0:
        found, grade, score = [EMU], "E", 0
    elif n % 3 == 0:
        found, grade, score = [ROOTED], "B", 88
    else:
        found, grade, score = [], "A", 100
    item = report(
        f"u-{n % accounts}",
        n,
        grade,
        score,
        found,
        province=provinces[(n * 31) % len(provinces)] if n % 13 else f"XX-{n}",
        province_zh=None,
        blacklisted=grade == "E",
        device=f"d-{n}",
    )
    return item


@pytest.mark.parametrize("accounts", [50_000, 500])
def test_memory_stays_bounded(rules: RuleSet, accounts: int) -> None:
    builder = RunReportBuilder(rules, lang="zh", max_tracked=2_000)
    for n in range(50_000):
        builder.add(synthetic(n, accounts))
    sizes, limits = builder.sizes(), builder.limits()
    for name, size in sizes.items():
        assert size <= limits[name], (name, size, limits[name])
    assert limits["pool"] == 4 * 50 and limits["pool_rows"] == 50
    assert limits["moves"] == MOVES_LIMIT and limits["codes"] == COUNTER_LIMIT
    per_grade, total, blacklisted, estimated = builder.accounts_per_grade()
    assert builder.sessions == 50_000
    assert 0 < blacklisted <= total * 1.05
    if accounts > 2_000:
        assert estimated and abs(total - accounts) < 0.05 * accounts
        assert sizes["account_grades"] == 0  # the exact map was dropped for the sketches
    else:
        assert not estimated and total == accounts
    assert sum(per_grade.values()) == pytest.approx(total, rel=0.05)
    assert len(builder.render()) < 3_000_000


def test_bounded_counter_keeps_heavy_keys() -> None:
    counter: BoundedCounter[str] = BoundedCounter(10)
    for i in range(1_000):
        counter.add("heavy")
        counter.add(f"rare-{i}")
    assert len(counter) <= 10
    assert counter.most_common(1) == [("heavy", 1_000)]
    assert counter.dropped > 0


def test_hyperloglog_estimates() -> None:
    sketch = HyperLogLog()
    for i in range(20_000):
        sketch.add(hash(f"account-{i}"))
        sketch.add(hash(f"account-{i}"))
    assert abs(sketch.estimate() - 20_000) < 1_000
    small = HyperLogLog()
    for i in range(30):
        small.add(hash(f"a{i}"))
    assert small.estimate() == pytest.approx(30, abs=2)


def test_write_html_streams_a_reports_file(tmp_path: Path, rules: RuleSet) -> None:
    reports = tmp_path / "reports.jsonl"
    lines = [orjson.dumps(item) for item in small_set()]
    reports.write_bytes(b"\n".join([*lines, b"", b"not json", b'{"account_id": "x"}']) + b"\n")
    out = tmp_path / "report.html"
    write_html(reports, out, "en", rules, rejects=5)
    page = out.read_text(encoding="utf-8")
    assert re.search(r"id='kpi-sessions'.*?<div class='v'>8</div>", page)
    assert re.search(r"id='kpi-rejects'.*?<div class='v'>5</div>", page)
    assert "2 lines of the reports file are not session reports" in page


# --- a real browser ------------------------------------------------------------------


def _chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        found = shutil.which(candidate)
        if found:
            return found
    return None


def _run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def test_page_in_headless_chromium(tmp_path: Path) -> None:
    binary = _chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium not installed but CI is set: .ci/run must install it")
        pytest.skip("chromium not installed: apt-get install chromium (.ci/run installs it)")

    reports, summary = tmp_path / "reports.jsonl", tmp_path / "summary.json"
    assert (
        main(["check", str(SAMPLE), "-o", str(reports), "-q", "--summary-json", str(summary)]) == 0
    )
    rejects = orjson.loads(summary.read_bytes())["rejects"]
    page = tmp_path / "report.html"
    write_html(reports, page, "zh", rejects=rejects)
    url = page.resolve().as_uri()

    dom = _run_chromium(
        binary,
        tmp_path / "profile-dom",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        "--dump-dom",
        url,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    for ident in ("chart-grades", "chart-provinces", "chart-moves"):
        assert re.search(rf'<svg id="{ident}"[^>]*>.*?<rect', html, re.S), ident
    assert 'data-js="ok"' in html  # our script ran under the page's CSP
    errors = re.search(r'<div id="js-errors"[^>]*>(.*?)</div>', html, re.S)
    assert errors is not None and errors.group(1).strip() == ""
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    assert "<details" in html and "风险最高的账户" in html

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    taken = _run_chromium(
        binary,
        tmp_path / "profile-shot",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        url,
    )
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The committed copy for the README: refreshed when missing or when asked, so a
    # plain test run does not dirty the tree with a new timestamp in the picture.
    if not DOCS_SCREENSHOT.exists() or os.environ.get("FINGERPRINT_UPDATE_SCREENSHOT"):
        shutil.copyfile(shot, DOCS_SCREENSHOT)


def test_a_trip_abroad_is_no_province_move(rules: RuleSet) -> None:
    """Beijing, Tokyo, Kanagawa, Hong Kong, Shanghai: the one province move is BJ -> SH."""
    builder = RunReportBuilder(rules, lang="en")
    places = [
        ("CN-BJ", "北京市"),
        ("JP-13", None),
        ("JP-14", None),
        ("HK-HCW", None),
        ("CN-SH", "上海市"),
    ]
    for n, (province, province_zh) in enumerate(places):
        builder.add(report("u-trip", n, province=province, province_zh=province_zh))
    assert builder.moves.most_common() == [(("CN-BJ", "CN-SH"), 1)]


def test_the_same_reports_make_the_same_page_whatever_the_hash_seed(tmp_path: Path) -> None:
    """Account keys and sketches must not depend on Python's per-process string hash:
    two runs over one reports file (past the exact-count limit, so the distinct-account
    sketches are in use) write the same page."""
    reports = tmp_path / "reports.jsonl"
    reports.write_bytes(b"".join(orjson.dumps(synthetic(n, 9_000)) + b"\n" for n in range(12_000)))
    pages = []
    for seed in ("1", "2"):
        page = tmp_path / f"page-{seed}.html"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        script = (
            "import sys; from fingerprint.htmlreport import RunReportBuilder; "
            "from fingerprint.rules import load_rules; import orjson; "
            "b = RunReportBuilder(load_rules(), lang='en', max_tracked=2_000); "
            "[b.add(orjson.loads(line)) for line in open(sys.argv[1], 'rb')]; "
            "print(b.accounts_per_grade()); open(sys.argv[2], 'w').write(b.render())"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, str(reports), str(page)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        pages.append((done.stdout, page.read_text(encoding="utf-8")))
    assert "True" in pages[0][0], "the sketches must be in use for this test to mean anything"
    # The header says when the page was made, to the minute: two runs may straddle one.
    made = re.compile(r"Generated \d{4}-\d{2}-\d{2} \d{2}:\d{2}")
    assert made.search(pages[0][1])
    (first_out, first), (second_out, second) = pages
    assert first_out == second_out
    assert made.sub("", first) == made.sub("", second)


# What the browser measures once the page has laid out (every drill-down open):
# labels whose text is wider than their box, chart labels outside their chart, text
# cut with "…", and the sections there are. The page's own CSP admits only its own
# script, so the measuring copy goes without it.
MEASURE = """<script>
addEventListener('load', function () {
  document.querySelectorAll('details').forEach(function (d) { d.open = true; });
  var out = {width: innerWidth, page_overflow: document.documentElement.scrollWidth - innerWidth,
             clipped: [], charts: [], cut: [], sections: []};
  var labels = 'th,td,summary,h1,h2,button,.note,.kpi .l,.kpi .v,.kpi .s,.acct>span,.kind';
  document.querySelectorAll(labels).forEach(function (el) {
    var shown = getComputedStyle(el).display;
    if (shown === 'inline' || shown === 'none') { return; }
    if (el.scrollWidth > el.clientWidth + 1) {
      out.clipped.push(el.tagName + ' "' + el.textContent.slice(0, 40) + '" ' +
                       el.scrollWidth + ' > ' + el.clientWidth);
    }
  });
  document.querySelectorAll('svg[viewBox]').forEach(function (svg) {
    var box = svg.viewBox.baseVal;
    svg.querySelectorAll('text').forEach(function (t) {
      var b = t.getBBox();
      if (b.x < box.x - 0.5 || b.x + b.width > box.x + box.width + 0.5) {
        out.charts.push(svg.id + ': "' + t.textContent + '"');
      }
    });
  });
  document.querySelectorAll('main *').forEach(function (el) {
    if (el.children.length === 0 && el.textContent.indexOf('\\u2026') >= 0) {
      out.cut.push(el.textContent.slice(0, 60));
    }
  });
  document.querySelectorAll('main section[id]').forEach(function (s) { out.sections.push(s.id); });
  parent.postMessage(JSON.stringify(out), '*');
});
</script>"""
# Headless Chromium keeps its window at least 500 px wide: the page is measured in a
# frame of the width under test, and tells the frame's parent what it found.
FRAME = """<!DOCTYPE html><html><body style="margin:0">
<iframe src="measured.html" style="width:{width}px;height:1200px;border:0"></iframe>
<pre id="measured"></pre><script>
addEventListener('message', function (e) {{
  document.getElementById('measured').textContent = e.data; }});
</script></body></html>"""


@pytest.fixture(scope="module")
def sample_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("page")
    reports = folder / "reports.jsonl"
    assert main(["check", str(SAMPLE), "-o", str(reports), "-q"]) == 0
    page = folder / "report.html"
    write_html(reports, page, "zh")
    return page


@pytest.mark.parametrize("width", [1280, 390])
def test_nothing_is_clipped_or_cut_in_a_browser(
    sample_page: Path, tmp_path: Path, width: int
) -> None:
    binary = _chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium not installed but CI is set: .ci/run must install it")
        pytest.skip("chromium not installed: apt-get install chromium (.ci/run installs it)")
    text = sample_page.read_text(encoding="utf-8")
    measured_page = tmp_path / "measured.html"
    measured_page.write_text(
        re.sub(r"<meta http-equiv=\"Content-Security-Policy\"[^>]*>", "", text).replace(
            "</body>", MEASURE + "</body>"
        ),
        encoding="utf-8",
    )
    frame = tmp_path / "frame.html"
    frame.write_text(FRAME.format(width=width), encoding="utf-8")
    dom = _run_chromium(
        binary,
        tmp_path / "profile",
        f"--window-size={max(width, 500) + 40},1300",
        "--virtual-time-budget=5000",
        "--dump-dom",
        frame.resolve().as_uri(),
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom.stdout, re.S)
    assert found is not None, "the measuring script did not run"
    measured = orjson.loads(html.unescape(found.group(1)))
    assert measured["width"] == width
    assert measured["page_overflow"] <= 0, "the page scrolls sideways"
    assert measured["clipped"] == []
    assert measured["charts"] == []
    assert measured["cut"] == []
    assert {"grades", "checks", "hops", "moves", "codes", "risky", "blacklist"} <= set(
        measured["sections"]
    )
    # The risky accounts are the ones still to look at: hoppers and VPN users.
    risky = re.search(r"<section id='risky'.*?</section>", text, re.S)
    assert risky is not None
    assert "跨省切换" in risky.group(0) and "VPN/代理" in risky.group(0)
