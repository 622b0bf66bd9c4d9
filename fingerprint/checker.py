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
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import tzinfo
from functools import lru_cache
from pathlib import Path
from sys import intern
from typing import Any

import orjson

from fingerprint.checks import CHECKS_BY_NAME, Check, CheckContext, NotEvaluated
from fingerprint.checks.base import HistoryIndex
from fingerprint.checks.identity import identity_links
from fingerprint.config import CheckerConfig
from fingerprint.errors import ConfigError, InvalidSessionError
from fingerprint.features import DeviceFeatures, FeatureExtractor, Features
from fingerprint.features.device import BrandNormalizer
from fingerprint.features.identity import DeviceIdentity, IdentityHasher, identity_of, identity_text
from fingerprint.features.network import network_text
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
    session_digest,
)
from fingerprint.report import Finding, Report
from fingerprint.reporting import finding_from_hit
from fingerprint.rollup import AccountRollup, AccountSummary
from fingerprint.rules import CONFIDENT, RuleSet, load_rules
from fingerprint.session import (
    IPAddress,
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
    normalise_user_agent,
    parse_user_agent,
)

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
    grade_order: list[str] = field(default_factory=list)
    device_memo: DeviceMemo = field(default_factory=lambda: DeviceMemo())


@dataclass(frozen=True, slots=True)
class DeviceVerdict:
    """What a device's content, its app and its user agent always produce: the device
    features and the outcomes of the device-scoped checks. ``features.device_id`` is
    the id of the login that made it: the id is no part of the key (see
    :meth:`DeviceMemo.key`), so a hit carries the current login's id instead."""

    features: DeviceFeatures
    outcomes: tuple[tuple[str, Settled], ...]  # device-scoped checks, findings rendered


class DeviceMemo:
    """Device verdicts keyed on the content that decides them (a bounded LRU).

    Logins repeat their device content far more than their ids: one phone model and
    ROM serve many devices, and an app cloner's copies differ only in their ids. The
    key leaves out what changes per login and what no device-scoped check reads: the
    device id and the battery (which enters only as "pinned or not", the one thing a
    device-scoped check reads of it). It is the encoded fields themselves (~1.5 kB),
    not a digest of them: hashing them costs ~2.5 µs a login, and an exact key cannot
    collide. Belongs to one engine, so a rules reload starts empty.
    """

    def __init__(self, max_entries: int = 4_096) -> None:
        self._max = max_entries
        self._entries: OrderedDict[bytes, DeviceVerdict] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(record: Mapping[str, Any], *, battery_is_pinned: bool) -> bytes | None:
        """The device and app fields of a *validated* record less the device id and
        the battery, and the *normalised* user agent: WeChat's UA changes with the
        network type (NetType/WIFI, 4G) while its parse, all the checks read of it,
        does not (:func:`normalise_user_agent` drops exactly such tokens)."""
        device, app = record.get("device"), record.get("app")
        if device is None and app is None:
            return None
        ua = record.get("user_agent")
        if isinstance(ua, str):
            ua = normalise_user_agent(ua)
        if isinstance(device, Mapping):
            device = {k: v for k, v in device.items() if k not in _PER_LOGIN_DEVICE_FIELDS}
        try:
            content = orjson.dumps((device, app, ua))
        except TypeError:  # values orjson cannot encode: no memo for this login
            return None
        return content + (b"|pinned" if battery_is_pinned else b"|-")

    def get(self, key: bytes) -> DeviceVerdict | None:
        with self._lock:
            verdict = self._entries.get(key)
            if verdict is not None:
                self._entries.move_to_end(key)
            return verdict

    def put(self, key: bytes, verdict: DeviceVerdict) -> None:
        with self._lock:
            self._entries[key] = verdict
            if len(self._entries) > self._max:
                self._entries.popitem(last=False)

    @property
    def enabled(self) -> bool:
        return self._max > 0

    def __len__(self) -> int:
        return len(self._entries)


def build_engine(rules: RuleSet, memo_size: int = 4_096) -> _Engine:
    # load_rules has checked the check names, each threshold against its check's
    # declared type and range, and the codes each check emits.
    checks = []
    for name, cls in CHECKS_BY_NAME.items():
        if name in rules.checks.disabled:
            continue
        checks.append(cls.compile(rules, dict(rules.checks.checks.get(name, {}))))
    history_checks = [c for c in checks if c.uses_history]
    return _Engine(
        rules=rules,
        checks=tuple(checks),
        session_checks=tuple(c for c in checks if not c.uses_history),
        history_checks=tuple(history_checks),
        stability=_stability_request(checks),
        exit_checks=frozenset(c.name for c in checks if c.marks_anonymous_exit),
        relay_codes=frozenset().union(*(c.relay_codes for c in checks)),
        grader=Grader(rules.grading, disabled=rules.checks.disabled),
        brands=BrandNormalizer(rules.devices),
        windows=plan_windows(history_checks) if history_checks else None,
        grade_order=[band.grade for band in rules.grading.bands],
        device_memo=DeviceMemo(memo_size),
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
        self.config = config or CheckerConfig()
        tolerance = self.config.future_tolerance
        if not (isinstance(tolerance, int | float) and math.isfinite(tolerance) and tolerance >= 0):
            raise ConfigError(f"future_tolerance must be a finite number >= 0, not {tolerance!r}")
        self._clock = clock
        self._counters = _Counters()
        self._engine = build_engine(load_rules(self.config.rules_dir), self.config.device_memo_size)
        self._reload_lock = threading.Lock()
        self._history: HistoryStore = history if history is not None else self._open_history()
        self._extractor = self._open_sources(self._engine.brands)
        self._accounts = AccountRollup(self._engine.grade_order, self.config.track_accounts)
        self._whois = self._open_whois()
        secret = self.config.identity_secret
        self._hasher = IdentityHasher(secret.encode("utf-8") if isinstance(secret, str) else secret)

    def _open_whois(self) -> Any:
        if not self.config.whois:
            return None
        from fingerprint.sources.whois import open_enricher

        return open_enricher(
            self.config.whois_cache,
            timeout=self.config.whois_timeout,
            max_lookups=self.config.whois_budget,
        )

    def whois_stats(self) -> dict[str, Any] | None:
        """Lookups, cache hits, failures and breaker state, when enrichment is on."""
        return self._whois.stats().as_dict() if self._whois is not None else None

    def close(self) -> None:
        """Release the history connection (Redis), the whois pool and its cache, and
        the MaxMind readers. Idempotent; a closed checker must not be called again.
        ``with Checker(...) as checker:`` closes it on leaving the block."""
        if self._whois is not None:
            self._whois.close()
            self._whois = None
        close = getattr(self._history, "close", None)
        if close is not None:
            close()
        extractor = self._extractor
        for reader in (extractor.city, extractor.asn, extractor.anonymous_ip):
            if reader is not None:
                reader.close()

    def __enter__(self) -> Checker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_history(self) -> HistoryStore:
        url = self.config.history
        if url == "memory":
            return MemoryHistoryStore()
        if url.startswith(("redis://", "rediss://", "unix://")):
            from fingerprint.redis_store import RedisHistoryStore

            return RedisHistoryStore.from_url(url, timeout=self.config.history_timeout)
        raise ConfigError("history must be 'memory' or a redis:// URL", url)

    def _open_sources(self, brands: BrandNormalizer) -> FeatureExtractor:
        cfg = self.config
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

    def parse(self, record: Mapping[str, Any] | Session) -> Session:
        """Validate a record; raises :class:`~fingerprint.errors.InvalidSessionError`."""
        return parse_session(record, naive_tz=self.config.time_zone)

    def check(
        self,
        record: Mapping[str, Any] | Session | Prepared,
        *,
        session_id: str | None = None,
        late_by: float | None = None,
        now: float | None = None,
    ) -> Report:
        """Grade one login.

        ``session_id`` names the session when the record has none; ``late_by`` says the
        line arrived that many seconds behind the newest one (the CLI's reorder buffer),
        which the report notes. ``now`` is the clock reading to judge the login's time
        against (default: the checker's clock); a login dated more than
        ``future_tolerance`` after it raises ``InvalidSessionError`` on ``ts``.
        """
        clock = self._now(now)
        pending = self._begin(record, session_id, late_by, clock)
        history, error = self._history_view(pending.engine, pending.event, clock, pending.links)
        return self._complete(pending, history, error)

    async def acheck(
        self,
        record: Mapping[str, Any] | Session | Prepared,
        *,
        session_id: str | None = None,
        late_by: float | None = None,
        now: float | None = None,
    ) -> Report:
        """:meth:`check` for asyncio services: the history round trip is awaited
        (asyncio sockets with the Redis store); everything else is the same code."""
        clock = self._now(now)
        pending = self._begin(record, session_id, late_by, clock)
        history, error = await self._ahistory_view(
            pending.engine, pending.event, clock, pending.links
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
        if ahead > self.config.future_tolerance:
            self._counters.add("future_rejects")
            raise InvalidSessionError(
                "ts",
                f"{session.ts.isoformat()} is {ahead:.0f} s ahead of the clock "
                f"(future_tolerance {self.config.future_tolerance:g} s)",
            )

    def _begin(
        self,
        record: Mapping[str, Any] | Session | Prepared,
        session_id: str | None,
        late_by: float | None,
        now: float | None,
    ) -> _Pending:
        """Everything before history: parse, features, the session-only checks."""
        prepared = record if isinstance(record, Prepared) else self.prepare(record)
        engine, session = prepared.engine, prepared.session
        self._judge_time(session, now)
        key, verdict = prepared.key, prepared.verdict
        known_device = _for_login(verdict.features, session) if verdict else None
        features = self._extract(engine, session, known_device)
        sid = session.session_id or session_id or _derived_session_id(session)
        known = dict(verdict.outcomes) if verdict else None
        whois, whois_pending = self._whois_lookup(features)
        identity = identity_of(session.device, self._hasher)
        ctx = CheckContext(
            session,
            features,
            None,
            None,
            "history is read later",
            late_by,
            self.config.fail_closed,
            whois=whois,
            identity=identity,
        )
        run = _CheckRun()
        if whois_pending:
            run.not_evaluated["whois"] = whois_pending
        _run_checks(engine, engine.session_checks, ctx, known, run)
        # A VPN, proxy or hosting IP is no location of the user's: history keeps that,
        # so travel and hopping arithmetic can leave it out. A privacy relay's egress is
        # no location either, but no VPN: kept apart for long-term anonymiser use.
        exits, relays = engine.exit_checks, engine.relay_codes
        anonymous = any(f.check in exits and f.severity in CONFIDENT for f in run.findings)
        relay = not anonymous and any(f.code in relays for f in run.findings)
        event = _event(
            sid, session, features, anonymous or relay, self.config.time_zone, identity, relay
        )
        links = identity_links(identity, session.device.boot_time if session.device else None)
        return _Pending(engine, ctx, run, sid, event, key, verdict, links)

    def _complete(
        self, pending: _Pending, history: HistoryView | None, history_error: str | None
    ) -> Report:
        """Everything after history: the history checks, the grade, the report."""
        engine, run, event = pending.engine, pending.run, pending.event
        stability = self._stability(engine, history, event)
        first = pending.ctx  # built directly: dataclasses.replace costs ~5 µs per login
        ctx = CheckContext(
            first.session,
            first.features,
            history,
            event,
            history_error,
            first.late_by,
            first.fail_closed,
            stability,
            first.whois,
            first.identity,
        )
        _run_checks(engine, engine.history_checks, ctx, None, run)
        session, features = ctx.session, ctx.features
        summary = features.summary()
        if ctx.whois is not None:
            summary["whois"] = {
                "asn": ctx.whois.asn,
                "org": ctx.whois.asn_description,
                "network": ctx.whois.network_name,
                "cidr": ctx.whois.cidr,
                "country": ctx.whois.country,
                "from_cache": ctx.whois.from_cache,
            }
        identity = ctx.identity
        summary["device_key"] = identity.key
        summary["device_key_level"] = identity.level
        summary["device_key_confidence"] = identity.confidence
        for days, values in (stability or {}).items():
            summary[f"stability_{days:g}d"] = values.to_dict()
        if pending.key is not None and pending.verdict is None and not run.failed:
            verdict = DeviceVerdict(features.device, run.device)
            engine.device_memo.put(pending.key, verdict)
        graded = engine.grader.grade(run.findings, run.not_evaluated)
        report = Report(
            session_id=pending.sid,
            account_id=session.account_id,
            ts=session.ts,
            grade=graded.grade,
            score=graded.score,
            blacklisted=graded.blacklisted,
            findings=tuple(run.findings),
            contributions=graded.contributions,
            not_evaluated=run.not_evaluated,
            features=summary,
            device_component=graded.device_component,
            warnings=tuple(
                run.warnings + _arrival_warnings(pending.sid, event, history, ctx.late_by)
            ),
            points_scaled=graded.points_scaled,
        )
        if self.config.track_accounts != 0:
            self._accounts.add(report, session.device.device_id if session.device else None)
        return report

    def prepare(self, record: Mapping[str, Any] | Session) -> Prepared:
        """Validate a record for :meth:`check` (raises ``InvalidSessionError``).

        Batch runs validate first, so a bad line is rejected before it can move the
        reorder buffer's clock, and check the prepared session later.
        """
        engine = self._engine  # one read: a concurrent reload cannot split this call
        session, key, verdict = self._parse_with_memo(engine, record)
        return Prepared(engine, session, key, verdict)

    def observe_device(
        self, record: Mapping[str, Any] | Prepared, *, now: float | None = None
    ) -> bool:
        """Record only the shared sides of a login that another process checks: its
        device's and its address's accounts.

        Used by sharded runs so device sharing and ip_accounts still see every
        account. Invalid
        records (and logins dated after the clock) are ignored: the owning process
        rejects them. True if recorded.
        """
        engine = self._engine
        if engine.windows is None:
            return False
        clock = self._now(now)
        try:
            prepared = record if isinstance(record, Prepared) else self.prepare(record)
            self._judge_time(prepared.session, clock)
        except InvalidSessionError:
            return False
        session = prepared.session
        identity = identity_of(session.device, self._hasher)
        device_id = identity_text(identity, session.device.device_id if session.device else None)
        if not device_id and not engine.windows.ip_seconds:
            return False
        # The address and its block too: ip_accounts counts every account on them.
        event = LoginEvent(
            session.ts.timestamp(),
            session_digest(session.session_id or ""),
            session.account_id,
            device_id or None,
            _ip_text(session.ip),
            None,
            None,
            None,
            None,
            False,
            network=_network_of(session.ip),
        )
        try:
            self._history.record_device(event, engine.windows, now=clock)
            links = identity_links(identity, session.device.boot_time if session.device else None)
            record_links = getattr(self._history, "record_links", None)
            if links and record_links is not None:
                record_links(links, event.ts, engine.windows, now=clock)
        except Exception as exc:  # same policy as check: a store outage never raises
            self._counters.add("lost_writes", *_timeout_counter(exc))
            return False
        return True

    def _parse_with_memo(
        self, engine: _Engine, record: Mapping[str, Any] | Session
    ) -> tuple[Session, bytes | None, DeviceVerdict | None]:
        """Validate, and find the verdict of a device content seen before."""
        session = self.parse(record)
        if not isinstance(record, Mapping) or not engine.device_memo.enabled:
            return session, None, None
        device = session.device
        pinned = battery_pinned(device.battery if device is not None else None)
        key = engine.device_memo.key(record, battery_is_pinned=pinned)
        if key is None:
            return session, None, None
        return session, key, engine.device_memo.get(key)

    def _extract(
        self, engine: _Engine, session: Session, device: DeviceFeatures | None
    ) -> Features:
        extractor = self._extractor
        if extractor.brands is not engine.brands:
            # Rules were reloaded: brand tables are rule data, lookups are not.
            extractor = FeatureExtractor(
                extractor.resolve_ua,
                engine.brands,
                extractor.city,
                extractor.asn,
                extractor.anonymous_ip,
            )
            self._extractor = extractor
        return extractor.extract(session, device)

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
                engine = build_engine(load_rules(folder), self.config.device_memo_size)
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

    def _whois_lookup(self, features: Features) -> tuple[Any, str | None]:
        """The registry record of an IP no ASN database covers: (record, why not)."""
        if self._whois is None or features.network.asn is not None:
            return None, None
        if features.network.ip_class != "public":
            return None, None
        from fingerprint.sources.whois import WhoisRecord

        found = self._whois.lookup(str(features.network.ip), wait=self.config.whois_wait)
        if isinstance(found, WhoisRecord):
            return found, None
        if found is None:
            return None, "whois: no registry answer (failed, budget spent or breaker open)"
        return None, "whois: lookup still running"

    def _stability(
        self, engine: _Engine, history: HistoryView | None, event: LoginEvent
    ) -> dict[float, Stability] | None:
        request = engine.stability
        if history is None or request is None:
            return None
        return stability_by_window(request, history.account_events, event, self.config.time_zone)

    def _history_view(
        self, engine: _Engine, event: LoginEvent, now: float | None, links: tuple[Link, ...]
    ) -> tuple[HistoryView | None, str | None]:
        if engine.windows is None:
            return None, "no history check enabled"
        try:
            view = self._history.record_and_fetch(event, engine.windows, now=now)
            return self._with_links(view, engine.windows, event, now, links), None
        except Exception as exc:  # a store outage must not fail the login check
            return None, self._unavailable(exc)

    def _with_links(
        self,
        view: HistoryView,
        windows: Windows,
        event: LoginEvent,
        now: float | None,
        links: tuple[Link, ...],
    ) -> HistoryView:
        """The view with the identity links this login adds (a store that keeps none
        leaves ``links`` None: the identity checks then say so)."""
        record = getattr(self._history, "record_links", None)
        if record is None:
            return view
        found = record(links, event.ts, windows, now=now) if links else {}
        return replace(view, links=found)

    async def _ahistory_view(
        self, engine: _Engine, event: LoginEvent, now: float | None, links: tuple[Link, ...]
    ) -> tuple[HistoryView | None, str | None]:
        if engine.windows is None:
            return None, "no history check enabled"
        fetch = getattr(self._history, "arecord_and_fetch", None)
        try:
            if fetch is None:
                view = self._history.record_and_fetch(event, engine.windows, now=now)
            else:
                view = await fetch(event, engine.windows, now=now)
            record = getattr(self._history, "arecord_links", None)
            if record is not None and links:  # awaited: never a sync round trip on the loop
                found = await record(links, event.ts, engine.windows, now=now)
                return replace(view, links=found), None
            return self._with_links(view, engine.windows, event, now, links), None
        except Exception as exc:
            return None, self._unavailable(exc)

    def _unavailable(self, exc: Exception) -> str:
        """Count a check that goes on without history, and say why."""
        self._counters.add("degraded", "lost_writes", *_timeout_counter(exc))
        return f"{HISTORY_UNAVAILABLE}: {type(exc).__name__}: {exc}"[:300]


# Device fields that change from login to login and that no device-scoped check
# reads: left out of the device memo's key (the battery enters it as pinned or not).
_PER_LOGIN_DEVICE_FIELDS = frozenset({"battery", "device_id"})


def _for_login(known: DeviceFeatures, session: Session) -> DeviceFeatures:
    """Device features remembered for the device's content, with this login's id."""
    device_id = session.device.device_id if session.device is not None else None
    return known if known.device_id == device_id else replace(known, device_id=device_id)


HISTORY_UNAVAILABLE = "history store unavailable"  # how not_evaluated reasons begin then


def _timeout_counter(exc: Exception) -> tuple[str, ...]:
    # redis-py's own TimeoutError (TLS connections) is no builtin TimeoutError.
    timed_out = isinstance(exc, TimeoutError) or type(exc).__name__ == "TimeoutError"
    return ("history_timeouts",) if timed_out else ()


@dataclass(frozen=True, slots=True)
class Prepared:
    """A validated session ready for :meth:`Checker.check` (see :meth:`Checker.prepare`)."""

    engine: _Engine
    session: Session
    key: bytes | None
    verdict: DeviceVerdict | None


@dataclass(frozen=True, slots=True)
class _Pending:
    """A check between its two halves (before and after the history round trip)."""

    engine: _Engine
    ctx: CheckContext
    run: _CheckRun
    sid: str
    event: LoginEvent
    key: bytes | None
    verdict: DeviceVerdict | None
    links: tuple[Link, ...] = ()


def _derived_session_id(session: Session) -> str:
    return f"{session.account_id}@{int(session.ts.timestamp() * 1000)}"


def _event(
    sid: str,
    session: Session,
    features: Features,
    anonymous: bool,
    local_tz: tzinfo,
    identity: DeviceIdentity,
    relay: bool = False,
) -> LoginEvent:
    geo = features.geo
    device, network = session.device, session.network
    # Carriers and network types are interned: few, shared by millions of accounts.
    # Not ids, IPs and networks: mostly one account's (the store shares its own
    # copies between its tables), and the interned table never shrinks.
    return LoginEvent(
        ts=session.ts.timestamp(),
        session_digest=session_digest(sid),
        account_id=session.account_id,
        # The device as history counts it: the derived key when it is confident (one
        # phone under renewed ids stays one device), else the client's device id.
        device_id=identity_text(identity, device.device_id if device else None) or None,
        ip=_ip_text(session.ip),
        province=geo.province if geo else None,
        latitude=geo.latitude if geo else None,
        longitude=geo.longitude if geo else None,
        accuracy_km=geo.accuracy_radius_km if geo else None,
        ip_anonymous=anonymous,
        network=_network_of(session.ip),
        asn=features.network.asn.number if features.network.asn else None,
        network_type=intern(network.type) if network and network.type else None,
        carrier=intern(device.sim.carrier)
        if device and device.sim and device.sim.carrier
        else None,
        hour=session.ts.astimezone(local_tz).hour,
        ip_relay=relay,
    )


@lru_cache(maxsize=4_096)
def _ip_text(address: IPAddress) -> str:
    return str(address)


@lru_cache(maxsize=4_096)
def _network_of(address: IPAddress) -> str:
    """The /24 (IPv4) or /48 (IPv6) holding the address: one subscriber line or site."""
    return network_text(address, 24 if address.version == 4 else 48)


@dataclass(slots=True)
class _CheckRun:
    findings: list[Finding] = field(default_factory=list)
    not_evaluated: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    device: tuple[tuple[str, Settled], ...] = ()
    failed: bool = False


def _run_checks(
    engine: _Engine,
    checks: Sequence[Check],
    ctx: CheckContext,
    known: dict[str, Settled] | None,
    run: _CheckRun,
) -> None:
    """Run ``checks`` into ``run`` (reusing ``known`` device-scoped results, already
    rendered as findings); one failing check is recorded and the others still run."""
    device_results: list[tuple[str, Settled]] = []
    codes = engine.rules.codes.codes
    for check in checks:
        result = known.get(check.name) if known is not None else None
        if result is None:
            try:
                outcome = check.evaluate(ctx)
            except Exception as exc:
                run.failed = True
                run.not_evaluated[check.name] = f"check failed: {type(exc).__name__}"
                run.warnings.append(f"{check.name} failed: {type(exc).__name__}: {exc}"[:300])
                continue
            if isinstance(outcome, NotEvaluated):
                result = outcome
            elif outcome:
                late = ctx.late_by if check.uses_history else None
                result = tuple([finding_from_hit(check.name, hit, codes, late) for hit in outcome])
            else:
                result = ()  # most checks, most logins: nothing to render
            if check.device_scoped:
                device_results.append((check.name, result))
        if isinstance(result, NotEvaluated):
            run.not_evaluated[check.name] = result.reason
        elif result:
            run.findings.extend(result)
    if device_results:
        run.device += tuple(device_results)


# A check's result once settled: why it was not evaluated, or its findings.
Settled = NotEvaluated | tuple[Finding, ...]


def _arrival_warnings(
    sid: str, event: LoginEvent, history: HistoryView | None, late_by: float | None
) -> list[str]:
    warnings = []
    if late_by is not None:
        warnings.append(f"late arrival: {late_by:.0f} s behind the newest line")
    digest = event.session_digest
    if history is not None and any(e.session_digest == digest for e in history.account_events):
        warnings.append(f"duplicate session id {sid!r} within the history window")
    return warnings


__all__ = ["Checker", "CheckerConfig", "CheckerStats", "ConfigError"]
