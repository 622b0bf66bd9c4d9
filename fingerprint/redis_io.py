"""Redis connections whose every call runs against one deadline.

redis-py's ``socket_timeout`` bounds each socket read: a server that answers one
byte every 30 ms never trips a 50 ms timeout, and a call can last as long as the
reply is long. Here a call is given a deadline (``time.monotonic()`` seconds) and
every connect, send and read gets only what is left of it, retries included; the
replies are parsed by hiredis (already a dependency of the ``redis`` extra).

Plain TCP, TLS (``rediss://``, through the standard ``ssl`` module: the TCP connect,
the TLS handshake and every read and write get what is left of the deadline) and
Unix-socket URLs, with AUTH and SELECT; credential providers, RESP3 and custom
connection classes keep redis-py's own connections (see ``endpoint_of``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

from fingerprint.errors import ConfigError

try:  # comes with the redis extra
    import hiredis
except ImportError:  # pragma: no cover - exercised only without the extra
    hiredis = None  # type: ignore[assignment]

AVAILABLE = hiredis is not None

_READ = 65_536


class DeadlineExceeded(TimeoutError):
    """The call's deadline passed (connecting, sending, reading or queueing)."""


class QueueTimeout(DeadlineExceeded):
    """The deadline passed while the call waited for a free connection: the pool
    was busy, Redis was not at fault."""


class ReplyError(Exception):
    """Redis answered with an error reply (the connection is still in step)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    host: str = "localhost"
    port: int = 6379
    path: str | None = None  # a Unix socket instead of host and port
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None  # rediss://: the handshake's settings

    def handshake(self) -> tuple[bytes, int]:
        """The commands a new connection sends first, packed, and how many replies."""
        commands: list[list[bytes]] = []
        if self.password is not None:
            auth = [b"AUTH", self.password.encode()]
            if self.username:
                auth.insert(1, self.username.encode())
            commands.append(auth)
        if self.db:
            commands.append([b"SELECT", str(self.db).encode()])
        return b"".join(pack(parts) for parts in commands), len(commands)


def endpoint_of(pool: Any, redis_module: Any) -> Endpoint | None:
    """The endpoint behind a redis-py pool, when its connections are plain TCP or a
    Unix socket with nothing but AUTH and SELECT on connect; otherwise None."""
    kwargs = pool.connection_kwargs
    if kwargs.get("credential_provider") is not None or kwargs.get("protocol") not in (
        None,
        2,
        "2",
    ):
        return None
    common = {
        "db": int(kwargs.get("db") or 0),
        "username": kwargs.get("username"),
        "password": kwargs.get("password"),
    }
    host, port = kwargs.get("host") or "localhost", int(kwargs.get("port") or 6379)
    if pool.connection_class is redis_module.Connection:
        return Endpoint(host=host, port=port, **common)
    if pool.connection_class is redis_module.SSLConnection:
        return Endpoint(host=host, port=port, tls=tls_context(kwargs), **common)
    if pool.connection_class is redis_module.UnixDomainSocketConnection:
        return Endpoint(path=kwargs["path"], **common)
    return None


_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
# redis-py's TLS options that tls_context maps; any other ``ssl_*`` option with a
# value that asks for something (OCSP validation, an OCSP context) is refused.
_TLS_OPTIONS = frozenset(
    {
        "ssl_cert_reqs",
        "ssl_check_hostname",
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_ca_data",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_password",
        "ssl_min_version",
        "ssl_ciphers",
        "ssl_include_verify_flags",
        "ssl_exclude_verify_flags",
    }
)


def tls_context(kwargs: dict[str, Any]) -> ssl.SSLContext:
    """The ``ssl`` context redis-py would build from a ``rediss://`` URL's options
    (same defaults: certificates required and checked against the system's CAs,
    host name checked unless ``ssl_cert_reqs=none``); :class:`ConfigError` for an
    option it cannot honour or a file it cannot load, never a silent default."""
    unsupported = sorted(
        name
        for name, value in kwargs.items()
        if name.startswith("ssl_") and value
        if name not in _TLS_OPTIONS
    )
    if unsupported:
        raise ConfigError(f"rediss:// option not supported: {', '.join(unsupported)}")
    cert_reqs = kwargs.get("ssl_cert_reqs", "required")
    if cert_reqs is None:
        cert_reqs = ssl.CERT_NONE
    elif isinstance(cert_reqs, str):
        if cert_reqs not in _CERT_REQS:
            raise ConfigError(
                f"rediss:// ssl_cert_reqs must be none, optional or required, not {cert_reqs!r}"
            )
        cert_reqs = _CERT_REQS[cert_reqs]
    check_hostname = kwargs.get("ssl_check_hostname")
    context = ssl.create_default_context()
    context.check_hostname = (check_hostname is not False) and cert_reqs != ssl.CERT_NONE
    context.verify_mode = ssl.VerifyMode(cert_reqs)
    try:
        for flag in kwargs.get("ssl_include_verify_flags") or ():
            context.verify_flags |= flag
        for flag in kwargs.get("ssl_exclude_verify_flags") or ():
            context.verify_flags &= ~flag
        certfile, keyfile = kwargs.get("ssl_certfile"), kwargs.get("ssl_keyfile")
        if certfile or keyfile:  # a key file alone: redis-py's call, which then fails
            context.load_cert_chain(certfile or "", keyfile, kwargs.get("ssl_password"))
        cafile, capath, cadata = (kwargs.get(f"ssl_ca_{k}") for k in ("certs", "path", "data"))
        if cafile is not None or capath is not None or cadata is not None:
            context.load_verify_locations(cafile, capath, cadata)
        if kwargs.get("ssl_min_version") is not None:
            context.minimum_version = ssl.TLSVersion(kwargs["ssl_min_version"])
        if kwargs.get("ssl_ciphers"):
            context.set_ciphers(kwargs["ssl_ciphers"])
    except (OSError, ValueError, TypeError) as exc:  # ssl.SSLError is an OSError
        raise ConfigError(
            f"rediss:// TLS settings unusable ({type(exc).__name__}: {exc})"
        ) from None
    return context


def pack(parts: list[bytes]) -> bytes:
    """One command in the Redis protocol."""
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def remaining(deadline: float) -> float | None:
    """What is left of a deadline (None: no deadline at all)."""
    if deadline == math.inf:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("history deadline passed")
    return left


def _checked(reply: Any) -> Any:
    if isinstance(reply, hiredis.ReplyError):
        raise ReplyError(str(reply))
    return reply


class SyncConnection:
    """One blocking socket; each call reads until its reply or its deadline."""

    __slots__ = ("_reader", "_sock")

    def __init__(self, endpoint: Endpoint, deadline: float) -> None:
        self._reader = hiredis.Reader()
        try:
            if endpoint.path is not None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.settimeout(remaining(deadline))
                self._sock.connect(endpoint.path)
            else:
                address = (endpoint.host, endpoint.port)
                self._sock = socket.create_connection(address, timeout=remaining(deadline))
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except TimeoutError as exc:
            raise DeadlineExceeded(f"connecting to Redis: {exc}") from None
        if endpoint.tls is not None:
            self._sock = _tls_handshake(self._sock, endpoint, deadline)
        handshake, replies = endpoint.handshake()
        if replies:
            try:
                _send(self._sock, handshake, deadline)
                for _ in range(replies):
                    self._read(deadline)
            except BaseException:
                self.close()
                raise

    def call(self, command: bytes, deadline: float) -> Any:
        """Send one packed command and return its reply (error replies raise
        :class:`ReplyError`); a passed deadline raises :class:`DeadlineExceeded`."""
        _send(self._sock, command, deadline)
        return self._read(deadline)

    def _read(self, deadline: float) -> Any:
        reader, sock = self._reader, self._sock
        reply = reader.gets()
        while reply is False:
            sock.settimeout(remaining(deadline))
            try:
                data = sock.recv(_READ)
            except TimeoutError:
                raise DeadlineExceeded("reading from Redis") from None
            if not data:
                raise ConnectionError("Redis closed the connection")
            reader.feed(data)
            reply = reader.gets()
        return _checked(reply)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


def _tls_handshake(sock: socket.socket, endpoint: Endpoint, deadline: float) -> ssl.SSLSocket:
    """The TLS handshake on a connected socket, within what is left of the deadline
    (CPython bounds a handshake's total time by the socket's timeout, not each read)."""
    assert endpoint.tls is not None
    try:
        sock.settimeout(remaining(deadline))
        return endpoint.tls.wrap_socket(sock, server_hostname=endpoint.host)
    except TimeoutError:
        sock.close()
        raise DeadlineExceeded("TLS handshake with Redis") from None
    except BaseException:
        sock.close()
        raise


def _send(sock: socket.socket, data: bytes, deadline: float) -> None:
    """All of ``data`` within the deadline: each partial send gets only what is left
    (``SSLSocket.sendall`` would give every chunk the whole timeout again)."""
    view = memoryview(data)
    try:
        while view:
            sock.settimeout(remaining(deadline))
            view = view[sock.send(view) :]
    except TimeoutError:
        raise DeadlineExceeded("sending to Redis") from None


class AsyncConnection:
    """One asyncio stream; the caller bounds each call with ``asyncio.timeout``."""

    __slots__ = ("_hiredis", "_reader", "_writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._hiredis = hiredis.Reader()

    @classmethod
    async def open(cls, endpoint: Endpoint) -> AsyncConnection:
        if endpoint.path is not None:
            reader, writer = await asyncio.open_unix_connection(endpoint.path)
        elif endpoint.tls is not None:  # the handshake runs under the caller's deadline
            reader, writer = await asyncio.open_connection(
                endpoint.host, endpoint.port, ssl=endpoint.tls, server_hostname=endpoint.host
            )
        else:
            reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
        connection = cls(reader, writer)
        handshake, replies = endpoint.handshake()
        try:
            if replies:
                writer.write(handshake)
                for _ in range(replies):
                    await connection._read()
        except BaseException:
            connection.close()
            raise
        return connection

    async def call(self, command: bytes) -> Any:
        self._writer.write(command)
        return await self._read()

    async def _read(self) -> Any:
        parser = self._hiredis
        reply = parser.gets()
        while reply is False:
            data = await self._reader.read(_READ)
            if not data:
                raise ConnectionError("Redis closed the connection")
            parser.feed(data)
            reply = parser.gets()
        return _checked(reply)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # its event loop is closed already
            self._writer.close()


class AsyncPool:
    """At most ``size`` connections of one event loop; calls beyond that wait their
    turn (first come, first served) instead of failing."""

    def __init__(self, endpoint: Endpoint, size: int) -> None:
        self._endpoint = endpoint
        self._slots = asyncio.Semaphore(size)
        self._idle: list[AsyncConnection] = []

    async def call(self, command: bytes, timeout: float | None) -> Any:
        """One command within ``timeout`` seconds, the wait for a connection
        included; one retry on a fresh connection when an idle one turns out dead."""
        queued = True
        try:
            async with asyncio.timeout(timeout):
                async with self._slots:
                    queued = False
                    return await self._call_on_a_connection(command)
        except TimeoutError:
            if queued:
                raise QueueTimeout("no free Redis connection before the deadline") from None
            raise DeadlineExceeded("history deadline passed") from None

    async def _call_on_a_connection(self, command: bytes) -> Any:
        reused = bool(self._idle)
        connection = self._idle.pop() if reused else await AsyncConnection.open(self._endpoint)
        try:
            answer = await connection.call(command)
        except ReplyError:
            self._idle.append(connection)  # a complete reply: still in step
            raise
        except (ConnectionError, OSError):
            connection.close()
            if not reused:
                raise
            # The server dropped an idle connection (restart, CLIENT KILL, timeout).
            connection = await AsyncConnection.open(self._endpoint)
            try:
                answer = await connection.call(command)
            except BaseException:
                connection.close()
                raise
        except BaseException:  # cancelled or timed out mid-reply: out of step
            connection.close()
            raise
        self._idle.append(connection)
        return answer

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
