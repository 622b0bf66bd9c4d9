"""Run statistics and the input item stream shared by the batch runners."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

from fingerprint.checker import HISTORY_UNAVAILABLE
from fingerprint.inputs import (
    CountingReader,
    LazyItem,
    Reject,
    input_size,
    open_input,
    read_items,
    read_lazy_items,
)
from fingerprint.pipeline import OrderStats
from fingerprint.report import Report
from fingerprint.session import field_kinds

T = TypeVar("T")


@dataclass
class RunStats:
    """Counts for the end-of-run summary; ``merge`` adds another worker's counts."""

    lines: int = 0
    blank: int = 0
    reports: int = 0
    rejects: int = 0
    flagged: int = 0
    blacklisted: int = 0
    warnings: int = 0
    seconds: float = 0.0
    files: int = 0
    grades: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    provinces: Counter[str] = field(default_factory=Counter)
    reject_reasons: Counter[str] = field(default_factory=Counter)
    account_grades: Counter[str] = field(default_factory=Counter)
    whois: Counter[str] = field(default_factory=Counter)  # enrichment counters
    # The device component's status (ok, pending, veto) and what pending sessions wait
    # for: a grade A with too few signals evaluated is pending, not a clean pass.
    device_status: Counter[str] = field(default_factory=Counter)
    pending_reasons: Counter[str] = field(default_factory=Counter)
    accounts: int = 0
    interrupted: bool = False
    # Sessions graded without history because the store was unreachable, and the
    # first reason given (the same for a whole outage, usually).
    history_degraded: int = 0
    history_error: str | None = None
    # Inputs that ended before the size they had when opened (truncated while read).
    shrunk_inputs: set[str] = field(default_factory=set)
    order: OrderStats = field(default_factory=OrderStats)  # how far from time order
    # Accounts this process reported on, to count them without an account rollup.
    # Workers shard by account, so their counts add up; the set is not pickled.
    _seen_accounts: set[str] = field(default_factory=set, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_seen_accounts": set()}

    def add_report(self, report: Report) -> None:
        self.reports += 1
        if report.account_id not in self._seen_accounts:
            self._seen_accounts.add(report.account_id)
            self.accounts += 1
        self.grades[report.grade] += 1
        component = report.device_component
        self.device_status[component.status] += 1
        # Counted by hand: Counter.update is Python code, ~1 µs a call, and a flagged
        # report made three calls.
        pending = self.pending_reasons
        for reason in component.pending_reasons:
            pending[reason] = pending.get(reason, 0) + 1
        findings = report.findings
        if findings:
            self.flagged += 1
            checks, codes = self.checks, self.codes
            for check in {f.check for f in findings}:
                checks[check] = checks.get(check, 0) + 1
            for finding in findings:
                codes[finding.code] = codes.get(finding.code, 0) + 1
        if report.blacklisted:
            self.blacklisted += 1
        if report.warnings:
            self.warnings += len(report.warnings)
        province = report.features.get("ip_province")
        if province:
            self.provinces[province] += 1
        for reason in report.not_evaluated.values():
            if reason.startswith(HISTORY_UNAVAILABLE):
                self.history_degraded += 1
                self.history_error = self.history_error or reason
                break

    def add_shrunk_input(self, path: str, bytes_read: int, size_at_open: int) -> None:
        self.shrunk_inputs.add(path)

    def add_reject(self, reject: Reject) -> None:
        self.rejects += 1
        self.reject_reasons[reason_kind(reject.error)] += 1

    def merge(self, other: RunStats) -> None:
        for name in (
            "lines",
            "blank",
            "reports",
            "rejects",
            "flagged",
            "blacklisted",
            "warnings",
            "accounts",
            "history_degraded",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in (
            "grades",
            "checks",
            "codes",
            "provinces",
            "reject_reasons",
            "account_grades",
            "whois",
            "device_status",
            "pending_reasons",
        ):
            getattr(self, name).update(getattr(other, name))
        self.interrupted = self.interrupted or other.interrupted
        self.history_error = self.history_error or other.history_error
        self.shrunk_inputs |= other.shrunk_inputs
        self.order.merge(other.order)

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        rate = self.lines / self.seconds if self.seconds > 0 else None
        return {
            "files": self.files,
            "lines": self.lines,
            "blank": self.blank,
            "reports": self.reports,
            "rejects": self.rejects,
            "flagged": self.flagged,
            "blacklisted": self.blacklisted,
            "warnings": self.warnings,
            "seconds": round(self.seconds, 3),
            "lines_per_second": round(rate) if rate else None,
            "sessions_per_grade": dict(sorted(self.grades.items())),
            "sessions_per_device_status": dict(sorted(self.device_status.items())),
            "pending_reasons": dict(self.pending_reasons.most_common()),
            "accounts": self.accounts,
            "accounts_per_grade": dict(sorted(self.account_grades.items())),
            "sessions_per_check": dict(self.checks.most_common()),
            "top_codes": dict(self.codes.most_common(top)),
            "top_provinces": dict(self.provinces.most_common(top)),
            "reject_reasons": dict(self.reject_reasons.most_common()),
            "interrupted": self.interrupted,
            "history_degraded": self.history_degraded,
            "inputs_shrunk": sorted(self.shrunk_inputs),
            "order": self.order.to_dict(),
            **({"whois": dict(self.whois)} if self.whois else {}),
        }


def reason_kind(error: str) -> str:
    """Group a reject reason for the summary by what went wrong and in which field,
    without its detail (kept in the rejects file): ``not UTF-8 (byte 120)`` is
    ``not UTF-8``; ``device.sensors.0: Input should be a valid string`` is
    ``device.sensors: Input should be a valid string``; ``ts: out of range: ...`` is
    ``ts: out of range``."""
    path, separator, reason = error.partition(": ")
    field = _field_of(path) if separator else None
    if field is None:
        return _detail_removed(error)
    return f"{field}: {_detail_removed(reason)}" if field else _detail_removed(reason)


def _field_of(path: str) -> str | None:
    """The contract field a dotted error path names, without list indexes or map keys
    (``device.system_props.ro.x`` -> ``device.system_props``); None if it names none."""
    known = _known_paths()
    parts = path.split(".")
    if parts[0] not in known:
        return None
    kept = parts[0]
    for part in parts[1:]:
        if f"{kept}.{part}" not in known:
            break
        kept = f"{kept}.{part}"
    return kept


@lru_cache(maxsize=1)
def _known_paths() -> frozenset[str]:
    paths: set[str] = set()
    for path in field_kinds():
        parts = path.split(".")
        paths.update(".".join(parts[: n + 1]) for n in range(len(parts)))
    return frozenset(paths)


def _detail_removed(reason: str) -> str:
    """The reason up to its first detail: a ``(...)`` or a ``: ...``."""
    for marker in (" (", ": "):
        reason = reason.split(marker, 1)[0]
    return reason.strip()[:80]


# Items read between two progress calls: the bar redraws at most 5 times a second.
PROGRESS_EVERY = 512


def counted_items(
    items: Iterable[T],
    counter: CountingReader | None,
    on_progress: Callable[[int], None] | None,
    done: int = 0,
) -> Iterator[T]:
    """``items``, read from a stream whose ``counter`` counts its bytes (compressed
    bytes for gzip), telling ``on_progress`` the ``done`` bytes before this stream
    plus those read of it, every :data:`PROGRESS_EVERY` items (never without a
    callback or a counter: stdin)."""
    if on_progress is None or counter is None:
        yield from items
        return
    for n, item in enumerate(items):
        if n % PROGRESS_EVERY == 0:
            on_progress(done + counter.bytes_read)
        yield item


def iter_items(
    paths: Iterable[str],
    on_progress: Callable[[int], None] | None = None,
    *,
    on_shrunk: Callable[[str, int, int], None] | None = None,
    lazy: bool = False,
) -> Iterator[LazyItem]:
    """Items of every input in turn; ``on_progress`` gets compressed bytes read so far.
    ``lazy``: JSON lines as their :class:`~fingerprint.inputs.Text`, not decoded.

    ``on_shrunk(path, bytes_read, size_at_open)`` is called for a file that is smaller
    when its last line has been read than it was when it was opened: it was truncated
    while being read, so lines it had were never seen.
    """
    done = 0
    for path in paths:
        size_at_open = input_size(path)
        stream, counter = open_input(path)
        try:
            read = read_lazy_items if lazy else read_items
            yield from counted_items(read(path, stream), counter, on_progress, done)
            if on_shrunk is not None and counter is not None and size_at_open is not None:
                size_now = counter.size()
                if size_now is not None and size_now < size_at_open:
                    on_shrunk(path, counter.bytes_read, size_at_open)
        finally:
            if path != "-":
                stream.close()
            if counter is not None:
                done += counter.bytes_read
        if on_progress is not None:
            on_progress(done)
