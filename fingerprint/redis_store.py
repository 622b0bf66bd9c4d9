"""History in Redis, shared by every replica of a decision service.

Per account, a sorted set of logins scored by time; per device, a sorted set of
accounts scored by their newest login on it. One Lua script appends the login,
trims both sets to their windows and caps, sets their expiry and reads back what
came before, so each call is one round trip and atomic: replicas never lose or
duplicate each other's entries. Needs Redis 6.2+ (``ZADD GT``).

Install with ``pip install 'fingerprint[redis]'``; configure with a URL:
``RedisHistoryStore.from_url("redis://127.0.0.1:6379/0")``.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from operator import itemgetter
from typing import Any, cast

import orjson

from fingerprint.errors import ConfigError
from fingerprint.history import HistoryView, LoginEvent, Windows

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

# KEYS: account key, device key ("" when none)
# ARGV: ts, member, account id, now ("" when none), account window, device window,
#       max events, max accounts, account ttl, device ttl
# Windows are trimmed back from the key's newest login, or from the caller's clock
# ("now") when that login is dated after it: a login dated 2099 trims nothing of a
# shared device's other accounts.
# Returns the account's logins before this one inside the window, oldest first, as
# the stored members (the client joins them into one JSON array for a single
# orjson.loads: cheaper than a table.concat here, which cost the server ~5 µs of
# ~36 per call), and the device's accounts with their newest ts.
_RECORD_AND_FETCH = """
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
return {before, accounts}
"""

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

_TTL_MARGIN = 3600  # keys outlive their window by an hour, then expire on their own


class _Script:
    """A Lua script called by its SHA1, with the fixed head of its EVALSHA packed."""

    def __init__(self, source: str, keys: int, args: int) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()
        self.keys = keys
        self.head = _bulk_array_head(3 + keys + args) + b"".join(
            _bulk(part) for part in (b"EVALSHA", self.sha.encode("ascii"), b"%d" % keys)
        )


class RedisHistoryStore:
    """A :class:`~fingerprint.history.HistoryStore` in Redis (sync and asyncio).

    Sync calls take the short path: EVALSHA packed here and sent on a connection of
    the store's own (made with the client's pool settings), its reply read straight
    back. Anything off that path (a broken connection, a timeout, a server that lost
    the script) goes through the client's ``execute_command`` with its reconnects and
    retries, exactly as a plain redis-py call would.
    """

    def __init__(
        self,
        client: Any,
        *,
        async_client: Any = None,
        prefix: str = "fp:",
        retry_after: float = 1.0,
    ) -> None:
        self._client = client
        self._async_client = async_client
        self._prefix = prefix
        # After a failure, calls fail fast for ``retry_after`` seconds instead of each
        # paying a timeout; then the next call tries Redis again (self-recovery).
        self._retry_after = retry_after
        self._down_until = 0.0
        self._lock = threading.Lock()
        # The short path's idle connections (a list: pop and append are atomic).
        pool = getattr(client, "connection_pool", None)
        direct = (
            redis is not None
            and isinstance(pool, redis.ConnectionPool)
            and getattr(client, "connection", None) is None  # not a single-connection client
            and getattr(pool, "cache", None) is None  # no client-side caching
            and pool.connection_kwargs.get("encoding", "utf-8") in ("utf-8", "utf8")
            and pool.connection_kwargs.get("encoding_errors", "strict") == "strict"
        )
        self._pool: Any = pool if direct else None
        self._idle: list[Any] = []
        self._pid = os.getpid()
        self._packed_windows: tuple[Windows, bytes] | None = None

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
        """Connection pools (sync and asyncio) with short socket timeouts."""
        if redis is None:
            raise ConfigError("Redis history needs: pip install 'fingerprint[redis]'")
        options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "max_connections": max_connections,
            "retry_on_timeout": False,
        }
        try:
            client = redis.Redis.from_url(url, **options)
            async_client = aioredis.Redis.from_url(url, **options)
        except ValueError as exc:
            raise ConfigError(f"invalid Redis URL ({exc})", url) from None
        return cls(client, async_client=async_client, prefix=prefix, retry_after=retry_after)

    # --- the HistoryStore protocol ---------------------------------------------------

    def record_and_fetch(
        self, event: LoginEvent, windows: Windows, now: float | None = None
    ) -> HistoryView:
        self._fail_fast()
        args = self._args(event, now)
        try:
            answer = self._eval(_RECORD_AND_FETCH_SCRIPT, args, windows)
        except Exception:
            self._mark_down()
            raise
        return _view(event.account_id, answer)

    async def arecord_and_fetch(
        self, event: LoginEvent, windows: Windows, now: float | None = None
    ) -> HistoryView:
        if self._async_client is None:
            return self.record_and_fetch(event, windows, now)
        self._fail_fast()
        args = self._args(event, now)
        args.extend(_window_args(windows))
        try:
            answer = await self._aeval(_RECORD_AND_FETCH_SCRIPT, args)
        except Exception:
            self._mark_down()
            raise
        return _view(event.account_id, answer)

    def record_device(self, event: LoginEvent, windows: Windows, now: float | None = None) -> None:
        if not event.device_id:
            return
        self._fail_fast()
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
        try:
            self._eval(_RECORD_DEVICE_SCRIPT, args)
        except Exception:
            self._mark_down()
            raise

    # --- helpers -----------------------------------------------------------------------

    def account_events(self, account_id: str) -> list[LoginEvent]:
        """Everything stored for one account, oldest first (for tests and tools)."""
        members = self._client.zrange(self._account_key(account_id), 0, -1)
        return [_decode(account_id, orjson.loads(m)) for m in members]

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.disconnect()
        self._client.close()

    def _args(self, event: LoginEvent, now: float | None) -> list[Any]:
        """KEYS and the per-login ARGV of the record-and-fetch script."""
        device_key = self._device_key(event.device_id) if event.device_id else ""
        return [
            self._account_key(event.account_id),
            device_key,
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

    def _eval(self, script: _Script, args: list[Any], windows: Windows | None = None) -> Any:
        """EVALSHA on an idle connection of our own; off the short path, the client's.

        ``windows``, when given, supplies the script's last ARGV (see ``_window_args``).
        """
        if self._pool is not None:
            parts = [script.head, *[b"$%d\r\n%s\r\n" % (len(p), p) for p in map(_arg, args)]]
            if windows is not None:
                parts.append(self._packed_tail(windows))
            command = b"".join(parts)
            connection = self._checkout()
            try:
                connection.send_packed_command([command])
                answer = connection.read_response()
            except _NoScript:  # a restarted or flushed server: load it, below
                self._checkin(connection)
            except _Refused:  # a complete error reply: the connection is still in step
                self._checkin(connection)
                raise
            except (_Disconnected, _TimedOut, OSError):
                connection.disconnect()  # retried below through the client's machinery
            except BaseException:
                connection.disconnect()
                raise
            else:
                self._checkin(connection)
                return answer
        if windows is not None:
            args = [*args, *_window_args(windows)]
        try:
            return self._client.execute_command("EVALSHA", script.sha, script.keys, *args)
        except _NoScript:
            self._client.script_load(script.source)
            return self._client.execute_command("EVALSHA", script.sha, script.keys, *args)

    async def _aeval(self, script: _Script, args: list[Any]) -> Any:
        client = self._async_client
        try:
            return await client.execute_command("EVALSHA", script.sha, script.keys, *args)
        except _NoScript:
            await client.script_load(script.source)
            return await client.execute_command("EVALSHA", script.sha, script.keys, *args)

    def _checkout(self) -> Any:
        if self._pid != os.getpid():  # forked: the parent's sockets are not ours
            self._idle = []
            self._pid = os.getpid()
        try:
            return self._idle.pop()
        except IndexError:  # connects on first use, with the pool's settings
            return self._pool.connection_class(**self._pool.connection_kwargs)

    def _checkin(self, connection: Any) -> None:
        if len(self._idle) < self._pool.max_connections:
            self._idle.append(connection)
        else:
            connection.disconnect()

    def _account_key(self, account_id: str) -> str:
        return f"{self._prefix}a:{account_id}"

    def _device_key(self, device_id: str) -> str:
        return f"{self._prefix}d:{device_id}"

    def _fail_fast(self) -> None:
        if time.monotonic() < self._down_until:
            raise ConnectionError("Redis marked unavailable; retrying shortly")

    def _mark_down(self) -> None:
        with self._lock:
            self._down_until = time.monotonic() + self._retry_after


def _window_args(windows: Windows) -> list[Any]:
    return [
        windows.account_seconds,
        windows.device_seconds,
        windows.max_events_per_account,
        windows.max_accounts_per_device,
        math.ceil(windows.account_seconds) + _TTL_MARGIN,
        math.ceil(windows.device_seconds) + _TTL_MARGIN,
    ]


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
    members, accounts_raw = answer
    rows = orjson.loads(_joined(members)) if members else ()
    before = [_decode(account_id, values) for values in rows]
    before.sort(key=_TS)  # already in score (= ts) order; kept as the contract
    scores = map(float, accounts_raw[1::2])
    device = tuple(zip(scores, map(_text, accounts_raw[::2]), strict=True))
    return HistoryView(account_events=tuple(before), device_accounts=device)


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


_RECORD_AND_FETCH_SCRIPT = _Script(_RECORD_AND_FETCH, keys=2, args=10)
_RECORD_DEVICE_SCRIPT = _Script(_RECORD_DEVICE, keys=1, args=6)
