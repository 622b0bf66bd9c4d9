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

import math
import threading
import time
from typing import Any

import orjson

from fingerprint.errors import ConfigError
from fingerprint.history import HistoryView, LoginEvent, Windows

try:  # optional dependency
    import redis
    import redis.asyncio as aioredis
except ImportError:  # pragma: no cover - exercised only without the extra
    redis = None  # type: ignore[assignment]
    aioredis = None  # type: ignore[assignment]

# KEYS: account key, device key ("" when none)
# ARGV: ts, member, account window, device window, max events, max accounts,
#       account id, account ttl, device ttl
_RECORD_AND_FETCH = """
local ts = tonumber(ARGV[1])
local account_window = tonumber(ARGV[3])
local device_window = tonumber(ARGV[4])
local max_events = tonumber(ARGV[5])
local max_accounts = tonumber(ARGV[6])

redis.call('ZADD', KEYS[1], ts, ARGV[2])
local newest = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (newest - account_window))
local count = redis.call('ZCARD', KEYS[1])
if count > max_events then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, count - max_events - 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[8])
local before = redis.call('ZRANGEBYSCORE', KEYS[1], ts - account_window, ts)

local accounts = {}
if KEYS[2] ~= '' then
  accounts = redis.call('ZRANGEBYSCORE', KEYS[2], ts - device_window, '+inf', 'WITHSCORES')
  redis.call('ZADD', KEYS[2], 'GT', ts, ARGV[7])
  local device_newest = tonumber(redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (device_newest - device_window))
  local seen = redis.call('ZCARD', KEYS[2])
  if seen > max_accounts then
    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, seen - max_accounts - 1)
  end
  redis.call('EXPIRE', KEYS[2], ARGV[9])
end
return {before, accounts}
"""

# KEYS: device key; ARGV: ts, account id, device window, max accounts, ttl
_RECORD_DEVICE = """
redis.call('ZADD', KEYS[1], 'GT', tonumber(ARGV[1]), ARGV[2])
local newest = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (newest - tonumber(ARGV[3])))
local seen = redis.call('ZCARD', KEYS[1])
if seen > tonumber(ARGV[4]) then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, seen - tonumber(ARGV[4]) - 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""

_TTL_MARGIN = 3600  # keys outlive their window by an hour, then expire on their own


class RedisHistoryStore:
    """A :class:`~fingerprint.history.HistoryStore` in Redis (sync and asyncio)."""

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
        self._script = client.register_script(_RECORD_AND_FETCH)
        self._device_script = client.register_script(_RECORD_DEVICE)
        self._async_script = (
            async_client.register_script(_RECORD_AND_FETCH) if async_client else None
        )
        # After a failure, calls fail fast for ``retry_after`` seconds instead of each
        # paying a timeout; then the next call tries Redis again (self-recovery).
        self._retry_after = retry_after
        self._down_until = 0.0
        self._lock = threading.Lock()

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

    def record_and_fetch(self, event: LoginEvent, windows: Windows) -> HistoryView:
        self._fail_fast()
        keys, args = self._call(event, windows)
        try:
            answer = self._script(keys=keys, args=args)
        except Exception:
            self._mark_down()
            raise
        return self._view(event, answer)

    async def arecord_and_fetch(self, event: LoginEvent, windows: Windows) -> HistoryView:
        if self._async_script is None:
            return self.record_and_fetch(event, windows)
        self._fail_fast()
        keys, args = self._call(event, windows)
        try:
            answer = await self._async_script(keys=keys, args=args)
        except Exception:
            self._mark_down()
            raise
        return self._view(event, answer)

    def record_device(self, event: LoginEvent, windows: Windows) -> None:
        if not event.device_id:
            return
        self._fail_fast()
        ttl = math.ceil(windows.device_seconds) + _TTL_MARGIN
        args = [
            event.ts,
            event.account_id,
            windows.device_seconds,
            windows.max_accounts_per_device,
            ttl,
        ]
        try:
            self._device_script(keys=[self._device_key(event.device_id)], args=args)
        except Exception:
            self._mark_down()
            raise

    # --- helpers -----------------------------------------------------------------------

    def account_events(self, account_id: str) -> list[LoginEvent]:
        """Everything stored for one account, oldest first (for tests and tools)."""
        members = self._client.zrange(self._account_key(account_id), 0, -1)
        return [_decode(account_id, m) for m in members]

    def close(self) -> None:
        self._client.close()

    def _call(self, event: LoginEvent, windows: Windows) -> tuple[list[str], list[Any]]:
        device_key = self._device_key(event.device_id) if event.device_id else ""
        keys = [self._account_key(event.account_id), device_key]
        args = [
            event.ts,
            _encode(event),
            windows.account_seconds,
            windows.device_seconds,
            windows.max_events_per_account,
            windows.max_accounts_per_device,
            event.account_id,
            math.ceil(windows.account_seconds) + _TTL_MARGIN,
            math.ceil(windows.device_seconds) + _TTL_MARGIN,
        ]
        return keys, args

    def _view(self, event: LoginEvent, answer: Any) -> HistoryView:
        before_raw, accounts_raw = answer
        current = _encode(event)
        before = [_decode(event.account_id, m) for m in before_raw if m != current]
        before.sort(key=lambda e: e.ts)
        pairs = zip(accounts_raw[::2], accounts_raw[1::2], strict=True)
        device = tuple((float(score), _text(account)) for account, score in pairs)
        return HistoryView(account_events=tuple(before), device_accounts=device)

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


# Stored field order: every LoginEvent field but the account (the key holds it).
_STORED = [name for name in LoginEvent._fields if name != "account_id"]


def _encode(event: LoginEvent) -> bytes:
    return orjson.dumps([getattr(event, name) for name in _STORED])


def _decode(account_id: str, member: bytes | str) -> LoginEvent:
    values = dict(zip(_STORED, orjson.loads(member), strict=False))
    return LoginEvent(account_id=account_id, **values)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
