"""Optional RDAP/whois enrichment through ``ipwhois``: cached, bounded, never in the way.

A registry lookup takes hundreds of milliseconds and fails often, so nothing on the
checking path ever waits for one unless told to:

* :class:`WhoisCache` keeps answers in SQLite keyed by the *network range* the registry
  returned, so one lookup serves every address of that network, for 7 days; failures
  are remembered for 15 minutes per /24 (/48) so a bad network is not asked again.
* :class:`CircuitBreaker` stops asking after consecutive failures, then lets one probe
  through after a cool-down.
* :class:`WhoisClient` is one synchronous lookup: cache, negative cache, breaker, then
  ``ipwhois.IPWhois(ip, timeout, opener).lookup_rdap(...)`` under a total deadline
  that covers every request and every byte of every body, with a size cap per body.
  Redirects are followed only to the registries' own RDAP services
  (:data:`REGISTRY_RDAP_HOSTS`), so no other host's answer is ever used or cached.
  :attr:`Resolution.reason` says why a lookup gave no answer.
* :class:`WhoisEnricher` is the front the checker and the CLI use: a cached answer at
  once, otherwise a lookup in a small thread pool, waited on for at most ``wait``
  seconds (0 by default: the answer lands in the cache for the next session).

``ipwhois`` is imported only when a :class:`WhoisClient` is built, so the rest of the
package works without it.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import os
import re
import socket
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple, final
from urllib.error import HTTPError, URLError
from urllib.parse import urljoin, urlsplit
from urllib.request import (
    HTTPDefaultErrorHandler,
    HTTPErrorProcessor,
    HTTPHandler,
    HTTPRedirectHandler,
    HTTPSHandler,
    OpenerDirector,
    ProxyHandler,
    Request,
    UnknownHandler,
)

from fingerprint.errors import ConfigError
from fingerprint.rules import NetworkFile, RulePattern, compile_rule_regex
from fingerprint.session import IPAddress

log = logging.getLogger(__name__)

DEFAULT_SUCCESS_TTL: Final = 7 * 24 * 3600.0
DEFAULT_FAILURE_TTL: Final = 15 * 60.0
DEFAULT_TIMEOUT: Final = 3.0
# Cymru DNS gives the ASN and its description; ARIN's REST API (http) only the
# registry. Port-43 whois is left out: it is often firewalled and costs a timeout.
DEFAULT_ASN_METHODS: Final = ("dns", "http")

# A failure is remembered for the whole /24 (/48) around the address.
FAILURE_PREFIX: Final = {4: 24, 6: 48}
# A range not inside one block of this size is not trusted for every address in it:
# it is cached for the queried address's /24 (/48) only. A /8 (IPv4) or /12 (IPv6) is
# what IANA hands a registry, not one holder's network: an answer that wide (a
# registry's parent block, a misconfigured or hostile server) never marks a whole
# /8 as one network. Also bounds the index scan.
WIDEST_PREFIX: Final = {4: 9, 6: 13}
_MAX_TEXT = 200
# A registry's RDAP answer for an address is a few kB (ARIN's largest, with every
# entity, some 100 kB); a body past this is not an answer worth its memory.
DEFAULT_MAX_BYTES: Final = 1 << 20
# Hosts a registry may refer a lookup to (RFC 9224's bootstrap services of the five
# RIRs). ARIN redirects addresses transferred to another RIR there.
REGISTRY_RDAP_HOSTS: Final = frozenset(
    {"rdap.arin.net", "rdap.db.ripe.net", "rdap.apnic.net", "rdap.lacnic.net", "rdap.afrinic.net"}
)
_MAX_REFERRALS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024

Clock = Callable[[], float]
Outcome = Literal["cache", "negative", "fetched", "failed", "breaker_open", "not_public", "invalid"]
# Why a lookup failed (Resolution.failure): the registries timed out, were not
# reachable, sent more than max_bytes, referred elsewhere than a registry, answered
# with an HTTP error or with something unusable; "error" is anything else.
Failure = Literal[
    "timeout", "unreachable", "too_large", "redirect_refused", "http_error", "unusable", "error"
]

# Objects holding locks, connections or threads, reset in a forked child (the batch
# runner forks its workers).
_FORK_SENSITIVE: weakref.WeakSet[Any] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for obj in list(_FORK_SENSITIVE):
        obj._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


# --- records ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WhoisRecord:
    """What the registry says about the network of an address.

    ``cidr`` is the first CIDR of the registry's range; ``start_address`` and
    ``end_address`` are the whole range (what the cache is keyed by).
    """

    asn: int | None
    asn_description: str | None
    network_name: str | None
    cidr: str | None
    country: str | None
    source: str = "rdap"
    fetched_at: float = 0.0
    from_cache: bool = False
    start_address: str | None = None
    end_address: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["from_cache"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], from_cache: bool = True) -> WhoisRecord:
        asn = data.get("asn")
        return cls(
            asn=int(asn) if asn is not None else None,
            asn_description=data.get("asn_description"),
            network_name=data.get("network_name"),
            cidr=data.get("cidr"),
            country=data.get("country"),
            source=str(data.get("source") or "rdap"),
            fetched_at=float(data.get("fetched_at") or 0.0),
            from_cache=from_cache,
            start_address=data.get("start_address"),
            end_address=data.get("end_address"),
        )

    def range(self) -> tuple[IPAddress, IPAddress] | None:
        """The registry's range, from start/end or else from the CIDR."""
        try:
            if self.start_address and self.end_address:
                lo = ipaddress.ip_address(self.start_address)
                hi = ipaddress.ip_address(self.end_address)
                return (lo, hi) if _contains(lo, hi, lo) and _contains(lo, hi, hi) else None
            if self.cidr:
                network = ipaddress.ip_network(self.cidr, strict=False)
                return network.network_address, network.broadcast_address
        except ValueError:
            pass
        return None


@final
class Pending:
    """Returned by :meth:`WhoisEnricher.lookup` while the answer is on its way. Falsy."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "PENDING"


PENDING: Final = Pending()


def _parse_address(ip: str | IPAddress) -> IPAddress | None:
    if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
        address: IPAddress = ip
    else:
        try:
            address = ipaddress.ip_address(str(ip).strip())
        except ValueError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _contains(lo: IPAddress, hi: IPAddress, address: IPAddress) -> bool:
    same = lo.version == hi.version == address.version
    return same and int(lo) <= int(address) <= int(hi)


def _packed(address: IPAddress) -> bytes:
    return address.packed  # fixed width, big-endian: byte order is numeric order


def _block(address: IPAddress, prefix: int) -> tuple[IPAddress, IPAddress]:
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return network.network_address, network.broadcast_address


def _within_widest(lo: IPAddress, hi: IPAddress) -> bool:
    """Do both ends lie in one WIDEST_PREFIX block (so the index scan finds the range)?"""
    shift = lo.max_prefixlen - WIDEST_PREFIX[lo.version]
    return int(lo) >> shift == int(hi) >> shift


# --- the persistent cache ---------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS networks (
    version INTEGER NOT NULL, lo BLOB NOT NULL, hi BLOB NOT NULL,
    record TEXT NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (version, lo, hi)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS failures (
    version INTEGER NOT NULL, lo BLOB NOT NULL, hi BLOB NOT NULL,
    reason TEXT NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (version, lo, hi)
) WITHOUT ROWID;
"""
# The most specific unexpired range containing the address. Ranges never start more
# than WIDEST_PREFIX below it, which bounds the index scan.
_FIND = """
SELECT {column} FROM {table}
WHERE version = ? AND lo BETWEEN ? AND ? AND hi >= ? AND expires_at > ?
ORDER BY lo DESC, hi ASC LIMIT 1
"""


_INHERITED: list[sqlite3.Connection] = []  # a forked child's copies of parent connections


def default_cache_path() -> Path:
    """``$XDG_CACHE_HOME/fingerprint/whois.sqlite3``, else ``~/.cache/fingerprint/...``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fingerprint" / "whois.sqlite3"


class WhoisCache:
    """Registry answers in SQLite, keyed by network range; safe to share between threads.

    One connection behind a lock (every statement takes microseconds), WAL so that
    several processes can share the file. Errors after opening are logged and read as
    "not cached": a broken cache costs lookups, never a failed check.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        clock: Clock = time.time,
        busy_timeout: float = 1.0,
    ) -> None:
        self.path = str(path) if path is not None else str(default_cache_path())
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._closed = False
        self._conn = self._open()
        _FORK_SENSITIVE.add(self)

    def _open(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"cannot create the whois cache folder ({exc})", self.path
                ) from None
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            conn.execute("DELETE FROM networks WHERE expires_at <= ?", (self._clock(),))
            conn.execute("DELETE FROM failures WHERE expires_at <= ?", (self._clock(),))
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise ConfigError(f"cannot open the whois cache ({exc})", self.path) from None
        return conn

    def _after_fork(self) -> None:
        # The parent's connection must be neither used nor closed here (closing could
        # checkpoint and remove the WAL under the parent): keep it, open our own.
        self._lock = threading.Lock()
        _INHERITED.append(self._conn)
        if not self._closed:
            try:
                self._conn = self._open()
            except ConfigError as exc:
                log.warning("%s", exc)
                self._closed = True

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                if self._closed:
                    return []
                return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            log.warning("whois cache error (%s): %s", self.path, exc)
            return []

    def _find(self, table: str, column: str, address: IPAddress) -> Any:
        floor, _ = _block(address, WIDEST_PREFIX[address.version])
        key = _packed(address)
        rows = self._query(
            _FIND.format(table=table, column=column),
            (address.version, _packed(floor), key, key, self._clock()),
        )
        return rows[0][0] if rows else None

    def get(self, ip: str | IPAddress) -> WhoisRecord | None:
        """The cached record of the network containing ``ip``, if one has not expired."""
        address = _parse_address(ip)
        if address is None:
            return None
        text = self._find("networks", "record", address)
        if text is None:
            return None
        try:
            return WhoisRecord.from_json(json.loads(text), from_cache=True)
        except (ValueError, TypeError) as exc:
            log.warning("whois cache: unreadable record for %s (%s)", address, exc)
            return None

    def put(
        self,
        record: WhoisRecord,
        ttl: float = DEFAULT_SUCCESS_TTL,
        *,
        around: str | IPAddress | None = None,
    ) -> bool:
        """Cache ``record`` for its whole range; False when it has no usable range.

        A range not inside one :data:`WIDEST_PREFIX` block is cached only for the /24 (/48)
        around ``around`` (the queried address), or not at all without it.
        """
        bounds = record.range()
        if bounds is None:
            return False
        lo, hi = bounds
        if not _within_widest(lo, hi):
            near = _parse_address(around) if around is not None else None
            if near is None or not _contains(lo, hi, near):
                return False
            lo, hi = _block(near, FAILURE_PREFIX[near.version])
        text = json.dumps(record.to_json(), ensure_ascii=False, separators=(",", ":"))
        self._write(
            "INSERT OR REPLACE INTO networks VALUES (?, ?, ?, ?, ?)",
            (lo.version, _packed(lo), _packed(hi), text, self._clock() + ttl),
        )
        return True

    def failure(self, ip: str | IPAddress) -> str | None:
        """Why a recent lookup around ``ip`` failed, while that is remembered."""
        address = _parse_address(ip)
        if address is None:
            return None
        reason = self._find("failures", "reason", address)
        return str(reason) if reason is not None else None

    def put_failure(
        self, ip: str | IPAddress, ttl: float = DEFAULT_FAILURE_TTL, reason: str = "failed"
    ) -> None:
        """Remember a failed lookup for the /24 (/48) around ``ip``."""
        address = _parse_address(ip)
        if address is None:
            return
        lo, hi = _block(address, FAILURE_PREFIX[address.version])
        self._write(
            "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?)",
            (address.version, _packed(lo), _packed(hi), reason[:_MAX_TEXT], self._clock() + ttl),
        )

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        try:
            with self._lock:
                if self._closed:
                    return 0
                return self._conn.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            log.warning("whois cache error (%s): %s", self.path, exc)
            return 0

    def purge_expired(self) -> int:
        """Delete expired entries; returns how many went."""
        now = self._clock()
        return self._write("DELETE FROM networks WHERE expires_at <= ?", (now,)) + self._write(
            "DELETE FROM failures WHERE expires_at <= ?", (now,)
        )

    def __len__(self) -> int:
        rows = self._query(
            "SELECT (SELECT count(*) FROM networks) + (SELECT count(*) FROM failures)", ()
        )
        return int(rows[0][0]) if rows else 0

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()


# --- the circuit breaker ----------------------------------------------------------

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; after ``cool_down`` seconds one
    probe is let through (half-open): its success closes the breaker, its failure
    opens it for another cool-down."""

    def __init__(
        self, threshold: int = 5, cool_down: float = 60.0, *, clock: Clock = time.monotonic
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.threshold = threshold
        self.cool_down = cool_down
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        _FORK_SENSITIVE.add(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """``open`` while requests are refused; ``half_open`` once one may go through."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._probing or self._clock() - self._opened_at < self.cool_down:
                return "open"
            return "half_open"

    def allow(self) -> bool:
        """May a request go out now? In half-open state only the first caller gets True."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._probing or self._clock() - self._opened_at < self.cool_down:
                return False
            self._probing = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probing = False

    def release(self) -> None:
        """A granted request that never reached the registry: no verdict either way."""
        with self._lock:
            self._probing = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._probing or self._failures >= self.threshold:
                self._opened_at = self._clock()
            self._probing = False


# --- one lookup -------------------------------------------------------------------


class UnusableAnswer(Exception):
    """A registry answer that cannot be used (no range, range not containing the IP)."""


class _Refused(URLError):
    """A request or body we stopped: ipwhois reports it as an HTTP lookup failure;
    the opener keeps the kind, which ipwhois's message would lose."""


def registry_opener() -> OpenerDirector:
    """urllib's default opener less its redirect handler: the client follows
    referrals itself, to registries only. Honours ``*_proxy`` variables."""
    opener = OpenerDirector()
    for handler in (
        ProxyHandler(),
        HTTPHandler(),
        HTTPSHandler(),
        HTTPDefaultErrorHandler(),
        HTTPErrorProcessor(),
        UnknownHandler(),
    ):
        opener.add_handler(handler)
    return opener


class _DeadlineOpener(OpenerDirector):
    """Wraps the opener ipwhois uses, for one lookup: every request and every read of
    a body gets at most the time left; a body is at most ``max_bytes``; a redirect is
    followed only to a registry host. The first failure's kind is kept in ``failure``.
    """

    def __init__(
        self,
        inner: OpenerDirector,
        deadline: float,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        referral_hosts: frozenset[str] = REGISTRY_RDAP_HOSTS,
    ) -> None:
        super().__init__()
        self._inner = inner
        self._deadline = deadline
        self.max_bytes = max_bytes
        self.referral_hosts = referral_hosts
        self.failure: tuple[Failure, str] | None = None

    def fail(self, kind: Failure, detail: str) -> _Refused:
        if self.failure is None:
            self.failure = (kind, detail)
        return _Refused(detail)

    def left(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise self.fail("timeout", "no complete answer before the lookup's deadline")
        return left

    def open(self, fullurl: str | Request, data: Any = None, timeout: Any = None) -> Any:
        request = fullurl if isinstance(fullurl, Request) else Request(fullurl)
        for _ in range(_MAX_REFERRALS + 1):
            left = self.left()
            if isinstance(timeout, int | float):
                left = min(left, float(timeout))
            try:
                response = self._inner.open(request, data, left)
            except HTTPError as exc:
                if exc.code not in _REDIRECTS:
                    raise self.fail(
                        "http_error", f"the registry answered HTTP {exc.code}"
                    ) from None
                target = urljoin(request.full_url, exc.headers.get("Location") or "")
                exc.close()
                request = self._referral(request, target)
                continue
            except _Refused:
                raise
            except TimeoutError:
                raise self.fail("timeout", "no answer before the lookup's deadline") from None
            except (URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise self.fail("unreachable", f"registry unreachable ({reason})") from None
            return _BoundedBody(response, self)
        raise self.fail("redirect_refused", f"more than {_MAX_REFERRALS} referrals")

    def _referral(self, request: Request, target: str) -> Request:
        parts = urlsplit(target)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or host not in self.referral_hosts:
            raise self.fail("redirect_refused", f"referred to {host or target!r}, not a registry")
        return Request(target, headers=dict(request.header_items()))


class _BoundedBody:
    """A response whose body is read under the lookup's deadline and size cap: a body
    dripped a byte at a time cannot outlast the deadline, a huge one is not kept."""

    def __init__(self, response: Any, opener: _DeadlineOpener) -> None:
        self._response = response
        self._opener = opener
        length = response.headers.get("Content-Length") if response.headers else None
        if length and length.isdigit() and int(length) > opener.max_bytes:
            response.close()
            raise opener.fail("too_large", f"answer of {int(length):,} bytes, over the cap")

    def read(self, amount: int | None = None) -> bytes:
        opener, response = self._opener, self._response
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                _socket_timeout(response, opener.left())
                chunk = (
                    response.read1(_CHUNK) if hasattr(response, "read1") else response.read(_CHUNK)
                )
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > opener.max_bytes:
                    raise opener.fail("too_large", f"answer over {opener.max_bytes:,} bytes")
                chunks.append(chunk)
        except TimeoutError:
            raise opener.fail("timeout", "answer not complete before the deadline") from None
        except _Refused:
            response.close()
            raise

    readall = read

    def close(self) -> None:
        self._response.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)


def _socket_timeout(response: Any, seconds: float) -> None:
    """Bound the next socket read by the time left (http.client keeps the socket
    behind ``fp.raw._sock``; without it a read waits the request's own timeout)."""
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    if isinstance(sock, socket.socket):
        sock.settimeout(max(seconds, 0.001))


class Resolution(NamedTuple):
    record: WhoisRecord | None
    outcome: Outcome
    failure: Failure | None = None  # why, when outcome is "failed"
    reason: str | None = None  # one line for people: why there is no answer


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:_MAX_TEXT] or None


_ASN = re.compile(r"^\s*(?:AS)?(\d{1,10})\b", re.IGNORECASE)


def _parse_asn(value: Any) -> int | None:
    """``"37963"``, ``"AS37963"``, ``"4134 4809"`` (first origin), 37963; not ``"NA"``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value < 2**32 else None
    if isinstance(value, str):
        found = _ASN.match(value)
        if found:
            number = int(found[1])
            return number if 0 < number < 2**32 else None
    return None


def _origin_asn(raw: Any) -> int | None:
    """ARIN's RDAP extension ``arin_originas0_originautnums`` (origin ASes of the net)."""
    if isinstance(raw, dict):
        origins = raw.get("arin_originas0_originautnums")
        if isinstance(origins, list):
            for value in origins:
                number = _parse_asn(value)
                if number is not None:
                    return number
    return None


def record_from_rdap(result: Any, address: IPAddress, fetched_at: float) -> WhoisRecord:
    """Turn ``IPWhois.lookup_rdap(inc_raw=True)`` output into a record, or raise."""
    if not isinstance(result, dict):
        raise UnusableAnswer("lookup_rdap returned no mapping")
    network = result.get("network")
    if not isinstance(network, dict):
        raise UnusableAnswer("no network object in the answer")
    cidrs = [c.strip() for c in str(network.get("cidr") or "").split(",") if c.strip()]
    record = WhoisRecord(
        asn=_parse_asn(result.get("asn")) or _origin_asn(result.get("raw")),
        asn_description=_text(result.get("asn_description")),
        network_name=_text(network.get("name")),
        cidr=cidrs[0] if cidrs else None,
        country=_text(result.get("asn_country_code")) or _text(network.get("country")),
        source="rdap",
        fetched_at=fetched_at,
        from_cache=False,
        start_address=_text(network.get("start_address")),
        end_address=_text(network.get("end_address")),
    )
    bounds = record.range()
    if bounds is None:
        raise UnusableAnswer("no usable address range in the answer")
    if not _contains(*bounds, address):
        raise UnusableAnswer(f"answer is for {bounds[0]}-{bounds[1]}, not {address}")
    if record.asn is None and record.network_name is None and record.asn_description is None:
        raise UnusableAnswer("answer names neither an ASN nor a network")
    lo, hi = _supported(bounds, address, cidrs, result.get("asn_cidr"), result.get("asn"))
    if (lo, hi) != bounds:
        containing = ipaddress.summarize_address_range(lo, hi)
        record = replace(
            record,
            start_address=str(lo),
            end_address=str(hi),
            cidr=str(next(iter(containing))),
        )
    return record


def _supported(
    bounds: tuple[IPAddress, IPAddress],
    address: IPAddress,
    cidrs: list[str],
    asn_cidr: Any,
    asn: Any,
) -> tuple[IPAddress, IPAddress]:
    """The part of the answer's range its facts hold for around ``address``: the
    network's range, narrowed to the CIDR of it holding the address (a range may be
    several) and, when the ASN came from a routing lookup, to the announced prefix:
    that ASN is only known for that prefix."""
    lo, hi = bounds
    narrowing = list(cidrs)
    if _parse_asn(asn) is not None and isinstance(asn_cidr, str):
        narrowing.append(asn_cidr)
    for text in narrowing:
        try:
            network = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            continue
        first, last = network.network_address, network.broadcast_address
        if not _contains(first, last, address):
            continue
        lo = max(lo, first, key=int)
        hi = min(hi, last, key=int)
    return lo, hi


def _defined(address: IPAddress) -> bool:
    """Private, shared, reserved, documentation, multicast...: never looked up.

    Close to ipwhois's own ``ipv4_is_defined`` (which costs ~70 µs a call); the few
    it adds (6to4 relay anycast) surface as IPDefinedError and read the same.
    """
    return not address.is_global or address.is_multicast


class WhoisClient:
    """One synchronous lookup: cache, negative cache, breaker, then RDAP via ipwhois.

    ``timeout`` bounds the HTTP part of a lookup as a whole: every request and every
    read of a body gets the time left, so a registry that drips its answer is cut off
    at the deadline. ipwhois's DNS ASN method has its own limit of ``timeout``. A body
    over ``max_bytes`` is refused (read no further). A redirect is followed only to
    ``referral_hosts`` (the five registries' RDAP services), at most three times.

    ``opener`` is the ``urllib`` opener ipwhois sends its requests through (its
    "proxy opener"); it must not follow redirects itself (the client does, to
    registries only). None means :func:`registry_opener`, which honours ``*_proxy``
    variables.
    """

    def __init__(
        self,
        cache: WhoisCache | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        breaker: CircuitBreaker | None = None,
        asn_methods: Iterable[str] = DEFAULT_ASN_METHODS,
        opener: OpenerDirector | None = None,
        success_ttl: float = DEFAULT_SUCCESS_TTL,
        failure_ttl: float = DEFAULT_FAILURE_TTL,
        clock: Clock = time.time,
        max_bytes: int = DEFAULT_MAX_BYTES,
        referral_hosts: Iterable[str] = REGISTRY_RDAP_HOSTS,
    ) -> None:
        try:
            from ipwhois import IPDefinedError, IPWhois
        except ImportError:
            raise ConfigError("whois enrichment needs the ipwhois package") from None
        if opener is not None and any(
            isinstance(h, HTTPRedirectHandler) for h in getattr(opener, "handlers", ())
        ):
            raise ConfigError(
                "the whois opener must not follow redirects itself: the client follows "
                "them to the registries only (build it without HTTPRedirectHandler)"
            )
        if not timeout > 0 or max_bytes < 1:
            raise ConfigError("whois timeout and max_bytes must be above 0")
        self._ipwhois = IPWhois
        self._defined_error: type[Exception] = IPDefinedError
        self.cache = cache
        self.timeout = timeout
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self.asn_methods = list(asn_methods)
        self.opener = opener
        self.success_ttl = success_ttl
        self.failure_ttl = failure_ttl
        self._clock = clock
        self.max_bytes = max_bytes
        self.referral_hosts = frozenset(h.lower() for h in referral_hosts)

    def lookup(self, ip: str | IPAddress) -> WhoisRecord | None:
        return self.resolve(ip).record

    def resolve(self, ip: str | IPAddress) -> Resolution:
        """Never raises for a bad answer or a network fault; the outcome says what
        happened and, without an answer, ``reason`` says why in one line."""
        address = _parse_address(ip)
        if address is None:
            return Resolution(None, "invalid", reason="not an IP address")
        if _defined(address):
            return Resolution(None, "not_public", reason=_NOT_PUBLIC)
        if self.cache is not None:
            cached = self.cache.get(address)
            if cached is not None:
                return Resolution(cached, "cache")
            remembered = self.cache.failure(address)
            if remembered is not None:
                why = f"from cache: a lookup in this /24 (/48) failed recently ({remembered})"
                return Resolution(None, "negative", reason=why)
        if not self.breaker.allow():
            why = "not asked: recent lookups kept failing (circuit breaker open)"
            return Resolution(None, "breaker_open", reason=why)
        record: WhoisRecord | None = None
        outcome: Outcome = "failed"
        failure: Failure | None = None
        reason: str | None = None
        try:
            record = self.fetch(address)
            outcome = "fetched"
        except self._defined_error:
            outcome, reason = "not_public", _NOT_PUBLIC
        except _LookupFailed as exc:
            failure, reason = exc.kind, f"{exc.kind.replace('_', ' ')}: {exc.detail}"
            log.info("whois lookup for %s failed: %s", address, reason)
            if self.cache is not None:
                self.cache.put_failure(address, self.failure_ttl, reason)
        finally:
            if outcome == "fetched":
                self.breaker.record_success()
            elif outcome == "failed":
                self.breaker.record_failure()
            else:
                self.breaker.release()
        if record is not None and self.cache is not None:
            self.cache.put(record, self.success_ttl, around=address)
        return Resolution(record, outcome, failure, reason)

    def fetch(self, address: IPAddress) -> WhoisRecord:
        """Ask the registries, no cache and no breaker. Raises ``IPDefinedError`` for
        an address ipwhois will not look up, else :class:`_LookupFailed` with the
        failure's kind."""
        deadline = time.monotonic() + self.timeout
        opener = _DeadlineOpener(
            self.opener or registry_opener(),
            deadline,
            max_bytes=self.max_bytes,
            referral_hosts=self.referral_hosts,
        )
        try:
            whois = self._ipwhois(str(address), timeout=self.timeout, proxy_opener=opener)
            result = whois.lookup_rdap(
                depth=0,
                asn_methods=self.asn_methods,
                inc_raw=True,  # for ARIN's origin-AS extension
                retry_count=0,  # retries would multiply the timeout
                rate_limit_timeout=0,  # ipwhois sleeps this long on a 429 before retrying
                inc_nir=False,  # JPNIC/KRNIC: extra requests
                root_ent_check=False,  # one request per entity without a vCard
            )
            return record_from_rdap(result, address, self._clock())
        except self._defined_error:
            raise
        except UnusableAnswer as exc:
            raise _LookupFailed("unusable", str(exc)) from None
        except Exception as exc:
            if opener.failure is not None:  # ipwhois rewraps what the opener raised
                raise _LookupFailed(*opener.failure) from None
            if time.monotonic() >= deadline:
                raise _LookupFailed("timeout", "no answer before the deadline") from None
            text = " ".join(str(exc).split())[:_MAX_TEXT]
            raise _LookupFailed("error", f"{type(exc).__name__}: {text}") from None


_NOT_PUBLIC = "not a public address (private, shared, reserved or multicast): never looked up"


class _LookupFailed(Exception):
    def __init__(self, kind: Failure, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind: Failure = kind
        self.detail = detail


# --- the non-blocking front -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WhoisStats:
    hits: int  # answered from the cache
    negative_hits: int  # a recent failure around the address was remembered
    misses: int  # lookups submitted
    fetched: int  # registry answers
    failures: int  # failed lookups (timeouts, errors, unusable answers)
    skipped_budget: int  # not submitted: run budget spent
    skipped_breaker: int  # not submitted or not sent: breaker open
    skipped_backlog: int  # not submitted: too many lookups queued
    pending: int  # in flight now
    breaker_state: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_COUNTERS = (
    "hits",
    "negative_hits",
    "misses",
    "fetched",
    "failures",
    "skipped_budget",
    "skipped_breaker",
    "skipped_backlog",
)
_OUTCOME_COUNTER: dict[str, str] = {
    "cache": "hits",
    "negative": "negative_hits",
    "fetched": "fetched",
    "failed": "failures",
    "breaker_open": "skipped_breaker",
}


class WhoisEnricher:
    """Cached answers at once; otherwise a background lookup, waited on for ``wait`` s.

    At most ``max_workers`` lookups run at a time and ``max_pending`` wait for a
    worker; the same address is never looked up twice at once. After ``max_lookups``
    submissions or ``max_seconds`` spent in lookups (summed over workers) nothing new
    is submitted, and cached answers are still served.
    """

    def __init__(
        self,
        client: WhoisClient,
        *,
        max_workers: int = 4,
        max_pending: int = 256,
        max_lookups: int | None = None,
        max_seconds: float | None = None,
    ) -> None:
        self.client = client
        self.max_workers = max_workers
        self.max_pending = max_pending
        self.max_lookups = max_lookups
        self.max_seconds = max_seconds
        self._setup()
        _FORK_SENSITIVE.add(self)

    def _setup(self) -> None:
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(self.max_workers, thread_name_prefix="whois")
        self._in_flight: dict[IPAddress, Future[Resolution]] = {}
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._submitted = 0
        self._seconds = 0.0
        self._closed = False

    def _after_fork(self) -> None:
        # The parent's worker threads do not exist here: start over, empty-handed.
        closed = self._closed
        self._setup()
        self._closed = closed

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def lookup(self, ip: str | IPAddress, wait: float = 0.0) -> WhoisRecord | Pending | None:
        """The record if cached or answered within ``wait`` seconds; PENDING while a
        lookup is under way; None when nothing is known and nothing will be asked."""
        try:
            return self._lookup(ip, wait)
        except Exception:  # never let enrichment break a check
            log.exception("whois enrichment failed for %r", ip)
            return None

    def _lookup(self, ip: str | IPAddress, wait: float) -> WhoisRecord | Pending | None:
        address = _parse_address(ip)
        if address is None or _defined(address):
            return None
        cache = self.client.cache
        if cache is not None:
            cached = cache.get(address)
            if cached is not None:
                self._count("hits")
                return cached
        with self._lock:
            future = self._in_flight.get(address)
        if future is None:
            if cache is not None and cache.failure(address) is not None:
                self._count("negative_hits")
                return None
            if self.client.breaker.state == "open":
                self._count("skipped_breaker")
                return None
            future = self._submit(address)
            if future is None:
                return None
        if wait > 0:
            wait_futures([future], timeout=wait)
        if not future.done():
            return PENDING
        return future.result().record

    def _submit(self, address: IPAddress) -> Future[Resolution] | None:
        with self._lock:
            if self._closed:
                return None
            future = self._in_flight.get(address)
            if future is not None:
                return future
            spent = (self.max_lookups is not None and self._submitted >= self.max_lookups) or (
                self.max_seconds is not None and self._seconds >= self.max_seconds
            )
            if spent:
                self._counts["skipped_budget"] += 1
                return None
            if len(self._in_flight) >= self.max_pending:
                self._counts["skipped_backlog"] += 1
                return None
            self._submitted += 1
            self._counts["misses"] += 1
            future = self._executor.submit(self._work, address)
            self._in_flight[address] = future
        future.add_done_callback(functools.partial(self._done, address))
        return future

    def _work(self, address: IPAddress) -> Resolution:
        started = time.monotonic()
        try:
            resolution = self.client.resolve(address)
        except Exception:
            log.exception("whois lookup for %s failed", address)
            resolution = Resolution(None, "failed")
        with self._lock:
            if resolution.outcome in ("fetched", "failed"):
                self._seconds += time.monotonic() - started
            counter = _OUTCOME_COUNTER.get(resolution.outcome)
            if counter is not None:
                self._counts[counter] += 1
        return resolution

    def _done(self, address: IPAddress, future: Future[Resolution]) -> None:
        with self._lock:
            if self._in_flight.get(address) is future:
                del self._in_flight[address]

    def stats(self) -> WhoisStats:
        with self._lock:
            counts = dict(self._counts)
            pending = len(self._in_flight)
        return WhoisStats(**counts, pending=pending, breaker_state=self.client.breaker.state)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait for the lookups under way; True when none is left."""
        with self._lock:
            futures = list(self._in_flight.values())
        _, not_done = wait_futures(futures, timeout=timeout)
        return not not_done

    def close(self, wait: bool = False) -> None:
        """Stop submitting; drop queued lookups; with ``wait``, let running ones finish
        (their answers are cached). Closes the cache."""
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=wait, cancel_futures=True)
        if self.client.cache is not None:
            # Without ``wait`` running lookups may still write; a closed cache ignores them.
            self.client.cache.close()

    def __enter__(self) -> WhoisEnricher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_enricher(
    cache_path: str | Path | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_lookups: int | None = None,
    max_seconds: float | None = None,
    max_workers: int = 4,
    opener: OpenerDirector | None = None,
    asn_methods: Iterable[str] = DEFAULT_ASN_METHODS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> WhoisEnricher:
    """The enricher the CLI and the checker build from their options."""
    cache = WhoisCache(cache_path)
    client = WhoisClient(
        cache, timeout=timeout, opener=opener, asn_methods=asn_methods, max_bytes=max_bytes
    )
    return WhoisEnricher(
        client, max_workers=max_workers, max_lookups=max_lookups, max_seconds=max_seconds
    )


# --- hosting networks -------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _compiled(patterns: tuple[str, ...]) -> tuple[tuple[str, RulePattern], ...]:
    return tuple((p, compile_rule_regex(p)) for p in patterns)


def is_hosting(record: WhoisRecord | None, network_rules: NetworkFile) -> tuple[str, str] | None:
    """``(org, kind)`` for a listed hosting ASN, else ``(pattern, "pattern")`` for the
    first name pattern matching the ASN description or the network name, else None."""
    if record is None:
        return None
    if record.asn is not None:
        for entry in network_rules.hosting_asns:
            if entry.asn == record.asn:
                return entry.org, entry.kind
    texts = [t for t in (record.asn_description, record.network_name) if t]
    for pattern, regex in _compiled(tuple(network_rules.hosting_name_patterns)):
        if any(regex.search(text) for text in texts):
            return pattern, "pattern"
    return None


__all__ = [
    "DEFAULT_FAILURE_TTL",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_SUCCESS_TTL",
    "DEFAULT_TIMEOUT",
    "PENDING",
    "REGISTRY_RDAP_HOSTS",
    "BreakerState",
    "CircuitBreaker",
    "Failure",
    "Outcome",
    "Pending",
    "Resolution",
    "UnusableAnswer",
    "WhoisCache",
    "WhoisClient",
    "WhoisEnricher",
    "WhoisRecord",
    "WhoisStats",
    "default_cache_path",
    "is_hosting",
    "open_enricher",
    "record_from_rdap",
    "registry_opener",
]
