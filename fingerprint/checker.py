"""The library entry point: ``Checker(config).check(session) -> Report``.

Build it once; call ``check`` from as many threads as you like. Everything a call
reads (rules, compiled checks, lookups) lives in one immutable :class:`_Engine`;
``reload_rules`` builds a new engine and swaps one reference, so calls in flight
finish on the rules they started with.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import msgspec

from fingerprint.checks import CHECKS_BY_NAME, Check, CheckContext
from fingerprint.checks.base import HistoryIndex
from fingerprint.checks.identity import identity_links
from fingerprint.config import CheckerConfig
from fingerprint.errors import ConfigError, InvalidSessionError
from fingerprint.features import FeatureExtractor, Features
from fingerprint.features.device import BrandNormalizer
from fingerprint.features.identity import (
    DeviceIdentity,
    IdentityHasher,
    content_identity,
    identity_text,
)
from fingerprint.features.stability import Stability, StabilityRequest, stability_by_window
from fingerprint.grading import Grader
from fingerprint.history import (
    HistoryStats,
    HistoryStore,
    HistoryView,
    Link,
    LoginEvent,
    MemoryHistoryStore,
    Windows,
)
from fingerprint.inputs import session_from_text
from fingerprint.memo import BoundedMemo
from fingerprint.report import Report
from fingerprint.rollup import AccountRollup, AccountSummary
from fingerprint.rules import RuleSet, load_rules
from fingerprint.session import (
    Session,
    battery_pinned,
    parse_session,
)
from fingerprint.sources.maxmind import (
    bundled_city_path,
    open_anonymous_ip,
    open_asn,
    open_city,
)
from fingerprint.sources.useragent import (
    cached_resolver,
    parse_user_agent,
)
from fingerprint.stages.enrich import Enricher
from fingerprint.stages.history import HISTORY_UNAVAILABLE, HistoryStage, timeout_counter
from fingerprint.stages.login import (
    arrival_warnings,
    derived_session_id,
    login_event,
    observed_event,
)
from fingerprint.stages.observe import IdentityMemo
from fingerprint.stages.report import features_summary, graded_report
from fingerprint.stages.run import (
    CheckRun,
    Plan,
    Settled,
    exit_verdict,
    run_checks,
    run_plan,
    session_plan,
)
from fingerprint.stages.verdict import DeviceMemo, DeviceVerdict, for_login

_HOURS = 3600.0

log = logging.getLogger("fingerprint.rules")


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckerStats:
    """Counters a service exports (:meth:`Checker.stats`), since the checker was built."""

    degraded: int = 0  # reports graded without history: the store failed or timed out
    lost_writes: int = 0  # logins whose history write was not confirmed (the same,
    # plus device-only writes of sharded runs)
    history_timeouts: int = 0  # history calls whose deadline passed
    future_rejects: int = 0  # logins refused as dated after the clock
    rule_reloads: int = 0
    rule_reload_failures: int = 0
    history: HistoryStats | None = None  # the store's own counters, when it keeps any


class _Counters:
    """Thread-safe counters, touched only off the fast path (failures, reloads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(
            (name for name in CheckerStats.__dataclass_fields__ if name != "history"), 0
        )

    def add(self, *names: str) -> None:
        with self._lock:
            for name in names:
                self._values[name] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


@dataclass(frozen=True)
class _Engine:
    """Everything derived from one rule set; never mutated after construction."""

    rules: RuleSet
    checks: tuple[Check, ...]
    session_checks: tuple[Check, ...]  # need nothing but the session
    history_checks: tuple[Check, ...]  # run after the login is recorded
    stability: StabilityRequest | None  # what the checks that declare it read
    exit_checks: frozenset[str]  # checks whose confident findings mark an anonymous exit
    relay_codes: frozenset[str]  # codes that mark a privacy relay's egress
    grader: Grader
    brands: BrandNormalizer
    windows: Windows | None  # None when no enabled check reads history
    # A device verdict's plan for the session checks, by its outcomes: one plan for
    # verdicts with equal outcomes (most are all clean), made once each (~0.7 µs).
    plans: BoundedMemo[tuple[tuple[str, Settled], ...], Plan]
    grade_order: list[str] = field(default_factory=list)
    device_memo: DeviceMemo = field(default_factory=lambda: DeviceMemo())
    # What the rule set leaves an enabled check without (logged at build; the CLI
    # prints them): today, exit marks read that no enabled check makes.
    warnings: tuple[str, ...] = ()

    def session_plan(self, outcomes: tuple[tuple[str, Settled], ...]) -> Plan:
        """:func:`session_plan` of these device-scoped outcomes over the session checks."""
        try:
            return self.plans[outcomes]
        except TypeError:  # unhashable: a finding's evidence is a dict
            return _plan_of(self.session_checks, outcomes)


def _plan_of(checks: tuple[Check, ...], outcomes: tuple[tuple[str, Settled], ...]) -> Plan:
    return session_plan(checks, dict(outcomes))


def build_engine(rules: RuleSet, memo_size: int = 4_096) -> _Engine:
    # load_rules has checked the check names, each threshold against its check's
    # declared type and range, and the codes each check emits.
    checks = []
    for name, cls in CHECKS_BY_NAME.items():
        if name in rules.checks.disabled:
            continue
        checks.append(cls.compile(rules, dict(rules.checks.checks.get(name, {}))))
    history_checks = [c for c in checks if c.uses_history]
    session_checks = tuple(c for c in checks if not c.uses_history)
    unmarked = unmarked_exit_readers(checks)
    warnings = (unmarked,) if unmarked else ()
    for warning in warnings:
        log.warning(warning)
    return _Engine(
        rules=rules,
        checks=tuple(checks),
        session_checks=session_checks,
        history_checks=tuple(history_checks),
        stability=_stability_request(checks),
        exit_checks=frozenset(c.name for c in checks if c.marks_anonymous_exit),
        relay_codes=frozenset().union(*(c.relay_codes for c in checks)),
        grader=Grader(rules.grading, disabled=rules.checks.disabled),
        brands=BrandNormalizer(rules.devices),
        windows=plan_windows(history_checks) if history_checks else None,
        grade_order=[band.grade for band in rules.grading.bands],
        device_memo=DeviceMemo(memo_size),
        plans=BoundedMemo(4_096, partial(_plan_of, session_checks)),
        warnings=warnings,
    )


def unmarked_exit_readers(checks: Sequence[Check]) -> str | None:
    """What to warn of when enabled checks declare they read the exit marks
    (``Needs.exit_marks``) and no enabled check makes them: each login's IP then
    counts as the user's own place and network, VPN exits and relays included."""
    readers = sorted(c.name for c in checks if c.needs.exit_marks)
    if not readers or any(c.marks_anonymous_exit or c.relay_codes for c in checks):
        return None
    makers = sorted(
        name for name, cls in CHECKS_BY_NAME.items() if cls.marks_anonymous_exit or cls.relay_codes
    )
    disabled = f" ({', '.join(makers)} disabled)" if makers else ""
    return (
        f"{', '.join(readers)} read whether a login's IP is a VPN, proxy or relay exit, "
        f"which no enabled check decides{disabled}: every IP counts as the user's own"
    )


def plan_windows(history_checks: Sequence[Check]) -> Windows:
    """History's windows from what the checks declare they read (``Check.needs``):
    each index as far back as its longest reader, and at least an hour (the address
    index only when a check reads it)."""

    def longest(index: HistoryIndex) -> float:
        readers = (c.history_seconds() for c in history_checks if index in c.needs.history)
        return max(readers, default=0.0)

    counters = [c for c in history_checks if HistoryIndex.ADDRESS in c.needs.history]
    return Windows(
        account_seconds=max(longest(HistoryIndex.ACCOUNT), _HOURS),
        device_seconds=max(longest(HistoryIndex.DEVICE), _HOURS),
        ip_seconds=longest(HistoryIndex.ADDRESS) if counters else 0.0,
        max_accounts_per_ip=max([200, *(c.history_members() for c in counters)]),
        link_seconds=max(longest(HistoryIndex.LINKS), _HOURS),
    )


def _stability_request(checks: Sequence[Check]) -> StabilityRequest | None:
    """The stability windows the checks declare they read (one reader today)."""
    requests = {r for c in checks if c.needs.stability and (r := c.stability_request())}
    if len(requests) > 1:
        raise ConfigError("more than one check asks for its own stability windows")
    return next(iter(requests), None)


class Checker:
    """Grades login sessions. Thread-safe; build once, call :meth:`check` per login."""

    def __init__(
        self,
        config: CheckerConfig | None = None,
        *,
        history: HistoryStore | None = None,
        clock: Callable[[], float] | None = time.time,
    ) -> None:
        """``clock`` is the service's clock (epoch seconds) that a login's time is
        judged against and history's windows run on; a call's ``now`` overrides it
        (a batch run passes its log's own clock). ``None``: no clock, each login's
        own time is trusted (only for a store holding one account, as Spark's)."""
        self._config = config or CheckerConfig()
        # Read three times a login: the config's property costs a call each time.
        self._time_zone = self._config.time_zone
        tolerance = self._config.future_tolerance
        if not (isinstance(tolerance, int | float) and math.isfinite(tolerance) and tolerance >= 0):
            raise ConfigError(f"future_tolerance must be a finite number >= 0, not {tolerance!r}")
        self._clock = clock
        self._counters = _Counters()
        rules = load_rules(self._config.rules_dir)
        self._engine = build_engine(rules, self._config.device_memo_size)
        self._reload_lock = threading.Lock()
        self._history: HistoryStore = history if history is not None else self._open_history()
        self._own_history = history is None  # built here from the config, not handed in
        self._history_stage = HistoryStage(self._history, self._counters.add)
        secret = self._config.identity_secret
        self._hasher = IdentityHasher(secret.encode("utf-8") if isinstance(secret, str) else secret)
        self._enricher = Enricher(
            self._open_sources(self._engine.brands),
            whois=self._open_whois(),
            whois_wait=self._config.whois_wait,
            hasher=self._hasher,
        )
        self._accounts = AccountRollup(self._engine.grade_order, self._config.track_accounts)

    @property
    def config(self) -> CheckerConfig:
        """The configuration the checker was built from (frozen; never replaced: the
        checker keeps what it derived from it)."""
        return self._config

    @property
    def rules_warnings(self) -> tuple[str, ...]:
        """What the loaded rules leave an enabled check without, in words (also logged
        to ``fingerprint.rules``; the command line prints them): today, checks that read
        whether a login's IP is a VPN or relay exit when the check that decides it is
        disabled. Empty for the shipped rules."""
        return self._engine.warnings

    @property
    def can_forget(self) -> bool:
        """Nothing this checker did reached beyond this process: history is its own
        in-memory store and no registry was asked (whois records are cached on disk,
        and a report says when one came from the cache). :meth:`forget` can then take
        back every check made so far."""
        return (
            self._own_history
            and isinstance(self._history, MemoryHistoryStore)
            and not self._config.whois
        )

    def forget(self) -> None:
        """Forget every login checked so far, as if this checker were built again: an
        empty history, its counters and the accounts it tracks back at zero. What it
        keeps only speeds it up (the device memo, the address and user-agent caches:
        a hit gives what a fresh lookup gives). Only when :attr:`can_forget`."""
        if not self.can_forget:
            raise RuntimeError(
                "this checker cannot forget: its history is shared or handed in, or it "
                "asked a registry (whois)"
            )
        self._counters = _Counters()
        self._history = MemoryHistoryStore()
        self._history_stage = HistoryStage(self._history, self._counters.add)
        self._accounts = AccountRollup(self._engine.grade_order, self._config.track_accounts)

    def _open_whois(self) -> Any:
        if not self._config.whois:
            return None
        from fingerprint.sources.whois import open_enricher

        return open_enricher(
            self._config.whois_cache,
            timeout=self._config.whois_timeout,
            max_lookups=self._config.whois_budget,
        )

    def whois_stats(self) -> dict[str, Any] | None:
        """Lookups, cache hits, failures and breaker state, when enrichment is on."""
        whois = self._enricher.whois
        return whois.stats().as_dict() if whois is not None else None

    def close(self) -> None:
        """Release the history connection (Redis), the whois pool and its cache, and
        the MaxMind readers. Idempotent; a closed checker must not be called again.
        ``with Checker(...) as checker:`` closes it on leaving the block."""
        close = getattr(self._history, "close", None)
        if close is not None:
            close()
        self._enricher.close()

    def __enter__(self) -> Checker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_history(self) -> HistoryStore:
        url = self._config.history
        if url == "memory":
            return MemoryHistoryStore()
        if url.startswith(("redis://", "rediss://", "unix://")):
            from fingerprint.redis_store import RedisHistoryStore

            return RedisHistoryStore.from_url(url, timeout=self._config.history_timeout)
        raise ConfigError("history must be 'memory' or a redis:// URL", url)

    def _open_sources(self, brands: BrandNormalizer) -> FeatureExtractor:
        cfg = self._config
        city = None
        if cfg.use_city_db:
            city = open_city(cfg.city_db if cfg.city_db is not None else bundled_city_path())
        return FeatureExtractor(
            resolve_ua=cached_resolver(parse_user_agent, cfg.ua_cache_size),
            brands=brands,
            city=city,
            asn=open_asn(cfg.asn_db) if cfg.asn_db else None,
            anonymous_ip=open_anonymous_ip(cfg.anonymous_ip_db) if cfg.anonymous_ip_db else None,
        )

    @property
    def rules(self) -> RuleSet:
        return self._engine.rules

    def parse(self, record: Mapping[str, Any] | Session | bytes) -> Session:
        """Validate a record; raises :class:`~fingerprint.errors.InvalidSessionError`.

        ``bytes`` are the record's JSON text (a request's body, a log line): decoded
        straight into the session, as the command line reads a line, with no dict in
        between (~20 µs less a login than decoding it first and passing the dict). The
        same session, or the same error, as its decoded record gives. Only bytes: a
        ``str`` is what a JSON text can decode to, and is refused as a record."""
        if isinstance(record, bytes):
            return session_from_text(record, naive_tz=self._time_zone)
        return parse_session(record, naive_tz=self._time_zone)

    def check(
        self,
        record: Mapping[str, Any] | Session | Prepared | bytes,
        *,
        session_id: str | None = None,
        late_by: float | None = None,
        now: float | None = None,
    ) -> Report:
        """Grade one login: a decoded record (a dict), a :class:`Session`, or the
        record's JSON text as ``bytes``, the quickest (see :meth:`parse`).

        ``session_id`` names the session when the record has none; ``late_by`` says the
        line arrived that many seconds behind the newest one (the CLI's reorder buffer),
        which the report notes. ``now`` is the clock reading to judge the login's time
        against (default: the checker's clock); a login dated more than
        ``future_tolerance`` after it raises ``InvalidSessionError`` on ``ts``.
        """
        clock = self._now(now)
        pending = self._begin(record, session_id, late_by, clock)
        windows = pending.engine.windows
        history, error = self._history_stage.view(
            windows, pending.event, now=clock, links=pending.links
        )
        return self._complete(pending, history, error)

    async def acheck(
        self,
        record: Mapping[str, Any] | Session | Prepared | bytes,
        *,
        session_id: str | None = None,
        late_by: float | None = None,
        now: float | None = None,
    ) -> Report:
        """:meth:`check` for asyncio services: the history round trip is awaited
        (asyncio sockets with the Redis store); everything else is the same code."""
        clock = self._now(now)
        pending = self._begin(record, session_id, late_by, clock)
        windows = pending.engine.windows
        history, error = await self._history_stage.aview(
            windows, pending.event, now=clock, links=pending.links
        )
        return self._complete(pending, history, error)

    def begin(
        self,
        prepared: Prepared,
        *,
        session_id: str | None = None,
        late_by: float | None = None,
        now: float | None = None,
    ) -> Begun:
        """:meth:`check`'s first half, everything before history, for another process
        to finish (:meth:`finish`): a two-process batch run reads and begins each
        login in one process and keeps all the history in the other. Raises
        ``InvalidSessionError`` as :meth:`check` does. Not with ``--whois``: the
        record it found stays in this process."""
        clock = self._now(now)
        pending = self._begin(prepared, session_id, late_by, clock)
        ctx = pending.ctx
        # This process keeps the device memo, so the verdict is remembered here: before
        # the history checks, not after them as check() does. A verdict is the same
        # whenever it is made (the memo's tests hold a hit to a fresh check).
        _remember_verdict(pending)
        return Begun(
            session=_for_finish(ctx.session),
            features=_features_for_finish(ctx.features),
            identity=ctx.identity,
            run=_run_for_finish(pending.run),
            event=pending.event,
            sid=pending.sid,
            links=pending.links,
            late_by=late_by,
            clock=clock,
        )

    def finish(self, begun: Begun) -> Report:
        """:meth:`check`'s second half for a login another process began
        (:meth:`begin`): the history round trip, the history checks, the grade."""
        engine = self._engine
        ctx = CheckContext(
            session=begun.session,
            features=begun.features,
            history=None,
            history_error="history is read later",
            late_by=begun.late_by,
            fail_closed=self._config.fail_closed,
            identity=begun.identity,
        )
        pending = _Pending(
            engine=engine,
            ctx=ctx,
            run=begun.run,
            sid=begun.sid,
            event=begun.event,
            key=None,  # remembered by the process that began it
            verdict=None,
            links=begun.links,
        )
        history, error = self._history_stage.view(
            engine.windows, begun.event, now=begun.clock, links=begun.links
        )
        return self._complete(pending, history, error)

    def _now(self, now: float | None) -> float | None:
        if now is not None:
            return now
        return self._clock() if self._clock is not None else None

    def _judge_time(self, session: Session, now: float | None) -> None:
        """Refuse a login dated after the clock by more than the tolerance: stored, it
        would stand in history as the newest login and trim every window around it."""
        if now is None:
            return
        ahead = session.ts.timestamp() - now
        if ahead > self._config.future_tolerance:
            self._counters.add("future_rejects")
            raise InvalidSessionError(
                "ts",
                f"{session.ts.isoformat()} is {ahead:.0f} s ahead of the clock "
                f"(future_tolerance {self._config.future_tolerance:g} s)",
            )

    def _begin(
        self,
        record: Mapping[str, Any] | Session | Prepared | bytes,
        session_id: str | None,
        late_by: float | None,
        now: float | None,
    ) -> _Pending:
        """Everything before history: decode, the device verdict, enrich, the
        session-only checks and the login as history keeps it."""
        if isinstance(record, Prepared):
            engine, session, verdict = record.engine, record.session, record.verdict
            key, login_identity = record.key, record.identity
            if verdict is None and key is not None:
                # Prepared ahead (a sharded run): a line checked since may have made it.
                verdict = engine.device_memo.get(key)
        else:  # prepare()'s work, without the Prepared it would build to be taken apart
            engine = self._engine
            session, key, verdict = self._parse_with_memo(engine, record)
            login_identity = None
        self._judge_time(session, now)
        enriched = self._enricher.enrich(
            session,
            brands=engine.brands,
            device=for_login(verdict.features, session) if verdict else None,
            identity=verdict.identity if verdict else None,
            login_identity=login_identity,
        )
        sid = session.session_id or session_id or derived_session_id(session)
        ctx = CheckContext(
            session=session,
            features=enriched.features,
            history=None,
            history_error="history is read later",
            late_by=late_by,
            fail_closed=self._config.fail_closed,
            whois=enriched.whois,
            identity=enriched.identity,
        )
        run = CheckRun()
        if enriched.whois_pending:
            run.not_evaluated["whois"] = enriched.whois_pending
        codes = engine.rules.codes.codes
        if verdict is not None and verdict.plan is not None:
            run_plan(verdict.plan, ctx, codes=codes, run=run)  # what is left to run
        else:
            known = verdict.by_check if verdict is not None else None
            run_checks(engine.session_checks, ctx, codes=codes, known=known, run=run)
        anonymous, relay = exit_verdict(
            run.findings, exit_checks=engine.exit_checks, relay_codes=engine.relay_codes
        )
        event = login_event(
            sid=sid,
            session=session,
            features=enriched.features,
            anonymous=anonymous or relay,
            local_tz=self._time_zone,
            identity=enriched.identity,
            relay=relay,
        )
        boot_time = session.device.boot_time if session.device else None
        return _Pending(
            engine=engine,
            ctx=ctx,
            run=run,
            sid=sid,
            event=event,
            key=key,
            verdict=verdict,
            links=identity_links(enriched.identity, boot_time),
        )

    def _complete(
        self, pending: _Pending, history: HistoryView | None, history_error: str | None
    ) -> Report:
        """Everything after history: the history checks, the grade, the report."""
        engine, run, event = pending.engine, pending.run, pending.event
        stability = self._stability(engine, history, event)
        first = pending.ctx  # built directly: dataclasses.replace costs ~5 µs per login
        ctx = CheckContext(
            session=first.session,
            features=first.features,
            history=history,
            current_event=event,
            history_error=history_error,
            late_by=first.late_by,
            fail_closed=first.fail_closed,
            stability=stability,
            whois=first.whois,
            identity=first.identity,
        )
        run_checks(engine.history_checks, ctx, codes=engine.rules.codes.codes, known=None, run=run)
        _remember_verdict(pending)
        report = graded_report(
            grader=engine.grader,
            sid=pending.sid,
            ctx=ctx,
            run=run,
            features=features_summary(ctx, stability),
            warnings=arrival_warnings(pending.sid, event, history, ctx.late_by),
        )
        if self._config.track_accounts != 0:
            session = ctx.session
            self._accounts.add(report, session.device.device_id if session.device else None)
        return report

    def prepare(
        self, record: Mapping[str, Any] | Session | bytes, *, identify: bool = False
    ) -> Prepared:
        """Validate a record for :meth:`check` (raises ``InvalidSessionError``).

        Batch runs validate first, so a bad line is rejected before it can move the
        reorder buffer's clock, and check the prepared session later. ``identify``:
        recognise the device now (a sharded run's worker sends it to its peers
        before the check, :meth:`observation`), and the check reuses it.
        """
        engine = self._engine  # one read: a concurrent reload cannot split this call
        session, key, verdict = self._parse_with_memo(engine, record)
        identity = (
            self._enricher.login_identity(session, verdict.identity if verdict else None)
            if identify
            else None
        )
        return Prepared(engine=engine, session=session, key=key, verdict=verdict, identity=identity)

    def observe_device(
        self, record: Mapping[str, Any] | Prepared, *, now: float | None = None
    ) -> bool:
        """Record only the shared sides of a login that another process checks: its
        device's and its address's accounts, and its identity links.

        Used by sharded runs so device sharing and ip_accounts still see every
        account. Invalid records (and logins dated after the clock) are ignored: the
        owning process rejects them. True if recorded. The same as
        ``record_observation(observation(record, now=now))``.
        """
        observation = self.observation(record, now=now)
        return observation is not None and self.record_observation(observation)

    def observation(
        self, record: Mapping[str, Any] | Prepared, *, now: float | None = None
    ) -> Observation | None:
        """What another process records of this login (:meth:`record_observation`), or
        None when it records nothing: the record is invalid (its owner rejects it),
        dated after the clock, or has neither a device nor an address history reads.

        The owner of a line computes this once and passes it to the other workers of
        a sharded run, so they neither decode nor validate the line. A record is
        validated as :meth:`prepare` validates it (the device memo's key never
        refuses one) and the device's identity is remembered by the device's
        content (:class:`~fingerprint.stages.observe.IdentityMemo`).
        """
        engine = self._engine
        if engine.windows is None:
            return None
        clock = self._now(now)
        try:
            session = record.session if isinstance(record, Prepared) else self.parse(record)
            self._judge_time(session, clock)
        except InvalidSessionError:
            return None
        device = session.device
        known = record.identity if isinstance(record, Prepared) else None
        identity = known if known is not None else self._identities.of(device)
        device_id = identity_text(identity, device.device_id if device else None)
        if not device_id and not engine.windows.ip_seconds:
            return None
        event = observed_event(session=session, device_id=device_id)
        links = identity_links(identity, device.boot_time if device else None)
        return Observation(event=event, links=links, clock=clock)

    def record_observation(self, observation: Observation) -> bool:
        """Record another process's login (:meth:`observation`) in this checker's
        history. True if recorded; a store outage is counted, never raised."""
        windows = self._engine.windows
        if windows is None:
            return False
        clock = observation.clock
        try:
            self._history.record_device(observation.event, windows, now=clock)
            record_links = getattr(self._history, "record_links", None)
            if observation.links and record_links is not None:
                record_links(observation.links, observation.event.ts, windows, now=clock)
        except Exception as exc:  # same policy as check: a store outage never raises
            self._counters.add("lost_writes", *timeout_counter(exc))
            return False
        return True

    @cached_property
    def _identities(self) -> IdentityMemo:
        """The identity memo of :meth:`observe_device` (made on first use)."""
        return IdentityMemo(self._hasher, self._config.device_memo_size)

    def _parse_with_memo(
        self, engine: _Engine, record: Mapping[str, Any] | Session | bytes
    ) -> tuple[Session, bytes | None, DeviceVerdict | None]:
        """Validate, and find the verdict of a device content seen before."""
        session = self.parse(record)
        if not engine.device_memo.enabled:
            return session, None, None
        device = session.device
        pinned = battery_pinned(device.battery if device is not None else None)
        key = engine.device_memo.key(session, battery_is_pinned=pinned)
        if key is None:
            return session, None, None
        return session, key, engine.device_memo.get(key)

    def account_summary(self, account_id: str) -> AccountSummary | None:
        """What this checker has seen of one account (worst and latest grade, ...).

        None when it has seen none of the account's logins: a new account, one
        evicted past ``track_accounts`` (least recently active first), or tracking
        off (``track_accounts=0``)."""
        return self._accounts.get(account_id)

    def reload_rules(self, directory: str | Path | None = None) -> RuleSet:
        """Validate the new rules fully, then swap them in; on error the old ones stay
        (and the error is raised). Both are logged on ``fingerprint.rules``."""
        with self._reload_lock:
            folder = directory if directory is not None else self._engine.rules.directory
            try:
                engine = build_engine(load_rules(folder), self._config.device_memo_size)
            except Exception as exc:
                self._counters.add("rule_reload_failures")
                log.warning("rules reload from %s failed, old rules kept: %s", folder, exc)
                raise
            self._engine = engine
            self._counters.add("rule_reloads")
            log.info("rules reloaded from %s (%d checks)", folder, len(engine.checks))
            return engine.rules

    def stats(self) -> CheckerStats:
        """Counters since the checker was built: degraded calls, lost writes,
        timeouts, refused logins, reloads, and the history store's own counters."""
        store_stats = getattr(self._history, "stats", None)
        history = store_stats() if callable(store_stats) else None
        return CheckerStats(history=history, **self._counters.snapshot())

    def _stability(
        self, engine: _Engine, history: HistoryView | None, event: LoginEvent
    ) -> dict[float, Stability] | None:
        request = engine.stability
        if history is None or request is None:
            return None
        return stability_by_window(
            request, history.account_events, event, self._time_zone, history.packed
        )


# What only the first half reads of a session: the device verdict, the device features
# and the session checks read these, the history checks, the grade and the report
# never do. A begun login leaves them behind, and the session's blocks leave out
# the fields they do not hold (``omit_defaults``) while the records made from them
# travel as arrays (``array_like``): on the generator's log a begun login is ~0.8 kB
# (the session ~110 bytes), where it was ~1.7 kB with every field named (the
# session ~580 bytes) and ~2.6 kB with the whole session; the finishing process
# decodes one in ~3.3 µs against ~4.4 (the decoder alone, over 15,000 begun logins).
# The second half reads of the session its account, time and address; of the device
# its id, time zone (ip_hopping) and boot and install times (device_reset); of the
# network its type (ip_accounts); no check after history reads the auth block
# (face_verification is a session check).
_FIRST_HALF_DEVICE = {
    name: None
    for name in (
        "build_fingerprint", "cpu_abi", "sensors", "battery", "screen", "system_props",
        "files_present", "installed_packages", "hooks", "sim", "hardware", "board",
        "product", "cpu_info", "kernel_version", "platform", "os_version", "brand",
        "manufacturer", "model", "has_telephony", "locale", "rooted",
        "debugger_attached", "android_id", "drm_id", "oaid", "idfv", "memory_total",
        "storage_total", "cpu_cores", "build_time",
    )
}  # fmt: skip
_FIRST_HALF_NETWORK = {"vpn_active": None, "http_proxy": None, "interfaces": None, "dns": None}
_FIRST_HALF_SESSION = {"session_id": None, "user_agent": None, "app": None, "auth": None}


def _for_finish(session: Session) -> Session:
    """The session as :meth:`Checker.finish` reads it: less the first half's fields."""
    device, network = session.device, session.network
    if device is not None:
        device = msgspec.structs.replace(device, **_FIRST_HALF_DEVICE)
    if network is not None:
        network = msgspec.structs.replace(network, **_FIRST_HALF_NETWORK)
    return msgspec.structs.replace(session, device=device, network=network, **_FIRST_HALF_SESSION)


def _features_for_finish(features: Features) -> Features:
    """The features as :meth:`Checker.finish` reads them: less the parsed user agent,
    which only a session check reads (~1 µs less to decode)."""
    device = msgspec.structs.replace(features.device, ua=None)
    return msgspec.structs.replace(features, device=device)


def _run_for_finish(run: CheckRun) -> CheckRun:
    """The run as :meth:`Checker.finish` reads it: less the device-scoped outcomes,
    which only the process keeping the device memo reads (~100 bytes a login)."""
    if not run.device:
        return run
    return CheckRun(
        findings=run.findings,
        not_evaluated=run.not_evaluated,
        warnings=run.warnings,
        device=(),
        failed=run.failed,
    )


def _remember_verdict(pending: _Pending) -> None:
    """Keep the device verdict a login made (a memo miss whose checks all ran) for the
    next login with the same device content."""
    if pending.key is None or pending.verdict is not None or pending.run.failed:
        return
    ctx = pending.ctx
    outcomes = pending.run.device
    verdict = DeviceVerdict(
        features=ctx.features.device,
        identity=content_identity(ctx.identity),
        outcomes=outcomes,
        plan=pending.engine.session_plan(outcomes),
    )
    pending.engine.device_memo.put(pending.key, verdict)


class Prepared(msgspec.Struct, frozen=True, kw_only=True):
    """A validated session ready for :meth:`Checker.check` (see :meth:`Checker.prepare`)."""

    engine: _Engine
    session: Session
    key: bytes | None
    verdict: DeviceVerdict | None
    identity: DeviceIdentity | None = None  # the login's, when prepared with identify


class Begun(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """A login :meth:`Checker.begin` has begun, for :meth:`Checker.finish` in another
    process: what the history stage and the checks after it read. Passed as
    MessagePack (:mod:`fingerprint.pipelined`, which sends the IP addresses)."""

    # Less what only the first half reads (_for_finish, _features_for_finish).
    session: Session
    features: Features
    identity: DeviceIdentity
    run: CheckRun
    event: LoginEvent
    sid: str
    links: tuple[Link, ...]
    late_by: float | None
    clock: float | None  # the run's clock for this login


class Observation(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """What another worker of a sharded run records of a login it does not check
    (:meth:`Checker.observation`). A msgspec struct: the workers pass these as
    MessagePack arrays (~1 µs each each way, where pickle took ~15 µs)."""

    event: LoginEvent
    links: tuple[Link, ...]
    clock: float | None  # the run's clock when the owner saw it: the store's "now"


class _Pending(msgspec.Struct, frozen=True, kw_only=True):
    """A check between its two halves (before and after the history round trip)."""

    engine: _Engine
    ctx: CheckContext
    run: CheckRun
    sid: str
    event: LoginEvent
    key: bytes | None
    verdict: DeviceVerdict | None
    links: tuple[Link, ...] = ()


__all__ = [
    "HISTORY_UNAVAILABLE",
    "Checker",
    "CheckerConfig",
    "CheckerStats",
    "ConfigError",
    "DeviceMemo",
    "DeviceVerdict",
]
