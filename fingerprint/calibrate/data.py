"""Reports and outcomes in, labelled cases out.

A *case* is one labelled unit: a session when the outcomes name sessions, else an
account, whose findings are then the union of its sessions' findings (before the
outcome's ``observed_at`` when given: what happened after a decision cannot explain
it). Every problem with the input stops the run with one clear message
(:class:`CalibrationInputError`); nothing is dropped without being counted.
"""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from fingerprint.errors import FingerprintError
from fingerprint.rules import CONFIDENT, SEVERITIES, RuleSet

# Named outcome classes, folded to lower case. "bad" is the event a risk score ranks.
BAD_LABELS: frozenset[str] = frozenset({"1", "bad", "defaulted", "fraud", "rejected"})
GOOD_LABELS: frozenset[str] = frozenset({"0", "good", "repaid", "approved"})
_SEVERITY_RANK: dict[str, int] = {severity: rank for rank, severity in enumerate(SEVERITIES)}

Pattern = tuple[tuple[str, str], ...]  # sorted (code, severity) pairs of one case


class CalibrationInputError(FingerprintError):
    """The reports or outcomes cannot support an honest fit; the message says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    account_id: str
    session_id: str | None
    bad: bool
    observed_at: datetime | None
    label: str = ""  # as written, for the summary of how labels were read


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One labelled unit with its findings."""

    account_id: str
    key: str  # the session id, or the account id for account-level outcomes
    pattern: Pattern
    bad: bool


@dataclass(slots=True, kw_only=True)
class ReportIndex:
    """What the reports say per session and per account."""

    kind: str  # "session" or "account"
    sessions: dict[str, tuple[str, datetime | None, Pattern]] = field(default_factory=dict)
    accounts: dict[str, list[str]] = field(default_factory=dict)  # account -> session ids
    account_patterns: dict[str, Pattern] = field(default_factory=dict)  # --by account rows

    @property
    def rows(self) -> int:
        return len(self.sessions) if self.kind == "session" else len(self.account_patterns)


@dataclass(frozen=True, slots=True, kw_only=True)
class Joined:
    cases: list[Case]
    unit: str  # "session" or "account"
    unlabelled: int  # report rows (sessions or accounts) no outcome names
    sessions_after_outcome: int  # sessions left out because they followed observed_at
    duplicates: int  # outcome rows repeating an earlier one exactly
    labels: dict[tuple[bool, str], int] = field(default_factory=dict)  # (bad, as written)


# --- labels -----------------------------------------------------------------------


def parse_label(value: object) -> bool:
    """``True`` for a bad outcome, ``False`` for a good one; anything else is refused."""
    if isinstance(value, bool):
        raise CalibrationInputError(f"label {value!r} is not 0/1 or a named class")
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = str(value).strip().casefold()
    if text in BAD_LABELS:
        return True
    if text in GOOD_LABELS:
        return False
    raise CalibrationInputError(
        f"label {value!r} is not 0/1 or a named class "
        f"(bad: {', '.join(sorted(BAD_LABELS))}; good: {', '.join(sorted(GOOD_LABELS))})"
    )


# --- outcomes ---------------------------------------------------------------------


def read_outcomes(path: str | Path) -> list[Outcome]:
    """A CSV with a header, or JSON Lines, of ``account_id, label`` (optionally
    ``session_id``, ``observed_at``)."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationInputError(f"cannot read outcomes {source}: {exc}") from None
    records = _jsonl_records(text, source) if _looks_like_jsonl(text) else _csv_records(text)
    outcomes = [_outcome(record, source, number) for number, record in records]
    if not outcomes:
        raise CalibrationInputError(f"{source}: no outcome rows")
    return outcomes


def _looks_like_jsonl(text: str) -> bool:
    return text.lstrip().startswith("{")


def _jsonl_records(text: str, source: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise CalibrationInputError(f"{source}:{number}: not JSON") from None
        if not isinstance(record, dict):
            raise CalibrationInputError(f"{source}:{number}: expected a JSON object")
        yield number, record


def _csv_records(text: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    for record in reader:
        yield reader.line_num, record


def _outcome(record: Mapping[str, Any], source: Path, number: int) -> Outcome:
    where = f"{source}:{number}"
    account = record.get("account_id")
    if not isinstance(account, str) or not account.strip():
        raise CalibrationInputError(f"{where}: no account_id")
    if "label" not in record or record["label"] in (None, ""):
        raise CalibrationInputError(f"{where}: no label")
    try:
        bad = parse_label(record["label"])
    except CalibrationInputError as exc:
        raise CalibrationInputError(f"{where}: {exc}") from None
    session = record.get("session_id") or None
    observed = record.get("observed_at") or None
    return Outcome(
        account_id=account.strip(),
        session_id=str(session).strip() if session is not None else None,
        bad=bad,
        observed_at=_timestamp(observed, where) if observed is not None else None,
        label=str(record["label"]).strip(),
    )


def _timestamp(value: object, where: str) -> datetime:
    try:
        stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise CalibrationInputError(f"{where}: observed_at {value!r} is not ISO 8601") from None
    if stamp.tzinfo is None:
        raise CalibrationInputError(f"{where}: observed_at {value!r} has no UTC offset")
    return stamp


# --- reports ----------------------------------------------------------------------


def read_reports(path: str | Path, rules: RuleSet) -> ReportIndex:
    """Session reports (``check``) or account rows (``check --by account``), not mixed."""
    source = Path(path)
    index: ReportIndex | None = None
    for number, record in _report_records(source):
        kind = "session" if "findings" in record else "account" if "codes" in record else None
        if kind is None:
            raise CalibrationInputError(f"{source}:{number}: neither a session nor account report")
        if index is None:
            index = ReportIndex(kind=kind)
        elif index.kind != kind:
            raise CalibrationInputError(f"{source}:{number}: session and account reports mixed")
        if kind == "session":
            _add_session(index, record, source, number)
        else:
            _add_account(index, record, source, number, rules)
    if index is None:
        raise CalibrationInputError(f"{source}: no reports")
    return index


def _report_records(source: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        handle = source.open("rb")
    except OSError as exc:
        raise CalibrationInputError(f"cannot read reports {source}: {exc}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise CalibrationInputError(f"{source}:{number}: not a JSON report") from None
            if not isinstance(record, dict) or not isinstance(record.get("account_id"), str):
                raise CalibrationInputError(f"{source}:{number}: a report needs an account_id")
            yield number, record


def _add_session(index: ReportIndex, record: dict[str, Any], source: Path, number: int) -> None:
    session = record.get("session_id")
    findings = record.get("findings")
    if not isinstance(session, str) or not isinstance(findings, list):
        raise CalibrationInputError(f"{source}:{number}: a session report needs session_id")
    if session in index.sessions:
        raise CalibrationInputError(f"{source}:{number}: session {session!r} reported twice")
    pairs: dict[str, str] = {}
    for finding in findings:
        code = finding.get("code") if isinstance(finding, dict) else None
        severity = finding.get("severity") if isinstance(finding, dict) else None
        if not isinstance(code, str) or severity not in _SEVERITY_RANK:
            raise CalibrationInputError(f"{source}:{number}: a finding lacks code or severity")
        pairs[code] = _worse(pairs.get(code), severity)
    ts = record.get("ts")
    stamp = _timestamp(ts, f"{source}:{number}") if isinstance(ts, str) else None
    account = record["account_id"]
    index.sessions[session] = (account, stamp, tuple(sorted(pairs.items())))
    index.accounts.setdefault(account, []).append(session)


def _add_account(
    index: ReportIndex, record: dict[str, Any], source: Path, number: int, rules: RuleSet
) -> None:
    codes = record.get("codes")
    account = record["account_id"]
    if not isinstance(codes, dict):
        raise CalibrationInputError(f"{source}:{number}: an account row needs codes")
    if account in index.account_patterns:
        raise CalibrationInputError(f"{source}:{number}: account {account!r} reported twice")
    known = rules.codes.codes
    unknown = [code for code in codes if code not in known]
    if unknown:
        # Account rows carry no severities: they come from codes.yaml, so a code the
        # rules do not know cannot be placed.
        raise CalibrationInputError(f"{source}:{number}: unknown reason code {unknown[0]!r}")
    index.account_patterns[account] = tuple(
        sorted((code, known[code].severity) for code, count in codes.items() if count)
    )


def _worse(current: str | None, severity: str) -> str:
    if current is None or _SEVERITY_RANK[severity] > _SEVERITY_RANK[current]:
        return severity
    return current


# --- joining ----------------------------------------------------------------------


def join(index: ReportIndex, outcomes: Sequence[Outcome], *, ignore_unknown: bool) -> Joined:
    """Labelled cases: per session if the outcomes name sessions, else per account."""
    by_session = [o.session_id is not None for o in outcomes]
    if any(by_session) and not all(by_session):
        raise CalibrationInputError("outcomes name a session_id on some rows only")
    unit = "session" if by_session[0] else "account"
    if unit == "session" and index.kind != "session":
        raise CalibrationInputError(
            "outcomes name sessions but the reports are per account: use session reports"
        )
    unique, duplicates = _unique(outcomes, unit)
    if unit == "session":
        cases, unknown, after = _session_cases(index, unique), _unknown_sessions(index, unique), 0
    else:
        unknown = [o.account_id for o in unique if o.account_id not in _accounts(index)]
        cases, after = _account_cases(index, [o for o in unique if o.account_id not in unknown])
    if unknown and not ignore_unknown:
        raise CalibrationInputError(
            f"{len(unknown)} of {len(unique)} outcomes name {unit}s not in the reports "
            f"(first: {', '.join(unknown[:3])}); pass --ignore-unknown to fit without them"
        )
    return Joined(
        cases=cases,
        unit=unit,
        unlabelled=_unlabelled(index, unique, unit),
        sessions_after_outcome=after,
        duplicates=duplicates,
        labels=dict(Counter((o.bad, o.label) for o in unique)),
    )


def _unique(outcomes: Sequence[Outcome], unit: str) -> tuple[list[Outcome], int]:
    seen: dict[str, Outcome] = {}
    duplicates = 0
    for outcome in outcomes:
        key = outcome.session_id if unit == "session" else outcome.account_id
        assert key is not None
        earlier = seen.get(key)
        if earlier is None:
            seen[key] = outcome
        elif (earlier.bad, earlier.observed_at) == (outcome.bad, outcome.observed_at):
            duplicates += 1
        else:
            raise CalibrationInputError(f"{unit} {key!r} has two different outcomes")
    return list(seen.values()), duplicates


def _accounts(index: ReportIndex) -> Mapping[str, object]:
    return index.accounts if index.kind == "session" else index.account_patterns


def _unknown_sessions(index: ReportIndex, outcomes: Iterable[Outcome]) -> list[str]:
    unknown = []
    for outcome in outcomes:
        assert outcome.session_id is not None
        known = index.sessions.get(outcome.session_id)
        if known is None or known[0] != outcome.account_id:
            unknown.append(outcome.session_id)
    return unknown


def _session_cases(index: ReportIndex, outcomes: Iterable[Outcome]) -> list[Case]:
    cases = []
    for outcome in outcomes:
        assert outcome.session_id is not None
        known = index.sessions.get(outcome.session_id)
        if known is not None and known[0] == outcome.account_id:
            cases.append(
                Case(
                    account_id=outcome.account_id,
                    key=outcome.session_id,
                    pattern=known[2],
                    bad=outcome.bad,
                )
            )
    return cases


def _account_cases(index: ReportIndex, outcomes: Iterable[Outcome]) -> tuple[list[Case], int]:
    cases, after = [], 0
    for outcome in outcomes:
        if index.kind == "account":
            pattern = index.account_patterns[outcome.account_id]
        else:
            pattern, left_out = _union(index, outcome)
            after += left_out
        cases.append(
            Case(
                account_id=outcome.account_id,
                key=outcome.account_id,
                pattern=pattern,
                bad=outcome.bad,
            )
        )
    return cases, after


def _union(index: ReportIndex, outcome: Outcome) -> tuple[Pattern, int]:
    """The account's findings over its sessions up to the outcome's observation."""
    pairs: dict[str, str] = {}
    left_out = 0
    for session in index.accounts[outcome.account_id]:
        _, stamp, pattern = index.sessions[session]
        if outcome.observed_at is not None and stamp is not None and stamp > outcome.observed_at:
            left_out += 1
            continue
        for code, severity in pattern:
            pairs[code] = _worse(pairs.get(code), severity)
    return tuple(sorted(pairs.items())), left_out


def _unlabelled(index: ReportIndex, outcomes: Sequence[Outcome], unit: str) -> int:
    if unit == "session":
        return len(index.sessions) - len({o.session_id for o in outcomes} & index.sessions.keys())
    return len(_accounts(index)) - len({o.account_id for o in outcomes} & _accounts(index).keys())


# --- split ------------------------------------------------------------------------


def split_by_account(
    cases: Sequence[Case], *, holdout: float, seed: int
) -> tuple[list[Case], list[Case]]:
    """(train, held out): every case of one account on the same side, seeded."""
    accounts = sorted({case.account_id for case in cases})
    random.Random(seed).shuffle(accounts)
    held = set(accounts[: round(holdout * len(accounts))])
    train = [case for case in cases if case.account_id not in held]
    test = [case for case in cases if case.account_id in held]
    return train, test


def is_confident(severity: str) -> bool:
    return severity in CONFIDENT


# --- scores for PSI -----------------------------------------------------------------


def read_scores(path: str | Path) -> tuple[str, list[int]]:
    """The kind of reports and each row's score (an account row's worst score)."""
    source = Path(path)
    kind: str | None = None
    scores: list[int] = []
    for number, record in _report_records(source):
        this = "session" if "findings" in record else "account" if "codes" in record else None
        field_name = "score" if this == "session" else "worst_score"
        score = record.get(field_name)
        if this is None or not isinstance(score, int) or isinstance(score, bool):
            raise CalibrationInputError(f"{source}:{number}: a report needs an integer score")
        if kind is not None and kind != this:
            raise CalibrationInputError(f"{source}:{number}: session and account reports mixed")
        kind = this
        scores.append(score)
    if kind is None:
        raise CalibrationInputError(f"{source}: no reports")
    return kind, scores
