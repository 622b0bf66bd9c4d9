"""A self-contained HTML run report, built in one pass over the reports.

:class:`RunReportBuilder` takes one report dict at a time (as ``fingerprint check``
writes them) and keeps counters and bounded top-N structures, never the sessions
themselves; :meth:`RunReportBuilder.render` returns one HTML page with every style,
chart (inline SVG drawn here) and the little script it needs inline. The page loads
nothing over the network and its Content-Security-Policy forbids it to.

Memory is bounded whatever the input size. With the defaults (``top_n=20``,
``max_accounts=50``, ``max_sessions_per_account=50``):

====================== ============================================= ==================
structure              what it holds                                 bound
====================== ============================================= ==================
counters               sessions per grade / check / code, findings   ``COUNTER_LIMIT``
                       per check, hop findings per province           (1,000) keys each
moves counter          (from province, to province) -> count         ``MOVES_LIMIT``
                                                                      (4,096) keys
last-province map      account -> province of its previous session   ``max_tracked``
                       (LRU: the least recently seen account goes)    (100,000)
account grades         account -> worst grade, blacklisted; exact    ``max_tracked``
                       until full, then dropped for the estimates     (100,000)
HyperLogLog sketches   distinct accounts per grade and blacklisted   4 KiB per grade
risk candidates        per-account aggregates of the riskiest        4 × ``max_accounts``
                       accounts, each with its latest sessions        × ``max_sessions_
                                                                      per_account`` rows
blacklisted accounts   the first blacklisted accounts and why        ``max_accounts``
====================== ============================================= ==================

Accounts are keyed internally by a 64-bit BLAKE2 digest of the account id (not
``hash()``, which Python randomises per process: the same reports must make the same
page, and the distinct-account sketches the same estimates, on every run), and every
string kept for display is cut to ``MAX_TEXT`` characters, so a hostile account id or
device id cannot blow up memory either.

What is exact and what is estimated: session counts, per-grade, per-check and
per-code counts are exact unless a counter had to drop rare keys (the page says so).
Accounts per grade are exact while fewer than ``max_tracked`` distinct accounts were
seen and HyperLogLog estimates (about 1.6 % error) beyond. Province moves are counted
between consecutive sessions of an account in file order; an account evicted from the
last-province map starts afresh. The risk table ranks accounts by worst grade, then
lowest score, then most findings; an account enters the candidate pool with its first
flagged session, so its drill-down starts there and keeps the latest
``max_sessions_per_account`` sessions.

Every string from the data is escaped (``html.escape``) wherever it lands: text,
attributes and SVG.
"""

from __future__ import annotations

import base64
import heapq
import html
import math
from collections import Counter, OrderedDict, deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from hashlib import blake2b, sha256
from operator import itemgetter
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson

from fingerprint.features.provinces import is_mainland_province
from fingerprint.outputs import Output
from fingerprint.reporting import said_in_words
from fingerprint.rules import CONFIDENT, RuleSet, load_rules
from fingerprint.words import Lang, Words, load_words

MAX_TEXT = 120
COUNTER_LIMIT = 1_000
MOVES_LIMIT = 4_096
MAX_TRACKED = 100_000
POOL_FACTOR = 4
HLL_BITS = 12
GEO_CODES = frozenset({"GEO_PROVINCE_HOPPING", "GEO_IMPOSSIBLE_TRAVEL"})
BEIJING = timezone(timedelta(hours=8), "UTC+8")

K = TypeVar("K", bound=Hashable)

# --- bounded structures -----------------------------------------------------------


class BoundedCounter(Generic[K]):
    """A counter of at most ``limit`` keys: when full, the lighter half is dropped.

    What was dropped is added to ``dropped`` so the page can say counts are partial.
    """

    __slots__ = ("counts", "dropped", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = max(2, limit)
        self.counts: dict[K, int] = {}
        self.dropped = 0

    def add(self, key: K, n: int = 1) -> None:
        counts = self.counts
        if key in counts:
            counts[key] += n
            return
        if len(counts) >= self.limit:
            keep = heapq.nlargest(self.limit // 2, counts.items(), key=itemgetter(1))
            self.dropped += sum(counts.values()) - sum(count for _, count in keep)
            self.counts = counts = dict(keep)
        counts[key] = n

    def get(self, key: K) -> int:
        return self.counts.get(key, 0)

    def most_common(self, n: int | None = None) -> list[tuple[K, int]]:
        items = sorted(self.counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
        return items if n is None else items[:n]

    def total(self) -> int:
        return sum(self.counts.values())

    def __len__(self) -> int:
        return len(self.counts)


def _account_key(account_id: str) -> int:
    """A stable 64-bit key for an account id (lone surrogates kept, so no two ids meet)."""
    digest = blake2b(account_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class HyperLogLog:
    """Distinct-count sketch over 64-bit hashes: ``2**bits`` one-byte registers."""

    __slots__ = ("bits", "registers")

    def __init__(self, bits: int = HLL_BITS) -> None:
        self.bits = bits
        self.registers = bytearray(1 << bits)

    def add(self, hashed: int) -> None:
        hashed &= 0xFFFF_FFFF_FFFF_FFFF
        index = hashed >> (64 - self.bits)
        rest = hashed & ((1 << (64 - self.bits)) - 1)
        rank = (64 - self.bits) - rest.bit_length() + 1
        if rank > self.registers[index]:
            self.registers[index] = rank

    def union(self, other: HyperLogLog) -> HyperLogLog:
        out = HyperLogLog(self.bits)
        out.registers = bytearray(map(max, self.registers, other.registers))
        return out

    def estimate(self) -> int:
        m = len(self.registers)
        alpha = 0.7213 / (1 + 1.079 / m)
        raw = alpha * m * m / sum(2.0**-r for r in self.registers)
        zeros = self.registers.count(0)
        if raw <= 2.5 * m and zeros:
            return round(m * math.log(m / zeros))
        return round(raw)


@dataclass(slots=True)
class _Row:
    ts: datetime | None
    ts_text: str
    session_id: str
    province: str
    province_zh: str
    device: str
    model: str
    grade: str
    score: int | None
    codes: tuple[str, ...]
    blacklisted: bool


@dataclass(slots=True)
class _Account:
    account_id: str
    rank: int
    worst_score: int
    findings: int = 0
    sessions: int = 0
    flagged: int = 0
    blacklisted: bool = False
    codes: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)  # what kind of risk, by check
    rows: deque[_Row] = field(default_factory=deque)

    def key(self) -> tuple[int, int, int]:
        return (self.rank, -self.worst_score, self.findings)


@dataclass(slots=True)
class _Blacklisted:
    account_id: str
    row: _Row
    why: tuple[tuple[str, str, str], ...]  # (code, English, Chinese), said from evidence


# --- the builder --------------------------------------------------------------------


class RunReportBuilder:
    """Feed reports with :meth:`add`, then :meth:`render` the page. Bounded memory."""

    def __init__(
        self,
        rules: RuleSet,
        lang: str = "zh",
        top_n: int = 20,
        max_accounts: int = 50,
        max_sessions_per_account: int = 50,
        *,
        max_tracked: int = MAX_TRACKED,
        tz: tzinfo = BEIJING,
    ) -> None:
        if lang not in _TEXT:
            raise ValueError(f"lang must be one of {sorted(_TEXT)}, not {lang!r}")
        self.rules = rules
        self.lang = lang
        self.words: Words = load_words(rules.directory)
        self.top_n = max(1, top_n)
        self.max_accounts = max(1, max_accounts)
        self.max_sessions_per_account = max(1, max_sessions_per_account)
        self.max_tracked = max(1, max_tracked)
        self.pool_size = POOL_FACTOR * self.max_accounts
        self.tz = tz
        order = [band.grade for band in rules.grading.bands]
        if rules.grading.blacklist_grade not in order:
            order.append(rules.grading.blacklist_grade)
        self.grade_order = order
        self._rank = {grade: i for i, grade in enumerate(order)}
        self._blacklist_codes = frozenset(rules.grading.blacklist_codes)

        self.sessions = 0
        self.flagged = 0
        self.blacklisted_sessions = 0
        self.rejects = 0
        self.rejects_known = False
        self.bad_lines = 0
        self.first_ts: datetime | None = None
        self.last_ts: datetime | None = None

        self.grades: BoundedCounter[str] = BoundedCounter(COUNTER_LIMIT)
        self.check_sessions: BoundedCounter[str] = BoundedCounter(COUNTER_LIMIT)
        self.check_findings: BoundedCounter[str] = BoundedCounter(COUNTER_LIMIT)
        self.codes: BoundedCounter[str] = BoundedCounter(COUNTER_LIMIT)
        self.code_info: dict[str, tuple[str, str, str, str]] = {}  # unknown codes only
        # code -> (English, Chinese) message said from the first finding's evidence: the
        # code table shows a real example, not a template with gaps.
        self.examples: dict[str, tuple[str, str]] = {}
        self.hops: BoundedCounter[str] = BoundedCounter(COUNTER_LIMIT)
        self.hops_travel: BoundedCounter[str] = BoundedCounter(COUNTER_LIMIT)
        self.moves: BoundedCounter[tuple[str, str]] = BoundedCounter(MOVES_LIMIT)
        self.province_zh: dict[str, str] = {}

        self._last_province: OrderedDict[int, str] = OrderedDict()
        self._account_grades: dict[int, int] | None = {}  # hash -> 2 * (rank + 1) + blacklisted
        self._hll: dict[str, HyperLogLog] = {}
        self._hll_blacklisted = HyperLogLog()
        self._pool: dict[int, _Account] = {}
        self._pool_floor: tuple[int, int, int] | None = None
        self._blacklisted: dict[int, _Blacklisted] = {}

    # -- input -------------------------------------------------------------------------

    def add_reject(self, count: int = 1) -> None:
        """Count input lines the checker rejected (they have no report)."""
        self.rejects += max(0, count)
        self.rejects_known = True

    def add_bad_line(self) -> None:
        """Count a line of the reports file that is not a session report."""
        self.bad_lines += 1

    def add(self, report: dict[str, Any]) -> None:
        """Account one session report (a dict as ``fingerprint check`` writes it)."""
        self.sessions += 1
        account_id = _text(report.get("account_id"))
        key = _account_key(account_id)
        grade = report.get("grade")
        grade = grade if isinstance(grade, str) and grade in self._rank else "?"
        rank = self._rank.get(grade, -1)
        score = report.get("score")
        score = score if isinstance(score, int) and not isinstance(score, bool) else None
        blacklisted = report.get("blacklisted") is True
        raw_findings = report.get("findings")
        findings = (
            [f for f in raw_findings if isinstance(f, dict)]
            if isinstance(raw_findings, list)
            else []
        )
        features = report.get("features")
        features = features if isinstance(features, dict) else {}

        self.grades.add(grade)
        if findings:
            self.flagged += 1
        if blacklisted:
            self.blacklisted_sessions += 1

        ts_text = _text(report.get("ts"))
        ts = _parse_ts(ts_text)
        if ts is not None:
            if self.first_ts is None or ts < self.first_ts:
                self.first_ts = ts
            if self.last_ts is None or ts > self.last_ts:
                self.last_ts = ts

        province = _text(features.get("ip_province") or "")
        province_zh = _text(features.get("ip_province_zh") or "")
        country = _text(features.get("ip_country") or "")
        if (
            province
            and province_zh
            and province not in self.province_zh
            and len(self.province_zh) < COUNTER_LIMIT
        ):
            self.province_zh[province] = province_zh

        codes: list[str] = []
        checks: set[str] = set()
        for finding in findings:
            code = _text(finding.get("code"))
            check = _text(finding.get("check"))
            codes.append(code)
            checks.add(check)
            self.codes.add(code)
            self.check_findings.add(check)
            if code not in self.examples and len(self.examples) < COUNTER_LIMIT:
                self.examples[code] = self._said(finding)
            if (
                code not in self.rules.codes.codes
                and code not in self.code_info
                and len(self.code_info) < COUNTER_LIMIT
            ):
                self.code_info[code] = (
                    check,
                    _text(finding.get("severity")),
                    _text(finding.get("message")),
                    _text(finding.get("message_zh")),
                )
            if code in GEO_CODES:
                where = province or "?"
                self.hops.add(where)
                if code == "GEO_IMPOSSIBLE_TRAVEL":
                    self.hops_travel.add(where)
        for check in checks:
            self.check_sessions.add(check)

        # province moves between consecutive sessions of an account: mainland
        # provinces only (a trip abroad is no province move)
        if is_mainland_province(province):
            last = self._last_province
            previous = last.get(key)
            if previous is not None:
                if previous != province:
                    self.moves.add((previous, province))
                last.move_to_end(key)
            last[key] = province
            if len(last) > self.max_tracked:
                last.popitem(last=False)

        # distinct accounts per grade: exact map while it fits, sketches always
        sketch = self._hll.get(grade)
        if sketch is None:
            sketch = self._hll[grade] = HyperLogLog()
        sketch.add(key)
        if blacklisted:
            self._hll_blacklisted.add(key)
        exact = self._account_grades
        if exact is not None:
            old = exact.get(key, 0)
            new = max(old >> 1, rank + 1) << 1 | (old & 1) | blacklisted
            if new != old:
                exact[key] = new
            if len(exact) > self.max_tracked:
                self._account_grades = None

        row = _Row(
            ts=ts,
            ts_text=ts_text,
            session_id=_text(report.get("session_id")),
            province=province or country,
            province_zh=province_zh,
            device=_text(features.get("device_id") or ""),
            model=_text(features.get("model") or ""),
            grade=grade,
            score=score,
            codes=tuple(codes),
            blacklisted=blacklisted,
        )
        if (
            blacklisted
            and key not in self._blacklisted
            and len(self._blacklisted) < self.max_accounts
        ):
            chosen = [
                f
                for f in findings
                if f.get("code") in self._blacklist_codes and f.get("severity") in CONFIDENT
            ] or [f for f in findings if f.get("severity") in CONFIDENT]
            why = tuple((_text(f.get("code")), *self._said(f)) for f in chosen[:8])
            self._blacklisted[key] = _Blacklisted(account_id, row, why)
        self._track_risk(key, account_id, rank, score, findings, codes, blacklisted, row)

    def _said(self, finding: dict[str, Any]) -> tuple[str, str]:
        """(English, Chinese) of a finding, said again from its code's templates with
        region and product names (the report's own messages carry codes and raw
        values); a code these rules do not know keeps the report's messages."""
        code, evidence = str(finding.get("code")), finding.get("evidence")
        codes, words = self.rules.codes.codes, self.words
        return (
            said_in_words(code, evidence, _text(finding.get("message")), codes, words, "en"),
            said_in_words(code, evidence, _text(finding.get("message_zh")), codes, words, "zh"),
        )

    def _track_risk(
        self,
        key: int,
        account_id: str,
        rank: int,
        score: int | None,
        findings: list[dict[str, Any]],
        codes: list[str],
        blacklisted: bool,
        row: _Row,
    ) -> None:
        pool = self._pool
        entry = pool.get(key)
        worst = 100 if score is None else score
        if blacklisted or key in self._blacklisted:
            # Blacklisted accounts have their own section: here they would only push
            # out the hoppers and VPN users an analyst still has to look at.
            if entry is not None:
                del pool[key]
                self._pool_floor = None
            return
        if entry is None:
            if not findings:
                return
            candidate = (rank, -worst, len(findings))
            if len(pool) >= self.pool_size:
                floor = self._pool_floor
                if floor is not None and candidate <= floor:
                    return  # members only get riskier: the cached floor is a safe bound
                least = min(pool, key=lambda k: pool[k].key())
                if candidate <= pool[least].key():
                    self._pool_floor = pool[least].key()
                    return
                del pool[least]
                self._pool_floor = None
            entry = pool[key] = _Account(
                account_id,
                rank,
                worst,
                rows=deque(maxlen=self.max_sessions_per_account),
            )
        if rank > entry.rank or (rank == entry.rank and worst < entry.worst_score):
            entry.rank, entry.worst_score = rank, worst
        entry.sessions += 1
        entry.findings += len(findings)
        if findings:
            entry.flagged += 1
        entry.blacklisted = entry.blacklisted or blacklisted
        if len(entry.codes) < COUNTER_LIMIT:
            entry.codes.update(codes)
        # dict.fromkeys, not a set: a set's order follows the per-process string hash,
        # and the same reports must make the same page.
        entry.checks.update(list(dict.fromkeys(_text(f.get("check")) for f in findings)))
        entry.rows.append(row)

    # -- derived figures -------------------------------------------------------------

    def accounts_per_grade(self) -> tuple[dict[str, int], int, int, bool]:
        """(worst grade -> accounts, accounts, blacklisted accounts, estimated?)."""
        exact = self._account_grades
        if exact is not None:
            ranks = Counter(v >> 1 for v in exact.values())
            out: dict[str, int] = {}
            for grade, rank in self._rank.items():
                if ranks.get(rank + 1):
                    out[grade] = ranks[rank + 1]
            if ranks.get(0):
                out["?"] = ranks[0]
            blacklisted = sum(v & 1 for v in exact.values())
            return out, len(exact), blacklisted, False
        # estimates: accounts whose worst grade is at least g, differenced
        ordered = [g for g in [*self.grade_order][::-1] if g in self._hll]
        out = {}
        union: HyperLogLog | None = None
        previous = 0
        for grade in ordered:
            sketch = self._hll[grade]
            union = sketch if union is None else union.union(sketch)
            at_least = union.estimate()
            out[grade] = max(0, at_least - previous)
            previous = max(previous, at_least)
        if "?" in self._hll:
            union = self._hll["?"] if union is None else union.union(self._hll["?"])
            total = union.estimate()
            out["?"] = max(0, total - previous)
        total = union.estimate() if union is not None else 0
        return out, total, self._hll_blacklisted.estimate(), True

    def risky_accounts(self) -> list[_Account]:
        ranked = sorted(self._pool.values(), key=lambda a: a.key(), reverse=True)
        return ranked[: self.max_accounts]

    def sizes(self) -> dict[str, int]:
        """Current sizes of the bounded structures (for tests and diagnostics)."""
        return {
            "grades": len(self.grades),
            "check_sessions": len(self.check_sessions),
            "check_findings": len(self.check_findings),
            "codes": len(self.codes),
            "code_info": len(self.code_info),
            "hops": len(self.hops),
            "hops_travel": len(self.hops_travel),
            "moves": len(self.moves),
            "province_zh": len(self.province_zh),
            "last_province": len(self._last_province),
            "account_grades": len(self._account_grades or ()),
            "hll": len(self._hll),
            "pool": len(self._pool),
            "pool_rows": max((len(a.rows) for a in self._pool.values()), default=0),
            "blacklisted": len(self._blacklisted),
        }

    def limits(self) -> dict[str, int]:
        """The documented bound of each entry of :meth:`sizes`."""
        return {
            "grades": COUNTER_LIMIT,
            "check_sessions": COUNTER_LIMIT,
            "check_findings": COUNTER_LIMIT,
            "codes": COUNTER_LIMIT,
            "code_info": COUNTER_LIMIT,
            "hops": COUNTER_LIMIT,
            "hops_travel": COUNTER_LIMIT,
            "moves": MOVES_LIMIT,
            "province_zh": COUNTER_LIMIT,
            "last_province": self.max_tracked,
            "account_grades": self.max_tracked,
            "hll": len(self.grade_order) + 1,
            "pool": self.pool_size,
            "pool_rows": self.max_sessions_per_account,
            "blacklisted": self.max_accounts,
        }

    # -- output ----------------------------------------------------------------------

    def render(self, title: str | None = None) -> str:
        """The whole page as one string."""
        return _Renderer(self).page(title)


def write_html(
    reports_jsonl: str | Path,
    out: str | Path,
    lang: str,
    rules: RuleSet | None = None,
    *,
    rejects: int | None = None,
    title: str | None = None,
) -> None:
    """Stream a reports file (one JSON report per line) into a page written to ``out``
    (a file appears only when complete; a device or pipe is written straight, see
    :class:`fingerprint.outputs.Output`).

    ``rejects`` is the checker's reject count when known (the reports file lacks it).
    Lines that are blank are skipped; lines that are not session reports are counted.
    """
    sink = Output(str(out), option="--html")
    try:
        sink.write(render_html(reports_jsonl, lang, rules, rejects=rejects, title=title))
        sink.commit()
    finally:
        sink.abort()


def render_html(
    reports_jsonl: str | Path,
    lang: str,
    rules: RuleSet | None = None,
    *,
    rejects: int | None = None,
    title: str | None = None,
) -> bytes:
    """The page of a reports file, as UTF-8 bytes (see :func:`write_html`)."""
    builder = RunReportBuilder(rules if rules is not None else load_rules(), lang=lang)
    if rejects is not None:
        builder.add_reject(rejects)
    with open(reports_jsonl, "rb") as stream:
        for line in stream:
            if not line.strip():
                continue
            try:
                report = orjson.loads(line)
            except orjson.JSONDecodeError:
                builder.add_bad_line()
                continue
            if isinstance(report, dict) and "account_id" in report and "grade" in report:
                builder.add(report)
            else:
                builder.add_bad_line()
    return builder.render(title).encode("utf-8")


# --- helpers --------------------------------------------------------------------------


def _text(value: Any) -> str:
    """A display string from any JSON value, cut to MAX_TEXT characters."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _parse_ts(text: str) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            return None
        if number > 1e11:
            number /= 1000
        try:
            return datetime.fromtimestamp(number, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _id_class(text: str) -> str:
    """Short identifiers stay on one line; long (possibly hostile) ones may wrap anywhere."""
    return "nw" if len(text) <= 24 else "wrap"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


_TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "title": "会话风险检查运行报告",
        "generated": "生成时间",
        "period": "会话时间范围",
        "times_in": "时间均为北京时间 (UTC+8)",
        "sessions": "会话数",
        "accounts": "账户数",
        "rejects": "拒收行数",
        "rejects_unknown": "报告文件中无此数据",
        "flagged": "有风险发现的会话",
        "blacklisted": "拉黑会话",
        "blacklisted_accounts": "拉黑账户",
        "bad_lines": "报告文件中有 {n} 行不是会话报告,已跳过",
        "grades": "风险等级分布",
        "grades_note": "账户按其最差等级计",
        "sessions_per_grade": "各等级会话数",
        "accounts_per_grade": "各等级账户数",
        "estimated": "≈ 估算值(账户数超过精确统计上限)",
        "checks": "各检查项的发现",
        "check": "检查项",
        "sessions_flagged": "涉及会话",
        "findings": "发现数",
        "codes": "主要风险原因码",
        "code": "原因码",
        "severity": "严重度",
        "message_zh": "中文说明",
        "message_en": "英文说明",
        "count": "次数",
        "hops": "跨省跳变最多的省份",
        "hops_note": "按会话所在省份统计跨省频繁切换和不可能的移动速度两类发现",
        "hopping": "跨省频繁切换",
        "travel": "不可能的移动速度",
        "moves": "最频繁的跨省移动",
        "moves_note": "同一账户相邻两次会话位于不同省份",
        "no_data": "无数据",
        "risky": "风险最高的账户",
        "risky_note": (
            "未列入黑名单的账户(黑名单见下一节),按最差等级、最低分、发现数排序;"
            "展开查看各会话(自首次出现风险起,最多 {n} 条)"
        ),
        "account": "账户",
        "worst_grade": "最差等级",
        "lowest_score": "最低分",
        "main_codes": "风险类型",
        "unknown_place": "未知",
        "time": "时间",
        "province": "省份",
        "device": "设备",
        "model": "机型",
        "grade": "等级",
        "score": "分数",
        "session": "会话",
        "shown": "显示最近 {shown} / {total} 条会话",
        "blacklist": "拉黑账户及原因",
        "blacklist_note": "每个账户首次被拉黑的会话;最多列出 {n} 个账户",
        "why": "原因",
        "more": "另有 {n} 个未列出",
        "expand": "全部展开",
        "collapse": "全部收起",
        "partial": "部分计数为近似值:有 {n} 次计数因数量上限被丢弃",
        "js_errors": "页面脚本错误",
        "footer": "fingerprint 生成 · 页面自包含,不访问网络",
        "sessions_unit": "会话",
        "accounts_unit": "账户",
    },
    "en": {
        "title": "Session check run report",
        "generated": "Generated",
        "period": "Sessions from",
        "times_in": "Times are Beijing time (UTC+8)",
        "sessions": "Sessions",
        "accounts": "Accounts",
        "rejects": "Rejected lines",
        "rejects_unknown": "not in the reports file",
        "flagged": "Flagged sessions",
        "blacklisted": "Blacklisted sessions",
        "blacklisted_accounts": "Blacklisted accounts",
        "bad_lines": "{n} lines of the reports file are not session reports and were skipped",
        "grades": "Grades",
        "grades_note": "an account counts at its worst grade",
        "sessions_per_grade": "Sessions per grade",
        "accounts_per_grade": "Accounts per grade",
        "estimated": "≈ estimated (more accounts than the exact tracking limit)",
        "checks": "Findings per check",
        "check": "Check",
        "sessions_flagged": "Sessions",
        "findings": "Findings",
        "codes": "Top reason codes",
        "code": "Code",
        "severity": "Severity",
        "message_zh": "Chinese",
        "message_en": "English",
        "count": "Count",
        "hops": "Provinces with the most cross-province hops",
        "hops_note": "province hopping and impossible travel findings, by the session's province",
        "hopping": "province hopping",
        "travel": "impossible travel",
        "moves": "Busiest province-to-province moves",
        "moves_note": "consecutive sessions of one account in different provinces",
        "no_data": "no data",
        "risky": "Accounts most at risk",
        "risky_note": (
            "accounts not blacklisted (the blacklist is the next section), by worst grade, "
            "then lowest score, then most findings; expand for the sessions (from the first "
            "flagged one, at most {n})"
        ),
        "account": "Account",
        "worst_grade": "Worst grade",
        "lowest_score": "Lowest score",
        "main_codes": "Kind of risk",
        "unknown_place": "unknown",
        "time": "Time",
        "province": "Province",
        "device": "Device",
        "model": "Model",
        "grade": "Grade",
        "score": "Score",
        "session": "Session",
        "shown": "showing the latest {shown} of {total} sessions",
        "blacklist": "Blacklisted accounts and why",
        "blacklist_note": "the session that first blacklisted each account; at most {n} accounts",
        "why": "Why",
        "more": "{n} more not listed",
        "expand": "Expand all",
        "collapse": "Collapse all",
        "partial": "Some counts are approximate: {n} counts were dropped at a size limit",
        "js_errors": "Page script errors",
        "footer": "Generated by fingerprint · self-contained page, no network access",
        "sessions_unit": "sessions",
        "accounts_unit": "accounts",
    },
}

_SEVERITY_ZH = {"low": "低", "medium": "中", "high": "高", "critical": "严重"}
_GRADE_COLORS = {
    "A": "#2e9d5b",
    "B": "#8bbd3c",
    "C": "#e3b22b",
    "D": "#e6792b",
    "E": "#c9352b",
}
_SEVERITY_COLORS = {
    "low": "#7a8aa0",
    "medium": "#d69a1c",
    "high": "#d9622b",
    "critical": "#b3261e",
}

_CSS = """
:root{--fg:#1d2330;--muted:#5d6778;--line:#dfe3ea;--bg:#f5f6f8;--card:#fff;--accent:#2f5fb3}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.5 system-ui,-apple-system,
"PingFang SC","Hiragino Sans GB","Microsoft YaHei","Noto Sans CJK SC","WenQuanYi Micro Hei",
"Segoe UI",Roboto,sans-serif}
main{max-width:1240px;margin:0 auto;padding:20px 24px 40px}
header h1{font-size:22px;margin:0 0 4px}
header p{margin:0;color:var(--muted);font-size:13px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;margin:18px 0}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.kpi .v{font-size:24px;font-weight:600;font-variant-numeric:tabular-nums}
.kpi .l{color:var(--muted);font-size:12px}
.kpi .s{color:var(--muted);font-size:12px}
.kpi.bad .v{color:#b3261e}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 16px;
margin-bottom:16px;min-width:0}
.grid section{margin-bottom:0}
.grid{margin-bottom:16px;align-items:start}
h2{font-size:16px;margin:0 0 2px}
.note{color:var(--muted);font-size:12px;margin:0 0 10px}
.warn{background:#fff6e0;border:1px solid #f0d48a;border-radius:6px;padding:6px 10px;
font-size:13px;margin:8px 0}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600;font-size:12px;white-space:nowrap}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.wrap{overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%}
.kind{display:inline-block;border:1px solid var(--line);border-radius:4px;padding:0 5px;
margin:1px 4px 1px 0;font-size:12px;white-space:nowrap}
.nw{white-space:nowrap}
.acct .n{text-align:right}
.grade{display:inline-block;min-width:22px;text-align:center;border-radius:4px;color:#fff;
font-weight:700;font-size:12px;padding:0 5px}
.sev{display:inline-block;border-radius:4px;color:#fff;font-size:11px;padding:0 5px}
.sec{color:var(--muted)}
svg{display:block;width:100%;height:auto}
svg text{font-family:inherit;font-size:12px;fill:var(--fg)}
svg .muted{fill:var(--muted)}
details{border-bottom:1px solid var(--line)}
details>summary{cursor:pointer;list-style:none;padding:6px 4px 6px 20px;position:relative}
details>summary::-webkit-details-marker{display:none}
details>summary::before{content:"▸";position:absolute;left:6px;top:6px;color:var(--muted)}
details[open]>summary::before{content:"▾"}
details[open]>summary{background:#f0f3f8}
details .inner{padding:4px 4px 12px 18px}
.acct{display:grid;grid-template-columns:minmax(160px,2.4fr) 70px 70px 70px 70px 3fr;gap:8px;
align-items:center}
.acct.head{font-size:12px;color:var(--muted);font-weight:600;padding:4px 4px 4px 20px;
border-bottom:1px solid var(--line)}
.toolbar{float:right}
button{font:inherit;font-size:12px;border:1px solid var(--line);background:#fff;border-radius:5px;
padding:2px 10px;cursor:pointer;margin-left:6px}
#js-errors{color:#b3261e;white-space:pre-wrap}
#js-errors:empty{display:none}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:20px}
@media (max-width:700px){.grid{grid-template-columns:1fr}.acct{grid-template-columns:1fr 50px 50px}
.acct>:nth-child(n+4){display:none}}
@media print{
@page{size:A4;margin:12mm}
body{background:#fff;font-size:11px}
main{max-width:none;padding:0}
.kpis{grid-template-columns:repeat(6,1fr);gap:6px}
.kpi,section{border-color:#bbb;break-inside:avoid}
section.long{break-inside:auto}
.grid{grid-template-columns:1fr 1fr;gap:8px;margin-bottom:8px}
section{padding:8px 10px;margin-bottom:8px}
h2{break-after:avoid}
.note{break-after:avoid}
table{font-size:10px}
code,.mono{font-size:9.5px}
svg text{font-size:11px}
.toolbar,button{display:none}
details>summary::before{content:""}
details[open]>summary{background:none}
tr,details{break-inside:avoid}
thead{display:table-header-group}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"""

_JS = """
window.onerror=function(m,s,l,c){var d=document.getElementById('js-errors');
if(d){d.textContent+=String(m)+' ('+l+':'+c+')\\n';}return false;};
document.addEventListener('DOMContentLoaded',function(){
document.documentElement.setAttribute('data-js','ok');
var all=function(open){document.querySelectorAll('details').forEach(function(d){d.open=open;});};
var b=document.getElementById('expand-all');
if(b){b.addEventListener('click',function(){all(true);});}
var c=document.getElementById('collapse-all');
if(c){c.addEventListener('click',function(){all(false);});}
});
"""


class _Renderer:
    def __init__(self, builder: RunReportBuilder) -> None:
        self.b = builder
        self.t = _TEXT[builder.lang]
        self.zh = builder.lang == "zh"
        self.lang: Lang = "zh" if self.zh else "en"
        self.words = builder.words

    # -- small pieces --

    def num(self, n: int) -> str:
        return f"{n:,}"

    def when(self, ts: datetime | None, fallback: str = "") -> str:
        if ts is None:
            return fallback
        return ts.astimezone(self.b.tz).strftime("%Y-%m-%d %H:%M:%S")

    def province(self, code: str) -> str:
        """A province, country or region by name (北京市, Japan), never by its code."""
        if not code:
            return "—"
        if code == "?":
            return self.t["unknown_place"]
        return self.words.region(code, self.lang)

    def row_province(self, row: _Row) -> str:
        return self.province(row.province)

    def check_name(self, check: str) -> str:
        """A check by its name in the page's language, what it looks at on hover."""
        name, about = self.words.check(check, self.lang), self.words.check_about(check, self.lang)
        return f"<span title='{_e(about)}'>{_e(name)}</span>"

    def grade_badge(self, grade: str) -> str:
        color = _GRADE_COLORS.get(grade, "#7a8aa0")
        return f"<span class='grade' style='background:{color}'>{_e(grade)}</span>"

    def severity_badge(self, severity: str) -> str:
        color = _SEVERITY_COLORS.get(severity, "#7a8aa0")
        label = _SEVERITY_ZH.get(severity, severity) if self.zh else severity
        return f"<span class='sev' style='background:{color}'>{_e(label)}</span>"

    def code_info(self, code: str) -> tuple[str, str, str, str]:
        """(check, severity, English, Chinese) for a code."""
        spec = self.b.rules.codes.codes.get(code)
        if spec is not None:
            words = self.words
            en, zh = self.b.examples.get(code) or (
                words.fill(spec.message, {}, "en"),
                words.fill(spec.message_zh, {}, "zh"),
            )
            return spec.check, spec.severity, en, zh
        return self.b.code_info.get(code, ("", "", "", ""))

    def code_title(self, code: str) -> str:
        _, _, en, zh = self.code_info(code)
        return zh if self.zh else en

    def codes_list(self, codes: Iterable[str]) -> str:
        return " ".join(
            f"<code title='{_e(self.code_title(c))}'>{_e(c)}</code>" for c in dict.fromkeys(codes)
        )

    # -- the page --

    def page(self, title: str | None) -> str:
        t = self.t
        heading = title or t["title"]
        script = _JS.strip()
        digest = sha256(script.encode()).digest()
        script_hash = base64.b64encode(digest).decode()
        csp = (
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            f"script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'"
        )
        lang = "zh-CN" if self.zh else "en"
        parts = [
            "<!DOCTYPE html>",
            f"<html lang='{lang}'><head><meta charset='utf-8'>",
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
            "<meta name='viewport' content='width=device-width,initial-scale=1'>",
            "<meta name='referrer' content='no-referrer'>",
            f"<title>{_e(heading)}</title>",
            f"<style>{_CSS}</style>",
            f"<script>{script}</script>",
            "</head><body><main>",
            f"<div id='js-errors' role='alert' aria-label='{_e(t['js_errors'])}'></div>",
            self.header(heading),
            self.kpis(),
            self.warnings(),
            "<div class='grid'>",
            self.grades_section(),
            self.checks_section(),
            "</div>",
            "<div class='grid'>",
            self.hops_section(),
            self.moves_section(),
            "</div>",
            self.codes_section(),
            self.risky_section(),
            self.blacklist_section(),
            f"<footer>{_e(t['footer'])}</footer>",
            "</main></body></html>",
        ]
        return "\n".join(parts)

    def header(self, heading: str) -> str:
        t, b = self.t, self.b
        generated = datetime.now(b.tz).strftime("%Y-%m-%d %H:%M")
        period = ""
        if b.first_ts is not None and b.last_ts is not None:
            period = (
                f" · {_e(t['period'])} {_e(self.when(b.first_ts))} – {_e(self.when(b.last_ts))}"
            )
        return (
            f"<header><h1>{_e(heading)}</h1><p>{_e(t['generated'])} {_e(generated)}{period}"
            f" · {_e(t['times_in'])}</p></header>"
        )

    def kpis(self) -> str:
        t, b = self.t, self.b
        _, accounts, blacklisted_accounts, estimated = b.accounts_per_grade()
        approx = "≈ " if estimated else ""
        pct = f"{100 * b.flagged / b.sessions:.1f}%" if b.sessions else "–"
        rejects = self.num(b.rejects) if b.rejects_known else "–"
        rejects_sub = "" if b.rejects_known else t["rejects_unknown"]
        cards = [
            ("kpi-sessions", "", self.num(b.sessions), t["sessions"], ""),
            ("kpi-accounts", "", approx + self.num(accounts), t["accounts"], ""),
            ("kpi-rejects", "", rejects, t["rejects"], rejects_sub),
            ("kpi-flagged", "", self.num(b.flagged), t["flagged"], pct),
            (
                "kpi-blacklisted",
                "bad" if b.blacklisted_sessions else "",
                self.num(b.blacklisted_sessions),
                t["blacklisted"],
                "",
            ),
            (
                "kpi-blacklisted-accounts",
                "bad" if blacklisted_accounts else "",
                approx + self.num(blacklisted_accounts),
                t["blacklisted_accounts"],
                "",
            ),
        ]
        body = "".join(
            f"<div class='kpi {cls}' id='{ident}'><div class='l'>{_e(label)}</div>"
            f"<div class='v'>{_e(value)}</div><div class='s'>{_e(sub)}</div></div>"
            for ident, cls, value, label, sub in cards
        )
        return f"<div class='kpis'>{body}</div>"

    def warnings(self) -> str:
        t, b = self.t, self.b
        notes = []
        if b.bad_lines:
            notes.append(t["bad_lines"].format(n=self.num(b.bad_lines)))
        dropped = sum(
            c.dropped
            for c in (b.grades, b.check_sessions, b.check_findings, b.codes, b.hops, b.moves)
        )
        if dropped:
            notes.append(t["partial"].format(n=self.num(dropped)))
        return "".join(f"<p class='warn'>{_e(n)}</p>" for n in notes)

    def grades_section(self) -> str:
        t, b = self.t, self.b
        per_account, _, _, estimated = b.accounts_per_grade()
        grades = list(b.grade_order)
        if b.grades.get("?") or per_account.get("?"):
            grades.append("?")
        sessions = [(g, b.grades.get(g)) for g in grades]
        accounts = [(g, per_account.get(g, 0)) for g in grades]
        chart = _grade_chart(
            sessions,
            accounts,
            t["sessions_per_grade"],
            t["accounts_per_grade"] + (" ≈" if estimated else ""),
        )
        note = t["grades_note"] + (f" · {t['estimated']}" if estimated else "")
        return (
            f"<section id='grades'><h2>{_e(t['grades'])}</h2><p class='note'>{_e(note)}</p>"
            f"{chart}</section>"
        )

    def checks_section(self) -> str:
        t, b = self.t, self.b
        items = b.check_sessions.most_common()
        if not items:
            body = f"<p class='note'>{_e(t['no_data'])}</p>"
        else:
            top = max(n for _, n in items)
            rows = "".join(
                f"<tr><td>{self.check_name(check)}</td>"
                f"<td class='n'>{self.num(n)}</td>"
                f"<td class='n'>{self.num(b.check_findings.get(check))}</td>"
                f"<td style='width:35%'>{_inline_bar(n, top, '#2f5fb3')}</td></tr>"
                for check, n in items
            )
            body = (
                f"<div class='scroll'><table id='table-checks'><thead><tr><th>{_e(t['check'])}</th>"
                f"<th class='n'>{_e(t['sessions_flagged'])}</th>"
                f"<th class='n'>{_e(t['findings'])}</th><th></th></tr></thead>"
                f"<tbody>{rows}</tbody></table></div>"
            )
        return f"<section id='checks'><h2>{_e(t['checks'])}</h2>{body}</section>"

    def codes_section(self) -> str:
        t, b = self.t, self.b
        items = b.codes.most_common(b.top_n)
        if not items:
            body = f"<p class='note'>{_e(t['no_data'])}</p>"
        else:
            top = items[0][1]
            rows = []
            for code, n in items:
                check, severity, en, zh = self.code_info(code)
                first, second = (zh, en) if self.zh else (en, zh)
                rows.append(
                    f"<tr><td><code>{_e(code)}</code></td>"
                    f"<td>{self.severity_badge(severity) if severity else ''}</td>"
                    f"<td>{self.check_name(check) if check else ''}</td>"
                    f"<td class='wrap'><div>{_e(first)}</div>"
                    f"<div class='sec'>{_e(second)}</div></td>"
                    f"<td class='n'>{self.num(n)}</td>"
                    f"<td style='width:14%'>{_inline_bar(n, top, '#c9352b')}</td></tr>"
                )
            head_first, head_second = (
                (t["message_zh"], t["message_en"])
                if self.zh
                else (t["message_en"], t["message_zh"])
            )
            body = (
                f"<div class='scroll'><table id='table-codes'><thead><tr><th>{_e(t['code'])}</th>"
                f"<th>{_e(t['severity'])}</th><th>{_e(t['check'])}</th>"
                f"<th>{_e(head_first)} / {_e(head_second)}</th>"
                f"<th class='n'>{_e(t['count'])}</th><th></th></tr></thead>"
                f"<tbody>{''.join(rows)}</tbody></table></div>"
            )
        return f"<section id='codes' class='long'><h2>{_e(t['codes'])}</h2>{body}</section>"

    def hops_section(self) -> str:
        t, b = self.t, self.b
        items = b.hops.most_common(b.top_n)
        bars = []
        for code, n in items:
            travel = min(n, b.hops_travel.get(code))
            bars.append((self.province(code), [(n - travel, "#e6792b"), (travel, "#b3261e")]))
        legend = [(t["hopping"], "#e6792b"), (t["travel"], "#b3261e")]
        chart = _hbar_chart("chart-provinces", t["hops"], bars, legend, t["no_data"])
        return (
            f"<section id='hops'><h2>{_e(t['hops'])}</h2><p class='note'>{_e(t['hops_note'])}</p>"
            f"{chart}</section>"
        )

    def moves_section(self) -> str:
        t, b = self.t, self.b
        items = b.moves.most_common(b.top_n)
        bars = [
            (f"{self.province(a)} → {self.province(z)}", [(n, "#2f5fb3")]) for (a, z), n in items
        ]
        chart = _hbar_chart("chart-moves", t["moves"], bars, [], t["no_data"])
        return (
            f"<section id='moves'><h2>{_e(t['moves'])}</h2>"
            f"<p class='note'>{_e(t['moves_note'])}</p>{chart}</section>"
        )

    def session_table(self, rows: Iterable[_Row]) -> str:
        t = self.t
        ordered = sorted(
            rows,
            key=lambda r: (r.ts is None, r.ts or datetime.min.replace(tzinfo=UTC)),
        )
        body = "".join(
            f"<tr><td class='mono nw'>{_e(self.when(r.ts, r.ts_text))}</td>"
            f"<td class='nw'>{_e(self.row_province(r))}</td>"
            f"<td class='mono {_id_class(r.device)}'>{_e(r.device or '—')}</td>"
            f"<td class='{_id_class(r.model)}'>{_e(r.model or '—')}</td>"
            f"<td>{self.grade_badge(r.grade)}</td>"
            f"<td class='n'>{'' if r.score is None else r.score}</td>"
            f"<td class='wrap'>{self.codes_list(r.codes)}</td>"
            f"<td class='mono {_id_class(r.session_id)}'>{_e(r.session_id)}</td></tr>"
            for r in ordered
        )
        return (
            f"<div class='scroll'><table><thead><tr><th>{_e(t['time'])}</th>"
            f"<th>{_e(t['province'])}</th>"
            f"<th>{_e(t['device'])}</th><th>{_e(t['model'])}</th><th>{_e(t['grade'])}</th>"
            f"<th class='n'>{_e(t['score'])}</th><th>{_e(t['code'])}</th>"
            f"<th>{_e(t['session'])}</th></tr></thead><tbody>{body}</tbody></table></div>"
        )

    def risky_section(self) -> str:
        t, b = self.t, self.b
        accounts = b.risky_accounts()
        head = (
            f"<div class='acct head'><span>{_e(t['account'])}</span>"
            f"<span>{_e(t['worst_grade'])}</span><span class='n'>{_e(t['lowest_score'])}</span>"
            f"<span class='n'>{_e(t['findings'])}</span><span class='n'>{_e(t['sessions'])}</span>"
            f"<span>{_e(t['main_codes'])}</span></div>"
        )
        items = []
        for account in accounts:
            grade = b.grade_order[account.rank] if 0 <= account.rank < len(b.grade_order) else "?"
            kinds = " ".join(
                f"<span class='kind'>{self.check_name(check)}</span>"
                for check, _ in account.checks.most_common(4)
            )
            shown = len(account.rows)
            note = t["shown"].format(shown=shown, total=account.sessions)
            items.append(
                "<details class='account'><summary><div class='acct'>"
                f"<span class='mono wrap'>{_e(account.account_id)}</span>"
                f"<span>{self.grade_badge(grade)}</span>"
                f"<span class='n'>{account.worst_score}</span>"
                f"<span class='n'>{self.num(account.findings)}</span>"
                f"<span class='n'>{self.num(account.sessions)}</span>"
                f"<span class='wrap'>{kinds}</span></div></summary>"
                f"<div class='inner'><p class='note'>{_e(note)}</p>"
                f"{self.session_table(account.rows)}</div></details>"
            )
        body = head + "".join(items) if items else f"<p class='note'>{_e(t['no_data'])}</p>"
        toolbar = (
            "<span class='toolbar'>"
            f"<button type='button' id='expand-all'>{_e(t['expand'])}</button>"
            f"<button type='button' id='collapse-all'>{_e(t['collapse'])}</button></span>"
        )
        note = t["risky_note"].format(n=b.max_sessions_per_account)
        return (
            f"<section id='risky' class='long'>{toolbar}<h2>{_e(t['risky'])}</h2>"
            f"<p class='note'>{_e(note)}</p>{body}</section>"
        )

    def blacklist_section(self) -> str:
        t, b = self.t, self.b
        entries = list(b._blacklisted.values())
        _, _, total, estimated = b.accounts_per_grade()
        if not entries:
            body = f"<p class='note'>{_e(t['no_data'])}</p>"
        else:
            rows = []
            for entry in entries:
                r = entry.row
                why = "".join(
                    f"<div><code>{_e(code)}</code> "
                    f"{_e((zh if self.zh else en) or self.code_title(code))}</div>"
                    for code, en, zh in entry.why
                )
                rows.append(
                    f"<tr><td class='mono {_id_class(entry.account_id)}'>"
                    f"{_e(entry.account_id)}</td>"
                    f"<td class='mono nw'>{_e(self.when(r.ts, r.ts_text))}</td>"
                    f"<td class='mono {_id_class(r.session_id)}'>{_e(r.session_id)}</td>"
                    f"<td class='nw'>{_e(self.row_province(r))}</td>"
                    f"<td class='mono {_id_class(r.device)}'>{_e(r.device or '—')}</td>"
                    f"<td class='wrap'>{_e(r.model or '—')}</td>"
                    f"<td class='wrap'>{why}</td></tr>"
                )
            more = total - len(entries) if not estimated else 0
            more_note = (
                f"<p class='note'>{_e(t['more'].format(n=self.num(more)))}</p>" if more > 0 else ""
            )
            body = (
                f"<div class='scroll'><table id='table-blacklist'><thead><tr>"
                f"<th>{_e(t['account'])}</th>"
                f"<th>{_e(t['time'])}</th><th>{_e(t['session'])}</th>"
                f"<th>{_e(t['province'])}</th><th>{_e(t['device'])}</th>"
                f"<th>{_e(t['model'])}</th><th>{_e(t['why'])}</th></tr></thead>"
                f"<tbody>{''.join(rows)}</tbody></table></div>{more_note}"
            )
        note = t["blacklist_note"].format(n=b.max_accounts)
        return (
            f"<section id='blacklist' class='long'><h2>{_e(t['blacklist'])}</h2>"
            f"<p class='note'>{_e(note)}</p>{body}</section>"
        )


# --- SVG charts -----------------------------------------------------------------------


def _text_width(text: str) -> float:
    """Rough rendered width at 12px: CJK glyphs are about twice as wide as Latin ones."""
    return sum(12.0 if ord(ch) > 0x2E7F else 7.0 for ch in text)


def _inline_bar(value: int, top: int, color: str) -> str:
    width = 0.0 if top <= 0 else max(1.0, 100.0 * value / top)
    return (
        "<svg viewBox='0 0 100 8' preserveAspectRatio='none' style='height:8px' "
        f"aria-hidden='true'><rect width='{width:.1f}' height='8' rx='1' fill='{color}'/></svg>"
    )


def _grade_chart(
    sessions: list[tuple[str, int]],
    accounts: list[tuple[str, int]],
    sessions_label: str,
    accounts_label: str,
) -> str:
    """Two vertical bar panels (sessions, accounts per grade), each on its own scale."""
    width, height, panel_gap = 560, 200, 40
    panel = (width - panel_gap) / 2
    top_pad, bottom_pad = 34, 24
    plot = height - top_pad - bottom_pad
    parts = [
        f"<svg id='chart-grades' role='img' viewBox='0 0 {width} {height}' "
        f"xmlns='http://www.w3.org/2000/svg'><title>{_e(sessions_label)} / "
        f"{_e(accounts_label)}</title>"
    ]
    for index, (label, series) in enumerate(
        ((sessions_label, sessions), (accounts_label, accounts))
    ):
        x0 = index * (panel + panel_gap)
        parts.append(
            f"<text x='{x0 + panel / 2:.1f}' y='14' text-anchor='middle' "
            f"font-weight='600'>{_e(label)}</text>"
        )
        top = max((n for _, n in series), default=0)
        count = max(1, len(series))
        slot = panel / count
        bar = min(48.0, slot * 0.62)
        baseline = top_pad + plot
        parts.append(
            f"<line x1='{x0:.1f}' y1='{baseline}' x2='{x0 + panel:.1f}' y2='{baseline}' "
            "stroke='#c4cad4'/>"
        )
        for i, (grade, n) in enumerate(series):
            h = 0.0 if top <= 0 else plot * n / top
            if n and h < 1:
                h = 1.0
            x = x0 + i * slot + (slot - bar) / 2
            color = _GRADE_COLORS.get(grade, "#7a8aa0")
            parts.append(
                f"<rect class='bar' x='{x:.1f}' y='{baseline - h:.1f}' width='{bar:.1f}' "
                f"height='{h:.1f}' rx='2' fill='{color}'><title>{_e(grade)}: {n:,}</title></rect>"
                f"<text x='{x + bar / 2:.1f}' y='{baseline - h - 4:.1f}' text-anchor='middle' "
                f"class='muted'>{n:,}</text>"
                f"<text x='{x + bar / 2:.1f}' y='{baseline + 16}' text-anchor='middle' "
                f"font-weight='700'>{_e(grade)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _hbar_chart(
    ident: str,
    title: str,
    bars: list[tuple[str, list[tuple[int, str]]]],
    legend: list[tuple[str, str]],
    empty: str,
) -> str:
    """Horizontal (optionally stacked) bars with labels on the left and totals on the right."""
    width = 560.0
    if not bars:
        return (
            f"<svg id='{_e(ident)}' role='img' viewBox='0 0 {width:.0f} 40' "
            f"xmlns='http://www.w3.org/2000/svg'><title>{_e(title)}</title>"
            f"<text x='0' y='24' class='muted'>{_e(empty)}</text></svg>"
        )
    row_h, bar_h = 22, 14
    legend_h = 22 if legend else 4
    # Labels are never cut: the chart widens (and scales down with the page) instead.
    # 15% over the estimate covers fonts wider than it assumes.
    labels = [label for label, _ in bars]
    label_w = max(_text_width(label) for label in labels) * 1.15 + 10
    value_w = 56
    width = max(width, label_w + value_w + 240)
    plot = width - label_w - value_w
    height = legend_h + row_h * len(bars) + 4
    top = max(sum(v for v, _ in segments) for _, segments in bars) or 1
    parts = [
        f"<svg id='{_e(ident)}' role='img' viewBox='0 0 {width:.0f} {height}' "
        f"xmlns='http://www.w3.org/2000/svg'><title>{_e(title)}</title>"
    ]
    x = label_w
    for name, color in legend:
        parts.append(
            f"<rect x='{x:.1f}' y='4' width='10' height='10' rx='2' fill='{color}'/>"
            f"<text x='{x + 14:.1f}' y='13' class='muted'>{_e(name)}</text>"
        )
        x += 14 + _text_width(name) + 18
    for i, ((_, segments), label) in enumerate(zip(bars, labels, strict=True)):
        y = legend_h + i * row_h
        total = sum(v for v, _ in segments)
        parts.append(
            f"<text x='{label_w - 8:.1f}' y='{y + bar_h - 2}' text-anchor='end'>{_e(label)}</text>"
        )
        x = label_w
        for value, color in segments:
            if value <= 0:
                continue
            w = max(1.0, plot * value / top)
            parts.append(
                f"<rect class='bar' x='{x:.1f}' y='{y}' width='{w:.1f}' height='{bar_h}' "
                f"rx='2' fill='{color}'><title>{_e(label)}: {value:,}</title></rect>"
            )
            x += w
        parts.append(f"<text x='{x + 6:.1f}' y='{y + bar_h - 2}' class='muted'>{total:,}</text>")
    parts.append("</svg>")
    return "".join(parts)
