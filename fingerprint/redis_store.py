"""History in Redis, shared by every replica of a decision service.

Per account, a sorted set of logins scored by time; per device, a sorted set of
accounts scored by their newest login on it. One Lua script appends the login,
trims both sets to their windows and caps, sets their expiry and reads back what
came before, so each call is one round trip and atomic: replicas never lose or
duplicate each other's entries. Needs Redis 6.2+ (``ZADD GT``).

Install with ``pip install -e '.[redis]'`` in the checkout; configure with a URL:
``RedisHistoryStore.from_url("redis://127.0.0.1:6379/0")``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from operator import itemgetter
from typing import Any, cast

import msgspec
import orjson

from fingerprint.errors import ConfigError
from fingerprint.history import HistoryStats, HistoryView, Link, LoginEvent, Windows, ip_keys
from fingerprint.redis_io import (
    AVAILABLE,
    AsyncPool,
    Endpoint,
    QueueTimeout,
    ReplyError,
    SyncConnection,
    endpoint_of,
)

try:  # optional dependency
    import redis
    import redis.asyncio as aioredis
    from redis.exceptions import ConnectionError as _Disconnected
    from redis.exceptions import NoScriptError as _NoScript
    from redis.exceptions import ResponseError as _Refused
    from redis.exceptions import TimeoutError as _TimedOut
except ImportError:  # pragma: no cover - exercised only without the extra
    redis = None  # type: ignore[assignment]
    aioredis = None  # type: ignore[assignment]
    _Disconnected = _NoScript = _Refused = _TimedOut = OSError  # type: ignore[assignment,misc]

# Accounts per address and per block (ip_accounts): a sorted set of accounts scored
# by their newest login, read from ts - window before this login is added, then
# trimmed back from its newest (or "now") and capped like a device's; "" keys skip.
_SHARED_ACCOUNTS = """
local function shared_accounts(key, ts, account, now, window, cap, ttl)
  if key == '' then
    return {}
  end
  local seen = redis.call('ZRANGEBYSCORE', key, ts - window, '+inf', 'WITHSCORES')
  redis.call('ZADD', key, 'GT', ts, account)
  local newest = ts
  if #seen > 0 then
    newest = math.max(ts, tonumber(seen[#seen]))
  end
  newest = math.min(newest, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (newest - window))
  local count = redis.call('ZCARD', key)
  if count > cap then
    redis.call('ZREMRANGEBYRANK', key, 0, count - cap - 1)
  end
  redis.call('EXPIRE', key, ttl)
  return seen
end
"""

# KEYS: account key, device key ("" when none), address key and block key ("" when
#       ip_accounts is off or the address has no block)
# ARGV: ts, member, account id, now ("" when none), account window, device window,
#       max events, max accounts, account ttl, device ttl, ip window, max accounts
#       per address, address ttl
# Windows are trimmed back from the key's newest login, or from the caller's clock
# ("now") when that login is dated after it: a login dated 2099 trims nothing of a
# shared device's other accounts.
# Returns the account's logins before this one inside the window, oldest first, as
# the stored members (the client joins them into one JSON array for a single
# orjson.loads: cheaper than a table.concat here, which cost the server ~5 µs of
# ~36 per call), the device's accounts with their newest ts, and the address's and
# the block's. (The body without its return: the script with the links below adds
# their answer to it.)
_RECORD_AND_FETCH_BODY = (
    _SHARED_ACCOUNTS
    + """
local ts = tonumber(ARGV[1])
local member = ARGV[2]
local now = tonumber(ARGV[4]) or math.huge
local account_window = tonumber(ARGV[5])
local device_window = tonumber(ARGV[6])
local max_events = tonumber(ARGV[7])
local max_accounts = tonumber(ARGV[8])

redis.call('ZADD', KEYS[1], ts, member)
local newest = math.min(now, tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (newest - account_window))
local count = redis.call('ZCARD', KEYS[1])
if count > max_events then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, count - max_events - 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[9])
local before = redis.call('ZRANGEBYSCORE', KEYS[1], ts - account_window, ts)
for i = #before, 1, -1 do
  if before[i] == member then
    table.remove(before, i)
    break
  end
end

local accounts = {}
if KEYS[2] ~= '' then
  accounts = redis.call('ZRANGEBYSCORE', KEYS[2], ts - device_window, '+inf', 'WITHSCORES')
  redis.call('ZADD', KEYS[2], 'GT', ts, ARGV[3])
  -- The read runs to +inf: its last score is the set's newest unless it is empty,
  -- when everything left is older than ts - device_window.
  local device_newest = ts
  if #accounts > 0 then
    device_newest = math.max(ts, tonumber(accounts[#accounts]))
  end
  device_newest = math.min(device_newest, now)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (device_newest - device_window))
  local seen = redis.call('ZCARD', KEYS[2])
  if seen > max_accounts then
    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, seen - max_accounts - 1)
  end
  redis.call('EXPIRE', KEYS[2], ARGV[10])
end
local ip_window, ip_cap = tonumber(ARGV[11]), tonumber(ARGV[12])
local on_ip = shared_accounts(KEYS[3], ts, ARGV[3], now, ip_window, ip_cap, ARGV[13])
local on_block = shared_accounts(KEYS[4], ts, ARGV[3], now, ip_window, ip_cap, ARGV[13])
"""
)

# KEYS: address key, block key ("" when none); ARGV: ts, account id, ip window,
# max accounts per address, ttl, now
_RECORD_IP = (
    _SHARED_ACCOUNTS
    + """
local now = tonumber(ARGV[6]) or math.huge
local ts, window, cap = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[4])
shared_accounts(KEYS[1], ts, ARGV[2], now, window, cap, ARGV[5])
shared_accounts(KEYS[2], ts, ARGV[2], now, window, cap, ARGV[5])
return 1
"""
)

# KEYS: device key; ARGV: ts, account id, device window, max accounts, ttl, now
_RECORD_DEVICE = """
redis.call('ZADD', KEYS[1], 'GT', tonumber(ARGV[1]), ARGV[2])
local newest = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
newest = math.min(newest, tonumber(ARGV[6]) or math.huge)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (newest - tonumber(ARGV[3])))
local seen = redis.call('ZCARD', KEYS[1])
if seen > tonumber(ARGV[4]) then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, seen - tonumber(ARGV[4]) - 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""

# KEYS from first_key on: one key per identity link
# ARGV from first_arg on: ts, now ("" when none), link window, max members, ttl, then
#       for each key its member count and members
# Returns, per key, its members inside the window before this login, WITHSCORES
# (read before the add, as the in-memory store does); then adds the members (newest
# ts kept), trims back from the link's newest member (or the clock) and caps.
_LINKS_FUNCTION = """
local function record_links(first_key, first_arg)
  local ts = tonumber(ARGV[first_arg])
  local now = tonumber(ARGV[first_arg + 1]) or math.huge
  local window = tonumber(ARGV[first_arg + 2])
  local max_members = tonumber(ARGV[first_arg + 3])
  local ttl = ARGV[first_arg + 4]
  local out = {}
  local i = first_arg + 5
  for k = first_key, #KEYS do
    local n = tonumber(ARGV[i])
    i = i + 1
    out[#out + 1] = redis.call('ZRANGEBYSCORE', KEYS[k], ts - window, '+inf', 'WITHSCORES')
    if n > 0 then
      for j = 1, n do
        redis.call('ZADD', KEYS[k], 'GT', ts, ARGV[i])
        i = i + 1
      end
      local newest = math.min(now, tonumber(redis.call('ZRANGE', KEYS[k], -1, -1, 'WITHSCORES')[2]))
      redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', '(' .. (newest - window))
      local count = redis.call('ZCARD', KEYS[k])
      if count > max_members then
        redis.call('ZREMRANGEBYRANK', KEYS[k], 0, count - max_members - 1)
      end
      redis.call('EXPIRE', KEYS[k], ttl)
    end
  end
  return out
end
"""

_RECORD_LINKS = _LINKS_FUNCTION + "return record_links(1, 1)\n"

# A login and its identity links in one call (one round trip, atomic): the record
# script's KEYS and ARGV, then the links' (KEYS from 5, ARGV from 14). Returns the
# record script's four answers and, fifth, the links script's.
_RECORD_AND_FETCH = _RECORD_AND_FETCH_BODY + "return {before, accounts, on_ip, on_block}\n"
_RECORD_AND_FETCH_LINKS = (
    _LINKS_FUNCTION
    + _RECORD_AND_FETCH_BODY
    + "return {before, accounts, on_ip, on_block, record_links(5, 14)}\n"
)

_TTL_MARGIN = 3600  # keys outlive their window by an hour, then expire on their own

log = logging.getLogger("fingerprint.history")


class _Script:
    """A Lua script called by its SHA1, with the fixed head of its EVALSHA packed."""

    def __init__(self, source: str, keys: int, args: int) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()
        self.keys = keys
        self.head = _bulk_array_head(3 + keys + args) + b"".join(
            _bulk(part) for part in (b"EVALSHA", self.sha.encode("ascii"), b"%d" % keys)
        )
        # The same call with the source (EVAL also caches it): for a server that
        # lost its script cache (restarted, SCRIPT FLUSH).
        self.eval_head = _bulk_array_head(3 + keys + args) + b"".join(
            _bulk(part) for part in (b"EVAL", source.encode("utf-8"), b"%d" % keys)
        )


class RedisHistoryStore:
    """A :class:`~fingerprint.history.HistoryStore` in Redis (sync and asyncio).

    Every call has one deadline, ``timeout`` seconds (connecting, queueing for a
    connection, sending, reading and one retry on a fresh connection all count
    against it): a slow or dripping server costs a call ``timeout``, not ``timeout``
    per socket read. Sync calls use connections of the store's own, made from the
    client's settings; asyncio calls use a pool per event loop (so a new loop never
    meets a closed one's connections) of at most ``max_connections``, where calls
    beyond that queue for a connection within their deadline. This holds for
    ``redis://``, ``rediss://`` (TLS by the ``ssl`` module; the handshake counts
    against the deadline) and ``unix://`` URLs. ``?protocol=3`` URLs, and clients
    built by hand with a credential provider, client-side caching, a custom
    connection class or TLS options ours do not map (OCSP), go through the client's
    own ``execute_command`` instead, whose timeout is per read.

    After a failure (not a wait for a busy pool), calls fail fast for
    ``retry_after`` seconds instead of each paying the timeout; then the next call
    tries Redis again. Outages and recoveries are logged on ``fingerprint.history``.
    """

    def __init__(
        self,
        client: Any,
        *,
        async_client: Any = None,
        prefix: str = "fp:",
        retry_after: float = 1.0,
        timeout: float | None = None,
        max_connections: int | None = None,
    ) -> None:
        self._client = client
        self._async_client = async_client
        self._prefix = prefix
        self._retry_after = retry_after
        pool = getattr(client, "connection_pool", None)
        direct = (
            redis is not None
            and isinstance(pool, redis.ConnectionPool)
            and getattr(client, "connection", None) is None  # not a single-connection client
            and getattr(pool, "cache", None) is None  # no client-side caching
            and pool.connection_kwargs.get("encoding", "utf-8") in ("utf-8", "utf8")
            and pool.connection_kwargs.get("encoding_errors", "strict") == "strict"
        )
        self._endpoint = _own_endpoint(pool) if direct else None
        kwargs = pool.connection_kwargs if pool is not None else {}
        self._timeout: float | None = (
            timeout if timeout is not None else kwargs.get("socket_timeout")
        )
        self._max_connections = max_connections or getattr(pool, "max_connections", 64) or 64
        self._idle: list[SyncConnection] = []  # pop and append are atomic
        self._pid = os.getpid()
        self._async_pools: dict[asyncio.AbstractEventLoop, AsyncPool] = {}
        self._packed_windows: tuple[Windows, bytes] | None = None
        self._breaker = _Breaker(retry_after)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        timeout: float = 0.05,
        max_connections: int = 64,
        prefix: str = "fp:",
        retry_after: float = 1.0,
    ) -> RedisHistoryStore:
        """A store for one URL; ``timeout`` is each call's deadline in seconds.

        ``rediss://`` takes redis-py's query options ``ssl_cert_reqs``,
        ``ssl_check_hostname``, ``ssl_ca_certs``, ``ssl_ca_path``, ``ssl_ca_data``,
        ``ssl_certfile``, ``ssl_keyfile``, ``ssl_password``, ``ssl_min_version``,
        ``ssl_ciphers`` and the verify-flag lists, with redis-py's defaults; any
        other ``ssl_*`` option (OCSP) or an unloadable file raises ConfigError."""
        if redis is None or not AVAILABLE:
            raise ConfigError(
                "Redis history needs the redis package: pip install 'redis>=5' hiredis"
            )
        options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "max_connections": max_connections,
            "retry_on_timeout": False,
        }
        try:
            client = redis.Redis.from_url(url, **options)
        except ValueError as exc:
            raise ConfigError(f"invalid Redis URL ({exc})", url) from None
        async_client = None
        # A rediss:// option ours cannot honour raises ConfigError here, at start.
        if endpoint_of(client.connection_pool, redis) is None:  # ?protocol=3
            pool = aioredis.BlockingConnectionPool.from_url(url, timeout=None, **options)
            async_client = aioredis.Redis(connection_pool=pool)
        return cls(
            client,
            async_client=async_client,
            prefix=prefix,
            retry_after=retry_after,
            timeout=timeout,
            max_connections=max_connections,
        )

    # --- the HistoryStore protocol ---------------------------------------------------

    def record_and_fetch(
        self, event: LoginEvent, windows: Windows, now: float | None = None
    ) -> HistoryView:
        answer = self._guarded(_RECORD_AND_FETCH_SCRIPT, self._args(event, now, windows), windows)
        return _view(event.account_id, answer)

    async def arecord_and_fetch(
        self, event: LoginEvent, windows: Windows, now: float | None = None
    ) -> HistoryView:
        if self._endpoint is None and self._async_client is None:
            return self.record_and_fetch(event, windows, now)
        answer = await self._aguarded(
            _RECORD_AND_FETCH_SCRIPT, self._args(event, now, windows), windows
        )
        return _view(event.account_id, answer)

    def record_and_fetch_links(
        self,
        event: LoginEvent,
        windows: Windows,
        links: Sequence[Link],
        now: float | None = None,
    ) -> HistoryView:
        """:meth:`record_and_fetch` and :meth:`record_links` of the login's links in one
        script call: one round trip, not two, and atomic (the history stage calls it
        for a login that has links)."""
        script, args, tail = self._fetch_links_call(event, windows, links, now)
        answer = self._guarded(script, args, windows, tail)
        return _view_with_links(event.account_id, links, answer)

    async def arecord_and_fetch_links(
        self,
        event: LoginEvent,
        windows: Windows,
        links: Sequence[Link],
        now: float | None = None,
    ) -> HistoryView:
        """:meth:`record_and_fetch_links` through the event loop's own pool."""
        if self._endpoint is None and self._async_client is None:
            return self.record_and_fetch_links(event, windows, links, now)
        script, args, tail = self._fetch_links_call(event, windows, links, now)
        answer = await self._aguarded(script, args, windows, tail)
        return _view_with_links(event.account_id, links, answer)

    def _fetch_links_call(
        self, event: LoginEvent, windows: Windows, links: Sequence[Link], now: float | None
    ) -> tuple[_Script, list[Any], list[Any]]:
        """The combined script for this many links, the arguments before the windows'
        (the record's KEYS, the links' KEYS, the record's per-login ARGV) and those
        after them (the links' ARGV)."""
        record = self._args(event, now, windows)
        keys, tail = self._links_args(links, event.ts, windows, now)
        head = record[:4] + keys + record[4:]
        script = _fetch_links_script(4 + len(keys), len(record) - 4 + _WINDOW_ARGS + len(tail))
        return script, head, tail

    def record_device(self, event: LoginEvent, windows: Windows, now: float | None = None) -> None:
        """Record the shared sides of a login another shard checks: its device's
        accounts and its address's and block's accounts."""
        self._record_ip(event, windows, now)
        if not event.device_id:
            return
        ttl = math.ceil(windows.device_seconds) + _TTL_MARGIN
        args: list[Any] = [
            self._device_key(event.device_id),
            event.ts,
            event.account_id,
            windows.device_seconds,
            windows.max_accounts_per_device,
            ttl,
            b"" if now is None else now,
        ]
        self._guarded(_RECORD_DEVICE_SCRIPT, args, None)

    def _record_ip(self, event: LoginEvent, windows: Windows, now: float | None) -> None:
        address, block = self._ip_keys(event, windows)
        if not address:
            return
        args: list[Any] = [
            address,
            block,
            event.ts,
            event.account_id,
            windows.ip_seconds,
            windows.max_accounts_per_ip,
            math.ceil(windows.ip_seconds) + _TTL_MARGIN,
            b"" if now is None else now,
        ]
        self._guarded(_RECORD_IP_SCRIPT, args, None)

    def record_links(
        self, links: Sequence[Link], ts: float, windows: Windows, now: float | None = None
    ) -> dict[str, tuple[tuple[float, str], ...]]:
        """Identity links, as :meth:`MemoryHistoryStore.record_links`: one script call,
        atomic, so replicas see each other's links."""
        if not links:
            return {}
        script, args = self._links_call(links, ts, windows, now)
        return _links_found(links, self._guarded(script, args, None))

    async def arecord_links(
        self, links: Sequence[Link], ts: float, windows: Windows, now: float | None = None
    ) -> dict[str, tuple[tuple[float, str], ...]]:
        """:meth:`record_links` for ``acheck``: the same script through the event
        loop's own pool, so an async login never blocks its loop on a sync round trip."""
        if not links:
            return {}
        if self._endpoint is None and self._async_client is None:
            return self.record_links(links, ts, windows, now)
        script, args = self._links_call(links, ts, windows, now)
        return _links_found(links, await self._aguarded(script, args, None))

    def _links_call(
        self, links: Sequence[Link], ts: float, windows: Windows, now: float | None
    ) -> tuple[_Script, list[Any]]:
        """The links script for these links and its KEYS + ARGV."""
        keys, args = self._links_args(links, ts, windows, now)
        return _links_script(len(keys), len(args)), keys + args

    def _links_args(
        self, links: Sequence[Link], ts: float, windows: Windows, now: float | None
    ) -> tuple[list[Any], list[Any]]:
        """The links' KEYS, and their ARGV (``record_links`` of the Lua scripts)."""
        ttl = math.ceil(windows.link_seconds) + _TTL_MARGIN
        keys: list[Any] = [self._link_key(name) for name, _ in links]
        args: list[Any] = [ts, b"" if now is None else now, windows.link_seconds]
        args += [windows.max_members_per_link, ttl]
        for _, members in links:
            args += [len(members), *members]
        return keys, args

    # --- helpers -----------------------------------------------------------------------

    def stats(self) -> HistoryStats:
        """Failure counters since the store was built, and the breaker's state."""
        return self._breaker.stats()

    def account_events(self, account_id: str) -> list[LoginEvent]:
        """Everything stored for one account, oldest first (for tests and tools)."""
        members = self._client.zrange(self._account_key(account_id), 0, -1)
        return [_decode(account_id, orjson.loads(m)) for m in members]

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        pools, self._async_pools = self._async_pools, {}
        for pool in pools.values():
            pool.close()
        self._client.close()

    def _guarded(
        self, script: _Script, args: list[Any], windows: Windows | None, tail: Sequence[Any] = ()
    ) -> Any:
        """A sync call through the breaker."""
        self._breaker.check()
        try:
            answer = self._eval(script, args, windows, tail)
        except Exception as exc:
            self._breaker.failed(exc)
            raise
        self._breaker.succeeded()
        return answer

    async def _aguarded(
        self, script: _Script, args: list[Any], windows: Windows | None, tail: Sequence[Any] = ()
    ) -> Any:
        """An awaited call through the breaker (:meth:`_guarded`'s twin)."""
        self._breaker.check()
        try:
            answer = await self._aeval(script, args, windows, tail)
        except Exception as exc:
            self._breaker.failed(exc)
            raise
        self._breaker.succeeded()
        return answer

    def _args(self, event: LoginEvent, now: float | None, windows: Windows) -> list[Any]:
        """KEYS and the per-login ARGV of the record-and-fetch script."""
        device_key = self._device_key(event.device_id) if event.device_id else ""
        address, block = self._ip_keys(event, windows)
        return [
            self._account_key(event.account_id),
            device_key,
            address,
            block,
            event.ts,
            _encode(event),
            event.account_id,
            b"" if now is None else now,
        ]

    def _packed_tail(self, windows: Windows) -> bytes:
        """The script's ARGV that depend only on the windows, packed once per windows."""
        packed = self._packed_windows
        if packed is None or packed[0] is not windows:
            packed = (windows, b"".join(_bulk(_arg(value)) for value in _window_args(windows)))
            self._packed_windows = packed
        return packed[1]

    def _packed(
        self, script: _Script, args: list[Any], windows: Windows | None, tail: Sequence[Any] = ()
    ) -> tuple[bytes, bytes]:
        """The EVALSHA command and its EVAL twin, packed: ``args``, the windows' ARGV,
        then ``tail``."""
        parts = [b"$%d\r\n%s\r\n" % (len(p), p) for p in map(_arg, args)]
        if windows is not None:
            parts.append(self._packed_tail(windows))
        parts += [b"$%d\r\n%s\r\n" % (len(p), p) for p in map(_arg, tail)]
        body = b"".join(parts)
        return script.head + body, script.eval_head + body

    def _deadline(self) -> float:
        return math.inf if self._timeout is None else time.monotonic() + self._timeout

    def _eval(
        self, script: _Script, args: list[Any], windows: Windows | None, tail: Sequence[Any] = ()
    ) -> Any:
        """EVALSHA on a connection of our own within one deadline; off that path
        (TLS and the like), the client's ``execute_command``."""
        if self._endpoint is None:
            return self._client_eval(script, args, windows, tail)
        deadline = self._deadline()
        command, loading = self._packed(script, args, windows, tail)
        try:
            return self._call(command, deadline)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise _Refused(str(exc)) from None
        try:  # a restarted or flushed server: EVAL loads the script again
            return self._call(loading, deadline)
        except ReplyError as exc:
            raise _Refused(str(exc)) from None

    def _call(self, command: bytes, deadline: float) -> Any:
        """One command on an idle connection, or on a new one; a dead idle connection
        (the server restarted or dropped it) is retried once on a new one."""
        assert self._endpoint is not None
        if self._pid != os.getpid():  # forked: the parent's sockets are not ours
            self._idle = []
            self._pid = os.getpid()
        try:
            connection = self._idle.pop()
            reused = True
        except IndexError:
            connection = SyncConnection(self._endpoint, deadline)
            reused = False
        try:
            answer = connection.call(command, deadline)
        except ReplyError:
            self._checkin(connection)  # a complete error reply: still in step
            raise
        except (ConnectionError, OSError) as exc:
            connection.close()
            if not reused or isinstance(exc, TimeoutError):
                raise
            connection = SyncConnection(self._endpoint, deadline)
            try:
                answer = connection.call(command, deadline)
            except BaseException:
                connection.close()
                raise
        except BaseException:
            connection.close()
            raise
        self._checkin(connection)
        return answer

    def _checkin(self, connection: SyncConnection) -> None:
        if len(self._idle) < self._max_connections:
            self._idle.append(connection)
        else:
            connection.close()

    def _client_eval(
        self, script: _Script, args: list[Any], windows: Windows | None, tail: Sequence[Any] = ()
    ) -> Any:
        args = _client_args(args, windows, tail)
        try:
            return self._client.execute_command("EVALSHA", script.sha, script.keys, *args)
        except _NoScript:
            self._client.script_load(script.source)
            return self._client.execute_command("EVALSHA", script.sha, script.keys, *args)

    async def _aeval(
        self, script: _Script, args: list[Any], windows: Windows | None, tail: Sequence[Any] = ()
    ) -> Any:
        deadline = self._deadline()
        if self._endpoint is None:
            async with asyncio.timeout(None if self._timeout is None else self._timeout):
                return await self._aclient_eval(script, args, windows, tail)
        pool = self._async_pool()
        command, loading = self._packed(script, args, windows, tail)
        try:
            return await pool.call(command, _left(deadline))
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise _Refused(str(exc)) from None
        try:
            return await pool.call(loading, _left(deadline))
        except ReplyError as exc:
            raise _Refused(str(exc)) from None

    async def _aclient_eval(
        self, script: _Script, args: list[Any], windows: Windows | None, tail: Sequence[Any] = ()
    ) -> Any:
        client = self._async_client
        args = _client_args(args, windows, tail)
        try:
            return await client.execute_command("EVALSHA", script.sha, script.keys, *args)
        except _NoScript:
            await client.script_load(script.source)
            return await client.execute_command("EVALSHA", script.sha, script.keys, *args)

    def _async_pool(self) -> AsyncPool:
        """The running event loop's pool: asyncio connections belong to one loop."""
        loop = asyncio.get_running_loop()
        pool = self._async_pools.get(loop)
        if pool is None:
            assert self._endpoint is not None
            # Forget the pools of loops that have closed (asyncio.run per request,
            # test runners): their connections can never be used again.
            for gone in [old for old in list(self._async_pools) if old.is_closed()]:
                dropped = self._async_pools.pop(gone, None)  # another thread may race us
                if dropped is not None:
                    dropped.close()
            pool = AsyncPool(self._endpoint, self._max_connections)
            self._async_pools[loop] = pool
        return pool

    def _account_key(self, account_id: str) -> str:
        return f"{self._prefix}a:{account_id}"

    def _ip_keys(self, event: LoginEvent, windows: Windows | None) -> tuple[str, str]:
        """The address's and the block's keys ("" when not kept)."""
        if windows is None or not windows.ip_seconds or not event.ip:
            return "", ""
        address, block = ip_keys(event.ip, event.network)
        return f"{self._prefix}i:{address}", f"{self._prefix}b:{block}" if block else ""

    def _device_key(self, device_id: str) -> str:
        return f"{self._prefix}d:{device_id}"

    def _link_key(self, name: str) -> str:
        return f"{self._prefix}l:{name}"


def _own_endpoint(pool: Any) -> Endpoint | None:
    """Where our own connections go for a client built by hand; None keeps the
    client's own (redis-py honours TLS options ours refuse, e.g. OCSP)."""
    try:
        return endpoint_of(pool, redis)
    except ConfigError:
        return None


def _left(deadline: float) -> float | None:
    if deadline == math.inf:
        return None
    return max(0.0, deadline - time.monotonic())


_COUNTERS = [name for name in HistoryStats.__dataclass_fields__ if name != "breaker_open"]


class _Breaker:
    """Fails calls fast for ``retry_after`` seconds after a failure, then lets the
    next call try again; counts failures and logs outages and recoveries.

    A wait for a busy pool is no failure of Redis: it trips nothing (tripping would
    turn a burst of calls into a second of lost history for everyone). Nor does a
    timeout while other calls succeed (inside ``retry_after`` of the last success):
    then the caller's own event loop or CPU is saturated, and Redis answers. A
    refused or dropped connection, or timeouts with no success between, trip it."""

    def __init__(self, retry_after: float) -> None:
        self._retry_after = retry_after
        self._down_until = 0.0
        self._down_since: float | None = None
        self._last_success = -math.inf
        self._lock = threading.Lock()
        self._counts = {
            name: 0 for name in HistoryStats.__dataclass_fields__ if name != "breaker_open"
        }

    def check(self) -> None:
        if self._down_until and time.monotonic() < self._down_until:
            self._count("failures", "fast_failures")
            raise ConnectionError("Redis marked unavailable; retrying shortly")

    def failed(self, exc: Exception) -> None:
        if isinstance(exc, QueueTimeout):
            self._count("failures", "timeouts", "queue_timeouts")
            return
        timed_out = isinstance(exc, TimeoutError | _TimedOut)
        with self._lock:
            self._counts["failures"] += 1
            self._counts["timeouts"] += timed_out
            if timed_out and time.monotonic() - self._last_success < self._retry_after:
                return  # Redis answers other calls: this one waited behind them
            self._down_until = time.monotonic() + self._retry_after
            if self._down_since is None:
                self._down_since = time.monotonic()
                self._counts["breaker_trips"] += 1
                trip = True
            else:
                trip = False
        if trip:
            log.warning(
                "history store unavailable (%s: %s); failing fast for %g s, then retrying",
                type(exc).__name__,
                exc,
                self._retry_after,
            )

    def succeeded(self) -> None:
        self._last_success = time.monotonic()
        if self._down_since is None:  # the common case: no lock
            return
        with self._lock:
            since, self._down_since, self._down_until = self._down_since, None, 0.0
        if since is not None:
            log.info("history store recovered after %.1f s", time.monotonic() - since)

    def _count(self, *names: str) -> None:
        with self._lock:
            for name in names:
                self._counts[name] += 1

    def stats(self) -> HistoryStats:
        with self._lock:
            open_now = bool(self._down_until) and time.monotonic() < self._down_until
            return HistoryStats(breaker_open=open_now, **self._counts)


def _window_args(windows: Windows) -> list[Any]:
    return [
        windows.account_seconds,
        windows.device_seconds,
        windows.max_events_per_account,
        windows.max_accounts_per_device,
        math.ceil(windows.account_seconds) + _TTL_MARGIN,
        math.ceil(windows.device_seconds) + _TTL_MARGIN,
        windows.ip_seconds,
        windows.max_accounts_per_ip,
        math.ceil(windows.ip_seconds) + _TTL_MARGIN,
    ]


def _client_args(args: list[Any], windows: Windows | None, tail: Sequence[Any]) -> list[Any]:
    """A call's arguments as the client's ``execute_command`` takes them: ``args``, the
    windows' ARGV, then ``tail`` (what :meth:`RedisHistoryStore._packed` packs)."""
    if windows is None and not tail:
        return args
    return [*args, *(_window_args(windows) if windows is not None else ()), *tail]


# Stored field order: every LoginEvent field but the account (the key holds it).
_ACCOUNT = LoginEvent._fields.index("account_id")
_STORED = [name for name in LoginEvent._fields if name != "account_id"]
_WIDTH = len(_STORED)
_TS = itemgetter(0)


def _encode(event: LoginEvent) -> bytes:
    """The stored member: a JSON array of the fields but the account (a tuple
    serialises exactly like the list it replaces, so stored members are unchanged)."""
    return orjson.dumps(event[:_ACCOUNT] + event[_ACCOUNT + 1 :])


def _decode(account_id: str, values: list[Any]) -> LoginEvent:
    """A stored member's values back into a login (members from older versions may
    carry fewer fields: the rest take their defaults)."""
    if len(values) == _WIDTH:
        values.insert(_ACCOUNT, account_id)
        return tuple.__new__(LoginEvent, values)
    return LoginEvent(account_id=account_id, **dict(zip(_STORED, values, strict=False)))


def _joined(members: list[Any]) -> bytes | str:
    """The stored members as one JSON array, for a single orjson.loads."""
    if type(members[0]) is bytes:
        return b"[" + b",".join(members) + b"]"
    return "[" + ",".join(members) + "]"  # a client that decodes responses


def _view(account_id: str, answer: Any) -> HistoryView:
    """The script's reply: the members before this login (this one already left out),
    and the device's (account, newest ts) pairs."""
    members, accounts_raw, on_ip, on_block = answer
    rows = orjson.loads(_joined(members)) if members else ()
    before = [_decode(account_id, values) for values in rows]
    before.sort(key=_TS)  # already in score (= ts) order; kept as the contract
    return HistoryView(
        account_events=tuple(before),
        device_accounts=_scored_accounts(accounts_raw),
        ip_accounts=_scored_accounts(on_ip),
        block_accounts=_scored_accounts(on_block),
    )


def _scored_accounts(raw: list[Any]) -> tuple[tuple[float, str], ...]:
    """A ``ZRANGEBYSCORE ... WITHSCORES`` reply as (newest ts, account) pairs."""
    if not raw:
        return ()
    return tuple(zip(map(float, raw[1::2]), map(_text, raw[::2]), strict=True))


def _view_with_links(account_id: str, links: Sequence[Link], answer: Any) -> HistoryView:
    """The combined script's reply: the record script's view, with the links found."""
    view = _view(account_id, answer[:4])
    return msgspec.structs.replace(view, links=_links_found(links, answer[4]))


def _links_found(links: Sequence[Link], answer: Any) -> dict[str, tuple[tuple[float, str], ...]]:
    """The links script's answer: per link, its earlier (ts, member) pairs."""
    return {
        name: tuple(zip(map(float, raw[1::2]), map(_text, raw[::2]), strict=True))
        for (name, _), raw in zip(links, answer, strict=True)
    }


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _arg(value: Any) -> bytes:
    """One argument as redis-py's encoder would send it."""
    kind = type(value)
    if kind is bytes:
        return cast(bytes, value)
    if kind is str:
        return cast(str, value).encode("utf-8")
    if kind is float or kind is int:
        return repr(value).encode("ascii")
    if isinstance(value, bytes | memoryview):
        return bytes(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value).encode("ascii")
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"cannot send {kind.__name__} to Redis")


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _bulk_array_head(items: int) -> bytes:
    return b"*%d\r\n" % items


_RECORD_AND_FETCH_SCRIPT = _Script(_RECORD_AND_FETCH, keys=4, args=13)
_RECORD_DEVICE_SCRIPT = _Script(_RECORD_DEVICE, keys=1, args=6)
_RECORD_IP_SCRIPT = _Script(_RECORD_IP, keys=2, args=6)


_WINDOW_ARGS = 9  # the record script's ARGV 5-13, from _window_args


@functools.lru_cache(maxsize=64)
def _fetch_links_script(keys: int, args: int) -> _Script:
    """The record-and-links script with its EVALSHA head packed for this many keys
    and arguments (one source, one SHA1, as the links script)."""
    return _Script(_RECORD_AND_FETCH_LINKS, keys=keys, args=args)


@functools.lru_cache(maxsize=64)
def _links_script(keys: int, args: int) -> _Script:
    """The links script with its EVALSHA head packed for this many keys and arguments
    (one source, one SHA1: only the head's counts differ)."""
    return _Script(_RECORD_LINKS, keys=keys, args=args)
